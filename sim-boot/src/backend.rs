//! Starting the whole backend in-process: the embedded registry, the boot server, the watches it serves
//! from, and the supervised controller (restarted with backoff if it panics). Served on sockets, or with
//! [`BackendOptions::network`] as in-process hosts (`boot.sim.invalid`) with no listener at all.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use futures::StreamExt;
use kube::api::ListParams;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource};
use metal_api::{Server, ServerBootConfiguration};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::controller::{self, ControllerOptions, ReconcileCounts};
use crate::oci::{BlobSizes, Catalog, HttpResolver, ImageResolver, OciClientResolver, Registry};
use crate::records::{BootRecords, SbcKey};
use crate::serve::{BootServer, ServeStats};
use clock::Clock;
use http_client::{HttpClient, InProcessNet};

/// The boot server's host on an in-process network (unless `public_url` names another).
pub const BOOT_HOST: &str = "boot.sim.invalid";
/// The embedded registry's host on an in-process network.
pub const EMBEDDED_REGISTRY_HOST: &str = "sim-boot-registry.sim.invalid";

/// The generated registry sim-boot can serve next to the boot server.
#[derive(Clone, Debug)]
pub struct EmbeddedRegistry {
    pub listen: SocketAddr,
    pub seed: u64,
    pub sizes: BlobSizes,
}

impl Default for EmbeddedRegistry {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            seed: 1,
            sizes: BlobSizes::default(),
        }
    }
}

/// Which OCI client resolves images.
#[derive(Clone, Default)]
pub enum ResolverKind {
    /// The `oci-client` crate over real sockets (HTTPS, or plain HTTP for insecure registries).
    #[default]
    OciClient,
    /// The distribution API over a tower-based client; `None` reaches the embedded registry in-process.
    Http(Option<HttpClient>),
}

impl std::fmt::Debug for ResolverKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ResolverKind::OciClient => f.write_str("OciClient"),
            ResolverKind::Http(None) => f.write_str("Http(embedded, in-process)"),
            ResolverKind::Http(Some(_)) => f.write_str("Http(custom transport)"),
        }
    }
}

#[derive(Clone, Debug)]
pub struct BackendOptions {
    /// Boot server listen address.
    pub listen: SocketAddr,
    /// Base URL machines use (default `http://<bound address>`).
    pub public_url: Option<String>,
    /// Serve the generated registry (its host is added to the allowed and plain-HTTP registries).
    pub registry: Option<EmbeddedRegistry>,
    /// `host:port` registries reached over plain HTTP.
    pub insecure_registries: Vec<String>,
    pub controller: ControllerOptions,
    /// Serve the boot server and the embedded registry as hosts of this in-process network instead of binding
    /// `listen` (and `registry.listen`): plain HTTP, no TLS, no socket. The controller's self-probe goes
    /// through it too; images resolve through [`ResolverKind::Http`] (the `oci-client` crate needs sockets).
    pub network: Option<InProcessNet>,
}

impl Default for BackendOptions {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            public_url: None,
            registry: Some(EmbeddedRegistry::default()),
            insecure_registries: vec![],
            controller: ControllerOptions {
                allowed_registries: vec!["ghcr.io".into()],
                ..Default::default()
            },
            network: None,
        }
    }
}

pub struct Backend;

/// A running backend. Dropping it does not stop it; call [`BackendHandle::shutdown`].
pub struct BackendHandle {
    url: String,
    registry_host: Option<String>,
    server: BootServer,
    records: BootRecords,
    crashes: Arc<AtomicU64>,
    reconciles: Arc<ReconcileCounts>,
    controller_stopped: Arc<AtomicBool>,
    cancel: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
    /// The in-process network and the hosts this backend serves there (dropped from it at shutdown).
    served: Option<(InProcessNet, Vec<String>)>,
}

impl Backend {
    pub async fn start(client: Client, options: BackendOptions) -> anyhow::Result<BackendHandle> {
        Self::start_with(client, options, ResolverKind::default(), Clock::wall()).await
    }

