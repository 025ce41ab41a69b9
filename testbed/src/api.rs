//! The API server of a testbed: the embedded one (with the metal CRDs, restartable on the same address with its
//! data when durable) or an external cluster named by a kubeconfig; and the kube clients the components use.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use anyhow::{Context as _, bail};
use tower::ServiceExt as _;

/// Which API server.
#[derive(Clone, Debug)]
pub enum ApiSpec {
    /// The embedded server; `durable` keeps its data in a temp dir so [`ApiServer::restart`] loses nothing (every
    /// write then waits for an fsync, so only runs that restart it ask for it).
    Embedded { durable: bool },
    /// A cluster that already runs (the metal CRDs must be installed there).
    External(PathBuf),
}

impl Default for ApiSpec {
    fn default() -> Self {
        ApiSpec::Embedded { durable: false }
    }
}

/// How components reach the API server.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Transport {
    /// Real HTTP over loopback (or the external cluster's URL).
    #[default]
    Sockets,
    /// The embedded server's router as a tower service: no sockets (what a paused clock needs). The server
    /// still listens for child processes and kubeconfigs unless the testbed is
    /// [`crate::TestbedBuilder::socket_free`].
    InProcess,
}

/// The components whose clients a [`ClientFactory`] builds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    Operator,
    Backend,
    /// Whoever drives the testbed: tests, the scenario runner's watches and workload.
    Harness,
}

/// What a client is built over.
pub enum ApiAccess {
    /// The client configuration (socket transport).
    Config(Box<kube::Config>),
    /// The embedded server's current router (in-process transport; follows restarts).
    Router(RouterService),
}

/// Builds the kube client of each component (say, with a layer that counts requests).
pub type ClientFactory = Arc<dyn Fn(Role, ApiAccess) -> anyhow::Result<kube::Client> + Send + Sync>;

/// Namespace of in-process clients' default `Api`s.
pub const DEFAULT_NAMESPACE: &str = "default";

/// The default factory: a plain client over the access it is given.
pub fn plain_client(access: ApiAccess) -> anyhow::Result<kube::Client> {
    Ok(match access {
        ApiAccess::Config(config) => {
            kube::Client::try_from(*config).context("building a kube client")?
        }
        ApiAccess::Router(router) => kube::Client::new(router, DEFAULT_NAMESPACE),
    })
}

/// A tower service that hands each request to the embedded server's router of the moment, so in-process clients
/// keep working across restarts.
#[derive(Clone)]
pub struct RouterService {
    current: Arc<RwLock<axum::Router>>,
}

impl RouterService {
    fn router(&self) -> axum::Router {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl tower::Service<http::Request<kube::client::Body>> for RouterService {
    type Response = axum::response::Response;
    type Error = std::convert::Infallible;
    type Future = std::pin::Pin<
        Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send + 'static>,
    >;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<kube::client::Body>) -> Self::Future {
        let router = self.router();
        Box::pin(async move { router.oneshot(request.map(axum::body::Body::new)).await })
    }
}

/// A running API server.
pub struct ApiServer {
    inner: Inner,
    transport: Transport,
}

enum Inner {
    Embedded(Box<Embedded>),
    External {
        url: String,
        config: Box<kube::Config>,
    },
}

struct Embedded {
    handle: Option<apiserver::Handle>,
    router: Arc<RwLock<axum::Router>>,
    /// The data of a durable server (restartable).
    data_dir: Option<tempfile::TempDir>,
    clock: Option<clock::Clock>,
    seed: Option<u64>,
    /// Each restart draws from its own stream, so it never repeats a uid the previous server handed out.
    restarts: u32,
}

impl ApiServer {
    /// Starts (or connects to) the API server; the embedded one gets the metal CRDs and listens on loopback
    /// when `listen` says so (always over [`Transport::Sockets`]).
    pub async fn start(
        spec: &ApiSpec,
        transport: Transport,
        listen: bool,
    ) -> anyhow::Result<ApiServer> {
        Self::start_with(spec, transport, listen, None, None).await
    }

    /// [`ApiServer::start`] with the clock that stamps the embedded server's objects and the seed of its uids and
    /// generated names (its own wall clock and OS randomness when None).
    pub async fn start_with(
        spec: &ApiSpec,
        transport: Transport,
        listen: bool,
        clock: Option<clock::Clock>,
        seed: Option<u64>,
    ) -> anyhow::Result<ApiServer> {
        let durable = match spec {
            ApiSpec::External(path) => return Self::external(path, transport).await,
            ApiSpec::Embedded { durable } => *durable,
        };
        let data_dir = match durable {
            true => Some(tempfile::tempdir().context("creating the API server's data dir")?),
            false => None,
        };
        let options = apiserver::Options {
            data_dir: data_dir.as_ref().map(|d| d.path().to_path_buf()),
            // In-process is how a paused (simulated) clock reaches the server.
            paused_clock: transport == Transport::InProcess,
            listen: listen || transport == Transport::Sockets,
            clock,
            seed,
            ..apiserver::Options::default()
        };
        let handle = apiserver::Server::start(options)
            .await
            .context("starting the embedded API server")?;
        handle
            .install_crds(&metal_api::crds::all())
            .await
            .context("installing the metal CRDs")?;
        Ok(ApiServer {
            inner: Inner::Embedded(Box::new(Embedded {
                router: Arc::new(RwLock::new(handle.router())),
                handle: Some(handle),
                data_dir,
                clock,
                seed,
                restarts: 0,
            })),
            transport,
        })
    }

