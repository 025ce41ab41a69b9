//! Power invariants: the readiness gate as the BMC saw it, and power-off before a released Server
//! becomes Available again.

use std::collections::BTreeMap;

use super::{Invariant, Violation};
use crate::evidence::{Event, Evidence, MachineObs, POWER_ON_RESETS, Snapshot};
use crate::model::World;

/// An operation annotation requested this recently explains a reset (ms).
const OPERATION_WINDOW_MS: u64 = 60_000;

/// A power-on whose justification has not arrived yet.
#[derive(Clone, Debug)]
struct Suspect {
    uuid: String,
    at_ms: u64,
    reason: String,
}

/// No power-on or restart reaches a BMC while the Server's SBC is missing, not Ready, or Ready only
/// for an older generation.
pub struct PowerOnRequiresReadySbc {
    grace_ms: u64,
    suspects: Vec<Suspect>,
}

impl PowerOnRequiresReadySbc {
    pub const NAME: &'static str = "power-on-requires-ready-sbc";

    pub fn new(grace_ms: u64) -> Self {
        PowerOnRequiresReadySbc {
            grace_ms,
            suspects: Vec::new(),
        }
    }

    /// Why powering on this machine is not justified by the world as known, if it is not.
    fn unjustified(world: &World, uuid: &str, at_ms: u64) -> Option<String> {
        let Some(server) = world.server_of_machine(uuid) else {
            return Some(format!("no Server manages machine {uuid}"));
        };
        if let Some((op, requested)) = world.intent.operations.get(&server.name)
            && at_ms.saturating_sub(*requested) <= OPERATION_WINDOW_MS
            && is_reset_operation(op)
        {
            return None;
        }
        let Some(key) = &server.boot_config_ref else {
            return Some(format!(
                "Server {} references no ServerBootConfiguration",
                server.name
            ));
        };
        let Some(sbc) = world.sbcs.get(key) else {
            return Some(format!("ServerBootConfiguration {key} does not exist"));
        };
        if sbc.ready_current {
            return None;
        }
        Some(format!(
            "ServerBootConfiguration {key} is {} at generation {}",
            sbc.state.as_deref().unwrap_or("unset"),
            sbc.generation
        ))
    }
}

fn is_reset_operation(op: &str) -> bool {
    metal_api::Operation::from(op.to_string())
        .redfish_reset_type()
        .is_some()
}

impl Invariant for PowerOnRequiresReadySbc {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn description(&self) -> &'static str {
        "No power-on or restart reaches a BMC while the Server's ServerBootConfiguration is missing, \
         not Ready, or Ready only for an older generation (sim-bmc reset log vs. API watch history)."
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
                    MachineObs::ResetRequested {
                        reset_type,
                        accepted: true,
                    },
            } if POWER_ON_RESETS.contains(&reset_type.as_str()) => {
                if let Some(reason) = Self::unjustified(world, uuid, ev.at_ms) {
                    self.suspects.push(Suspect {
                        uuid: uuid.clone(),
                        at_ms: ev.at_ms,
                        reason: format!("{reset_type}: {reason}"),
                    });
                }
            }
            // Evidence from the watch may trail the BMC's log by up to the grace period.
            Event::Api { .. } => {
                let grace = self.grace_ms;
                self.suspects.retain(|s| {
                    ev.at_ms > s.at_ms + grace
                        || Self::unjustified(world, &s.uuid, s.at_ms).is_some()
                });
            }
            _ => {}
        }
        Vec::new()
    }

    fn tick(&mut self, world: &World, now_ms: u64) -> Vec<Violation> {
        let due = super::take_due(&mut self.suspects, now_ms, self.grace_ms, |s| s.at_ms);
        due.into_iter()
            .map(|s| Violation {
                invariant: Self::NAME.into(),
                at_ms: s.at_ms,
                subject: super::machine_subject(world, &s.uuid),
                message: s.reason,
            })
            .collect()
    }
}

#[derive(Clone, Debug, Default)]
struct Release {
    off_seen: bool,
    available_at: Option<u64>,
}

/// A released Server is powered off before it is Available again.
pub struct ReleasedPoweredOff {
    grace_ms: u64,
    releases: BTreeMap<String, Release>,
}

impl ReleasedPoweredOff {
    pub const NAME: &'static str = "released-powered-off";

    pub fn new(grace_ms: u64) -> Self {
        ReleasedPoweredOff {
            grace_ms,
            releases: BTreeMap::new(),
        }
    }
}

fn machine_off(world: &World, uuid: Option<&str>) -> bool {
    uuid.and_then(|u| world.machines.get(u))
        .is_none_or(|m| m.power.is_empty() || m.power == "Off")
}