    /// [`Backend::start`] with a choice of image resolver and the clock for condition timestamps.
    pub async fn start_with(
        client: Client,
        mut options: BackendOptions,
        resolver: ResolverKind,
        clock: Clock,
    ) -> anyhow::Result<BackendHandle> {
        if options.network.is_some() && matches!(resolver, ResolverKind::OciClient) {
            anyhow::bail!(
                "an in-process sim-boot resolves images through ResolverKind::Http (oci-client needs sockets)"
            );
        }
        let cancel = CancellationToken::new();
        let mut tasks = Vec::new();
        let mut served = Vec::new();
        let (registry_host, registry_router) = match &options.registry {
            Some(embedded) => {
                let router =
                    Registry::new(Catalog::standard(embedded.seed, embedded.sizes)).router();
                let host = match &options.network {
                    Some(net) => {
                        net.serve(EMBEDDED_REGISTRY_HOST, router.clone());
                        served.push(EMBEDDED_REGISTRY_HOST.to_string());
                        EMBEDDED_REGISTRY_HOST.to_string()
                    }
                    None => {
                        let (host, task) =
                            start_registry(embedded, router.clone(), cancel.clone()).await?;
                        tasks.push(task);
                        host
                    }
                };
                options.insecure_registries.push(host.clone());
                if !options.controller.allowed_registries.is_empty() {
                    options.controller.allowed_registries.push(host.clone());
                }
                (Some(host), Some(router))
            }
            None => (None, None),
        };
        let listener = match &options.network {
            Some(_) => None,
            None => Some(
                TcpListener::bind(options.listen)
                    .await
                    .context("binding the boot server listener")?,
            ),
        };
        let url = match (&options.public_url, &listener) {
            (Some(url), _) => url.clone(),
            (None, Some(listener)) => format!("http://{}", listener.local_addr()?),
            (None, None) => format!("http://{BOOT_HOST}"),
        };
        let (servers, server_task) =
            reflect(Api::<Server>::all(client.clone()), None, cancel.clone());
        let sbc_api = match &options.controller.namespace {
            Some(ns) => Api::namespaced(client.clone(), ns),
            None => Api::all(client.clone()),
        };
        let gone = Arc::new(Notify::new());
        let (sbcs, sbc_task) =
            reflect::<ServerBootConfiguration>(sbc_api.clone(), Some(gone.clone()), cancel.clone());
        tasks.extend([server_task, sbc_task]);
        let records = BootRecords::for_mode(options.controller.misbehaviour);
        let server = BootServer::new(
            records.clone(),
            servers,
            sbcs.clone(),
            Some(client.clone()),
            &url,
        );
        match (listener, &options.network) {
            (Some(listener), _) => tasks.push(serve(listener, server.router(), cancel.clone())),
            (None, Some(net)) => {
                let host = http::Uri::try_from(url.as_str())
                    .ok()
                    .and_then(|u| u.authority().map(|a| a.to_string()))
                    .with_context(|| format!("the boot server's URL {url:?} names no host"))?;
                net.serve(&host, server.router());
                served.push(host);
            }
            (None, None) => unreachable!("a boot server without a network has a listener"),
        }
        tasks.push(tokio::spawn(collect_garbage(
            records.clone(),
            sbcs,
            sbc_api,
            gone,
            cancel.clone(),
        )));
        let resolver: Arc<dyn ImageResolver> = match &resolver {
            ResolverKind::OciClient => {
                Arc::new(OciClientResolver::new(options.insecure_registries.clone()))
            }
            ResolverKind::Http(Some(http)) => Arc::new(HttpResolver::new(http.clone())),
            ResolverKind::Http(None) => {
                let router = registry_router
                    .context("ResolverKind::Http(None) needs the embedded registry")?;
                Arc::new(HttpResolver::new(HttpClient::from_service(router)))
            }
        };
        let self_probe = match &options.network {
            Some(net) => net.client(),
            None => HttpClient::hyper(),
        };
        let crashes = Arc::new(AtomicU64::new(0));
        let reconciles = Arc::new(ReconcileCounts::default());
        let shared_reconciles = reconciles.clone();
        let context = move || {
            let mut context = controller::Context::new(
                client.clone(),
                records.clone(),
                resolver.clone(),
                options.controller.clone(),
                self_probe.clone(),
                url.clone(),
                clock,
            );
            context.reconciles = shared_reconciles.clone();
            Arc::new(context)
        };
        let url = server.base_url().to_string();
        let controller_stopped = Arc::new(AtomicBool::new(false));
        let stopped = controller_stopped.clone();
        let supervised = supervise(context, crashes.clone(), cancel.clone());
        tasks.push(tokio::spawn(async move {
            supervised.await;
            stopped.store(true, Ordering::SeqCst);
        }));
        Ok(BackendHandle {
            url,
            registry_host,
            records: server_records(&server),
            server,
            crashes,
            reconciles,
            controller_stopped,
            cancel,
            tasks,
            served: options.network.map(|net| (net, served)),
        })
    }
}

