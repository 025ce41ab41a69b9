//! The no-cluster environment: the embedded API server with the metal CRDs (restartable, with fault injection),
//! the built-in OCI registries (one the backend allows, one it must refuse), and `certify --embedded`, which runs
//! the backend under test as a supervised child process against them.

use crate::cli::CertifyArgs;
use crate::proxy::ApiProxy;
use crate::report::Report;
use crate::runner::RunResult;
use crate::supervisor::ChildBackend;
use crate::target::{ApiControl, BackendControl, ImageSet, MachineBoot, Target};
use crate::timeouts::Timeouts;
use anyhow::Context as _;
use futures::future::BoxFuture;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Seed of the built-in registry's generated images (any fixed value: digests are stable across runs).
const REGISTRY_SEED: u64 = 7;
/// How long `certify --embedded` waits for the backend's boot server to accept connections.
const BACKEND_STARTUP: Duration = Duration::from_secs(300);

/// The embedded API server behind a loopback proxy; restarts keep the (proxy) address and the data, and reset
/// every client connection as a real restart would.
pub struct EmbeddedApi {
    handle: tokio::sync::Mutex<Option<apiserver::Handle>>,
    faults: Mutex<apiserver::Faults>,
    proxy: ApiProxy,
    data_dir: PathBuf,
}

impl EmbeddedApi {
    /// Starts the server persisting into `data_dir` and installs the metal CRDs.
    pub async fn start(data_dir: &Path) -> anyhow::Result<Arc<EmbeddedApi>> {
        let handle = Self::start_server(data_dir).await?;
        handle
            .install_crds(&metal_api::crds::all())
            .await
            .context("installing the metal CRDs")?;
        let proxy = ApiProxy::start(handle.addr())
            .await
            .context("starting the API proxy")?;
        Ok(Arc::new(EmbeddedApi {
            faults: Mutex::new(handle.faults()),
            handle: tokio::sync::Mutex::new(Some(handle)),
            proxy,
            data_dir: data_dir.into(),
        }))
    }

    async fn start_server(data_dir: &Path) -> anyhow::Result<apiserver::Handle> {
        let opts = apiserver::Options {
            data_dir: Some(data_dir.into()),
            ..Default::default()
        };
        apiserver::Server::start(opts)
            .await
            .context("starting the embedded API server")
    }

    /// `http://127.0.0.1:PORT` of the proxy: stable across restarts.
    pub fn url(&self) -> String {
        format!("http://{}", self.proxy.addr())
    }

    /// The server's kubeconfig, pointed at the proxy.
    pub async fn kubeconfig(&self) -> anyhow::Result<kube::config::Kubeconfig> {
        let guard = self.handle.lock().await;
        let handle = guard.as_ref().context("the API server is stopped")?;
        let mut kubeconfig = handle.kubeconfig();
        for cluster in kubeconfig
            .clusters
            .iter_mut()
            .filter_map(|c| c.cluster.as_mut())
        {
            cluster.server = Some(self.url());
        }
        Ok(kubeconfig)
    }

    /// A client through the proxy; it keeps working across restarts.
    pub async fn client(&self) -> anyhow::Result<kube::Client> {
        let options = kube::config::KubeConfigOptions::default();
        let config =
            kube::Config::from_custom_kubeconfig(self.kubeconfig().await?, &options).await?;
        Ok(kube::Client::try_from(config)?)
    }

    pub async fn write_kubeconfig(&self, path: &Path) -> anyhow::Result<()> {
        let yaml = serde_saphyr::to_string(&self.kubeconfig().await?)?;
        std::fs::write(path, yaml).with_context(|| format!("writing {}", path.display()))?;
        Ok(())
    }

    fn faults(&self) -> apiserver::Faults {
        self.faults
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub async fn shutdown(&self) {
        if let Some(h) = self.handle.lock().await.take() {
            self.proxy.reset_connections();
            h.shutdown().await;
        }
    }
}

impl ApiControl for EmbeddedApi {
    fn drop_watches(&self) -> BoxFuture<'_, anyhow::Result<()>> {
        Box::pin(async move {
            self.faults().drop_watches();
            Ok(())
        })
    }

