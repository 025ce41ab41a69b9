//! Boot invariants: what a machine booted matches its SBC, and a Ready SBC really boots.

use std::collections::BTreeMap;

use super::{Invariant, Violation};
use crate::evidence::{Event, Evidence, Key, MachineObs, Snapshot};
use crate::model::World;

/// Two spellings of the same image reference (an implicit `docker.io/` is the only normalisation).
/// A booted OS names its image as the kernel header does (`repository:tag`), so a full reference
/// also matches when it ends with `/<booted>`.
pub fn same_image(reference: &str, booted: &str) -> bool {
    fn norm(s: &str) -> &str {
        s.trim().trim_start_matches("docker.io/")
    }
    let (reference, booted) = (norm(reference), norm(booted));
    reference == booted
        || reference
            .strip_suffix(booted)
            .is_some_and(|prefix| prefix.ends_with('/'))
}

#[derive(Clone, Debug)]
struct BootSuspect {
    uuid: String,
    started_ms: u64,
    at_ms: u64,
    image: String,
    ignition: Option<String>,
}

/// A machine boots only the image and ignition of the SBC its Server references.
pub struct BootsBoundSbc {
    grace_ms: u64,
    suspects: Vec<BootSuspect>,
}

impl BootsBoundSbc {
    pub const NAME: &'static str = "boots-bound-sbc";

    pub fn new(grace_ms: u64) -> Self {
        BootsBoundSbc {
            grace_ms,
            suspects: Vec::new(),
        }
    }

    fn mismatch(&self, world: &World, s: &BootSuspect) -> Option<String> {
        let Some(server) = world.server_of_machine(&s.uuid) else {
            return Some(format!(
                "machine {} booted {} with no Server",
                s.uuid, s.image
            ));
        };
        let Some(key) = &server.boot_config_ref else {
            return Some(format!(
                "booted {} while Server {} references no ServerBootConfiguration",
                s.image, server.name
            ));
        };
        let from = s.started_ms.saturating_sub(self.grace_ms);
        let versions = world.versions_between(key, from, s.at_ms);
        if versions.is_empty() {
            return Some(format!(
                "booted {} but {key} has no spec in that window",
                s.image
            ));
        }
        let fits = versions.iter().any(|v| {
            v.image.as_deref().is_some_and(|i| same_image(i, &s.image))
                && ignition_fits(
                    world,
                    key,
                    v.ignition_secret.as_deref(),
                    s.ignition.as_deref(),
                )
        });
        if fits {
            return None;
        }
        let wanted: Vec<String> = versions
            .iter()
            .map(|v| {
                format!(
                    "{} (generation {}, ignition {})",
                    v.image.as_deref().unwrap_or("no image"),
                    v.generation,
                    v.ignition_secret.as_deref().unwrap_or("none")
                )
            })
            .collect();
        Some(format!(
            "booted {} with ignition {} but {key} asked for {}",
            s.image,
            s.ignition.as_deref().map(short).unwrap_or("none"),
            wanted.join(" or ")
        ))
    }
}

/// Whether the booted ignition hash matches what the Secret would serve; unknown Secrets and
/// Butane sources (whose served form this harness does not compute) are not judged.
fn ignition_fits(world: &World, sbc: &Key, secret: Option<&str>, booted: Option<&str>) -> bool {
    let Some(secret) = secret else {
        return true;
    };
    let key = Key::new(sbc.namespace.clone(), secret);
    match world
        .secrets
        .get(&key)
        .and_then(|s| s.served_ignition_sha256.as_deref())
    {
        Some(expected) => booted == Some(expected),
        None => true,
    }
}

fn short(sha: &str) -> &str {
    &sha[..sha.len().min(12)]
}

impl Invariant for BootsBoundSbc {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn description(&self) -> &'static str {
        "A machine boots only the image and ignition of the ServerBootConfiguration its Server \
         references (the spec current while it booted; machine boot log vs. API watch history)."
    }

    fn observe(
        &mut self,
        _prev: Option<&Snapshot>,
        ev: &Evidence,
        world: &World,
    ) -> Vec<Violation> {
        match &ev.event {
            Event::Machine {
                uuid,
                what:
                    MachineObs::BootSucceeded {
                        image,
                        ignition_sha256,
                    },
            } => {
                let started_ms = world
                    .machines
                    .get(uuid)
                    .and_then(|m| m.boot_started_ms)
                    .unwrap_or(ev.at_ms);
                let s = BootSuspect {
                    uuid: uuid.clone(),
                    started_ms,
                    at_ms: ev.at_ms,
                    image: image.clone(),
                    ignition: ignition_sha256.clone(),
                };
                if self.mismatch(world, &s).is_some() {
                    self.suspects.push(s);
                }
            }
            Event::Api { .. } if !self.suspects.is_empty() => {
                let open = std::mem::take(&mut self.suspects);
                self.suspects = open
                    .into_iter()
                    .filter(|s| {
                        ev.at_ms > s.at_ms + self.grace_ms || self.mismatch(world, s).is_some()
                    })
                    .collect();
            }
            _ => {}
        }
        Vec::new()
    }

    fn tick(&mut self, world: &World, now_ms: u64) -> Vec<Violation> {
        let due = super::take_due(&mut self.suspects, now_ms, self.grace_ms, |s| s.at_ms);
        due.into_iter()
            .filter_map(|s| {
                let message = self.mismatch(world, &s)?;
                Some(Violation {
                    invariant: Self::NAME.into(),
                    at_ms: s.at_ms,
                    subject: super::machine_subject(world, &s.uuid),
                    message,
                })
            })
            .collect()
    }
}