/// Binds and serves the generated registry; returns its `host:port` and the serving task.
async fn start_registry(
    embedded: &EmbeddedRegistry,
    router: axum::Router,
    cancel: CancellationToken,
) -> anyhow::Result<(String, JoinHandle<()>)> {
    let listener = TcpListener::bind(embedded.listen)
        .await
        .context("binding the registry listener")?;
    let host = listener.local_addr()?.to_string();
    let task = serve(listener, router, cancel);
    Ok((host, task))
}

fn server_records(server: &BootServer) -> BootRecords {
    server.records().clone()
}

fn serve(listener: TcpListener, router: axum::Router, cancel: CancellationToken) -> JoinHandle<()> {
    tokio::spawn(async move {
        let shutdown = async move { cancel.cancelled().await };
        if let Err(error) = axum::serve(listener, router)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::error!(%error, "HTTP server failed");
        }
    })
}

/// A cache of `api` for serving, its watch behind its own fast backoff (the self-probe reads through
/// it, so a cache left behind after a watch expiry delays Ready). `gone` is told when objects may have
/// vanished: a deletion, or a relist (which drops what was deleted meanwhile without an event).
fn reflect<K>(
    api: Api<K>,
    gone: Option<Arc<Notify>>,
    cancel: CancellationToken,
) -> (Store<K>, JoinHandle<()>)
where
    K: Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let (store, writer) = reflector::store();
    let stream = watches::events(api).reflect(writer);
    let task = tokio::spawn(async move {
        let events = stream.for_each(|event| {
            if let (Some(gone), Ok(watcher::Event::Delete(_) | watcher::Event::InitDone)) =
                (&gone, &event)
            {
                gone.notify_one();
            }
            async {}
        });
        tokio::select! {
            biased;
            _ = events => {}
            _ = cancel.cancelled() => {}
        }
    });
    (store, task)
}

