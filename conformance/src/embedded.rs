//! The no-cluster environment: the embedded API server with the metal CRDs (restartable, with fault injection),
//! the built-in OCI registries (one the backend allows, one it must refuse), and `certify --embedded`, which runs
//! the backend under test as a supervised child process against them.

// `certify` dispatches to this mode and this mode hands its target back to certify's one reporting flow
// (run_and_report, BackendNotRunning): a circle kept on purpose, one flow in two files.
use crate::cli::CertifyArgs;
use crate::proxy::ApiProxy;
use crate::report::Report;
use crate::runner::RunResult;
use crate::target::{ApiControl, BackendControl, MachineBoot, Target};
use crate::timeouts::Timeouts;
use anyhow::Context as _;
use futures::future::BoxFuture;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

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

pub use testbed::registries::{
    BuiltinRegistries, CaFiles, RegistryAuthMode, RegistryOptions, RegistryScheme,
};

/// Everything a backend needs around it when there is no cluster.
pub struct EmbeddedEnv {
    pub api: Arc<EmbeddedApi>,
    pub registries: BuiltinRegistries,
    pub kubeconfig: PathBuf,
    /// The registries' CA files (HTTPS only), next to the kubeconfig.
    pub ca_files: Option<CaFiles>,
    _dir: tempfile::TempDir,
}

impl EmbeddedEnv {
    /// With plain-HTTP registries (the in-process tests).
    pub async fn start() -> anyhow::Result<EmbeddedEnv> {
        Self::start_with(
            RegistryOptions::default(),
            BuiltinRegistries::standard_catalog(),
        )
        .await
    }

