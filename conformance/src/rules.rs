//! The ServerBootConfiguration readiness contract as data: every rule with its ID, level, profile, tier and purpose.
//! CONTRACT.md, the report and the checks all read this table, so they cannot drift apart.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Version of the contract this table describes. Bump when a rule is added, removed or changes meaning.
pub const CONTRACT_VERSION: &str = "v1";

/// RFC 2119 requirement level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Level {
    Must,
    Should,
    May,
}

/// What the suite needs from the environment to check a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// Observable through the Kubernetes API only: runs against any backend.
    Core,
    /// A simulated machine network-boots from the backend and verifies digests and ignition.
    Boot,
    /// Backend restart mid-reconcile, watch disruption, API server restart.
    Resilience,
    /// Many SBCs at once; time-to-Ready percentiles.
    Scale,
}

/// Baseline rules state what upstream (metal-operator + boot-operator) already relies on; extensions are stricter
/// rules upstream does not state, reported separately so a backend can be baseline-conformant on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    Baseline,
    Extension,
}

/// One rule of the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Rule {
    pub id: &'static str,
    pub level: Level,
    pub profile: Profile,
    pub tier: Tier,
    /// The requirement, one sentence.
    pub requirement: &'static str,
    /// The failure in the field that the rule prevents.
    pub purpose: &'static str,
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            Level::Must => "MUST",
            Level::Should => "SHOULD",
            Level::May => "MAY",
        })
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl Profile {
    pub const ALL: [Profile; 4] = [
        Profile::Core,
        Profile::Boot,
        Profile::Resilience,
        Profile::Scale,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Core => "core",
            Profile::Boot => "boot",
            Profile::Resilience => "resilience",
            Profile::Scale => "scale",
        }
    }

    pub fn parse(s: &str) -> Option<Profile> {
        Profile::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            Tier::Baseline => "baseline",
            Tier::Extension => "extension",
        })
    }
}

/// Looks a rule up by ID.
pub fn rule(id: &str) -> Option<&'static Rule> {
    RULES.iter().find(|r| r.id == id)
}

macro_rules! rule {
    ($id:literal, $level:ident, $profile:ident, $tier:ident, $req:literal, $purpose:literal) => {
        Rule {
            id: $id,
            level: Level::$level,
            profile: Profile::$profile,
            tier: Tier::$tier,
            requirement: $req,
            purpose: $purpose,
        }
    };
}