    fn expire_watches(&self) -> BoxFuture<'_, anyhow::Result<()>> {
        Box::pin(async move {
            self.faults().expire_watches();
            Ok(())
        })
    }

    fn restart(&self) -> Option<BoxFuture<'_, anyhow::Result<()>>> {
        Some(Box::pin(async move {
            let mut guard = self.handle.lock().await;
            if let Some(h) = guard.take() {
                // Like a process exit: every client connection goes away with the server.
                self.proxy.reset_connections();
                h.shutdown().await;
            }
            self.proxy.reset_connections();
            let handle = Self::start_server(&self.data_dir)
                .await
                .context("restarting the embedded API server")?;
            self.proxy.set_upstream(handle.addr());
            *self.faults.lock().unwrap_or_else(|p| p.into_inner()) = handle.faults();
            *guard = Some(handle);
            Ok(())
        }))
    }
}

/// Two read-only OCI registries with sim-boot's standard images: `allowed` (the backend's allowlist) and
/// `disallowed` (same content, a host the backend must refuse).
pub struct BuiltinRegistries {
    pub allowed: SocketAddr,
    pub disallowed: SocketAddr,
    tasks: Vec<JoinHandle<()>>,
}

impl BuiltinRegistries {
    /// sim-boot's standard images, as the built-in registries serve them by default.
    pub fn standard_catalog() -> sim_boot::oci::catalog::Catalog {
        sim_boot::oci::catalog::Catalog::standard(
            REGISTRY_SEED,
            sim_boot::oci::catalog::BlobSizes::default(),
        )
    }

    pub async fn start() -> anyhow::Result<BuiltinRegistries> {
        Self::start_with(Self::standard_catalog()).await
    }

    /// Both registries serving `catalog` (e.g. the standard one plus images built from real files).
    pub async fn start_with(
        catalog: sim_boot::oci::catalog::Catalog,
    ) -> anyhow::Result<BuiltinRegistries> {
        let registry = sim_boot::oci::registry::Registry::new(catalog);
        let mut tasks = Vec::new();
        let mut addrs = Vec::new();
        for _ in 0..2 {
            let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
            addrs.push(listener.local_addr()?);
            let app = registry.router();
            tasks.push(tokio::spawn(async move {
                let _ = axum::serve(listener, app).await;
            }));
        }
        Ok(BuiltinRegistries {
            allowed: addrs[0],
            disallowed: addrs[1],
            tasks,
        })
    }

    /// The image set the checks use by default.
    pub fn images(&self) -> ImageSet {
        use sim_boot::oci::catalog::names;
        let at = |addr: SocketAddr, name: &str| format!("{addr}/{name}");
        ImageSet {
            valid: at(self.allowed, names::OS_V1),
            valid_alt: Some(at(self.allowed, names::OS_V2)),
            unresolvable: Some(at(self.allowed, "ironcore/os:0.0-does-not-exist")),
            missing_layer: Some(at(self.allowed, names::NO_KERNEL)),
            disallowed_registry: Some(at(self.disallowed, names::OS_V1)),
        }
    }
}

impl Drop for BuiltinRegistries {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Everything a backend needs around it when there is no cluster.
pub struct EmbeddedEnv {
    pub api: Arc<EmbeddedApi>,
    pub registries: BuiltinRegistries,
    pub kubeconfig: PathBuf,
    _dir: tempfile::TempDir,
}

impl EmbeddedEnv {
    pub async fn start() -> anyhow::Result<EmbeddedEnv> {
        Self::start_with(BuiltinRegistries::standard_catalog()).await
    }

    /// The environment with built-in registries serving `catalog`.
    pub async fn start_with(
        catalog: sim_boot::oci::catalog::Catalog,
    ) -> anyhow::Result<EmbeddedEnv> {
        let dir = tempfile::tempdir()?;
        let api = EmbeddedApi::start(&dir.path().join("apiserver")).await?;
        let kubeconfig = dir.path().join("kubeconfig");
        api.write_kubeconfig(&kubeconfig).await?;
        let registries = BuiltinRegistries::start_with(catalog).await?;
        Ok(EmbeddedEnv {
            api,
            registries,
            kubeconfig,
            _dir: dir,
        })
    }