/// Drops records of deleted SBCs (serving already refuses them; this frees the memory): after SBCs may
/// have vanished, at most every 5 s, and every minute anyway (a reconcile still running when its SBC
/// was deleted can publish after the sweep).
///
/// The controller publishes records from a watch of its own, which can be ahead of this store: a record
/// whose SBC the store lacks is dropped only once a list from the API server confirms that SBC is gone
/// (or was recreated), so a Ready SBC never loses its record to a lagging watch.
async fn collect_garbage(
    records: BootRecords,
    sbcs: Store<ServerBootConfiguration>,
    api: Api<ServerBootConfiguration>,
    gone: Arc<Notify>,
    cancel: CancellationToken,
) {
    if sbcs.wait_until_ready().await.is_err() {
        return;
    }
    loop {
        tokio::select! {
            biased;
            _ = gone.notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(60)) => {}
            _ = cancel.cancelled() => return,
        }
        let stored: HashSet<SbcKey> = sbcs
            .state()
            .iter()
            .map(|s| SbcKey::of(&s.metadata))
            .collect();
        // Taken before the list: a record published after it may name an SBC the list predates.
        let unconfirmed = records.unstored(|key| stored.contains(key));
        if !unconfirmed.is_empty() {
            let everything = ListParams::default();
            tokio::select! {
                biased;
                _ = cancel.cancelled() => return,
                listed = api.list_metadata(&everything) => match listed {
                    Ok(listed) => {
                        let live: HashSet<(SbcKey, String)> = listed
                            .items
                            .iter()
                            .map(|s| (SbcKey::of(&s.metadata), s.metadata.uid.clone().unwrap_or_default()))
                            .collect();
                        let deleted = unconfirmed.difference(&live).cloned().collect();
                        records.drop_incarnations(&deleted);
                    }
                    Err(error) => tracing::warn!(%error, "listing SBCs to collect records failed; keeping them"),
                },
            }
        }
        tokio::select! {
            biased;
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
            _ = cancel.cancelled() => return,
        }
    }
}

/// Runs the controller; a panic counts as a crash and the controller restarts with backoff, like a pod.
async fn supervise(
    context: impl Fn() -> Arc<controller::Context>,
    crashes: Arc<AtomicU64>,
    cancel: CancellationToken,
) {
    let mut restarts: u32 = 0;
    loop {
        let run = tokio::spawn(controller::run(context()));
        let abort = run.abort_handle();
        let outcome = tokio::select! {
            biased;
            outcome = run => outcome,
            _ = cancel.cancelled() => { abort.abort(); return; }
        };
        match outcome {
            Err(e) if e.is_panic() => {
                crashes.fetch_add(1, Ordering::Relaxed);
                restarts = restarts.saturating_add(1);
                let delay =
                    Duration::from_millis(100u64 << restarts.min(6)).min(Duration::from_secs(5));
                tracing::error!(restarts, ?delay, "controller crashed; restarting");
                tokio::select! {
                    biased;
                    _ = tokio::time::sleep(delay) => {}
                    _ = cancel.cancelled() => return,
                }
            }
            _ => return,
        }
    }
}

impl BackendHandle {
    /// Base URL of the boot server (`http://127.0.0.1:PORT`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// `http://host:port` of the embedded registry.
    pub fn registry_url(&self) -> Option<String> {
        self.registry_host.as_ref().map(|h| format!("http://{h}"))
    }

    /// `host:port` of the embedded registry.
    pub fn registry_host(&self) -> Option<&str> {
        self.registry_host.as_deref()
    }

    /// A full reference to an image of the embedded registry, e.g. `image(names::OS_V1)`.
    pub fn image(&self, name: &str) -> String {
        format!(
            "{}/{name}",
            self.registry_host.as_deref().unwrap_or("registry.invalid")
        )
    }

    /// The boot server as an in-process service (same state as the socket).
    pub fn router(&self) -> axum::Router {
        self.server.router()
    }

    pub fn stats(&self) -> Arc<ServeStats> {
        self.server.stats()
    }

    pub fn records(&self) -> &BootRecords {
        &self.records
    }

    /// How often the controller crashed (only `crash-on-reconcile` makes it crash).
    pub fn controller_crashes(&self) -> u64 {
        self.crashes.load(Ordering::Relaxed)
    }

    /// Whether the controller has stopped for good (only `watch-gives-up` stops it before shutdown).
    pub fn controller_stopped(&self) -> bool {
        self.controller_stopped.load(Ordering::SeqCst)
    }

    /// Reconciles started and finished so far, across controller restarts.
    pub fn reconciles(&self) -> &ReconcileCounts {
        &self.reconciles
    }

    pub async fn shutdown(self) {
        if let Some((net, hosts)) = &self.served {
            for host in hosts {
                net.remove(host);
            }
        }
        self.cancel.cancel();
        for task in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
    }
}
