//! Synthetic evidence streams for the invariant unit tests.

use super::Monitor;
use crate::evidence::{
    ClaimSnap, ComponentEvent, Event, Evidence, HarnessEvent, Key, MachineObs, SbcSnap, SecretSnap,
    ServerSnap, Snapshot,
};

/// Builds an evidence stream and runs it through a [`Monitor`].
pub struct Trace {
    pub monitor: Monitor,
    pub now: u64,
    events: Vec<Evidence>,
    grace: u64,
}

pub fn key(s: &str) -> Key {
    let (ns, name) = s.split_once('/').expect("namespace/name");
    Key::new(ns, name)
}

impl Trace {
    pub fn new(grace: u64) -> Self {
        Trace {
            monitor: Monitor::new(grace),
            now: 0,
            events: Vec::new(),
            grace,
        }
    }

    pub fn advance(&mut self, ms: u64) {
        self.now += ms;
        self.monitor.tick(self.now);
    }

    pub fn push(&mut self, event: Event) {
        self.now += 1;
        let ev = Evidence {
            at_ms: self.now,
            event,
        };
        self.monitor.feed(&ev);
        self.events.push(ev);
    }

    pub fn api(&mut self, object: Snapshot) {
        self.push(Event::Api {
            object,
            deleted: false,
        });
    }

    pub fn delete(&mut self, object: Snapshot) {
        self.push(Event::Api {
            object,
            deleted: true,
        });
    }

    pub fn server(&mut self, name: &str, uuid: &str, state: Option<&str>, claim: Option<&str>) {
        let prev = self.monitor.world().servers.get(name).cloned();
        let mut s = prev.unwrap_or_else(|| ServerSnap {
            name: name.into(),
            uuid: Some(uuid.into()),
            bmc: Some("bmc-0".into()),
            ..Default::default()
        });
        s.state = state.map(Into::into);
        s.claim_ref = claim.map(key);
        self.api(Snapshot::Server(s));
    }

    /// A Reserved Server bound to the claim `sbc` names (claim SBCs share the claim's key).
    pub fn server_with_sbc(&mut self, name: &str, uuid: &str, sbc: &str) {
        self.server(name, uuid, Some("Reserved"), Some(sbc));
        self.claim(sbc, Some(name), true);
        let mut s = self.monitor.world().servers[name].clone();
        s.boot_config_ref = Some(key(sbc));
        self.api(Snapshot::Server(s));
    }

    pub fn sbc(
        &mut self,
        k: &str,
        server: &str,
        generation: i64,
        state: &str,
        ready_current: bool,
    ) {
        let prev = self.monitor.world().sbcs.get(&key(k)).cloned();
        let mut b = prev.unwrap_or_else(|| SbcSnap {
            key: key(k),
            server: server.into(),
            image: Some("img:1".into()),
            ..Default::default()
        });
        b.generation = generation;
        b.state = Some(state.into());
        b.ready_current = ready_current;
        self.api(Snapshot::ServerBootConfiguration(b));
    }

    pub fn sbc_image(&mut self, k: &str, image: &str, ignition: Option<&str>, generation: i64) {
        let mut b = self.monitor.world().sbcs[&key(k)].clone();
        b.image = Some(image.into());
        b.ignition_secret = ignition.map(Into::into);
        b.generation = generation;
        b.state = Some("Pending".into());
        b.ready_current = false;
        self.api(Snapshot::ServerBootConfiguration(b));
    }

    pub fn secret(&mut self, k: &str, sha: &str) {
        self.api(Snapshot::Secret(SecretSnap {
            key: key(k),
            served_ignition_sha256: Some(sha.into()),
        }));
    }

    pub fn claim(&mut self, k: &str, server: Option<&str>, bound: bool) {
        let prev = self.monitor.world().claims.get(&key(k)).cloned();
        let mut c = prev.unwrap_or_else(|| ClaimSnap {
            key: key(k),
            image: "img:1".into(),
            power_on: true,
            ..Default::default()
        });
        c.server_ref = server.map(Into::into);
        c.bound = bound;
        self.api(Snapshot::ServerClaim(c));
    }

    pub fn machine(&mut self, uuid: &str, what: MachineObs) {
        self.push(Event::Machine {
            uuid: uuid.into(),
            what,
        });
    }

    /// The machine starts a PXE boot.
    pub fn pxe_attempt(&mut self, uuid: &str) {
        self.machine(
            uuid,
            MachineObs::BootAttempt {
                target: "Pxe".into(),
            },
        );
    }

    /// A PXE boot attempt that fails with `reason`.
    pub fn pxe_boot_fails(&mut self, uuid: &str, reason: &str) {
        self.pxe_attempt(uuid);
        self.machine(
            uuid,
            MachineObs::BootFailed {
                reason: reason.into(),
            },
        );
    }

    pub fn reset(&mut self, uuid: &str, reset_type: &str) {
        self.machine(
            uuid,
            MachineObs::ResetRequested {
                reset_type: reset_type.into(),
                accepted: true,
            },
        );
    }

    pub fn power(&mut self, uuid: &str, to: &str) {
        self.machine(uuid, MachineObs::PowerChanged { to: to.into() });
    }

    pub fn booted(&mut self, uuid: &str, image: &str, ignition: Option<&str>) {
        self.pxe_attempt(uuid);
        self.machine(
            uuid,
            MachineObs::BootSucceeded {
                image: image.into(),
                ignition_sha256: ignition.map(Into::into),
            },
        );
    }

    pub fn harness(&mut self, h: HarnessEvent) {
        self.push(Event::Harness(h));
    }

    /// The harness declares the Servers the fleet will produce, each with its BMC.
    pub fn fleet_declared(&mut self, servers: &[(&str, &str)]) {
        let servers = servers
            .iter()
            .map(|(server, bmc)| (server.to_string(), bmc.to_string()))
            .collect();
        self.harness(HarnessEvent::FleetDeclared { servers });
    }

    pub fn claim_created(&mut self, k: &str) {
        self.harness(HarnessEvent::ClaimCreated { key: key(k) });
    }

    pub fn claim_deleted(&mut self, k: &str) {
        self.harness(HarnessEvent::ClaimDeleted { key: key(k) });
    }

    pub fn operation(&mut self, server: &str, op: &str) {
        self.harness(HarnessEvent::OperationRequested {
            server: server.into(),
            operation: op.into(),
        });
    }

    pub fn component(&mut self, c: ComponentEvent) {
        self.push(Event::Component(c));
    }

    /// Violated invariant names after finishing, deduplicated, in order of first violation.
    pub fn finish_names(&mut self) -> Vec<String> {
        self.monitor.finish();
        let mut names: Vec<String> = Vec::new();
        for v in self.monitor.violations() {
            if !names.contains(&v.invariant) {
                names.push(v.invariant.clone());
            }
        }
        names
    }

    /// Like [`Self::finish_names`] on a copy of the stream so far, leaving this trace running.
    pub fn clone_finish_names(&self) -> Vec<String> {
        let mut copy = Trace::new(self.grace);
        for ev in &self.events {
            copy.now = ev.at_ms;
            copy.monitor.feed(ev);
        }
        copy.finish_names()
    }
}
