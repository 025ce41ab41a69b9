//! The ServerBootConfiguration controller: watches SBCs in all namespaces plus the Secrets and Servers they
//! reference, and is the single writer of SBC status (never spec or metadata).

pub mod conditions;
mod fragile_watch;
pub mod prepare;
pub mod probe;
pub mod reconcile;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::api::ListParams;
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Api, Client};
use metal_api::{Server, ServerBootConfiguration, ServerBootConfigurationState};
use tokio_util::task::AbortOnDropHandle;

use crate::clock::Clock;
use crate::misbehaviour::{Misbehaviour, MisbehaviourOptions};
use crate::oci::ImageResolver;
use crate::records::{BootRecords, SbcKey};
use crate::single_flight::SingleFlight;
use conditions::{Cond, Written, reasons, types, write_status};
use http_client::HttpClient;
pub use prepare::BootModes;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
}

/// Controller settings.
#[derive(Clone, Debug)]
pub struct ControllerOptions {
    /// Architecture used when the Server's processor inventory does not tell (`amd64`/`arm64`).
    pub architecture: String,
    /// Registries images may come from; empty allows any.
    pub allowed_registries: Vec<String>,
    pub boot_modes: BootModes,
    pub misbehaviour: Misbehaviour,
    pub misbehaviour_options: MisbehaviourOptions,
    /// Watch one namespace only (default: all).
    pub namespace: Option<String>,
    /// Upper bound of the retry backoff after errors.
    pub max_backoff: Duration,
}

impl Default for ControllerOptions {
    fn default() -> Self {
        Self {
            architecture: "amd64".into(),
            allowed_registries: vec![],
            boot_modes: BootModes::default(),
            misbehaviour: Misbehaviour::None,
            misbehaviour_options: MisbehaviourOptions::default(),
            namespace: None,
            max_backoff: Duration::from_secs(60),
        }
    }
}

/// Reconciles started and finished. Tests wait on them to know the backend has looked at a change
/// that must not produce a status write; benchmarks count them.
#[derive(Debug, Default)]
pub struct ReconcileCounts {
    started: AtomicU64,
    finished: AtomicU64,
    peak_in_flight: AtomicU64,
}

impl ReconcileCounts {
    fn start(&self) {
        let started = self.started.fetch_add(1, Ordering::SeqCst) + 1;
        let in_flight = started.saturating_sub(self.finished.load(Ordering::SeqCst));
        self.peak_in_flight.fetch_max(in_flight, Ordering::SeqCst);
    }

    fn finish(&self) {
        self.finished.fetch_add(1, Ordering::SeqCst);
    }

    /// The most reconciles seen running at once.
    pub fn peak_in_flight(&self) -> u64 {
        self.peak_in_flight.load(Ordering::SeqCst)
    }

    pub fn started(&self) -> u64 {
        self.started.load(Ordering::SeqCst)
    }

    /// Reconciles that returned (a panicking reconcile never finishes).
    pub fn finished(&self) -> u64 {
        self.finished.load(Ordering::SeqCst)
    }
}

/// Shared state of the reconcilers.
pub struct Context {
    pub client: Client,
    pub records: BootRecords,
    pub resolver: Arc<dyn ImageResolver>,
    pub options: ControllerOptions,
    /// Client for the self-probe.
    pub probe: HttpClient,
    /// The boot server's advertised base URL.
    pub base_url: String,
    pub clock: Arc<dyn Clock>,
    failures: Mutex<HashMap<SbcKey, u32>>,
    flappers: Mutex<HashMap<SbcKey, tokio::task::JoinHandle<()>>>,
    /// Shared with the [`crate::BackendHandle`], so counts survive controller restarts.
    pub reconciles: Arc<ReconcileCounts>,
    /// Artifacts the self-probe has already read in full.
    pub verified: probe::VerifiedDigests,
    /// Blob downloads in flight, shared between SBCs naming the same image.
    pub downloads: SingleFlight<bytes::Bytes>,
    /// Full artifact reads of the self-probe in flight, shared likewise.
    pub probes: SingleFlight<()>,
    /// `watch-from-now`: the uids of the SBCs that existed when this controller started.
    existing_at_start: OnceLock<HashSet<String>>,
    /// `watch-from-now`: when this controller first saw each new SBC still waiting in its queue.
    queued: Mutex<HashMap<String, tokio::time::Instant>>,
}

