//! The event-sourced world model: the latest known state of every object and machine, rebuilt only
//! from [`Evidence`], plus the little history the invariants need (SBC spec versions over time).

use std::collections::{BTreeMap, BTreeSet};

use crate::evidence::{
    ClaimSnap, Event, Evidence, HarnessEvent, Key, MachineObs, SbcSnap, SecretSnap, ServerSnap,
    Snapshot,
};

/// One spec version of an SBC and when (by arrival) it was current.
#[derive(Clone, Debug, PartialEq)]
pub struct SpecVersion {
    pub generation: i64,
    pub image: Option<String>,
    pub ignition_secret: Option<String>,
    pub from_ms: u64,
    pub to_ms: Option<u64>,
}

/// What the harness intended: used to tell lost objects from deleted ones.
#[derive(Clone, Debug, Default)]
pub struct Intent {
    /// Server name → BMC name, for every Server the fleet should produce.
    pub servers: BTreeMap<String, String>,
    pub claims_created: BTreeSet<Key>,
    pub claims_deleted: BTreeSet<Key>,
    pub servers_deleted: BTreeSet<String>,
    pub bmcs_deleted: BTreeSet<String>,
    /// Server → (operation, requested at).
    pub operations: BTreeMap<String, (String, u64)>,
}

/// A machine as its event log tells it.
#[derive(Clone, Debug, Default)]
pub struct MachineView {
    pub power: String,
    pub boot_started_ms: Option<u64>,
    pub booted: Option<(String, Option<String>, u64)>,
}

#[derive(Clone, Debug, Default)]
pub struct World {
    pub now_ms: u64,
    pub servers: BTreeMap<String, ServerSnap>,
    pub claims: BTreeMap<Key, ClaimSnap>,
    pub sbcs: BTreeMap<Key, SbcSnap>,
    pub sbc_versions: BTreeMap<Key, Vec<SpecVersion>>,
    pub secrets: BTreeMap<Key, SecretSnap>,
    pub bmcs: BTreeSet<String>,
    pub machines: BTreeMap<String, MachineView>,
    pub intent: Intent,
    /// Lower-case system UUID → Server name.
    uuid_index: BTreeMap<String, String>,
}

impl World {
    /// Applies one piece of evidence.
    pub fn apply(&mut self, ev: &Evidence) {
        self.now_ms = self.now_ms.max(ev.at_ms);
        match &ev.event {
            Event::Api { object, deleted } => self.apply_object(object, *deleted, ev.at_ms),
            Event::Machine { uuid, what } => self.apply_machine(uuid, what, ev.at_ms),
            Event::Harness(h) => self.apply_harness(h, ev.at_ms),
            Event::Component(_) => {}
        }
    }

    fn apply_object(&mut self, object: &Snapshot, deleted: bool, at: u64) {
        match object {
            Snapshot::Server(s) if deleted => {
                self.servers.remove(&s.name);
                if let Some(uuid) = &s.uuid {
                    self.uuid_index.remove(&uuid.to_ascii_lowercase());
                }
            }
            Snapshot::Server(s) => {
                if let Some(uuid) = &s.uuid {
                    self.uuid_index
                        .insert(uuid.to_ascii_lowercase(), s.name.clone());
                }
                self.servers.insert(s.name.clone(), s.clone());
            }
            Snapshot::ServerClaim(c) if deleted => {
                self.claims.remove(&c.key);
            }
            Snapshot::ServerClaim(c) => {
                self.claims.insert(c.key.clone(), c.clone());
            }
            Snapshot::ServerBootConfiguration(b) => self.apply_sbc(b, deleted, at),
            Snapshot::Bmc { name } if deleted => {
                self.bmcs.remove(name);
            }
            Snapshot::Bmc { name } => {
                self.bmcs.insert(name.clone());
            }
            Snapshot::Secret(s) if deleted => {
                self.secrets.remove(&s.key);
            }
            Snapshot::Secret(s) => {
                self.secrets.insert(s.key.clone(), s.clone());
            }
        }
    }

