//! Evidence collection: watches on the API (all namespaces) turned into snapshots, machine event logs
//! from sim-bmc, and a panic hook. Everything goes to one channel stamped with arrival time.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event as WatchEvent};
use kube::{Api, Client, Resource, ResourceExt};
use metal_api::{BMC, Server, ServerBootConfiguration, ServerClaim};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::evidence::{
    ClaimSnap, ComponentEvent, Event, Evidence, Key, MachineObs, SbcSnap, SecretSnap, ServerSnap,
    Snapshot,
};

/// Where evidence goes; stamps arrival time relative to the run start.
#[derive(Clone)]
pub struct Sink {
    start: Instant,
    tx: mpsc::UnboundedSender<Evidence>,
}

impl Sink {
    pub fn new(start: Instant) -> (Self, mpsc::UnboundedReceiver<Evidence>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Sink { start, tx }, rx)
    }

    pub fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    pub fn send(&self, event: Event) {
        let _ = self.tx.send(Evidence {
            at_ms: self.now_ms(),
            event,
        });
    }
}

/// Label the runner puts on the Secrets it creates, so only those are watched.
pub const SCENARIO_LABEL: &str = "metal-harness.ironcore.dev/scenario";

/// Starts one watch per kind; they run until aborted.
pub fn watch_api(client: &Client, sink: &Sink) -> Vec<JoinHandle<()>> {
    let secrets = watcher::Config::default().labels(SCENARIO_LABEL);
    vec![
        spawn_watch(
            Api::<Server>::all(client.clone()),
            watcher::Config::default(),
            sink.clone(),
            server_snap,
        ),
        spawn_watch(
            Api::<ServerClaim>::all(client.clone()),
            watcher::Config::default(),
            sink.clone(),
            claim_snap,
        ),
        spawn_watch(
            Api::<ServerBootConfiguration>::all(client.clone()),
            watcher::Config::default(),
            sink.clone(),
            sbc_snap,
        ),
        spawn_watch(
            Api::<BMC>::all(client.clone()),
            watcher::Config::default(),
            sink.clone(),
            |b: &BMC| Snapshot::Bmc { name: b.name_any() },
        ),
        spawn_watch(
            Api::<Secret>::all(client.clone()),
            secrets,
            sink.clone(),
            secret_snap,
        ),
    ]
}

/// Watches one kind; after a relist, objects that vanished meanwhile are reported deleted.
fn spawn_watch<K, F>(api: Api<K>, config: watcher::Config, sink: Sink, snap: F) -> JoinHandle<()>
where
    K: Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + Sync + 'static,
    K::DynamicType: Default,
    F: Fn(&K) -> Snapshot + Send + 'static,
{
    tokio::spawn(async move {
        let mut known: BTreeMap<String, Snapshot> = BTreeMap::new();
        let mut relisted: HashSet<String> = HashSet::new();
        // The controllers' backoff (50 ms first), not kube's default (800 ms): while this watch relists after a
        // 410 the invariants see no API evidence, and a gap of a second outlasts their grace period.
        let mut stream = watcher::watcher(api, config)
            .backoff(watches::WatchBackoff::default())
            .boxed();
        while let Some(event) = stream.next().await {
            let Ok(event) = event else { continue };
            match event {
                WatchEvent::Apply(obj) | WatchEvent::InitApply(obj) => {
                    let id = id_of(&obj);
                    let s = snap(&obj);
                    relisted.insert(id.clone());
                    if known.get(&id) != Some(&s) {
                        known.insert(id, s.clone());
                        sink.send(Event::Api {
                            object: s,
                            deleted: false,
                        });
                    }
                }
                WatchEvent::Delete(obj) => {
                    known.remove(&id_of(&obj));
                    sink.send(Event::Api {
                        object: snap(&obj),
                        deleted: true,
                    });
                }
                WatchEvent::Init => relisted.clear(),
                WatchEvent::InitDone => {
                    let gone: Vec<String> = known
                        .keys()
                        .filter(|k| !relisted.contains(*k))
                        .cloned()
                        .collect();
                    for id in gone {
                        if let Some(s) = known.remove(&id) {
                            sink.send(Event::Api {
                                object: s,
                                deleted: true,
                            });
                        }
                    }
                }
            }
        }
    })
}