    /// A stand-in left behind when a testbed hands its parts to a shutdown task.
    pub(crate) fn stopped() -> ApiServer {
        ApiServer {
            inner: Inner::Embedded(Box::new(Embedded {
                handle: None,
                router: Arc::default(),
                data_dir: None,
                clock: None,
                seed: None,
                restarts: 0,
            })),
            transport: Transport::InProcess,
        }
    }

    async fn external(path: &Path, transport: Transport) -> anyhow::Result<ApiServer> {
        if transport == Transport::InProcess {
            bail!("an external cluster is reached over sockets only");
        }
        let kubeconfig = kube::config::Kubeconfig::read_from(path)
            .with_context(|| format!("reading {}", path.display()))?;
        let config = kube::Config::from_custom_kubeconfig(
            kubeconfig,
            &kube::config::KubeConfigOptions::default(),
        )
        .await
        .context("building a client from the kubeconfig")?;
        let url = config
            .cluster_url
            .to_string()
            .trim_end_matches('/')
            .to_string();
        Ok(ApiServer {
            inner: Inner::External {
                url,
                config: Box::new(config),
            },
            transport,
        })
    }

    /// What a component's client is built over, per the transport.
    pub fn access(&self) -> anyhow::Result<ApiAccess> {
        match (&self.inner, self.transport) {
            (Inner::External { config, .. }, _) => Ok(ApiAccess::Config(config.clone())),
            (Inner::Embedded(e), Transport::InProcess) => Ok(ApiAccess::Router(RouterService {
                current: e.router.clone(),
            })),
            (Inner::Embedded(e), Transport::Sockets) => Ok(ApiAccess::Config(Box::new(
                e.handle
                    .as_ref()
                    .context("the API server is stopped")?
                    .kube_config(),
            ))),
        }
    }

    /// `embedded at http://ADDR` or the external cluster's URL, for reports.
    pub fn describe(&self) -> String {
        match &self.inner {
            Inner::Embedded(e) => match (&e.handle, self.transport) {
                (_, Transport::InProcess) => "embedded, in-process".into(),
                (Some(h), Transport::Sockets) => format!("embedded at {}", h.url()),
                (None, Transport::Sockets) => "embedded (stopped)".into(),
            },
            Inner::External { url, .. } => url.clone(),
        }
    }

    /// The embedded server's handle (None for an external cluster or while stopped).
    pub fn handle(&self) -> Option<&apiserver::Handle> {
        match &self.inner {
            Inner::Embedded(e) => e.handle.as_ref(),
            Inner::External { .. } => None,
        }
    }

    /// Fault injection of the embedded server.
    pub fn faults(&self) -> Option<apiserver::Faults> {
        self.handle().map(|h| h.faults())
    }

    /// Writes a kubeconfig for a process that needs one (a child backend); an external cluster's is its own.
    pub fn write_kubeconfig(&self, path: &Path) -> anyhow::Result<()> {
        let handle = self.handle().context("no embedded API server is running")?;
        anyhow::ensure!(
            handle.is_listening(),
            "the in-process API server has no listener for a kubeconfig to name (a socket_free testbed has none)"
        );
        handle
            .write_kubeconfig(path)
            .with_context(|| format!("writing the kubeconfig {}", path.display()))
    }

    /// Stops and starts the embedded server on the same address with the same data; socket clients reconnect,
    /// in-process clients follow the new router.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        let Inner::Embedded(e) = &mut self.inner else {
            bail!("an API server restart needs the embedded API server (not --kubeconfig)");
        };
        let Some(data_dir) = &e.data_dir else {
            bail!(
                "the API server was started without a data dir, so a restart would lose everything"
            );
        };
        let (bind, listen) = match e.handle.take() {
            Some(h) => {
                let bound = (h.addr(), h.is_listening());
                h.shutdown().await;
                bound
            }
            None => bail!("the API server is stopped"),
        };
        e.restarts += 1;
        let options = apiserver::Options {
            bind,
            listen,
            data_dir: Some(data_dir.path().to_path_buf()),
            paused_clock: self.transport == Transport::InProcess,
            clock: e.clock,
            seed: e
                .seed
                .map(|s| clock::derive_seed(s, &format!("restart {}", e.restarts))),
            ..apiserver::Options::default()
        };
        let handle = apiserver::Server::start(options)
            .await
            .context("restarting the API server")?;
        *e.router.write().unwrap_or_else(|p| p.into_inner()) = handle.router();
        e.handle = Some(handle);
        Ok(())
    }

    /// Stops the embedded server (an external cluster is left alone).
    pub async fn shutdown(&mut self) {
        if let Inner::Embedded(e) = &mut self.inner
            && let Some(h) = e.handle.take()
        {
            h.shutdown().await;
        }
    }

    /// Takes the embedded server's handle out (the caller then owns its shutdown).
    pub fn take_handle(&mut self) -> Option<apiserver::Handle> {
        match &mut self.inner {
            Inner::Embedded(e) => e.handle.take(),
            Inner::External { .. } => None,
        }
    }
}
