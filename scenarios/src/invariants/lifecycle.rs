//! Lifecycle invariants: nothing lost or orphaned at the end, and no component dies unasked.

use super::{Invariant, Violation};
use crate::evidence::{ComponentEvent, Event, Evidence, Snapshot};
use crate::model::World;

/// No object is lost or left orphaned.
pub struct NoLostOrOrphaned;

impl NoLostOrOrphaned {
    pub const NAME: &'static str = "no-lost-or-orphaned";
}

fn violation(world: &World, subject: String, message: String) -> Violation {
    Violation {
        invariant: NoLostOrOrphaned::NAME.into(),
        at_ms: world.now_ms,
        subject,
        message,
    }
}

impl NoLostOrOrphaned {
    fn lost(world: &World) -> Vec<Violation> {
        let i = &world.intent;
        let mut out = Vec::new();
        for key in i.claims_created.difference(&i.claims_deleted) {
            if !world.claims.contains_key(key) {
                out.push(violation(
                    world,
                    format!("claim {key}"),
                    "created and never deleted, but gone".into(),
                ));
            }
        }
        for (server, bmc) in &i.servers {
            let removed = i.servers_deleted.contains(server) || i.bmcs_deleted.contains(bmc);
            if !removed && !world.servers.contains_key(server) {
                out.push(violation(
                    world,
                    format!("server {server}"),
                    format!("BMC {bmc} has this system, but the Server is gone"),
                ));
            }
        }
        out
    }

    fn orphaned(world: &World) -> Vec<Violation> {
        let mut out = Vec::new();
        for sbc in world.sbcs.values() {
            let owner_gone = if sbc.internal {
                !world.servers.contains_key(&sbc.server)
            } else {
                !world.claims.contains_key(&sbc.key)
            };
            if owner_gone {
                let owner = if sbc.internal { "Server" } else { "claim" };
                out.push(violation(
                    world,
                    format!("sbc {}", sbc.key),
                    format!("its {owner} is gone"),
                ));
            }
        }
        for s in world.servers.values() {
            if let Some(bmc) = &s.bmc
                && world.intent.bmcs_deleted.contains(bmc)
            {
                out.push(violation(
                    world,
                    format!("server {}", s.name),
                    format!("its BMC {bmc} was deleted"),
                ));
            }
            if let Some(claim) = &s.claim_ref
                && !world.claims.contains_key(claim)
            {
                out.push(violation(
                    world,
                    format!("server {}", s.name),
                    format!("claimRef names {claim}, which is gone"),
                ));
            }
        }
        for c in world.claims.values().filter(|c| c.bound) {
            let Some(server) = &c.server_ref else {
                continue;
            };
            let consistent = world
                .servers
                .get(server)
                .is_some_and(|s| s.claim_ref.as_ref() == Some(&c.key));
            if !consistent {
                out.push(violation(
                    world,
                    format!("claim {}", c.key),
                    format!("Bound to {server}, which does not point back"),
                ));
            }
        }
        out
    }
}

impl Invariant for NoLostOrOrphaned {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn description(&self) -> &'static str {
        "At the end of the run every claim the workload created and did not delete exists, every \
         system of every remaining BMC has its Server, no SBC outlives its claim or Server, and \
         claim and Server references agree."
    }

    fn observe(&mut self, _: Option<&Snapshot>, _: &Evidence, _: &World) -> Vec<Violation> {
        Vec::new()
    }

    fn finish(&mut self, world: &World) -> Vec<Violation> {
        let mut out = Self::lost(world);
        out.extend(Self::orphaned(world));
        out
    }
}

/// No component panics or exits unless the harness stopped it.
pub struct ComponentsAlive;

impl ComponentsAlive {
    pub const NAME: &'static str = "components-alive";
}

impl Invariant for ComponentsAlive {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn description(&self) -> &'static str {
        "No component (API server, sim-bmc, backend, operator) panics or exits unless the harness \
         stopped it (task exits and the process panic hook)."
    }

    fn observe(&mut self, _: Option<&Snapshot>, ev: &Evidence, _: &World) -> Vec<Violation> {
        let Event::Component(c) = &ev.event else {
            return Vec::new();
        };
        let (subject, message) = match c {
            ComponentEvent::Exited { expected: true, .. } => return Vec::new(),
            ComponentEvent::Exited {
                component, detail, ..
            } => (component.clone(), format!("exited: {detail}")),
            ComponentEvent::Panicked { thread, message } => {
                (format!("thread {thread}"), format!("panicked: {message}"))
            }
        };
        vec![Violation {
            invariant: Self::NAME.into(),
            at_ms: ev.at_ms,
            subject,
            message,
        }]
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;
    use crate::evidence::SbcSnap;

    #[test]
    fn consistent_end_state_is_fine() {
        let mut t = Trace::new(100);
        t.fleet_declared(&[("s0", "bmc-0")]);
        t.claim_created("default/a");
        t.server("s0", "u0", Some("Reserved"), Some("default/a"));
        t.claim("default/a", Some("s0"), true);
        assert_eq!(t.finish_names(), Vec::<String>::new());
    }

    #[test]
    fn vanished_claim_and_server_are_lost() {
        let mut t = Trace::new(100);
        t.fleet_declared(&[("s0", "bmc-0")]);
        t.claim_created("default/a");
        assert_eq!(t.finish_names(), vec![NoLostOrOrphaned::NAME]);
        assert_eq!(t.monitor.violations().len(), 2);
    }

    #[test]
    fn sbc_outliving_its_claim_is_orphaned() {
        let mut t = Trace::new(100);
        t.api(Snapshot::ServerBootConfiguration(SbcSnap {
            key: key("default/a"),
            server: "s0".into(),
            ..Default::default()
        }));
        assert_eq!(t.finish_names(), vec![NoLostOrOrphaned::NAME]);
    }

    #[test]
    fn sbc_deleted_with_its_claim_is_fine() {
        let mut t = Trace::new(100);
        t.claim_created("default/a");
        t.claim("default/a", None, false);
        let sbc = SbcSnap {
            key: key("default/a"),
            server: "s0".into(),
            ..Default::default()
        };
        t.api(Snapshot::ServerBootConfiguration(sbc.clone()));
        t.claim_deleted("default/a");
        let claim = t.monitor.world().claims[&key("default/a")].clone();
        t.delete(Snapshot::ServerClaim(claim));
        t.delete(Snapshot::ServerBootConfiguration(sbc));
        assert_eq!(t.finish_names(), Vec::<String>::new());
    }

    #[test]
    fn dangling_claim_ref_is_orphaned() {
        let mut t = Trace::new(100);
        t.server("s0", "u0", Some("Reserved"), Some("default/gone"));
        assert_eq!(t.finish_names(), vec![NoLostOrOrphaned::NAME]);
    }

    #[test]
    fn expected_exit_is_fine_and_panic_is_not() {
        let mut t = Trace::new(100);
        t.component(ComponentEvent::Exited {
            component: "operator".into(),
            expected: true,
            detail: "restart".into(),
        });
        assert_eq!(t.clone_finish_names(), Vec::<String>::new());
        t.component(ComponentEvent::Panicked {
            thread: "tokio-1".into(),
            message: "boom".into(),
        });
        assert_eq!(t.finish_names(), vec![ComponentsAlive::NAME]);
    }
}
