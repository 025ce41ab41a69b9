//! An embedded, in-process Kubernetes-API-compatible server (REST + watch) over real HTTP.
//! It lets kube-rs, kube-runtime and kubectl run against a real API on one machine with no cluster,
//! so the operator, backends and conformance suite run unchanged here and on a real cluster.

pub mod admission;
mod builtin_validation;
mod cel_rules;
mod controllers;
mod crd;
pub mod faults;
mod fieldset;
mod http;
mod jsonpath;
pub mod limits;
mod managed;
mod objects;
mod ops;
mod patch;
mod persist;
mod protobuf;
mod resources;
mod schema_check;
mod selectors;
mod serve;
mod shutdown;
pub mod status;
mod store;
mod stored;
mod table;
mod tls;
mod validation;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::config::{
    AuthInfo, Cluster, Context, Kubeconfig, NamedAuthInfo, NamedCluster, NamedContext,
};
use serde_json::json;
use tokio::task::JoinHandle;

pub use admission::{Admission, AdmissionRequest, Operation};
pub use clock::{Clock, Entropy};
pub use faults::Faults;
pub use status::{ApiError, Cause};

use ops::{Record, State, WriteCtx};
use resources::Registry;
use store::Store;

/// How to run the server.
#[derive(Clone)]
pub struct Options {
    /// Listen address; loopback with a random port by default.
    pub bind: SocketAddr,
    /// Open a listener on `bind`; without one the server is reached only through [`Handle::router`] (a whole
    /// stack in one process on a paused clock, with no socket).
    pub listen: bool,
    /// Persist every acknowledged write here and restore from it at start.
    pub data_dir: Option<PathBuf>,
    /// Run the garbage collector and namespace-deletion controllers (kube-controller-manager's job).
    pub controllers: bool,
    /// How many events the watch history keeps; watches from older resourceVersions get 410 Gone.
    pub watch_history: usize,
    /// How often watches that allow bookmarks get one.
    pub bookmark_interval: Duration,
    /// Source of the timestamps written into objects; `Clock::wall()` at start when None.
    pub clock: Option<Clock>,
    /// Seeds uids and generated names, so a simulated run replays them; OS randomness when None.
    pub seed: Option<u64>,
    /// Serve TLS (self-signed) and require a bearer token. Always on for non-loopback binds.
    pub secure: bool,
    /// The bearer token for secure serving (random when None).
    pub token: Option<String>,
    /// How long a client may take to send a request head before its connection is closed.
    pub header_read_timeout: Duration,
    /// Concurrent watches one client (peer address and User-Agent) may hold; more get 429.
    pub max_watches_per_client: usize,
    /// The server runs on a paused tokio clock (simulated time): a durable write is fsynced on the writer's own
    /// thread before it is acknowledged, so it takes no virtual time and no other thread races the run.
    pub paused_clock: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            listen: true,
            data_dir: None,
            controllers: true,
            watch_history: 10_000,
            bookmark_interval: Duration::from_secs(5),
            clock: None,
            seed: None,
            secure: false,
            token: None,
            header_read_timeout: limits::HEADER_READ_TIMEOUT,
            max_watches_per_client: limits::MAX_WATCHES_PER_CLIENT,
            paused_clock: false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("API: {0}")]
    Api(#[from] ApiError),
    #[error("kube client: {0}")]
    Kube(#[from] kube::Error),
    #[error("{0}")]
    Config(String),
}

pub struct Server;

/// Repairs a damaged data log in `dir` on a person's request: keeps every intact record (checksum-verified, in
/// resourceVersion order), drops the damaged ones, keeps the damaged file next to it, and says what it did.
pub fn repair_data_log(dir: &Path, clock: &Clock) -> Result<String, Error> {
    let r = persist::repair(dir, clock.now())?;
    Ok(format!(
        "kept {} intact records, dropped {} damaged ones (at byte offsets {:?}); the damaged log is kept as {}",
        r.kept,
        r.dropped.len(),
        r.dropped,
        r.backup.display()
    ))
}

/// A running server.
pub struct Handle {
    state: Arc<State>,
    addr: SocketAddr,
    creds: Option<tls::Credentials>,
    /// Whether a listener serves `addr` (the last of `tasks`).
    listening: bool,
    tasks: Vec<JoinHandle<()>>,
}

const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
const DEFAULT_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public", "kube-node-lease"];

impl Server {
    pub async fn start(opts: Options) -> Result<Handle, Error> {
        let (log, loaded) = match &opts.data_dir {
            Some(dir) => {
                let (log, l) = persist::open(dir)?;
                (Some(log), Some(l))
            }
            None => (None, None),
        };
        let store = Arc::new(Store::new(opts.watch_history, log, opts.paused_clock)?);
        if let Some(l) = loaded {
            store.restore(l.rv, l.objects, l.history, l.history_from);
        }
        let state = Arc::new(State {
            faults: Faults::new(store.clone()),
            store,
            registry: Registry::new(),
            clock: opts.clock.unwrap_or_else(Clock::wall),
            entropy: Entropy::from_seed(opts.seed),
            admission: Admission::default(),
            bookmark_interval: opts.bookmark_interval,
            shutdown: shutdown::Shutdown::default(),
            watches: Arc::new(limits::WatchSlots::new(opts.max_watches_per_client)),
            crd_cleanup: controllers::crd_cleanup,
        });
        ops::register_stored_crds(&state);
        ensure_namespaces(&state).await?;
        let mut tasks = Vec::new();
        if opts.controllers {
            tasks.push(tokio::spawn(controllers::run(state.clone())));
        }
        if !opts.listen {
            return Ok(Handle {
                state,
                addr: opts.bind,
                creds: None,
                listening: false,
                tasks,
            });
        }
        let listener = tokio::net::TcpListener::bind(opts.bind).await?;
        let addr = listener.local_addr()?;
        let app = http::router(state.clone());
        let creds = if opts.secure || !opts.bind.ip().is_loopback() {
            Some(tls::Credentials::generate(addr, opts.token.clone()).map_err(Error::Config)?)
        } else {
            None
        };
        let shutdown = state.shutdown.clone();
        tasks.push(match creds.clone() {
            Some(creds) => tokio::spawn(async move {
                let app = tls::require_token(app, creds.token.clone());
                if let Err(e) =
                    tls::serve(listener, app, &creds, &shutdown, opts.header_read_timeout).await
                {
                    tracing::error!(error = %e, "apiserver HTTPS server stopped");
                }
            }),
            None => tokio::spawn(serve::plain(
                listener,
                app,
                opts.header_read_timeout,
                shutdown,
            )),
        });
        Ok(Handle {
            state,
            addr,
            creds,
            listening: true,
            tasks,
        })
    }
}

async fn ensure_namespaces(st: &Arc<State>) -> Result<(), Error> {
    let info = st
        .registry
        .get("", "namespaces")
        .ok_or_else(|| Error::Config("namespaces not registered".into()))?;
    for ns in DEFAULT_NAMESPACES {
        if st.store.get(&State::key(&info, None, ns)).is_none() {
            let obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
            ops::create(
                st,
                &info,
                None,
                obj,
                &WriteCtx::internal("v1"),
                Record::Update,
            )
            .await?;
        }
    }
    Ok(())
}

impl Handle {
    /// `http://127.0.0.1:PORT` (`https://` when serving securely; a wildcard bind is reached via loopback).
    pub fn url(&self) -> String {
        let mut addr = self.addr;
        if addr.ip().is_unspecified() {
            addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        let scheme = if self.creds.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{addr}")
    }

    /// The bearer token clients must send (secure serving only).
    pub fn token(&self) -> Option<String> {
        self.creds.as_ref().map(|c| c.token.clone())
    }

    /// The PEM of the self-signed serving certificate (secure serving only).
    pub fn ca_pem(&self) -> Option<String> {
        self.creds.as_ref().map(|c| c.cert_pem.clone())
    }

    /// Whether the server listens on [`Handle::addr`] (otherwise only [`Handle::router`] reaches it).
    pub fn is_listening(&self) -> bool {
        self.listening
    }

    /// The bound address (without a listener: the unbound `bind` option, which nothing serves).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A kube client talking to this server over real HTTP (TLS + token when serving securely).
    pub fn client(&self) -> kube::Client {
        kube::Client::try_from(self.kube_config())
            .expect("a loopback kube config always builds a client")
    }

    /// The `kube::Config` for this server.
    pub fn kube_config(&self) -> kube::Config {
        let uri: ::http::Uri = self.url().parse().expect("the server URL is a valid URI");
        let mut config = kube::Config::new(uri);
        if let Some(c) = &self.creds {
            config.root_cert = Some(vec![c.cert_der.clone()]);
            config.auth_info.token = Some(secrecy::SecretString::from(c.token.clone()));
        }
        config
    }

    pub fn kubeconfig(&self) -> Kubeconfig {
        let name = "metal-harness".to_string();
        Kubeconfig {
            clusters: vec![NamedCluster {
                name: name.clone(),
                cluster: Some(Cluster {
                    server: Some(self.url()),
                    certificate_authority_data: self.creds.as_ref().map(|c| {
                        use base64::Engine;
                        base64::engine::general_purpose::STANDARD.encode(&c.cert_pem)
                    }),
                    ..Default::default()
                }),
                other: Default::default(),
            }],
            contexts: vec![NamedContext {
                name: name.clone(),
                context: Some(Context {
                    cluster: name.clone(),
                    user: Some(name.clone()),
                    namespace: Some("default".into()),
                    ..Default::default()
                }),
                other: Default::default(),
            }],
            auth_infos: vec![NamedAuthInfo {
                name: name.clone(),
                auth_info: Some(AuthInfo {
                    token: self
                        .creds
                        .as_ref()
                        .map(|c| secrecy::SecretString::from(c.token.clone())),
                    ..Default::default()
                }),
                other: Default::default(),
            }],
            current_context: Some(name),
            ..Default::default()
        }
    }

    pub fn write_kubeconfig(&self, path: &Path) -> Result<(), Error> {
        let yaml = serde_saphyr::to_string(&self.kubeconfig())
            .map_err(|e| Error::Config(format!("kubeconfig: {e}")))?;
        std::fs::write(path, yaml)?;
        Ok(())
    }

    /// The server as a tower service, for socket-free clients: `kube::Client::new(handle.router(), "default")`.
    pub fn router(&self) -> axum::Router {
        http::router(self.state.clone())
    }

    /// Creates (or updates) CRDs and returns once they are Established and served.
    pub async fn install_crds(&self, crds: &[CustomResourceDefinition]) -> Result<(), Error> {
        let info = self
            .state
            .registry
            .get("apiextensions.k8s.io", "customresourcedefinitions")
            .ok_or_else(|| Error::Config("CRDs not registered".into()))?;
        for crd in crds {
            let obj = serde_json::to_value(crd).map_err(|e| Error::Config(e.to_string()))?;
            let name = objects::name_of(&obj).to_string();
            let ctx = WriteCtx::internal("v1");
            match ops::create(&self.state, &info, None, obj.clone(), &ctx, Record::Update).await {
                Ok(_) => {}
                Err(e) if e.reason == "AlreadyExists" => {
                    let key = State::key(&info, None, &name);
                    let spec = obj["spec"].clone();
                    let set_spec = |next: &mut serde_json::Value| next["spec"] = spec.clone();
                    ops::edit_internally(&self.state, &info, &key, objects::Sub::Main, &set_spec)
                        .await?;
                }
                Err(e) => return Err(e.into()),
            }
            let served = crd::resource_info(&obj);
            if self
                .state
                .registry
                .get(&served.group, &served.plural)
                .is_none()
            {
                return Err(Error::Config(format!(
                    "CRD {name} was stored but is not served"
                )));
            }
        }
        Ok(())
    }

    pub fn faults(&self) -> Faults {
        self.state.faults.clone()
    }

    pub fn admission(&self) -> Admission {
        self.state.admission.clone()
    }

    /// The store's current resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.state.store.current_rv()
    }

    /// Stops serving and waits for the server task: open watches end, kept-alive connections close, and a request
    /// still arriving on one is refused (429) rather than served by the stopped store.
    pub async fn shutdown(mut self) {
        self.stop().await;
    }

    async fn stop(&mut self) {
        // A state, not a notification: watches opened while the server stops end too, and graceful
        // shutdown is not kept waiting by a watch on a kept-alive connection.
        self.state.shutdown.begin();
        // The server task (pushed last) may finish gracefully; background controllers are simply stopped.
        if self.listening
            && let Some(mut server) = self.tasks.pop()
            && tokio::time::timeout(SHUTDOWN_GRACE, &mut server)
                .await
                .is_err()
        {
            server.abort();
        }
        for t in self.tasks.drain(..) {
            t.abort();
        }
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}
