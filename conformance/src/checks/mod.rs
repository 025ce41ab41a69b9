//! The checks: each creates its own fixtures in its own namespace, drives the backend and returns one verdict per
//! rule it declares. The registry below is the single source for which check covers which rule.

mod boot;
mod core;
mod inputs;
mod lifecycle;
mod resilience;
mod scale;

use crate::ctx::Ctx;
use crate::history::History;
use crate::outcome::Outcomes;
use crate::rules::Profile;
use futures::future::BoxFuture;

pub type CheckFn = for<'a> fn(&'a Ctx) -> BoxFuture<'a, anyhow::Result<Outcomes>>;

/// One check: what it does and which rules it decides.
pub struct Check {
    pub id: &'static str,
    pub profile: Profile,
    pub summary: &'static str,
    pub rules: &'static [&'static str],
    pub run: CheckFn,
}

/// Rules judged over every recorded history of every check (status-only writer, state vocabulary, flaps).
pub const HISTORY_RULES: [&str; 3] = ["SBC-CORE-002", "SBC-CORE-003", "SBC-FLAP-001"];

macro_rules! check {
    ($id:literal, $profile:ident, $summary:literal, [$($rule:literal),* $(,)?], $run:path) => {
        Check { id: $id, profile: Profile::$profile, summary: $summary, rules: &[$($rule),*], run: $run }
    };
}

pub static CHECKS: &[Check] = &[
    check!(
        "core.valid-ready",
        Core,
        "A Server, an ignition Secret and a valid SBC: Ready within the deadline, stamped with its generation, then stable.",
        ["SBC-CORE-001", "SBC-GEN-003"],
        core::valid_ready
    ),
    check!(
        "core.no-ignition-ref",
        Core,
        "A valid SBC without `ignitionSecretRef`: does it become Ready?",
        ["SBC-IGN-005"],
        core::no_ignition_ref
    ),
    check!(
        "core.ignition-secret-missing",
        Core,
        "The referenced Secret does not exist: never Ready, Error with a reason; creating the Secret brings Ready.",
        ["SBC-IGN-001", "SBC-IGN-003", "SBC-IGN-004"],
        inputs::ignition_secret_missing
    ),
    check!(
        "core.ignition-key-missing",
        Core,
        "The Secret exists without the `ignition` key: never Ready, Error with a reason; adding the key brings Ready.",
        ["SBC-IGN-002", "SBC-IGN-003", "SBC-IGN-004"],
        inputs::ignition_key_missing
    ),
    check!(
        "core.image-unresolvable",
        Core,
        "An image reference that does not resolve: never Ready, Error with a reason; a valid image brings Ready.",
        ["SBC-IMG-001", "SBC-IMG-004", "SBC-IMG-005"],
        inputs::image_unresolvable
    ),
    check!(
        "core.image-missing-layer",
        Core,
        "An image without a kernel layer: never Ready, Error with a reason; a valid image brings Ready.",
        ["SBC-IMG-002", "SBC-IMG-004", "SBC-IMG-005"],
        inputs::image_missing_layer
    ),
    check!(
        "core.image-disallowed-registry",
        Core,
        "An image from a registry outside the allowlist: never Ready, Error with a reason; a valid image brings Ready.",
        ["SBC-IMG-003", "SBC-IMG-004", "SBC-IMG-005"],
        inputs::image_disallowed_registry
    ),
    check!(
        "core.server-missing",
        Core,
        "`serverRef` names no Server: never Ready, Error with a reason; creating the Server brings Ready.",
        ["SBC-SRV-001", "SBC-SRV-002", "SBC-SRV-003"],
        inputs::server_missing
    ),
    check!(
        "core.spec-change-to-invalid",
        Core,
        "A Ready SBC's image changes to an unservable one: it leaves Ready and stays out while the spec is invalid.",
        ["SBC-GEN-001"],
        lifecycle::spec_change_to_invalid
    ),
    check!(
        "core.spec-change",
        Core,
        "A Ready SBC's spec changes to another valid one: non-Ready before Ready again, then Ready stamped with the new generation.",
        ["SBC-GEN-002", "SBC-GEN-003"],
        lifecycle::spec_change
    ),
    check!(
        "core.deletion",
        Core,
        "A Ready SBC is deleted: it is gone within the deadline and what the backend created for it is owned or gone.",
        ["SBC-DEL-001", "SBC-DEL-002"],
        lifecycle::deletion
    ),
    check!(
        "core.isolation-secret",
        Core,
        "The referenced Secret exists only in another namespace: the SBC never becomes Ready.",
        ["SBC-ISO-001"],
        lifecycle::isolation_secret
    ),
    check!(
        "core.isolation-neighbours",
        Core,
        "A broken SBC next to a valid one, and a same-named SBC in another namespace: both valid ones converge and stay.",
        ["SBC-ISO-002"],
        lifecycle::isolation_neighbours
    ),
    check!(
        "boot.ready-means-bootable",
        Boot,
        "From the first Ready on, the Server's machine network-boots the image (digests checked) with the Secret's ignition (plain and Butane), three times in a row.",
        ["SBC-BOOT-001", "SBC-BOOT-002"],
        boot::ready_means_bootable
    ),
    check!(
        "boot.spec-change",
        Boot,
        "After an image and ignition change, the machine boots the new artifacts as soon as Ready is reported for the new generation.",
        ["SBC-BOOT-003"],
        boot::spec_change
    ),
    check!(
        "boot.referenced-only",
        Boot,
        "Two Ready SBCs name the same Server; the machine boots the one the Server references, also after the reference moves.",
        ["SBC-BOOT-004"],
        boot::referenced_only
    ),
    check!(
        "boot.unknown-and-deleted",
        Boot,
        "A machine without an SBC, and one whose SBC was deleted, get no boot script.",
        ["SBC-BOOT-005"],
        boot::unknown_and_deleted
    ),
    check!(
        "resilience.backend-restart",
        Resilience,
        "The backend is restarted right after SBCs are created and while another is Ready; all are Ready (and bootable) afterwards.",
        ["SBC-RES-001", "SBC-RES-002"],
        resilience::backend_restart
    ),
    check!(
        "resilience.watch-disruption",
        Resilience,
        "Watches are dropped and expired (410) while an input is fixed and an SBC is created.",
        ["SBC-RES-003"],
        resilience::watch_disruption
    ),
    check!(
        "resilience.backend-stays-up",
        Resilience,
        "Valid and invalid SBCs are reconciled; the backend process never exits.",
        ["SBC-RES-005"],
        resilience::backend_stays_up
    ),
    check!(
        "resilience.apiserver-restart",
        Resilience,
        "The API server restarts; SBCs created afterwards reach Ready.",
        ["SBC-RES-004"],
        resilience::apiserver_restart
    ),
    check!(
        "scale.burst",
        Scale,
        "N SBCs for N Servers created at once: all Ready within the scale deadline; time-to-Ready percentiles.",
        ["SBC-SCALE-001", "SBC-SCALE-002"],
        scale::burst
    ),
];

