//! The ServerBootConfiguration controller: watches SBCs in all namespaces plus the Secrets and Servers they
//! reference, and is the single writer of SBC status (never spec or metadata).
//!
//! Each watch wakes an SBC only for what its reconcile reads (a fingerprint per watch; the operator's
//! dozen status writes per Server wake nothing), backs off on its own, and the Server and Secret watches
//! feed the caches the woken reconcile reads its inputs from (see `prepare`).

pub mod conditions;
mod fragile_watch;
pub mod prepare;
pub mod probe;
pub mod reconcile;
mod referrers;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::api::ListParams;
use kube::runtime::controller::Action;
use kube::runtime::reflector::Store;
use kube::{Api, Client};
use metal_api::{Server, ServerBootConfiguration, ServerBootConfigurationState};
use tokio_util::task::AbortOnDropHandle;
use watches::OwnWrites;

use crate::misbehaviour::{Misbehaviour, MisbehaviourOptions};
use crate::oci::ImageResolver;
use crate::records::{BootRecords, SbcKey};
use crate::single_flight::SingleFlight;
use clock::Clock;
use conditions::{Cond, Written, reasons, types, write_status};
use http_client::HttpClient;
pub use prepare::BootModes;
use referrers::Referrers;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// The reconcile's task was cancelled.
    #[error("reconcile task ended: {0}")]
    Task(String),
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
    pub clock: Clock,
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
    /// SBC status written by this controller, until its watch shows it.
    pub(crate) sbc_writes: OwnWrites<ServerBootConfiguration>,
    /// `ready-before-serving`: the records written Ready but not yet published (one lie per record).
    pub(crate) lies: Mutex<HashMap<SbcKey, crate::records::BootRecord>>,
}

/// The caches of the watches that wake an SBC on Server and Secret changes. A reconcile so woken reads
/// the changed object from them and sees that event or a newer one (a cache of another watch may not
/// have it yet).
#[derive(Clone)]
pub struct Inputs {
    pub servers: Store<Server>,
    pub secrets: Store<Secret>,
    /// Set once both caches hold their first list. Reconciles wait here, not on the stores: kube-runtime's
    /// `Store::wait_until_ready` keeps one waker (a oneshot receiver behind a mutex), so of several reconciles
    /// waiting at once only the last to poll was woken and the others waited forever — after a restart the
    /// SBCs that existed before it were never reconciled. One initializer waits on the stores; a tokio
    /// `OnceCell` wakes every waiter.
    ready: Arc<tokio::sync::OnceCell<()>>,
}

impl Inputs {
    pub fn new(servers: Store<Server>, secrets: Store<Secret>) -> Self {
        Self {
            servers,
            secrets,
            ready: Arc::default(),
        }
    }

    /// Until both caches hold their first list, a cache miss says nothing.
    async fn ready(&self) {
        self.ready
            .get_or_init(|| async {
                // Err only once the writer is gone, i.e. the controller is stopping.
                let _ = self.servers.wait_until_ready().await;
                let _ = self.secrets.wait_until_ready().await;
            })
            .await;
    }
}

impl Context {
    pub fn new(
        client: Client,
        records: BootRecords,
        resolver: Arc<dyn ImageResolver>,
        options: ControllerOptions,
        probe: HttpClient,
        base_url: String,
        clock: Clock,
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
            lies: Mutex::default(),
            reconciles: Arc::default(),
            verified: probe::VerifiedDigests::default(),
            downloads: SingleFlight::default(),
            probes: SingleFlight::default(),
            existing_at_start: OnceLock::new(),
            queued: Mutex::default(),
            sbc_writes: OwnWrites::default(),
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
    /// `ready-before-serving`: whether the SBC was already written Ready for `record`.
    fn lying_about(&self, key: &SbcKey, record: &crate::records::BootRecord) -> bool {
        self.lies
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .is_some_and(|r| r == record)
    }

    fn lie_started(&self, key: &SbcKey, record: &crate::records::BootRecord) {
        self.lies
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.clone(), record.clone());
    }

