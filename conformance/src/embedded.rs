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

/// How the built-in registries are reached.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum RegistryScheme {
    /// TLS with a certificate from a CA generated per run (what real registries and boot-operator expect).
    #[default]
    Https,
    /// Plain HTTP (a backend must then treat the registries as insecure).
    Http,
}

impl RegistryScheme {
    pub fn as_str(self) -> &'static str {
        match self {
            RegistryScheme::Https => "https",
            RegistryScheme::Http => "http",
        }
    }
}

/// Whether the built-in registries demand the bearer-token flow of public registries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum RegistryAuthMode {
    /// Anonymous access without tokens.
    #[default]
    None,
    /// `401` + `WWW-Authenticate: Bearer realm=…/token,service=…,scope=…`; anonymous pull tokens from `/token`.
    Token,
}

/// How to start the built-in registries. The default (plain HTTP, no auth) is what the in-process tests use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RegistryOptions {
    pub scheme: RegistryScheme,
    pub auth: RegistryAuthMode,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        Self {
            scheme: RegistryScheme::Http,
            auth: RegistryAuthMode::None,
        }
    }
}

/// Two read-only OCI registries with sim-boot's standard images: `allowed` (the backend's allowlist) and
/// `disallowed` (same content, a host the backend must refuse). Over HTTPS both present a certificate for
/// 127.0.0.1/localhost signed by one CA generated for this run ([`BuiltinRegistries::ca_pem`]).
pub struct BuiltinRegistries {
    pub allowed: SocketAddr,
    pub disallowed: SocketAddr,
    pub options: RegistryOptions,
    ca_pem: Option<String>,
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

    /// The standard images over plain HTTP without auth.
    pub async fn start() -> anyhow::Result<BuiltinRegistries> {
        Self::start_with(RegistryOptions::default(), Self::standard_catalog()).await
    }

    /// Both registries serving `catalog` (e.g. the standard one plus images built from real files).
    pub async fn start_with(
        options: RegistryOptions,
        catalog: sim_boot::oci::catalog::Catalog,
    ) -> anyhow::Result<BuiltinRegistries> {
        use sim_boot::oci::{Registry, RegistryCa, registry_tls};
        let mut registry = Registry::new(catalog);
        if options.auth == RegistryAuthMode::Token {
            registry = registry.with_token_auth(options.scheme.as_str());
        }
        let ca = match options.scheme {
            RegistryScheme::Https => Some(RegistryCa::generate().map_err(anyhow::Error::msg)?),
            RegistryScheme::Http => None,
        };
        let mut tasks = Vec::new();
        let mut addrs = Vec::new();
        for _ in 0..2 {
            let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
            addrs.push(listener.local_addr()?);
            let tls = ca.as_ref().map(RegistryCa::acceptor);
            tasks.push(tokio::spawn(registry_tls::serve(
                listener,
                registry.router(),
                tls,
            )));
        }
        Ok(BuiltinRegistries {
            allowed: addrs[0],
            disallowed: addrs[1],
            options,
            ca_pem: ca.map(|c| c.ca_pem().to_string()),
            tasks,
        })
    }

    /// `https` or `http`.
    pub fn scheme(&self) -> &'static str {
        self.options.scheme.as_str()
    }

    /// The run's CA certificate (PEM) when the registries serve HTTPS.
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    /// A client over real sockets that reaches these registries (trusting the run's CA when there is one).
    pub fn http_client(&self) -> anyhow::Result<http_client::HttpClient> {
        match self.ca_pem() {
            Some(pem) => http_client::HttpClient::hyper_tls(Some(pem)).map_err(anyhow::Error::msg),
            None => Ok(http_client::HttpClient::hyper()),
        }
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

    /// Writes `ca.crt` (the run's CA) and `ca-bundle.crt` (the system roots, when present, then the run's CA)
    /// into `dir`; None over plain HTTP. The bundle is what `SSL_CERT_FILE` gets: OpenSSL and Go read that
    /// variable *instead of* the system store, so the CA alone would cut the backend off from every other
    /// TLS server (say, a real registry it also uses).
    pub fn write_ca_files(&self, dir: &Path) -> anyhow::Result<Option<CaFiles>> {
        let Some(pem) = self.ca_pem() else {
            return Ok(None);
        };
        let ca = dir.join("ca.crt");
        std::fs::write(&ca, pem).with_context(|| format!("writing {}", ca.display()))?;
        let mut bundle_text = String::new();
        if let Ok(system) = std::fs::read_to_string(SYSTEM_CA_BUNDLE) {
            bundle_text.push_str(system.trim_end());
            bundle_text.push('\n');
        }
        bundle_text.push_str(pem);
        let bundle = dir.join("ca-bundle.crt");
        std::fs::write(&bundle, bundle_text)
            .with_context(|| format!("writing {}", bundle.display()))?;
        Ok(Some(CaFiles { ca, bundle }))
    }
}

/// Debian's (and most distributions') system bundle.
const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// Where the run's CA was written.
#[derive(Clone, Debug)]
pub struct CaFiles {
    /// The run's CA alone (`{ca_file}`).
    pub ca: PathBuf,
    /// System roots plus the run's CA.
    pub bundle: PathBuf,
}

impl CaFiles {
    /// The variables TLS stacks read their trust from: OpenSSL and Go (`SSL_CERT_FILE`, which
    /// rustls-native-certs honours too), Python requests, curl, and Node (which adds to its roots, so it gets
    /// the CA alone).
    pub fn env(&self) -> Vec<(String, String)> {
        let bundle = self.bundle.display().to_string();
        vec![
            ("SSL_CERT_FILE".into(), bundle.clone()),
            ("REQUESTS_CA_BUNDLE".into(), bundle.clone()),
            ("CURL_CA_BUNDLE".into(), bundle),
            ("NODE_EXTRA_CA_CERTS".into(), self.ca.display().to_string()),
        ]
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
    let backend =
        ChildBackend::start(&backend_cmd, env_vars, args.report_dir.join("backend.log")).await?;
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

    #[tokio::test]
    async fn plain_http_registries_have_no_ca() {
        let registries = BuiltinRegistries::start().await.unwrap();
        assert_eq!(registries.scheme(), "http");
        assert!(registries.ca_pem().is_none());
        let dir = tempfile::tempdir().unwrap();
        assert!(registries.write_ca_files(dir.path()).unwrap().is_none());
        let base = registries
            .http_client()
            .unwrap()
            .get(&format!("http://{}/v2/", registries.allowed))
            .await
            .unwrap();
        assert_eq!(base.status, 200);
    }
}