pub fn check(id: &str) -> Option<&'static Check> {
    CHECKS.iter().find(|c| c.id == id)
}

/// The IDs of the checks that decide a rule; history rules are decided by every check.
pub fn checks_for(rule: &str) -> Vec<&'static str> {
    if HISTORY_RULES.contains(&rule) {
        return vec!["every check (history oracle)"];
    }
    CHECKS
        .iter()
        .filter(|c| c.rules.contains(&rule))
        .map(|c| c.id)
        .collect()
}

/// The history rules judged over the histories a check recorded.
pub fn history_outcomes(histories: &[History]) -> Outcomes {
    let mut out = Outcomes::default();
    let mut foreign = Vec::new();
    let mut unknown = Vec::new();
    let mut flaps = Vec::new();
    for h in histories.iter().filter(|h| !h.observations.is_empty()) {
        foreign.extend(
            h.foreign_writes()
                .into_iter()
                .map(|w| format!("{}: {w}", h.key())),
        );
        unknown.extend(
            h.unknown_states()
                .into_iter()
                .map(|o| format!("{}: state {:?}", h.key(), o.state_str())),
        );
        flaps.extend(h.flaps().into_iter().map(|f| {
            format!(
                "{}: Ready since {:.3}s left to {:?} at {:.3}s (resourceVersion {}) with no input change",
                h.key(),
                f.ready_since.as_secs_f64(),
                f.to_state,
                f.left_at.as_secs_f64(),
                f.resource_version
            )
        }));
    }
    let n = histories
        .iter()
        .filter(|h| !h.observations.is_empty())
        .count();
    if n == 0 {
        // Nothing recorded, nothing judged: the runner reports the rule as Error if no check recorded any.
        return out;
    }
    let problem = |v: Vec<String>| {
        if v.is_empty() {
            None
        } else {
            Some(v.join("; "))
        }
    };
    out.expect(
        "SBC-CORE-002",
        problem(foreign),
        format!("no foreign spec/metadata writes on {n} SBCs"),
    );
    out.expect(
        "SBC-CORE-003",
        problem(unknown),
        format!("only known states on {n} SBCs"),
    );
    out.expect(
        "SBC-FLAP-001",
        problem(flaps),
        format!("no unexplained Ready drop on {n} SBCs"),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::RULES;
    use std::collections::HashSet;

    #[test]
    fn every_rule_is_checked_and_every_check_names_real_rules() {
        for r in RULES {
            assert!(!checks_for(r.id).is_empty(), "rule {} has no check", r.id);
        }
        let mut ids = HashSet::new();
        for c in CHECKS {
            assert!(ids.insert(c.id), "duplicate check {}", c.id);
            assert!(
                c.id.starts_with(c.profile.as_str()),
                "{} is in profile {}",
                c.id,
                c.profile
            );
            for r in c.rules {
                let rule = crate::rules::rule(r)
                    .unwrap_or_else(|| panic!("{} names unknown rule {r}", c.id));
                assert_eq!(
                    rule.profile, c.profile,
                    "{} decides {r} of another profile",
                    c.id
                );
                assert!(!HISTORY_RULES.contains(r), "{r} is a history rule");
            }
        }
    }
}
