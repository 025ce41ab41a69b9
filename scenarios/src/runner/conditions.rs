//! Conditions over the world model that steps wait for and that decide when a run is over.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::bail;
use tokio::time::Instant;

use crate::evidence::Key;
use crate::invariants::{ClaimsEventuallyBound, Invariant, Monitor, NoLostOrOrphaned, same_image};
use crate::model::World;
use crate::spec::Expect;

const POLL: Duration = Duration::from_millis(50);

/// How often a check over the whole world may run: every `base`, or less often when one check
/// costs more than a twentieth of that, so the runner's own share of the CPU stays bounded however
/// large the fleet (a check is O(servers + claims)).
pub struct Pace {
    base: Duration,
}

impl Pace {
    /// At most a twentieth of the time goes to checks.
    const SHARE: u32 = 20;

    pub fn new(base: Duration) -> Self {
        Pace { base }
    }

    pub fn start(&self) -> Instant {
        Instant::now()
    }

    /// The pause before the next check, given when this one started.
    pub fn pause_after(&self, started: Instant) -> Duration {
        self.base.max(started.elapsed() * Self::SHARE)
    }
}

/// Polls `pred` on the world until it holds or `deadline` passes.
pub async fn wait(
    monitor: &Arc<Mutex<Monitor>>,
    deadline: Instant,
    what: &str,
    pred: impl Fn(&World) -> bool,
) -> anyhow::Result<()> {
    let pace = Pace::new(POLL);
    loop {
        let started = pace.start();
        if pred(lock(monitor).world()) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("timed out waiting for {what}");
        }
        tokio::time::sleep(pace.pause_after(started)).await;
    }
}

pub fn lock(m: &Arc<Mutex<Monitor>>) -> std::sync::MutexGuard<'_, Monitor> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Live claims the harness created (and did not delete): `keys`, or all when empty.
fn selected<'a>(w: &'a World, keys: &'a [Key]) -> Vec<&'a Key> {
    if keys.is_empty() {
        w.intent
            .claims_created
            .difference(&w.intent.claims_deleted)
            .collect()
    } else {
        keys.iter().collect()
    }
}

pub fn claims_bound(w: &World, keys: &[Key]) -> bool {
    selected(w, keys)
        .iter()
        .all(|k| w.claims.get(k).is_some_and(|c| c.bound))
}

pub fn claim_booted(w: &World, key: &Key) -> bool {
    let Some(claim) = w.claims.get(key).filter(|c| c.bound) else {
        return false;
    };
    let Some(server) = claim.server_ref.as_ref().and_then(|s| w.servers.get(s)) else {
        return false;
    };
    let Some(machine) = server.uuid.as_ref().and_then(|u| w.machines.get(u)) else {
        return false;
    };
    machine
        .booted
        .as_ref()
        .is_some_and(|(image, _, _)| same_image(&claim.image, image))
}

pub fn claims_booted(w: &World, keys: &[Key]) -> bool {
    selected(w, keys).iter().all(|k| claim_booted(w, k))
}

pub fn count_booted(w: &World) -> usize {
    w.claims.keys().filter(|k| claim_booted(w, k)).count()
}

/// At least `n` Servers exist and all are in `state`.
pub fn servers_in_state(w: &World, state: &str, n: usize) -> bool {
    w.servers.len() >= n
        && w.servers
            .values()
            .all(|s| s.state.as_deref() == Some(state))
}

/// What the `expect` section asks of the end state that does not hold yet.
pub fn unmet(w: &World, e: &Expect) -> Vec<String> {
    let mut out = Vec::new();
    for (state, want) in &e.servers {
        let have = w
            .servers
            .values()
            .filter(|s| s.state.as_deref() == Some(state.as_str()))
            .count();
        if have != *want as usize {
            out.push(format!("{want} Servers {state}, found {have}"));
        }
    }
    // A claim being deleted still shows Bound until its finalizer goes; it is not what the end
    // state asks for.
    let live = || w.claims.values().filter(|c| !c.deleting);
    if let Some(want) = e.claims_bound {
        let have = live().filter(|c| c.bound).count();
        if have != want as usize {
            out.push(format!("{want} claims Bound, found {have}"));
        }
    }
    if let Some(want) = e.claims_booted {
        let have = live().filter(|c| claim_booted(w, &c.key)).count();
        if have != want as usize {
            out.push(format!("{want} claims booted, found {have}"));
        }
    }
    out
}