    fn apply_sbc(&mut self, b: &SbcSnap, deleted: bool, at: u64) {
        let versions = self.sbc_versions.entry(b.key.clone()).or_default();
        let changed = versions.last().is_none_or(|v| {
            v.to_ms.is_some()
                || v.generation != b.generation
                || v.image != b.image
                || v.ignition_secret != b.ignition_secret
        });
        if (deleted || changed)
            && let Some(last) = versions.last_mut()
            && last.to_ms.is_none()
        {
            last.to_ms = Some(at);
        }
        if deleted {
            self.sbcs.remove(&b.key);
            return;
        }
        if changed {
            versions.push(SpecVersion {
                generation: b.generation,
                image: b.image.clone(),
                ignition_secret: b.ignition_secret.clone(),
                from_ms: at,
                to_ms: None,
            });
        }
        self.sbcs.insert(b.key.clone(), b.clone());
    }

    fn apply_machine(&mut self, uuid: &str, what: &MachineObs, at: u64) {
        let m = self.machines.entry(uuid.to_string()).or_default();
        match what {
            MachineObs::PowerChanged { to } => {
                m.power = to.clone();
                if to == "Off" {
                    m.booted = None;
                }
            }
            MachineObs::BootAttempt { .. } => m.boot_started_ms = Some(at),
            MachineObs::BootSucceeded {
                image,
                ignition_sha256,
            } => {
                m.booted = Some((image.clone(), ignition_sha256.clone(), at));
            }
            MachineObs::BootFailed { .. } | MachineObs::ResetRequested { .. } => {}
        }
    }

    fn apply_harness(&mut self, h: &HarnessEvent, at: u64) {
        let i = &mut self.intent;
        match h {
            HarnessEvent::FleetDeclared { servers } => {
                i.servers = servers.iter().cloned().collect();
            }
            HarnessEvent::ClaimCreated { key } => {
                i.claims_created.insert(key.clone());
            }
            HarnessEvent::ClaimDeleted { key } => {
                i.claims_deleted.insert(key.clone());
            }
            HarnessEvent::ServerDeleted { server } => {
                i.servers_deleted.insert(server.clone());
            }
            HarnessEvent::BmcDeleted { bmc } => {
                i.bmcs_deleted.insert(bmc.clone());
            }
            HarnessEvent::OperationRequested { server, operation } => {
                i.operations.insert(server.clone(), (operation.clone(), at));
            }
            HarnessEvent::FaultInjected { .. }
            | HarnessEvent::FaultCleared { .. }
            | HarnessEvent::StepDone { .. } => {}
        }
    }

    /// The current snapshot of the object `like` names (same kind and key).
    pub fn current(&self, like: &Snapshot) -> Option<Snapshot> {
        match like {
            Snapshot::Server(s) => self.servers.get(&s.name).cloned().map(Snapshot::Server),
            Snapshot::ServerClaim(c) => self.claims.get(&c.key).cloned().map(Snapshot::ServerClaim),
            Snapshot::ServerBootConfiguration(b) => self
                .sbcs
                .get(&b.key)
                .cloned()
                .map(Snapshot::ServerBootConfiguration),
            Snapshot::Bmc { name } => self
                .bmcs
                .get(name)
                .map(|n| Snapshot::Bmc { name: n.clone() }),
            Snapshot::Secret(s) => self.secrets.get(&s.key).cloned().map(Snapshot::Secret),
        }
    }

    /// The Server managing the machine with this system UUID.
    pub fn server_of_machine(&self, uuid: &str) -> Option<&ServerSnap> {
        let name = self.uuid_index.get(&uuid.to_ascii_lowercase())?;
        self.servers.get(name)
    }

    /// SBC spec versions of `key` current at any time in `[from, to]`.
    pub fn versions_between(&self, key: &Key, from: u64, to: u64) -> Vec<&SpecVersion> {
        self.sbc_versions
            .get(key)
            .map(|vs| {
                vs.iter()
                    .filter(|v| v.from_ms <= to && v.to_ms.is_none_or(|end| end >= from))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Whether a claim selects this Server (serverRef, or every selector label matches).
    pub fn claim_fits(claim: &ClaimSnap, server: &ServerSnap) -> bool {
        match &claim.server_ref {
            Some(name) => name == &server.name,
            None => claim
                .selector
                .iter()
                .all(|(k, v)| server.labels.get(k) == Some(v)),
        }
    }
}