impl Context {
    pub fn new(
        client: Client,
        records: BootRecords,
        resolver: Arc<dyn ImageResolver>,
        options: ControllerOptions,
        probe: HttpClient,
        base_url: String,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            client,
            records,
            resolver,
            options,
            probe,
            base_url,
            clock,
            failures: Mutex::default(),
            flappers: Mutex::default(),
            reconciles: Arc::default(),
            verified: probe::VerifiedDigests::default(),
            downloads: SingleFlight::default(),
            probes: SingleFlight::default(),
            existing_at_start: OnceLock::new(),
            queued: Mutex::default(),
        }
    }

    /// `watch-from-now`: notes which SBCs exist when this controller starts (by uid).
    async fn remember_existing(&self, sbcs: &Api<ServerBootConfiguration>) {
        match sbcs.list_metadata(&ListParams::default()).await {
            Ok(list) => {
                let uids = list.items.into_iter().filter_map(|o| o.metadata.uid);
                let _ = self.existing_at_start.set(uids.collect());
            }
            Err(error) => tracing::warn!(%error, "watch-from-now: listing failed"),
        }
    }

    /// `watch-from-now`: whether the SBC already existed when this controller started.
    pub fn existed_at_start(&self, sbc: &ServerBootConfiguration) -> bool {
        let uid = sbc.metadata.uid.as_deref().unwrap_or_default();
        self.existing_at_start
            .get()
            .is_some_and(|uids| uids.contains(uid))
    }

    /// `watch-from-now`: how much longer a new SBC waits in the in-memory queue (None: its turn has come).
    pub fn queue_wait(&self, sbc: &ServerBootConfiguration) -> Option<Duration> {
        let uid = sbc.metadata.uid.clone().unwrap_or_default();
        let delay = self.options.misbehaviour_options.queue_delay;
        let now = tokio::time::Instant::now();
        let mut queued = self.queued.lock().unwrap_or_else(|p| p.into_inner());
        let since = *queued.entry(uid.clone()).or_insert(now);
        let waited = now.duration_since(since);
        if waited >= delay {
            queued.remove(&uid);
            return None;
        }
        Some(delay - waited)
    }

    /// Exponential backoff per SBC: 1 s, 2 s, 4 s … up to `max_backoff`.
    fn backoff(&self, key: &SbcKey) -> Duration {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let n = failures.entry(key.clone()).or_insert(0);
        *n = n.saturating_add(1);
        Duration::from_secs(1u64 << (*n - 1).min(16)).min(self.options.max_backoff)
    }

    fn reset_backoff(&self, key: &SbcKey) {
        self.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }

    /// `flap`: a second writer flipping Ready/Error until the generation moves on (bounded).
    fn start_flapping(
        &self,
        api: Api<ServerBootConfiguration>,
        key: SbcKey,
        generation: i64,
        ready: Vec<Cond>,
    ) {
        let mut flappers = self.flappers.lock().unwrap_or_else(|p| p.into_inner());
        if flappers.get(&key).is_some_and(|h| !h.is_finished()) {
            return;
        }
        let interval = self.options.misbehaviour_options.flap_interval;
        let clock = self.clock.clone();
        let name = key.name.clone();
        let task = tokio::spawn(async move {
            let mut error = ready.clone();
            error.retain(|c| c.type_ != types::IMAGE_RESOLVED);
            error.push(Cond::falsity(
                types::IMAGE_RESOLVED,
                reasons::IMAGE_VALIDATION_FAILED,
                "UKI layer digest not found",
            ));
            for flip in 0..1000u32 {
                tokio::time::sleep(interval).await;
                let (state, conds) = if flip % 2 == 0 {
                    (ServerBootConfigurationState::Error, &error)
                } else {
                    (ServerBootConfigurationState::Ready, &ready)
                };
                match write_status(&api, &name, generation, state, conds, clock.as_ref()).await {
                    Ok(Written::Superseded) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        });
        flappers.insert(key, task);
    }
}

impl Drop for Context {
    fn drop(&mut self) {
        for (_, task) in self
            .flappers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
        {
            task.abort();
        }
    }
}

fn error_policy(_sbc: Arc<ServerBootConfiguration>, error: &Error, _ctx: Arc<Context>) -> Action {
    tracing::warn!(%error, "reconcile failed");
    Action::requeue(Duration::from_secs(2))
}

/// Runs the controller until it is aborted (only `watch-gives-up` ends it on its own). Panics in reconcile
/// propagate.
pub async fn run(ctx: Arc<Context>) {
    let client = ctx.client.clone();
    let (sbcs, secrets): (Api<ServerBootConfiguration>, Api<Secret>) = match &ctx.options.namespace
    {
        Some(ns) => (
            Api::namespaced(client.clone(), ns),
            Api::namespaced(client.clone(), ns),
        ),
        None => (Api::all(client.clone()), Api::all(client.clone())),
    };
    let servers = Api::<Server>::all(client);
    let mode = ctx.options.misbehaviour;
    if mode == Misbehaviour::WatchFromNow {
        ctx.remember_existing(&sbcs).await;
    }
    let store_sbcs = sbcs.clone();
    let controller = Controller::new(sbcs, watcher::Config::default());
    let store = controller.store();
    let (by_secret, by_server) = (sbcs_naming_secret(store.clone()), sbcs_naming_server(store));
    let mut controller = controller
        .watches(secrets, watcher::Config::default(), by_secret)
        .watches(servers, watcher::Config::default(), by_server);
    // Dropping the guard aborts the fragile watch when the controller stops or is aborted.
    let mut _fragile_watch_guard = None;
    if mode == Misbehaviour::WatchGivesUp {
        let (broken, stop) = tokio::sync::oneshot::channel::<()>();
        _fragile_watch_guard = Some(AbortOnDropHandle::new(tokio::spawn(async move {
            fragile_watch::until_broken(store_sbcs).await;
            let _ = broken.send(());
        })));
        controller = controller.graceful_shutdown_on(async move {
            let _ = stop.await;
        });
    }
    let config = match mode {
        Misbehaviour::SingleWorker => controller::Config::default().concurrency(1),
        _ => controller::Config::default(),
    };
    controller
        .with_config(config)
        .run(
            |sbc, ctx: Arc<Context>| async move {
                let counts = ctx.reconciles.clone();
                counts.start();
                let outcome = reconcile::reconcile(sbc, ctx).await;
                counts.finish();
                outcome
            },
            error_policy,
            ctx.clone(),
        )
        .for_each(|_| async {})
        .await;
}

/// The SBCs that reference a Secret (same namespace, `spec.ignitionSecretRef.name`).
fn sbcs_naming_secret(
    sbcs: Store<ServerBootConfiguration>,
) -> impl Fn(Secret) -> Vec<ObjectRef<ServerBootConfiguration>> + Send + Sync + 'static {
    move |secret: Secret| {
        let namespace = secret.metadata.namespace.clone();
        let name = secret.metadata.name.clone();
        sbcs.state_filter(|sbc| {
            sbc.metadata.namespace == namespace
                && sbc.spec.ignition_secret_ref.as_ref().map(|r| Some(&r.name))
                    == Some(name.as_ref())
        })
        .iter()
        .map(|sbc| ObjectRef::from_obj(&**sbc))
        .collect()
    }
}

/// The SBCs whose `spec.serverRef` names a Server.
fn sbcs_naming_server(
    sbcs: Store<ServerBootConfiguration>,
) -> impl Fn(Server) -> Vec<ObjectRef<ServerBootConfiguration>> + Send + Sync + 'static {
    move |server: Server| {
        let name = server.metadata.name.clone().unwrap_or_default();
        sbcs.state_filter(|sbc| sbc.spec.server_ref.name == name)
            .iter()
            .map(|sbc| ObjectRef::from_obj(&**sbc))
            .collect()
    }
}