    /// A target on this environment.
    pub async fn target(
        &self,
        backend: Option<Arc<dyn BackendControl>>,
        boot: Option<Arc<dyn MachineBoot>>,
        timeouts: Timeouts,
        scale_count: usize,
        cancel: CancellationToken,
    ) -> anyhow::Result<Target> {
        Ok(Target {
            client: self.api.client().await?,
            images: self.registries.images(),
            timeouts,
            backend,
            api: Some(self.api.clone() as Arc<dyn ApiControl>),
            boot,
            scale_count,
            run_id: uuid::Uuid::new_v4().to_string(),
            epoch: tokio::time::Instant::now(),
            cancel,
            activity: Default::default(),
        })
    }
}

/// A free loopback port for the backend's boot server (bound, then released for the backend to take).
async fn pick_boot_addr(requested: &str) -> anyhow::Result<SocketAddr> {
    let addr: SocketAddr = requested
        .parse()
        .with_context(|| format!("--boot-addr {requested:?} is not host:port"))?;
    anyhow::ensure!(
        addr.ip().is_loopback(),
        "--boot-addr must be a loopback address, got {addr}"
    );
    if addr.port() != 0 {
        return Ok(addr);
    }
    let listener = tokio::net::TcpListener::bind(addr).await?;
    Ok(listener.local_addr()?)
}

/// Waits until the backend accepts connections on `addr`, failing early if it exits.
async fn wait_for_backend(addr: SocketAddr, backend: &ChildBackend) -> anyhow::Result<()> {
    let until = tokio::time::Instant::now() + BACKEND_STARTUP;
    loop {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return Ok(());
        }
        if let Some(exit) = backend.exits().first() {
            return Err(crate::certify::BackendNotRunning {
                reason: format!("the backend {exit} before it listened on {addr}"),
                log_tail: backend.tail(20),
            }
            .into());
        }
        if tokio::time::Instant::now() >= until {
            return Err(crate::certify::BackendNotRunning {
                reason: format!("the backend did not listen on {addr} within {BACKEND_STARTUP:?}"),
                log_tail: backend.tail(20),
            }
            .into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `certify --embedded --backend-cmd CMD`.
pub async fn certify_embedded(
    args: &CertifyArgs,
    cancel: CancellationToken,
    command: String,
) -> anyhow::Result<(Report, RunResult)> {
    let env = EmbeddedEnv::start().await?;
    let boot_addr = pick_boot_addr(&args.boot_addr).await?;
    let template = args
        .backend_cmd
        .as_deref()
        .context("--embedded needs --backend-cmd")?;
    let backend_cmd = template
        .replace("{kubeconfig}", &env.kubeconfig.display().to_string())
        .replace("{registry}", &env.registries.allowed.to_string())
        .replace(
            "{disallowed_registry}",
            &env.registries.disallowed.to_string(),
        )
        .replace("{boot_addr}", &boot_addr.to_string());
    std::fs::create_dir_all(&args.report_dir)?;
    let env_vars = vec![(
        "KUBECONFIG".to_string(),
        env.kubeconfig.display().to_string(),
    )];
    let backend =
        ChildBackend::start(&backend_cmd, env_vars, args.report_dir.join("backend.log")).await?;
    if template.contains("{boot_addr}") {
        wait_for_backend(boot_addr, &backend).await?;
    }
    let boot_template = args
        .boot_url_template
        .clone()
        .unwrap_or_else(|| format!("http://{boot_addr}/ipxe/{{uuid}}"));
    let boot = match args.profile.contains(&crate::rules::Profile::Boot) {
        true => Some(crate::boot_net::network_boot(
            &boot_template,
            Some(env.registries.allowed),
        )?),
        false => None,
    };
    let images = crate::certify::images_from_args(args, Some(env.registries.images()))?;
    let mut target = env
        .target(
            Some(backend.clone()),
            boot,
            args.timeouts(),
            args.scale,
            cancel,
        )
        .await?;
    target.images = images;
    let result = crate::certify::run_and_report(Arc::new(target), args, command).await;
    backend.stop().await;
    env.api.shutdown().await;
    result
}