fn no_free_server_fits(w: &World, claim: &crate::evidence::ClaimSnap) -> bool {
    !w.servers.values().any(|s| {
        s.state.as_deref() == Some("Available")
            && s.claim_ref.is_none()
            && World::claim_fits(claim, s)
    })
}

/// Nothing is mid-way: no claim is being deleted, and the end-of-run checks (nothing lost or
/// orphaned, no claim waiting next to a free fitting Server) would pass now. A run that ends before
/// this would judge a release or a binding still in flight; one that never gets here is judged at
/// its deadline.
pub fn settled(w: &World) -> bool {
    w.claims.values().all(|c| !c.deleting)
        && NoLostOrOrphaned.finish(w).is_empty()
        && ClaimsEventuallyBound.finish(w).is_empty()
}

/// With no end state given, a run is over once every live claim is done — booted, bound with power
/// off, or unbound with no Server for it (more claims than servers) — and no Server is mid-way.
pub fn quiescent(w: &World) -> bool {
    let done = |k: &Key| match w.claims.get(k) {
        Some(c) if c.bound => !c.power_on || claim_booted(w, k),
        Some(c) => c.server_ref.is_none() && no_free_server_fits(w, c),
        None => false,
    };
    selected(w, &[]).into_iter().all(done)
        && w.servers.len() >= w.intent.servers.len()
        && w.servers.values().all(|s| {
            matches!(
                s.state.as_deref(),
                Some("Available" | "Reserved" | "Maintenance" | "Error")
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::{HarnessEvent, MachineObs};
    use crate::invariants::fixtures::{Trace, key};

    /// One Server, bound to `default/a` and booted with its image.
    fn one_booted_claim() -> Trace {
        let mut t = Trace::new(100);
        t.harness(HarnessEvent::FleetDeclared {
            servers: vec![("s0".into(), "bmc-0".into())],
        });
        t.harness(HarnessEvent::ClaimCreated {
            key: key("default/a"),
        });
        t.server_with_sbc("s0", "u0", "default/a");
        t.machine(
            "u0",
            MachineObs::BootSucceeded {
                image: "img:1".into(),
                ignition_sha256: None,
            },
        );
        t
    }

    #[test]
    fn a_claim_with_no_server_left_does_not_keep_the_run_going() {
        let mut t = one_booted_claim();
        assert!(quiescent(t.monitor.world()) && settled(t.monitor.world()));
        t.harness(HarnessEvent::ClaimCreated {
            key: key("default/b"),
        });
        t.claim("default/b", None, false);
        assert!(quiescent(t.monitor.world()) && settled(t.monitor.world()));
    }

    #[test]
    fn a_claim_next_to_a_free_server_or_a_deleting_claim_is_not_settled() {
        let mut t = one_booted_claim();
        t.server("s1", "u1", Some("Available"), None);
        t.harness(HarnessEvent::ClaimCreated {
            key: key("default/b"),
        });
        t.claim("default/b", None, false);
        assert!(!quiescent(t.monitor.world()));
        assert!(!settled(t.monitor.world()));
        t.harness(HarnessEvent::ClaimDeleted {
            key: key("default/b"),
        });
        let mut deleting = t.monitor.world().claims[&key("default/b")].clone();
        deleting.deleting = true;
        t.api(crate::evidence::Snapshot::ServerClaim(deleting.clone()));
        assert!(!settled(t.monitor.world()), "still being deleted");
        t.delete(crate::evidence::Snapshot::ServerClaim(deleting));
        assert!(settled(t.monitor.world()));
    }
}