fn id_of<K: Resource>(obj: &K) -> String {
    format!(
        "{}/{}",
        obj.meta().namespace.as_deref().unwrap_or(""),
        obj.meta().name.as_deref().unwrap_or("")
    )
}

pub fn server_snap(s: &Server) -> Snapshot {
    let status = s.status.as_ref();
    let bmc = s.spec.bmc_ref.as_ref().map(|r| r.name.clone()).or_else(|| {
        s.owner_references()
            .iter()
            .find(|o| o.kind == "BMC")
            .map(|o| o.name.clone())
    });
    Snapshot::Server(ServerSnap {
        name: s.name_any(),
        uuid: Some(s.spec.system_uuid.to_ascii_lowercase()).filter(|u| !u.is_empty()),
        state: status
            .and_then(|st| st.state.as_ref())
            .map(|x| x.as_str().to_string()),
        power: status
            .and_then(|st| st.power_state.as_ref())
            .map(|x| x.as_str().to_string()),
        claim_ref: s
            .spec
            .server_claim_ref
            .as_ref()
            .map(|r| Key::new(r.namespace.clone(), r.name.clone())),
        boot_config_ref: s
            .spec
            .boot_configuration_ref
            .as_ref()
            .map(|r| Key::new(r.namespace.clone(), r.name.clone())),
        bmc,
        labels: s.labels().clone(),
    })
}

pub fn claim_snap(c: &ServerClaim) -> Snapshot {
    Snapshot::ServerClaim(ClaimSnap {
        key: Key::new(c.namespace().unwrap_or_default(), c.name_any()),
        server_ref: c.spec.server_ref.as_ref().map(|r| r.name.clone()),
        bound: c.is_bound(),
        image: c.spec.image.clone(),
        ignition_secret: c.spec.ignition_secret_ref.as_ref().map(|r| r.name.clone()),
        power_on: c.spec.power.as_str() == "On",
        selector: c
            .spec
            .server_selector
            .as_ref()
            .and_then(|s| s.match_labels.clone())
            .unwrap_or_default(),
        deleting: c.meta().deletion_timestamp.is_some(),
    })
}

pub fn sbc_snap(b: &ServerBootConfiguration) -> Snapshot {
    let internal = b
        .annotations()
        .get(metal_api::constants::TYPE_ANNOTATION)
        .is_some_and(|v| v == metal_api::constants::TYPE_INTERNAL);
    Snapshot::ServerBootConfiguration(SbcSnap {
        key: Key::new(b.namespace().unwrap_or_default(), b.name_any()),
        server: b.spec.server_ref.name.clone(),
        image: b.spec.image.clone(),
        ignition_secret: b.spec.ignition_secret_ref.as_ref().map(|r| r.name.clone()),
        generation: b.meta().generation.unwrap_or(0),
        state: b.state().map(|s| s.as_str().to_string()),
        ready_current: b.is_ready_for_current_generation(),
        internal,
    })
}

/// The served form of plain Ignition JSON is the Secret's bytes; Butane is translated by the
/// backend, so its hash is not predicted here.
pub fn secret_snap(s: &Secret) -> Snapshot {
    let data = s.data.clone().unwrap_or_default();
    let format = data
        .get(metal_api::constants::IGNITION_FORMAT_KEY)
        .map(|v| v.0.clone());
    let served = match (data.get(metal_api::constants::IGNITION_KEY), format) {
        (Some(ignition), None) => Some(hex::encode(Sha256::digest(&ignition.0))),
        _ => None,
    };
    Snapshot::Secret(SecretSnap {
        key: Key::new(s.namespace().unwrap_or_default(), s.name_any()),
        served_ignition_sha256: served,
    })
}