#[derive(Clone, Debug)]
struct FailedBoot {
    uuid: String,
    sbc: Key,
    generation: i64,
    at_ms: u64,
    reason: String,
}

/// A network boot that starts while the SBC is Ready for its current generation succeeds.
#[derive(Default)]
pub struct ReadySbcBoots {
    /// SBC → since when (arrival) it has been Ready for its current generation.
    ready_since: BTreeMap<Key, u64>,
    suspects: Vec<FailedBoot>,
    /// Machines whose first boot since power-on was already judged: the firmware then falls
    /// through its boot order (disk, HTTP boot), and those failures are not the backend's.
    judged: std::collections::BTreeSet<String>,
    /// SBC → when (arrival) and at which generation it was last seen Ready for its generation.
    last_ready: BTreeMap<Key, (u64, i64)>,
    /// Machine → the SBC that was Ready when its last power-on was requested.
    powered_on_ready: BTreeMap<String, (Key, i64)>,
}

impl ReadySbcBoots {
    pub const NAME: &'static str = "ready-sbc-boots";
    /// SBC evidence may trail a boot failure this long (ms) and still explain it.
    const GRACE_MS: u64 = 250;
}

impl Invariant for ReadySbcBoots {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn description(&self) -> &'static str {
        "A network boot that starts while the Server's ServerBootConfiguration is Ready for its \
         current generation succeeds: Ready means servable (machine boot log vs. API watch history)."
    }

    fn observe(
        &mut self,
        _prev: Option<&Snapshot>,
        ev: &Evidence,
        world: &World,
    ) -> Vec<Violation> {
        match &ev.event {
            Event::Api {
                object: Snapshot::ServerBootConfiguration(b),
                deleted,
            } => {
                if b.ready_current && !deleted {
                    self.ready_since.entry(b.key.clone()).or_insert(ev.at_ms);
                    self.last_ready
                        .insert(b.key.clone(), (ev.at_ms, b.generation));
                } else {
                    self.ready_since.remove(&b.key);
                }
                // Only a spec change explains a failed boot; Ready/Pending flaps do not.
                self.suspects.retain(|s| {
                    s.sbc != b.key
                        || ev.at_ms > s.at_ms + Self::GRACE_MS
                        || b.generation == s.generation
                });
            }
            Event::Machine {
                uuid,
                what: MachineObs::PowerChanged { to },
            } if to == "On" => {
                self.judged.remove(uuid);
            }
            // What the operator acted on: Ready (now, or moments before a flap) at the power-on.
            Event::Machine {
                uuid,
                what:
                    MachineObs::ResetRequested {
                        reset_type,
                        accepted: true,
                    },
            } if crate::evidence::POWER_ON_RESETS.contains(&reset_type.as_str()) => {
                self.powered_on_ready.remove(uuid);
                let sbc = world
                    .server_of_machine(uuid)
                    .and_then(|s| s.boot_config_ref.as_ref())
                    .and_then(|k| world.sbcs.get(k));
                if let Some(sbc) = sbc
                    && let Some((seen, generation)) = self.last_ready.get(&sbc.key)
                    && *generation == sbc.generation
                    && ev.at_ms.saturating_sub(*seen) <= Self::GRACE_MS
                {
                    self.powered_on_ready
                        .insert(uuid.clone(), (sbc.key.clone(), sbc.generation));
                }
            }
            Event::Machine {
                uuid,
                what: MachineObs::BootSucceeded { .. },
            } => {
                self.judged.insert(uuid.clone());
            }
            Event::Machine {
                uuid,
                what: MachineObs::BootFailed { reason },
            } => {
                if !self.judged.insert(uuid.clone()) {
                    return Vec::new();
                }
                let started = world.machines.get(uuid).and_then(|m| m.boot_started_ms);
                let Some(server) = world.server_of_machine(uuid) else {
                    return Vec::new();
                };
                let Some(key) = &server.boot_config_ref else {
                    return Vec::new();
                };
                let ready_at_power_on = self.powered_on_ready.get(uuid).is_some_and(|(k, g)| {
                    k == key && world.sbcs.get(key).is_some_and(|b| b.generation == *g)
                });
                let ready_before_start = ready_at_power_on
                    || match (self.ready_since.get(key), started) {
                        (Some(since), Some(start)) => *since <= start,
                        _ => false,
                    };
                if ready_before_start && let Some(sbc) = world.sbcs.get(key) {
                    self.suspects.push(FailedBoot {
                        uuid: uuid.clone(),
                        sbc: key.clone(),
                        generation: sbc.generation,
                        at_ms: ev.at_ms,
                        reason: reason.clone(),
                    });
                }
            }
            _ => {}
        }
        Vec::new()
    }

    fn tick(&mut self, world: &World, now_ms: u64) -> Vec<Violation> {
        let due = super::take_due(&mut self.suspects, now_ms, Self::GRACE_MS, |s| s.at_ms);
        due.into_iter()
            .map(|s| Violation {
                invariant: Self::NAME.into(),
                at_ms: s.at_ms,
                subject: super::machine_subject(world, &s.uuid),
                message: format!(
                    "boot failed ({}) although {} was Ready for generation {}",
                    s.reason, s.sbc, s.generation
                ),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;

    fn ready_server(t: &mut Trace) {
        t.server_with_sbc("s0", "u0", "default/c0");
        t.sbc("default/c0", "s0", 1, "Ready", true);
    }

    #[test]
    fn booting_the_sbc_image_is_fine() {
        let mut t = Trace::new(100);
        ready_server(&mut t);
        t.booted("u0", "img:1", None);
        assert_eq!(t.finish_names(), Vec::<String>::new());
    }

    #[test]
    fn booting_another_image_is_a_violation() {
        let mut t = Trace::new(100);
        ready_server(&mut t);
        t.booted("u0", "img:evil", None);
        assert_eq!(t.finish_names(), vec![BootsBoundSbc::NAME]);
    }

    #[test]
    fn booting_the_old_image_long_after_an_update_is_a_violation() {
        let mut t = Trace::new(100);
        ready_server(&mut t);
        t.sbc_image("default/c0", "img:2", None, 2);
        t.advance(1000);
        t.sbc("default/c0", "s0", 2, "Ready", true);
        t.booted("u0", "img:1", None);
        assert_eq!(t.finish_names(), vec![BootsBoundSbc::NAME]);
    }

    #[test]
    fn ignition_hash_is_compared_when_known() {
        let mut t = Trace::new(100);
        t.secret("default/c0-ignition", "aaaa");
        ready_server(&mut t);
        t.sbc_image("default/c0", "img:1", Some("c0-ignition"), 1);
        t.sbc("default/c0", "s0", 1, "Ready", true);
        t.booted("u0", "img:1", Some("aaaa"));
        assert_eq!(t.clone_finish_names(), Vec::<String>::new());
        t.advance(1000);
        t.booted("u0", "img:1", Some("bbbb"));
        assert_eq!(t.finish_names(), vec![BootsBoundSbc::NAME]);
    }

    #[test]
    fn failed_boot_while_ready_is_a_violation() {
        let mut t = Trace::new(100);
        ready_server(&mut t);
        t.pxe_boot_fails("u0", "404 /ipxe");
        assert_eq!(t.finish_names(), vec![ReadySbcBoots::NAME]);
    }

    #[test]
    fn failed_boot_after_powering_on_from_a_flapping_ready_is_a_violation() {
        let mut t = Trace::new(100);
        ready_server(&mut t);
        t.sbc("default/c0", "s0", 1, "Pending", false);
        t.reset("u0", "On");
        t.pxe_boot_fails("u0", "404 not prepared");
        t.sbc("default/c0", "s0", 1, "Ready", true);
        let names = t.finish_names();
        assert!(
            names.contains(&ReadySbcBoots::NAME.to_string()),
            "{names:?}"
        );
    }

    #[test]
    fn failed_boot_while_pending_is_not_this_invariant() {
        let mut t = Trace::new(100);
        t.server_with_sbc("s0", "u0", "default/c0");
        t.sbc("default/c0", "s0", 1, "Pending", false);
        t.pxe_boot_fails("u0", "404");
        let names = t.finish_names();
        assert!(
            !names.contains(&ReadySbcBoots::NAME.to_string()),
            "{names:?}"
        );
    }
}
