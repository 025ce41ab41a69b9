//! Binding invariants: one claim per Server, and claims do not starve while a fitting Server is free.

use std::collections::BTreeSet;

use super::{Invariant, Violation};
use crate::evidence::{Event, Evidence, Snapshot};
use crate::model::World;

/// No Server is bound to two claims at once.
#[derive(Default)]
pub struct SingleBinding {
    reported: BTreeSet<String>,
}

impl SingleBinding {
    pub const NAME: &'static str = "single-binding";
}

impl Invariant for SingleBinding {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn description(&self) -> &'static str {
        "No Server is bound to two live ServerClaims at the same time (API watch history)."
    }

    fn observe(
        &mut self,
        _prev: Option<&Snapshot>,
        ev: &Evidence,
        world: &World,
    ) -> Vec<Violation> {
        let Event::Api {
            object: Snapshot::ServerClaim(c),
            deleted: false,
        } = &ev.event
        else {
            return Vec::new();
        };
        let (Some(server), true) = (&c.server_ref, c.bound) else {
            return Vec::new();
        };
        let holders: Vec<String> = world
            .claims
            .values()
            .filter(|o| o.bound && !o.deleting && o.server_ref.as_ref() == Some(server))
            .map(|o| o.key.to_string())
            .collect();
        if holders.len() < 2 || !self.reported.insert(server.clone()) {
            return Vec::new();
        }
        vec![Violation {
            invariant: Self::NAME.into(),
            at_ms: ev.at_ms,
            subject: format!("server {server}"),
            message: format!("bound to {}", holders.join(" and ")),
        }]
    }
}

/// Every claim is eventually bound when a fitting Server is free.
pub struct ClaimsEventuallyBound;

impl ClaimsEventuallyBound {
    pub const NAME: &'static str = "claims-eventually-bound";
}

impl Invariant for ClaimsEventuallyBound {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn description(&self) -> &'static str {
        "At the end of the run, no live ServerClaim is unbound while an Available, unclaimed Server \
         that fits it exists (API state after the settle period)."
    }

    fn observe(&mut self, _: Option<&Snapshot>, _: &Evidence, _: &World) -> Vec<Violation> {
        Vec::new()
    }

    fn finish(&mut self, world: &World) -> Vec<Violation> {
        world
            .claims
            .values()
            .filter(|c| !c.bound && !c.deleting)
            .filter_map(|c| {
                let free = world.servers.values().find(|s| {
                    s.state.as_deref() == Some("Available")
                        && s.claim_ref.is_none()
                        && World::claim_fits(c, s)
                })?;
                Some(Violation {
                    invariant: Self::NAME.into(),
                    at_ms: world.now_ms,
                    subject: format!("claim {}", c.key),
                    message: format!(
                        "unbound although Server {} is Available and fits",
                        free.name
                    ),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::super::NoLostOrOrphaned;
    use super::super::fixtures::*;
    use super::*;

    #[test]
    fn one_claim_per_server_is_fine() {
        let mut t = Trace::new(100);
        t.server("s0", "u0", Some("Reserved"), Some("default/a"));
        t.claim("default/a", Some("s0"), true);
        t.claim("default/b", None, false);
        assert_eq!(t.finish_names(), Vec::<String>::new());
    }

    #[test]
    fn two_bound_claims_on_one_server_is_a_violation() {
        let mut t = Trace::new(100);
        t.server("s0", "u0", Some("Reserved"), Some("default/a"));
        t.claim("default/a", Some("s0"), true);
        t.claim("default/b", Some("s0"), true);
        let names = t.finish_names();
        assert_eq!(names[0], SingleBinding::NAME);
        // b also claims s0 without s0 pointing back.
        assert!(
            names.contains(&NoLostOrOrphaned::NAME.to_string()),
            "{names:?}"
        );
    }

    #[test]
    fn starving_claim_next_to_a_free_server_is_a_violation() {
        let mut t = Trace::new(100);
        t.server("s0", "u0", Some("Available"), None);
        t.claim("default/a", None, false);
        assert_eq!(t.finish_names(), vec![ClaimsEventuallyBound::NAME]);
    }

    #[test]
    fn unbound_claim_without_a_fitting_server_is_fine() {
        let mut t = Trace::new(100);
        t.server("s0", "u0", Some("Available"), None);
        t.claim("default/a", Some("s9"), false);
        assert_eq!(t.finish_names(), Vec::<String>::new());
    }
}