/// Forwards every machine's event log to the sink (one task per machine).
pub fn watch_machines(fleet: &sim_bmc::FleetHandle, sink: &Sink) -> Vec<JoinHandle<()>> {
    let mut tasks = Vec::new();
    for bmc in fleet.bmcs() {
        for system in &bmc.systems {
            let Some(machine) = fleet.machine(&system.uuid) else {
                continue;
            };
            let uuid = system.uuid.to_ascii_lowercase();
            let mut rx = machine.subscribe();
            sink.send(Event::Machine {
                uuid: uuid.clone(),
                what: MachineObs::PowerChanged {
                    to: machine.power_state().as_str().to_string(),
                },
            });
            let sink = sink.clone();
            tasks.push(tokio::spawn(async move {
                loop {
                    match rx.recv().await {
                        Ok(ev) => {
                            if let Some(what) = reduce(&ev.kind) {
                                sink.send(Event::Machine {
                                    uuid: uuid.clone(),
                                    what,
                                });
                            }
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                            tracing::warn!(
                                uuid,
                                skipped = n,
                                "machine event log lagged; evidence incomplete"
                            );
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                    }
                }
            }));
        }
    }
    tasks
}

fn reduce(kind: &sim_bmc::MachineEventKind) -> Option<MachineObs> {
    use sim_bmc::MachineEventKind as K;
    Some(match kind {
        K::ResetRequested {
            reset_type,
            accepted,
        } => MachineObs::ResetRequested {
            reset_type: reset_type.clone(),
            accepted: *accepted,
        },
        K::PowerStateChanged { to, .. } => MachineObs::PowerChanged {
            to: to.as_str().to_string(),
        },
        K::BootAttempt { target, .. } => MachineObs::BootAttempt {
            target: target.clone(),
        },
        K::BootSucceeded { os } => MachineObs::BootSucceeded {
            image: os.image.clone(),
            ignition_sha256: os.ignition_sha256.clone(),
        },
        K::BootFailed { reason } => MachineObs::BootFailed {
            reason: reason.clone(),
        },
        K::NoBootDevice => MachineObs::BootFailed {
            reason: "no boot device".into(),
        },
        _ => return None,
    })
}

/// Records panics anywhere in the process as evidence (the previous hook still runs).
pub fn install_panic_hook(sink: &Sink) {
    let slot: Arc<Mutex<Option<Sink>>> = PANIC_SINK
        .get_or_init(|| Arc::new(Mutex::new(None)))
        .clone();
    *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(sink.clone());
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let sink = PANIC_SINK
                .get()
                .and_then(|s| s.lock().ok().and_then(|g| g.clone()));
            if let Some(sink) = sink {
                let thread = std::thread::current()
                    .name()
                    .unwrap_or("unnamed")
                    .to_string();
                let message = match info.location() {
                    Some(l) => format!("{} at {}:{}", payload(info), l.file(), l.line()),
                    None => payload(info),
                };
                sink.send(Event::Component(ComponentEvent::Panicked {
                    thread,
                    message,
                }));
            }
            previous(info);
        }));
    });
}

/// Stops recording panics (the run is over).
pub fn detach_panic_hook() {
    if let Some(slot) = PANIC_SINK.get() {
        *slot.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

static PANIC_SINK: std::sync::OnceLock<Arc<Mutex<Option<Sink>>>> = std::sync::OnceLock::new();
static HOOK: std::sync::Once = std::sync::Once::new();

fn payload(info: &std::panic::PanicHookInfo<'_>) -> String {
    if let Some(s) = info.payload().downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = info.payload().downcast_ref::<String>() {
        s.clone()
    } else {
        "panic".into()
    }
}
