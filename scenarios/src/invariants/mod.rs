//! Invariants: named, documented checkers fed the evidence stream one event at a time. Each sees the
//! world model before and after the event; ordering-dependent ones hold a suspicion open for the
//! evidence grace period before calling it a violation.

mod binding;
mod boot;
mod lifecycle;
mod power;

use serde::{Deserialize, Serialize};

use crate::evidence::{Event, Evidence, Snapshot};
use crate::model::World;

pub use binding::{ClaimsEventuallyBound, SingleBinding};
pub use boot::{BootsBoundSbc, ReadySbcBoots, same_image};
pub use lifecycle::{ComponentsAlive, NoLostOrOrphaned};
pub use power::{PowerOnRequiresReadySbc, ReleasedPoweredOff};

/// Names of every invariant, as scenario files refer to them.
pub const INVARIANT_NAMES: &[&str] = &[
    PowerOnRequiresReadySbc::NAME,
    BootsBoundSbc::NAME,
    ReadySbcBoots::NAME,
    SingleBinding::NAME,
    ClaimsEventuallyBound::NAME,
    ReleasedPoweredOff::NAME,
    NoLostOrOrphaned::NAME,
    ComponentsAlive::NAME,
];

/// A broken invariant.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Violation {
    pub invariant: String,
    pub at_ms: u64,
    /// The object or machine it is about (`server bmc-0-system-0`).
    pub subject: String,
    pub message: String,
}

/// One named property over the evidence.
pub trait Invariant: Send {
    fn name(&self) -> &'static str;
    /// One sentence: what must hold.
    fn description(&self) -> &'static str;
    /// Called after `ev` was applied to `world`; `prev` is the object's snapshot before an API event.
    fn observe(&mut self, prev: Option<&Snapshot>, ev: &Evidence, world: &World) -> Vec<Violation>;
    /// Called as time passes: suspicions older than the grace period become violations.
    fn tick(&mut self, _world: &World, _now_ms: u64) -> Vec<Violation> {
        Vec::new()
    }
    /// Called once at the end of the run, on the final world.
    fn finish(&mut self, _world: &World) -> Vec<Violation> {
        Vec::new()
    }
}

/// How a violation names a machine: by its Server once discovery has made one.
fn machine_subject(world: &World, uuid: &str) -> String {
    match world.server_of_machine(uuid) {
        Some(s) => format!("server {}", s.name),
        None => format!("machine {uuid}"),
    }
}

/// Takes the suspects whose grace period has run out by `now_ms`, leaving the others to wait.
fn take_due<S>(
    suspects: &mut Vec<S>,
    now_ms: u64,
    grace_ms: u64,
    at_ms: impl Fn(&S) -> u64,
) -> Vec<S> {
    let (due, open) = std::mem::take(suspects)
        .into_iter()
        .partition(|s| now_ms > at_ms(s) + grace_ms);
    *suspects = open;
    due
}

/// Every invariant, with the evidence grace period for the ordering-dependent ones.
pub fn all(grace_ms: u64) -> Vec<Box<dyn Invariant>> {
    vec![
        Box::new(PowerOnRequiresReadySbc::new(grace_ms)),
        Box::new(BootsBoundSbc::new(grace_ms)),
        Box::new(ReadySbcBoots::default()),
        Box::new(SingleBinding::default()),
        Box::new(ClaimsEventuallyBound),
        Box::new(ReleasedPoweredOff::new(grace_ms)),
        Box::new(NoLostOrOrphaned),
        Box::new(ComponentsAlive),
    ]
}

/// The name and description of every invariant, for documentation and reports.
pub fn catalog() -> Vec<(&'static str, &'static str)> {
    all(0).iter().map(|i| (i.name(), i.description())).collect()
}

/// Feeds evidence to the world model and every invariant; collects violations.
pub struct Monitor {
    world: World,
    invariants: Vec<Box<dyn Invariant>>,
    violations: Vec<Violation>,
    evidence_count: u64,
}

impl Monitor {
    pub fn new(grace_ms: u64) -> Self {
        Monitor {
            world: World::default(),
            invariants: all(grace_ms),
            violations: Vec::new(),
            evidence_count: 0,
        }
    }

    /// Applies one observation and returns the violations it revealed.
    pub fn feed(&mut self, ev: &Evidence) -> Vec<Violation> {
        let prev = match &ev.event {
            Event::Api { object, .. } => self.world.current(object),
            _ => None,
        };
        self.world.apply(ev);
        self.evidence_count += 1;
        let mut found = Vec::new();
        for inv in &mut self.invariants {
            found.extend(inv.observe(prev.as_ref(), ev, &self.world));
            found.extend(inv.tick(&self.world, ev.at_ms));
        }
        self.violations.extend(found.iter().cloned());
        found
    }

    /// Lets time pass without evidence.
    pub fn tick(&mut self, now_ms: u64) -> Vec<Violation> {
        self.world.now_ms = self.world.now_ms.max(now_ms);
        let mut found = Vec::new();
        for inv in &mut self.invariants {
            found.extend(inv.tick(&self.world, now_ms));
        }
        self.violations.extend(found.iter().cloned());
        found
    }

    /// Ends the run: open suspicions and end-state checks are judged.
    pub fn finish(&mut self) -> Vec<Violation> {
        let far = self.world.now_ms.saturating_add(u64::MAX / 4);
        let mut found = Vec::new();
        for inv in &mut self.invariants {
            found.extend(inv.tick(&self.world, far));
            found.extend(inv.finish(&self.world));
        }
        self.violations.extend(found.iter().cloned());
        found
    }

    pub fn world(&self) -> &World {
        &self.world
    }

    pub fn violations(&self) -> &[Violation] {
        &self.violations
    }

    pub fn evidence_count(&self) -> u64 {
        self.evidence_count
    }
}

#[cfg(test)]
pub(crate) mod fixtures;