    fn lie_over(&self, key: &SbcKey) {
        self.lies
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }

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
        let clock = self.clock;
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
                match write_status(&api, &name, generation, state, conds, &clock).await {
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
    let referrers = Referrers::default();
    let index = referrers.clone();
    let controller =
        watches::controller_on_observed(sbcs, sbc_fingerprint, move |event| index.observe(event));
    let (secret_events, secrets) = watches::others_on_reflected(secrets, secret_fingerprint);
    let (server_events, servers) = watches::others_on_reflected(servers, server_fingerprint);
    let inputs = Inputs::new(servers, secrets);
    let by_secret = referrers.clone();
    let mut controller = controller
        .watches_stream(secret_events, move |secret: Secret| {
            let namespace = secret.metadata.namespace.unwrap_or_default();
            by_secret.naming_secret(&namespace, &secret.metadata.name.unwrap_or_default())
        })
        .watches_stream(server_events, move |server: Server| {
            referrers.naming_server(&server.metadata.name.unwrap_or_default())
        });
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
    // `single-worker` holds reconciles to one at a time; the limit is kept by `OrderedStarts` (first
    // come, first served), not by kube-runtime, which releases held objects in a hash order.
    let limit = match mode {
        Misbehaviour::SingleWorker => 1,
        _ => 0,
    };
    let starts = watches::OrderedStarts::limited(limit);
    controller
        .run(
            move |sbc, ctx: Arc<Context>| {
                let inputs = inputs.clone();
                // Started in the order kube-runtime hands SBCs over, not in its hash map's polling
                // order: see `watches::OrderedStarts`.
                let key = format!(
                    "{}/{}",
                    sbc.metadata.namespace.as_deref().unwrap_or_default(),
                    sbc.metadata.name.as_deref().unwrap_or_default()
                );
                let task = starts.start(key, move || async move {
                    tracing::trace!(sbc = ?sbc.metadata.name, "reconcile: waiting for input caches");
                    inputs.ready().await;
                    tracing::trace!(sbc = ?sbc.metadata.name, "reconcile: start");
                    let counts = ctx.reconciles.clone();
                    counts.start();
                    let outcome = reconcile::reconcile(sbc, ctx, &inputs).await;
                    counts.finish();
                    outcome
                });
                async move {
                    match task.await {
                        Ok(outcome) => outcome,
                        // A panicking reconcile crashes the controller, as it would crash the pod
                        // (`crash-on-reconcile`; the backend's supervisor restarts it).
                        Err(ended) if ended.is_panic() => std::panic::resume_unwind(ended.into_panic()),
                        Err(ended) => Err(Error::Task(ended.to_string())),
                    }
                }
            },
            error_policy,
            ctx.clone(),
        )
        .for_each(|_| async {})
        .await;
}

/// What a reconcile reads of the SBC itself: its generation (the spec), deletion, and the state and
/// generation its status reports. Status is in because a reconcile decides on it ("no state yet: Pending
/// first", "Ready for this generation: nothing to do"), so a status written by anyone else must be looked
/// at; this controller's own writes then wake it once more, which costs no API request (`OwnWrites`).
fn sbc_fingerprint(sbc: &ServerBootConfiguration) -> u64 {
    watches::fingerprint((
        sbc.metadata.generation,
        sbc.metadata.deletion_timestamp.as_ref().map(|t| t.0),
        sbc.status
            .as_ref()
            .and_then(|s| s.state.as_ref())
            .map(|s| s.as_str()),
        conditions::observed_generation(sbc),
    ))
}

/// Exactly what `prepare` reads of an ignition Secret: the `ignition` and `format` keys.
fn secret_fingerprint(secret: &Secret) -> u64 {
    let data = secret.data.as_ref();
    let value = |key: &str| data.and_then(|d| d.get(key)).map(|v| v.0.as_slice());
    watches::fingerprint((
        value(crate::ignition::IGNITION_KEY),
        value(crate::ignition::FORMAT_KEY),
        secret.metadata.deletion_timestamp.as_ref().map(|t| t.0),
    ))
}

/// Exactly what `prepare` reads of a Server: its system UUID, the architecture of its processors, the
/// configuration it references, and whether it is being deleted (existence: deletions always wake).
fn server_fingerprint(server: &Server) -> u64 {
    watches::fingerprint((
        &server.spec.system_uuid,
        prepare::architecture_of(server),
        server
            .spec
            .boot_configuration_ref
            .as_ref()
            .map(|r| (&r.namespace, &r.name)),
        server.metadata.deletion_timestamp.as_ref().map(|t| t.0),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::runtime::{reflector, watcher};

    /// Several reconciles waiting for the input caches at once are all released when the caches fill
    /// (kube-runtime's `wait_until_ready` alone wakes only the last waiter).
    #[tokio::test]
    async fn every_reconcile_waiting_for_the_caches_is_released() {
        let (servers, mut server_writer) = reflector::store::<Server>();
        let (secrets, mut secret_writer) = reflector::store::<Secret>();
        let inputs = Inputs::new(servers, secrets);
        let waiters: Vec<_> = (0..4)
            .map(|_| {
                let inputs = inputs.clone();
                tokio::spawn(async move { inputs.ready().await })
            })
            .collect();
        // Let every waiter register before the caches fill.
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        server_writer.apply_watcher_event(&watcher::Event::Init);
        server_writer.apply_watcher_event(&watcher::Event::InitDone);
        secret_writer.apply_watcher_event(&watcher::Event::Init);
        secret_writer.apply_watcher_event(&watcher::Event::InitDone);
        for waiter in waiters {
            tokio::time::timeout(Duration::from_secs(10), waiter)
                .await
                .expect("a waiting reconcile was never released")
                .expect("waiter task");
        }
    }
}