    /// The environment with built-in registries reached as `registry` says, serving `catalog`.
    pub async fn start_with(
        registry: RegistryOptions,
        catalog: sim_boot::oci::catalog::Catalog,
    ) -> anyhow::Result<EmbeddedEnv> {
        let dir = tempfile::tempdir()?;
        let api = EmbeddedApi::start(&dir.path().join("apiserver")).await?;
        let kubeconfig = dir.path().join("kubeconfig");
        api.write_kubeconfig(&kubeconfig).await?;
        let registries = BuiltinRegistries::start_with(registry, catalog).await?;
        let ca_files = registries.write_ca_files(dir.path())?;
        Ok(EmbeddedEnv {
            api,
            registries,
            kubeconfig,
            ca_files,
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
async fn wait_for_backend(addr: SocketAddr, backend: &testbed::Supervisor) -> anyhow::Result<()> {
    let until = tokio::time::Instant::now() + BACKEND_STARTUP;
    loop {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return Ok(());
        }
        if let Some(exit) = backend.crashes().first() {
            return Err(crate::certify::BackendNotRunning {
                reason: format!("the backend {exit} before it listened on {addr}"),
                log_tail: backend.log_tail(20),
            }
            .into());
        }
        if tokio::time::Instant::now() >= until {
            return Err(crate::certify::BackendNotRunning {
                reason: format!("the backend did not listen on {addr} within {BACKEND_STARTUP:?}"),
                log_tail: backend.log_tail(20),
            }
            .into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The backend command with `{kubeconfig}`, `{registry}`, `{disallowed_registry}` (host:port, no scheme: image
/// references are `host:port/repo:tag`), `{registry_scheme}`, `{ca_file}` and `{boot_addr}` filled in.
fn fill_placeholders(template: &str, env: &EmbeddedEnv, boot_addr: SocketAddr) -> String {
    let ca_file = env
        .ca_files
        .as_ref()
        .map(|f| f.ca.display().to_string())
        .unwrap_or_default();
    template
        .replace("{kubeconfig}", &env.kubeconfig.display().to_string())
        .replace("{registry}", &env.registries.allowed.to_string())
        .replace(
            "{disallowed_registry}",
            &env.registries.disallowed.to_string(),
        )
        .replace("{registry_scheme}", env.registries.scheme())
        .replace("{ca_file}", &ca_file)
        .replace("{boot_addr}", &boot_addr.to_string())
}

/// `certify --embedded --backend-cmd CMD`.
pub async fn certify_embedded(
    args: &CertifyArgs,
    cancel: CancellationToken,
    command: String,
) -> anyhow::Result<(Report, RunResult)> {
    let template = args
        .backend_cmd
        .as_deref()
        .context("--embedded needs --backend-cmd")?;
    anyhow::ensure!(
        !(template.contains("{ca_file}") && args.registry_scheme == RegistryScheme::Http),
        "--backend-cmd uses {{ca_file}}, but --registry-scheme http has no CA"
    );
    let env = EmbeddedEnv::start_with(
        RegistryOptions {
            scheme: args.registry_scheme,
            auth: args.registry_auth,
        },
        crate::boot_net::catalog_for(args.machines)?,
    )
    .await?;
    let boot_addr = pick_boot_addr(&args.boot_addr).await?;
    let backend_cmd = fill_placeholders(template, &env, boot_addr);
    std::fs::create_dir_all(&args.report_dir)?;
    let mut env_vars = vec![(
        "KUBECONFIG".to_string(),
        env.kubeconfig.display().to_string(),
    )];
    env_vars.extend(env.ca_files.iter().flat_map(CaFiles::env));
    let spec = testbed::ChildSpec {
        program: testbed::Program::Shell(backend_cmd),
        env: env_vars,
        log: Some(args.report_dir.join("backend.log")),
    };
    let backend = testbed::Supervisor::start(spec, None)?;
    if template.contains("{boot_addr}") {
        wait_for_backend(boot_addr, &backend).await?;
    }
    let boot_template = args
        .boot_url_template
        .clone()
        .unwrap_or_else(|| format!("http://{boot_addr}/ipxe/{{uuid}}"));
    let (boot, machines) = match args.profile.contains(&crate::rules::Profile::Boot) {
        true => {
            let access = crate::boot_net::RegistryAccess {
                scheme: env.registries.scheme().into(),
                client: env.registries.http_client()?,
                credentials: None,
            };
            let (boot, machines) =
                crate::boot_net::machine_for(args.machines, &boot_template, access).await?;
            (Some(boot), machines)
        }
        false => (None, None),
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
    if let Some(machines) = machines {
        eprintln!("{}", machines.summary().await);
        machines.write(&args.report_dir).await?;
    }
    backend.stop().await;
    env.api.shutdown().await;
    result
}

#[cfg(test)]
mod registry_tests {
    use super::*;
    use testbed::registries::SYSTEM_CA_BUNDLE;

    #[tokio::test]
    async fn https_registries_hand_the_backend_their_ca_and_placeholders() {
        let env = EmbeddedEnv::start_with(
            RegistryOptions {
                scheme: RegistryScheme::Https,
                auth: RegistryAuthMode::None,
            },
            BuiltinRegistries::standard_catalog(),
        )
        .await
        .unwrap();
        let pem = env.registries.ca_pem().unwrap();
        let files = env.ca_files.clone().unwrap();
        assert_eq!(std::fs::read_to_string(&files.ca).unwrap(), pem);
        let bundle = std::fs::read_to_string(&files.bundle).unwrap();
        assert!(bundle.ends_with(pem));
        if let Ok(system) = std::fs::read_to_string(SYSTEM_CA_BUNDLE) {
            // SSL_CERT_FILE replaces the system store for OpenSSL and Go: the bundle must keep it.
            assert!(bundle.starts_with(system.trim_end()));
        }
        let vars: std::collections::BTreeMap<_, _> = files.env().into_iter().collect();
        for name in ["SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"] {
            assert_eq!(vars[name], files.bundle.display().to_string(), "{name}");
        }
        assert_eq!(vars["NODE_EXTRA_CA_CERTS"], files.ca.display().to_string());

        let boot: SocketAddr = "127.0.0.1:8082".parse().unwrap();
        let filled = fill_placeholders(
            "b --registry {registry} --scheme {registry_scheme} --ca {ca_file} --listen {boot_addr}",
            &env,
            boot,
        );
        assert_eq!(
            filled,
            format!(
                "b --registry {} --scheme https --ca {} --listen 127.0.0.1:8082",
                env.registries.allowed,
                files.ca.display()
            )
        );
        let client = env.registries.http_client().unwrap();
        for addr in [env.registries.allowed, env.registries.disallowed] {
            let base = client.get(&format!("https://{addr}/v2/")).await.unwrap();
            assert_eq!(base.status, 200, "{addr}");
        }
        env.api.shutdown().await;
    }
}