impl Invariant for ReleasedPoweredOff {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn description(&self) -> &'static str {
        "A Server that leaves Reserved is powered off (machine event log) before the API shows it \
         Available again."
    }

    fn observe(&mut self, prev: Option<&Snapshot>, ev: &Evidence, world: &World) -> Vec<Violation> {
        match &ev.event {
            Event::Api {
                object: Snapshot::Server(now),
                deleted: false,
            } => {
                let was = match prev {
                    Some(Snapshot::Server(p)) => p.state.as_deref(),
                    _ => None,
                };
                let state = now.state.as_deref();
                if was == Some("Reserved") && state != Some("Reserved") {
                    self.releases.insert(
                        now.name.clone(),
                        Release {
                            off_seen: machine_off(world, now.uuid.as_deref()),
                            available_at: None,
                        },
                    );
                }
                if state == Some("Available")
                    && let Some(r) = self.releases.get_mut(&now.name)
                {
                    if r.off_seen {
                        self.releases.remove(&now.name);
                    } else {
                        r.available_at.get_or_insert(ev.at_ms);
                    }
                }
            }
            Event::Machine {
                uuid,
                what: MachineObs::PowerChanged { to },
            } if to == "Off" => {
                if let Some(server) = world.server_of_machine(uuid)
                    && let Some(r) = self.releases.get_mut(&server.name)
                {
                    if r.available_at
                        .is_some_and(|a| ev.at_ms <= a + self.grace_ms)
                    {
                        self.releases.remove(&server.name);
                    } else {
                        r.off_seen = true;
                    }
                }
            }
            _ => {}
        }
        Vec::new()
    }

    fn tick(&mut self, _world: &World, now_ms: u64) -> Vec<Violation> {
        let grace = self.grace_ms;
        let due: Vec<(String, u64)> = self
            .releases
            .iter()
            .filter_map(|(name, r)| {
                r.available_at
                    .filter(|a| now_ms > a + grace)
                    .map(|a| (name.clone(), a))
            })
            .collect();
        due.into_iter()
            .map(|(name, at)| {
                self.releases.remove(&name);
                Violation {
                    invariant: Self::NAME.into(),
                    at_ms: at,
                    subject: format!("server {name}"),
                    message: "Available again after release without the machine powering off"
                        .into(),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;

    #[test]
    fn power_on_after_ready_is_fine() {
        let mut t = Trace::new(100);
        t.server_with_sbc("s0", "u0", "default/c0");
        t.sbc("default/c0", "s0", 1, "Ready", true);
        t.reset("u0", "On");
        assert_eq!(t.finish_names(), Vec::<String>::new());
    }

    #[test]
    fn power_on_while_pending_is_a_violation() {
        let mut t = Trace::new(100);
        t.server_with_sbc("s0", "u0", "default/c0");
        t.sbc("default/c0", "s0", 1, "Pending", false);
        t.reset("u0", "On");
        t.advance(500);
        t.sbc("default/c0", "s0", 1, "Ready", true);
        assert_eq!(t.finish_names(), vec![PowerOnRequiresReadySbc::NAME]);
    }

    #[test]
    fn stale_generation_ready_is_a_violation() {
        let mut t = Trace::new(100);
        t.server_with_sbc("s0", "u0", "default/c0");
        t.sbc("default/c0", "s0", 2, "Ready", false);
        t.reset("u0", "ForceRestart");
        assert_eq!(t.finish_names(), vec![PowerOnRequiresReadySbc::NAME]);
    }

    #[test]
    fn ready_arriving_within_grace_clears_the_suspicion() {
        let mut t = Trace::new(100);
        t.server_with_sbc("s0", "u0", "default/c0");
        t.sbc("default/c0", "s0", 1, "Pending", false);
        t.reset("u0", "On");
        t.advance(50);
        t.sbc("default/c0", "s0", 1, "Ready", true);
        assert_eq!(t.finish_names(), Vec::<String>::new());
    }

    #[test]
    fn missing_sbc_and_power_off_resets() {
        let mut t = Trace::new(100);
        t.server("s0", "u0", Some("Discovery"), None);
        t.reset("u0", "ForceOff");
        assert_eq!(t.clone_finish_names(), Vec::<String>::new());
        t.reset("u0", "On");
        assert_eq!(t.finish_names(), vec![PowerOnRequiresReadySbc::NAME]);
    }

    #[test]
    fn requested_operation_explains_a_reset() {
        let mut t = Trace::new(100);
        t.server("s0", "u0", Some("Available"), None);
        t.operation("s0", "power-cycle-server");
        t.reset("u0", "PowerCycle");
        assert_eq!(t.finish_names(), Vec::<String>::new());
    }

    #[test]
    fn release_with_power_off_is_fine() {
        let mut t = Trace::new(100);
        t.server("s0", "u0", Some("Reserved"), None);
        t.power("u0", "On");
        t.server("s0", "u0", Some("Released"), None);
        t.power("u0", "Off");
        t.server("s0", "u0", Some("Available"), None);
        assert_eq!(t.finish_names(), Vec::<String>::new());
    }

    #[test]
    fn available_while_still_on_is_a_violation() {
        let mut t = Trace::new(100);
        t.server("s0", "u0", Some("Reserved"), None);
        t.power("u0", "On");
        t.server("s0", "u0", Some("Available"), None);
        t.advance(1000);
        t.power("u0", "Off");
        assert_eq!(t.finish_names(), vec![ReleasedPoweredOff::NAME]);
    }
}