/// The contract, in the order CONTRACT.md lists it. The root is SBC-CORE-001: a server is not powered on until
/// its boot environment is confirmed ready, so `Ready` must be reachable and must mean "this server can boot".
pub static RULES: &[Rule] = &[
    // ---- core: the go signal and who writes what
    rule!(
        "SBC-CORE-001",
        Must,
        Core,
        Baseline,
        "A valid SBC (resolvable image, ignition Secret with key `ignition`, existing Server) reaches `status.state: Ready` within the time-to-Ready maximum.",
        "metal-operator powers a server on only when its SBC is Ready; a backend that never gets there keeps servers in Discovery forever (the discovery timeout only starts after Ready)."
    ),
    rule!(
        "SBC-CORE-002",
        Must,
        Core,
        Baseline,
        "The backend writes only `status`: it never changes an SBC's spec, labels or annotations.",
        "metal-operator create-or-patches SBC specs from claims; a backend that writes spec fights it, bumps generations and loses claim changes."
    ),
    rule!(
        "SBC-CORE-003",
        Must,
        Core,
        Baseline,
        "`status.state` is empty, `Pending`, `Ready` or `Error`, spelled exactly so.",
        "Consumers compare the state string exactly; `ready` or `Succeeded` never powers a server on and hides failures."
    ),
    // ---- ignition Secret
    rule!(
        "SBC-IGN-001",
        Must,
        Core,
        Baseline,
        "An SBC whose `ignitionSecretRef` names a missing Secret never becomes Ready.",
        "A server powered on without its ignition boots an unconfigured OS (no users, no network config) and must be reinstalled."
    ),
    rule!(
        "SBC-IGN-002",
        Must,
        Core,
        Baseline,
        "An SBC whose ignition Secret lacks the key `ignition` never becomes Ready.",
        "Same as a missing Secret: the machine fetches an empty ignition and boots unconfigured."
    ),
    rule!(
        "SBC-IGN-003",
        Should,
        Core,
        Baseline,
        "A missing ignition Secret or key yields `state: Error` with a condition carrying a reason and message.",
        "Pending forever gives the operator nothing to act on; a reason names the missing Secret."
    ),
    rule!(
        "SBC-IGN-004",
        Must,
        Core,
        Baseline,
        "Once the missing Secret or key appears, the SBC becomes Ready within the time-to-Ready maximum, without any edit to the SBC.",
        "Users create Secrets after claims; a backend that only retries on SBC edits leaves servers waiting until someone pokes the claim."
    ),
    rule!(
        "SBC-IGN-005",
        May,
        Core,
        Baseline,
        "An SBC without `ignitionSecretRef` may become Ready.",
        "Images that carry their own configuration are legitimate (boot-operator #104); the suite reports whether the backend supports them."
    ),
    // ---- image
    rule!(
        "SBC-IMG-001",
        Must,
        Core,
        Baseline,
        "An SBC whose image does not resolve (unknown repository or tag) never becomes Ready.",
        "The machine would PXE-boot into a 404 and sit at the firmware prompt while the claim looks healthy."
    ),
    rule!(
        "SBC-IMG-002",
        Must,
        Core,
        Baseline,
        "An SBC whose image lacks a layer required for the boot mode (kernel/initrd for iPXE, UKI for HTTP boot) never becomes Ready.",
        "boot-operator #352 made a missing kernel layer yield empty URLs while keeping the old Ready; the machine cannot boot."
    ),
    rule!(
        "SBC-IMG-003",
        Must,
        Core,
        Baseline,
        "An SBC whose image is from a registry outside the backend's allowlist never becomes Ready.",
        "The boot proxy refuses such blobs at serve time, so a Ready here is a server that cannot fetch its kernel."
    ),
    rule!(
        "SBC-IMG-004",
        Should,
        Core,
        Baseline,
        "An unresolvable image, missing layer or disallowed registry yields `state: Error` with a condition carrying a reason and message.",
        "An actionable reason (`ImageValidation`/`ValidationFailed` upstream) turns a stuck claim into a fixable typo."
    ),
    rule!(
        "SBC-IMG-005",
        Must,
        Core,
        Baseline,
        "Changing `spec.image` from a bad to a valid image brings the SBC to Ready within the time-to-Ready maximum.",
        "Errors are not terminal: fixing the claim's image must unblock the server without deleting anything."
    ),
    // ---- Server reference
    rule!(
        "SBC-SRV-001",
        Must,
        Core,
        Baseline,
        "An SBC whose `serverRef` names a missing Server never becomes Ready.",
        "Without a Server there is no systemUUID to key the boot record on; a Ready here serves nobody and hides the typo."
    ),
    rule!(
        "SBC-SRV-002",
        Should,
        Core,
        Baseline,
        "An SBC whose Server is missing yields `state: Error` with a condition carrying a reason and message.",
        "boot-operator retries silently and leaves the state untouched; a reason tells the user which reference is wrong."
    ),
    rule!(
        "SBC-SRV-003",
        Must,
        Core,
        Baseline,
        "Once the missing Server appears, the SBC becomes Ready within the time-to-Ready maximum.",
        "Servers are discovered after claims and SBCs are sometimes created first; readiness must converge by itself."
    ),
    // ---- generations
    rule!(
        "SBC-GEN-001",
        Must,
        Core,
        Baseline,
        "After a Ready SBC's image changes to one that cannot be served, the SBC leaves Ready within the error deadline and does not return while the spec stays invalid.",
        "metal-operator patches SBC specs in place; a Ready kept from the previous image powers a server on into an image the backend cannot serve."
    ),
    rule!(
        "SBC-GEN-002",
        Must,
        Core,
        Extension,
        "After any spec change, a non-Ready state is reported before Ready is reported again: Ready is never carried across a generation.",
        "boot-operator keeps the child's stale Ready after a spec change (PRs #292/#303); a consumer sees Ready while the old artifacts are still served."
    ),
    rule!(
        "SBC-GEN-003",
        Must,
        Core,
        Extension,
        "When Ready, `status.conditions` holds a True condition whose `observedGeneration` equals `metadata.generation`, and no condition is stamped with a newer or older generation.",
        "SBC status has no `observedGeneration`; the conditions' stamp is the only way a generation-aware consumer can tell a current Ready from a stale one."
    ),
    // ---- stability
    rule!(
        "SBC-FLAP-001",
        Must,
        Core,
        Extension,
        "A Ready SBC does not leave Ready (not even for one status write) unless one of its inputs changed: its spec, its ignition Secret, its Server.",
        "Two writers racing on `status.state` (boot-operator with both boot modes) flap Ready; each flap can power-cycle or re-PXE a machine mid-install."
    ),
    // ---- deletion
    rule!(
        "SBC-DEL-001",
        Must,
        Core,
        Baseline,
        "Deleting an SBC completes within the deletion deadline: no finalizer is left behind.",
        "metal-operator deletes SBCs on claim release and does not wait; a stuck finalizer blocks namespace deletion and claim churn."
    ),
    rule!(
        "SBC-DEL-002",
        Must,
        Core,
        Baseline,
        "Every object the backend creates for an SBC is owned by it (ownerReference) or removed when the SBC is deleted.",
        "Orphaned boot records keep serving a released server's old image and ignition (with its credentials) to the next tenant."
    ),
    // ---- isolation
    rule!(
        "SBC-ISO-001",
        Must,
        Core,
        Baseline,
        "The ignition Secret is read only from the SBC's own namespace: a same-named Secret in another namespace is never used.",
        "Reading another tenant's Secret leaks credentials across namespaces and boots the wrong configuration."
    ),
    rule!(
        "SBC-ISO-002",
        Must,
        Core,
        Baseline,
        "SBCs for different Servers and namespaces are independent: an SBC in Error never delays or flips a valid one, and same-named SBCs in two namespaces both converge.",
        "Keying boot records by name instead of namespace/name or UUID lets one broken claim block or hijack another tenant's server."
    ),
    // ---- boot: Ready means a machine can boot
    rule!(
        "SBC-BOOT-001",
        Must,
        Boot,
        Extension,
        "From the first moment Ready is observed, the Server's machine network-boots the SBC's image: script served, kernel and initrd digests match the image's layers, on several consecutive boots.",
        "A backend that flips Ready before its HTTP records exist sends the machine into PXE failure the moment metal-operator powers it on."
    ),
    rule!(
        "SBC-BOOT-002",
        Must,
        Boot,
        Baseline,
        "The machine receives the ignition of the SBC's Secret: byte-identical for plain data, translated to valid Ignition JSON when the Secret says `format: fcos` (Butane).",
        "A wrong or stale ignition provisions the wrong users, keys and network: a security incident, not a boot failure."
    ),
    rule!(
        "SBC-BOOT-003",
        Must,
        Boot,
        Extension,
        "After a spec change, once Ready for the new generation, the machine boots the new image and never the old one.",
        "Serving cached artifacts after an image change installs the previous OS while everything reports the new one."
    ),
    rule!(
        "SBC-BOOT-004",
        Must,
        Boot,
        Baseline,
        "Only the SBC the Server references (`spec.bootConfigurationRef`) is served to its machine; another SBC naming the same Server is not.",
        "Leftover SBCs for a server (old claims, discovery) must not win the race for its boot record (boot-operator #312)."
    ),
    rule!(
        "SBC-BOOT-005",
        Must,
        Boot,
        Baseline,
        "A machine with no SBC, or whose SBC was deleted, is not served a boot script.",
        "A released server that still net-boots its previous tenant's image and ignition leaks data and fights the next claim."
    ),
    // ---- resilience
    rule!(
        "SBC-RES-001",
        Must,
        Resilience,
        Baseline,
        "SBCs created just before a backend restart (mid-reconcile) all reach Ready after it.",
        "Controllers are restarted by upgrades and node drains; work that was in flight must not be lost."
    ),
    rule!(
        "SBC-RES-002",
        Must,
        Resilience,
        Baseline,
        "SBCs that were Ready before a backend restart are Ready again within the time-to-Ready maximum after it, with no input change, and (when a boot network is configured) their machines boot.",
        "A backend that keeps its boot records in memory and does not rebuild them after an upgrade leaves every server that powers on afterwards at a PXE prompt, while status still says Ready."
    ),
    rule!(
        "SBC-RES-003",
        Must,
        Resilience,
        Baseline,
        "Changes made while the backend's watches are dropped or expired (HTTP 410) are acted on within the time-to-Ready maximum.",
        "Watches break on every API server rollout; a controller that does not re-list misses fixes and leaves SBCs in Error."
    ),
    rule!(
        "SBC-RES-004",
        Must,
        Resilience,
        Baseline,
        "After an API server restart, the backend reconnects and new SBCs reach Ready.",
        "Control-plane upgrades restart the API server; a backend that does not reconnect silently stops provisioning."
    ),
    rule!(
        "SBC-RES-005",
        Must,
        Resilience,
        Baseline,
        "The backend keeps running while it reconciles valid and invalid SBCs: it does not exit or crash-loop.",
        "A reconcile that panics on one bad SBC takes every other server's provisioning down with it."
    ),
    // ---- scale
    rule!(
        "SBC-SCALE-001",
        Must,
        Scale,
        Baseline,
        "N SBCs created at once (default 50) all reach Ready within the scale maximum.",
        "Rack-scale provisioning creates dozens of claims at once; a backend that serialises slowly times out whole deployments."
    ),
    rule!(
        "SBC-SCALE-002",
        Should,
        Scale,
        Baseline,
        "At N SBCs, the 99th percentile time-to-Ready stays within the time-to-Ready maximum.",
        "Tail latency decides when the last server of a rack starts installing."
    ),
];

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn ids_are_unique_and_well_formed() {
        let mut seen = HashSet::new();
        for r in RULES {
            assert!(seen.insert(r.id), "duplicate rule id {}", r.id);
            let parts: Vec<&str> = r.id.split('-').collect();
            assert_eq!(parts.len(), 3, "{}", r.id);
            assert_eq!(parts[0], "SBC");
            assert_eq!(parts[2].len(), 3, "{}: three-digit number", r.id);
            assert!(
                r.requirement.ends_with('.') && r.purpose.ends_with('.'),
                "{}",
                r.id
            );
        }
    }

    #[test]
    fn every_profile_has_a_must_rule() {
        for p in Profile::ALL {
            assert!(
                RULES
                    .iter()
                    .any(|r| r.profile == p && r.level == Level::Must),
                "{p}"
            );
        }
    }
}
