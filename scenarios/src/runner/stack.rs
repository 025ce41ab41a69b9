//! The components a run needs, started in-process: the embedded API server (or a real cluster), the
//! sim-bmc fleet booting through netboot from the backend, sim-boot, and the operator — each
//! restartable for fault injection.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Parser as _;
use k8s_openapi::api::core::v1::LocalObjectReference;
use kube::Client;
use kube::api::{Api, PostParams};
use metal_api::{BMC, BMCSecret, BMCSecretFields, BMCSpec, InlineEndpoint, Protocol};

use super::requests::{ApiRequestCounters, Component};
use crate::spec::{self, Backend, Scenario};

/// Harness presets that make the operator react in milliseconds rather than upstream's seconds;
/// skipped for any flag the scenario sets itself.
const OPERATOR_PRESETS: &[(&str, &str)] = &[
    ("--power-polling-interval", "200ms"),
    ("--resource-polling-interval", "200ms"),
    // A safety net behind the watches, not a reaction time: every Server and BMC is looked at
    // once per interval, which at 10,000 of each is a steady load of its own.
    ("--server-resync-interval", "1m"),
    ("--server-max-concurrent-reconciles", "32"),
    ("--server-claim-max-concurrent-reconciles", "32"),
    ("--registry-resync-interval", "2s"),
];

/// The API server: embedded (restartable, data kept in a temp dir) or a real cluster.
pub enum ApiServer {
    Embedded(Box<Embedded>),
    /// The cluster a `--kubeconfig` points at; its server URL.
    External(String),
}

impl ApiServer {
    /// `embedded at URL` or the external cluster's URL, for the report.
    pub fn describe(&self) -> String {
        match self {
            ApiServer::Embedded(e) => format!("embedded at http://{}", e.addr),
            ApiServer::External(url) => url.clone(),
        }
    }
}

pub struct Embedded {
    handle: Option<apiserver::Handle>,
    addr: SocketAddr,
    /// Where the data lives when the scenario restarts the API server.
    data_dir: Option<tempfile::TempDir>,
}

pub struct Stack {
    pub api: ApiServer,
    /// The runner's own client (evidence watches, workload, labelling).
    pub client: Client,
    /// The operator's and the in-process backend's clients, counted separately.
    operator_client: Client,
    backend_client: Client,
    /// API requests per component, counted on each client's tower stack.
    pub requests: ApiRequestCounters,
    pub fleet: sim_bmc::FleetHandle,
    pub backend: Option<sim_boot::BackendHandle>,
    backend_options: Option<sim_boot::BackendOptions>,
    /// A backend under test run as a child process (`backend: command`).
    child: Option<super::child::ChildBackend>,
    /// Holds the kubeconfig written for a child backend.
    _scratch: tempfile::TempDir,
    pub operator: Option<operator::OperatorHandle>,
    operator_config: operator::config::Config,
    /// In-process BMC transports (`bmcs_in_process`); sockets when `None`.
    bmc_connector: Option<operator::context::BmcConnector>,
    registry_addr: SocketAddr,
    /// Full reference prefix of the embedded OCI registry (`127.0.0.1:PORT`), if sim-boot runs.
    pub registry_host: Option<String>,
    pub boot_url: String,
    /// QEMU VMs for the fleet's `machines: {driver: qemu}` BMCs (dropping it ends every VM).
    pub real_machines: Option<qemu_machines::RealMachines>,
}

impl Stack {
    /// Starts everything; `kubeconfig` selects a real cluster instead of the embedded server.
    pub async fn start(
        s: &Scenario,
        run: &super::RunOptions,
        sink: &super::observe::Sink,
    ) -> anyhow::Result<Stack> {
        let (seed, kubeconfig) = (run.seed, run.kubeconfig.as_deref());
        // Only a scenario that restarts the API server needs its data on disk; otherwise every
        // write would wait for an fsync nobody reads back.
        let durable = s
            .faults
            .iter()
            .any(|f| matches!(f.fault, spec::Fault::ApiServerRestart));
        let (api, config) = start_api(kubeconfig, durable).await?;
        let requests = ApiRequestCounters::default();
        let client = requests.client(&config, Component::Harness)?;
        let operator_client = requests.client(&config, Component::Operator)?;
        let backend_client = requests.client(&config, Component::Backend)?;
        let scratch = tempfile::tempdir().context("creating a scratch directory")?;
        let child = match &s.backend {
            Backend::Command { command, args, .. } => {
                let path = match (kubeconfig, &api) {
                    (Some(path), _) => path.to_path_buf(),
                    (None, ApiServer::Embedded(e)) => {
                        let path = scratch.path().join("kubeconfig");
                        let handle = e.handle.as_ref().context("the API server is not running")?;
                        handle
                            .write_kubeconfig(&path)
                            .context("writing the kubeconfig for the backend")?;
                        path
                    }
                    (None, ApiServer::External(_)) => {
                        bail!("no kubeconfig for the backend command")
                    }
                };
                Some(super::child::ChildBackend::start(
                    command,
                    args,
                    path,
                    sink.clone(),
                )?)
            }
            _ => None,
        };
        let real_machines = start_real_machines(s).await?;
        let real_registry = real_machines.as_ref().map(|r| r.registry_host());
        let (backend, backend_options, boot_url) =
            start_backend(s, backend_client.clone(), real_registry).await?;
        let registry_host = match real_registry {
            Some(host) => Some(host.to_string()),
            None => backend
                .as_ref()
                .and_then(|b| b.registry_host().map(str::to_string)),
        };
        let fleet = start_fleet(
            s,
            seed,
            &boot_url,
            run.bmcs_in_process,
            real_machines.as_ref(),
        )
        .await?;
        let registry_addr = free_port().context("reserving a port for the operator's registry")?;
        let probe_image = match &registry_host {
            Some(host) => format!("{host}/{}", sim_boot::oci::names::PROBE),
            None => String::new(),
        };
        let operator_config = operator_config(s, registry_addr, &probe_image)?;
        let bmc_connector = run
            .bmcs_in_process
            .then(|| in_process_connector(&fleet, &operator_config));
        let mut stack = Stack {
            api,
            client,
            operator_client,
            backend_client,
            requests,
            fleet,
            backend,
            backend_options,
            child,
            _scratch: scratch,
            operator: None,
            operator_config,
            bmc_connector,
            registry_addr,
            registry_host,
            boot_url,
            real_machines,
        };
        stack.create_bmcs().await?;
        stack.start_operator().await?;
        Ok(stack)
    }

    /// `${registry}` in image references is the embedded registry.
    pub fn image(&self, reference: &str) -> String {
        match &self.registry_host {
            Some(host) => reference.replace("${registry}", host),
            None => reference.to_string(),
        }
    }

    pub async fn start_operator(&mut self) -> anyhow::Result<()> {
        let mut options = operator::Options::new(self.operator_config.clone());
        options.registry_listen = Some(self.registry_addr);
        if let Some(connector) = &self.bmc_connector {
            options.connector = connector.clone();
        }
        let handle = operator::run(options, self.operator_client.clone())
            .await
            .context("starting the operator")?;
        self.operator = Some(handle);
        Ok(())
    }

    pub async fn stop_operator(&mut self) {
        if let Some(op) = self.operator.take() {
            op.shutdown().await;
        }
    }

    pub async fn restart_backend(&mut self) -> anyhow::Result<()> {
        if let Some(child) = &mut self.child {
            return child.restart().await;
        }
        let (Some(old), Some(options)) = (self.backend.take(), self.backend_options.clone()) else {
            bail!("backend restart needs the in-process sim-boot backend");
        };
        old.shutdown().await;
        let backend = sim_boot::Backend::start(self.backend_client.clone(), options)
            .await
            .context("restarting sim-boot")?;
        self.backend = Some(backend);
        Ok(())
    }

    /// Stops and starts the embedded API server on the same address with the same data.
    pub async fn restart_api(&mut self) -> anyhow::Result<()> {
        let ApiServer::Embedded(e) = &mut self.api else {
            bail!("an API server restart needs the embedded API server (not --kubeconfig)");
        };
        let Embedded {
            handle,
            addr,
            data_dir,
        } = &mut **e;
        if let Some(h) = handle.take() {
            h.shutdown().await;
        }
        let Some(data_dir) = data_dir else {
            bail!(
                "the API server was started without a data dir, so a restart would lose everything"
            );
        };
        let options = apiserver::Options {
            bind: *addr,
            data_dir: Some(data_dir.path().to_path_buf()),
            ..apiserver::Options::default()
        };
        *handle = Some(
            apiserver::Server::start(options)
                .await
                .context("restarting the API server")?,
        );
        Ok(())
    }

    pub fn api_faults(&self) -> Option<apiserver::Faults> {
        match &self.api {
            ApiServer::Embedded(e) => e.handle.as_ref().map(|h| h.faults()),
            _ => None,
        }
    }

    /// Counters from the components: API writes (embedded: resourceVersion), operator reconciles
    /// per controller (since its last start), power-on requests.
    pub fn figures(&self) -> std::collections::BTreeMap<String, f64> {
        let mut out = std::collections::BTreeMap::new();
        if let ApiServer::Embedded(e) = &self.api
            && let Some(h) = &e.handle
        {
            out.insert("apiWrites".into(), h.resource_version() as f64);
        }
        if let Some(op) = &self.operator {
            for c in ["server", "serverclaim", "serverbootconfiguration", "bmc"] {
                out.insert(
                    format!("reconciles.{c}"),
                    op.metrics.reconcile_count(c) as f64,
                );
            }
            out.insert(
                "operatorPowerOnRequests".into(),
                op.metrics.power_on_requests() as f64,
            );
        }
        if let Some(real) = &self.real_machines {
            out.extend(real.figures());
        }
        out
    }

    /// A BMCSecret and a BMC (inline access) per fleet BMC.
    async fn create_bmcs(&self) -> anyhow::Result<()> {
        let secrets = Api::<BMCSecret>::all(self.client.clone());
        let bmcs = Api::<BMC>::all(self.client.clone());
        for info in self.fleet.bmcs() {
            let fields = BMCSecretFields {
                string_data: Some(
                    [
                        ("username".to_owned(), info.username.clone()),
                        ("password".to_owned(), info.password.clone()),
                    ]
                    .into(),
                ),
                ..BMCSecretFields::default()
            };
            secrets
                .create(&PostParams::default(), &BMCSecret::new(&info.name, fields))
                .await
                .with_context(|| format!("creating BMCSecret {}", info.name))?;
            let url: http::Uri = info
                .url
                .parse()
                .with_context(|| format!("BMC URL {}", info.url))?;
            let spec = BMCSpec {
                bmc_uuid: None,
                endpoint_ref: None,
                access: Some(InlineEndpoint {
                    mac_address: Some(info.mac.clone()),
                    ip: url.host().map(str::to_owned),
                }),
                bmc_secret_ref: LocalObjectReference {
                    name: info.name.clone(),
                },
                protocol: Protocol {
                    name: "Redfish".into(),
                    port: i32::from(url.port_u16().unwrap_or(80)),
                    scheme: Some("http".into()),
                },
                console_protocol: None,
                hostname: None,
            };
            bmcs.create(&PostParams::default(), &BMC::new(&info.name, spec))
                .await
                .with_context(|| format!("creating BMC {}", info.name))?;
        }
        Ok(())
    }

    /// Stops every component (operator first, so nothing acts on a half-stopped system).
    pub async fn shutdown(mut self) {
        self.stop_operator().await;
        if let Some(b) = self.backend.take() {
            b.shutdown().await;
        }
        if let Some(mut c) = self.child.take() {
            c.stop().await;
        }
        if let Some(real) = self.real_machines.take() {
            real.driver.stop_all();
        }
        self.fleet.shutdown().await;
        if let ApiServer::Embedded(e) = &mut self.api
            && let Some(h) = e.handle.take()
        {
            h.shutdown().await;
        }
    }
}

/// The API server and the client configuration every component's client is built from.
async fn start_api(
    kubeconfig: Option<&Path>,
    durable: bool,
) -> anyhow::Result<(ApiServer, kube::Config)> {
    if let Some(path) = kubeconfig {
        let kc = kube::config::Kubeconfig::read_from(path)
            .with_context(|| format!("reading {}", path.display()))?;
        let config =
            kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
                .await
                .context("building a client from the kubeconfig")?;
        let url = config
            .cluster_url
            .to_string()
            .trim_end_matches('/')
            .to_string();
        return Ok((ApiServer::External(url), config));
    }
    let data_dir = if durable {
        Some(tempfile::tempdir().context("creating the API server's data dir")?)
    } else {
        None
    };
    let options = apiserver::Options {
        data_dir: data_dir.as_ref().map(|d| d.path().to_path_buf()),
        ..apiserver::Options::default()
    };
    let handle = apiserver::Server::start(options)
        .await
        .context("starting the embedded API server")?;
    handle
        .install_crds(&metal_api::crds::all())
        .await
        .context("installing the metal CRDs")?;
    let config = handle.kube_config();
    let addr = handle.addr();
    Ok((
        ApiServer::Embedded(Box::new(Embedded {
            handle: Some(handle),
            addr,
            data_dir,
        })),
        config,
    ))
}

type BackendStart = (
    Option<sim_boot::BackendHandle>,
    Option<sim_boot::BackendOptions>,
    String,
);

async fn start_backend(
    s: &Scenario,
    client: Client,
    real_registry: Option<&str>,
) -> anyhow::Result<BackendStart> {
    match &s.backend {
        Backend::SimBoot { mode, delay } => {
            let misbehaviour: sim_boot::Misbehaviour =
                mode.parse().map_err(|e: String| anyhow::anyhow!(e))?;
            let mut options = sim_boot::BackendOptions::default();
            if let Some(host) = real_registry {
                // Real machines boot the test OS from its own registry instead of the generated one.
                options.registry = None;
                options.insecure_registries.push(host.to_string());
                options.controller.allowed_registries.push(host.to_string());
                // The test OS has no UKI (and QEMU machines no UEFI HTTP boot): iPXE only.
                options.controller.boot_modes = sim_boot::BootModes {
                    ipxe: true,
                    http: false,
                };
                // A VM's firmware asks for its script ~5-10 s after power-on, past the lie simulated
                // machines (which ask at once) are caught in: lying backends lie for a real machine's boot.
                let lie = &mut options.controller.misbehaviour_options.lie_window;
                *lie = (*lie).max(Duration::from_secs(60));
            }
            options.controller.misbehaviour = misbehaviour;
            options.controller.max_backoff = Duration::from_secs(2);
            if let Some(delay) = delay {
                options.controller.misbehaviour_options.slow_delay = delay.0;
            }
            let first = sim_boot::Backend::start(client, options.clone())
                .await
                .context("starting sim-boot")?;
            // Restarts reuse the same addresses: machines and image references keep pointing at them.
            options.listen = first
                .url()
                .trim_start_matches("http://")
                .parse()
                .context("sim-boot URL")?;
            if let (Some(registry), Some(host)) = (options.registry.as_mut(), first.registry_host())
            {
                registry.listen = host.parse().context("registry address")?;
            }
            options.public_url = Some(first.url().to_string());
            let url = format!("{}/ipxe?uuid={{uuid}}&mac={{mac}}", first.url());
            Ok((Some(first), Some(options), url))
        }
        Backend::Command {
            ipxe_url_template, ..
        } => Ok((None, None, ipxe_url_template.clone())),
        Backend::External { ipxe_url_template } => Ok((None, None, ipxe_url_template.clone())),
    }
}

async fn start_fleet(
    s: &Scenario,
    seed: u64,
    boot_url: &str,
    in_process: bool,
    real: Option<&qemu_machines::RealMachines>,
) -> anyhow::Result<sim_bmc::FleetHandle> {
    let mut fleet = sim_bmc::FleetSpec {
        seed: s.fleet.seed.unwrap_or(seed),
        ..Default::default()
    };
    let latencies = s.fleet.latencies.map(|l| sim_bmc::fleet::LatencySpec {
        power_on_ms: l.power_on.as_millis(),
        power_off_ms: l.power_off.as_millis(),
        graceful_shutdown_ms: l.graceful_shutdown.as_millis(),
        post_ms: l.post.as_millis(),
        os_ignores_graceful_shutdown: false,
    });
    fleet.defaults.latencies = latencies;
    fleet.defaults.architecture = s.fleet.architecture.map(|a| match a {
        spec::Architecture::Amd64 => "amd64".to_string(),
        spec::Architecture::Arm64 => "arm64".to_string(),
    });
    for b in s.fleet.resolve() {
        fleet.bmcs.push(sim_bmc::fleet::BmcSpec {
            name: Some(b.name),
            vendor: Some(vendor(b.vendor)),
            systems: Some(b.systems as usize),
            ..Default::default()
        });
    }
    fleet.boot_network.ipxe_url_template = Some(boot_url.to_string());
    let netboot = netboot::Netboot::new(netboot::NetbootOptions {
        probe_images: vec![sim_boot::oci::names::PROBE.to_string()],
        ..Default::default()
    });
    let simulated: Arc<dyn sim_bmc::boot::NetworkBoot> = Arc::new(netboot);
    let options = sim_bmc::FleetOptions {
        network_boot: Some(real.map_or(simulated, |r| r.network_boot())),
        bind: if in_process {
            sim_bmc::fleet::BindMode::InProcess
        } else {
            sim_bmc::fleet::BindMode::Loopback
        },
        ..Default::default()
    };
    let handle = sim_bmc::Fleet::start(fleet, options)
        .await
        .context("starting the sim-bmc fleet")?;
    if let Some(real) = real {
        assign_real_machines(s, &handle, real);
    }
    Ok(handle)
}

/// The QEMU driver, its test OS registry and the fleet-wide VM settings, when any BMC asks for qemu.
async fn start_real_machines(s: &Scenario) -> anyhow::Result<Option<qemu_machines::RealMachines>> {
    if s.fleet.qemu_bmcs().is_empty() {
        return Ok(None);
    }
    let mut options = qemu_machines::QemuOptions::default();
    if let Some(m) = &s.fleet.machines {
        if let Some(mib) = m.memory_mib {
            options.memory_mib = mib;
        }
        if let Some(accel) = m.accel {
            options.accel = accel.as_str().parse().map_err(anyhow::Error::msg)?;
        }
        if let Some(n) = m.max_running {
            options.max_running = n as usize;
        }
    }
    // The simulated machines of a mixed fleet boot through netboot, wrapped by the switch.
    let simulated = Arc::new(netboot::Netboot::new(netboot::NetbootOptions {
        probe_images: vec![sim_boot::oci::names::PROBE.to_string()],
        ..Default::default()
    }));
    let real = qemu_machines::RealMachines::start(options, simulated)
        .await
        .map_err(anyhow::Error::msg)?;
    Ok(Some(real))
}

/// Hands the qemu BMCs' machines to the QEMU driver.
fn assign_real_machines(
    s: &Scenario,
    fleet: &sim_bmc::FleetHandle,
    real: &qemu_machines::RealMachines,
) {
    let qemu = s.fleet.qemu_bmcs();
    let machines = fleet.bmcs().into_iter().flat_map(|b| {
        let memory = qemu
            .iter()
            .find(|(name, _)| *name == b.name)
            .map(|(_, m)| *m);
        b.systems
            .into_iter()
            .filter(move |_| memory.is_some())
            .map(move |sys| (sys.uuid, memory.flatten()))
    });
    real.assign(machines);
}

/// Redfish transports that hand each request to the BMC's router (`http://NAME.sim.invalid`).
fn in_process_connector(
    fleet: &sim_bmc::FleetHandle,
    config: &operator::config::Config,
) -> operator::context::BmcConnector {
    use operator::redfish::service_transport;
    let transports: std::collections::HashMap<String, operator::redfish::HttpService> = fleet
        .bmcs()
        .iter()
        .filter_map(|b| Some((b.name.clone(), service_transport(fleet.router(&b.name)?))))
        .collect();
    let transports = Arc::new(transports);
    // An endpoint no BMC serves gets a transport that answers 404 to everything.
    let nowhere = service_transport(axum::Router::new());
    let options = operator::redfish::ClientOptions {
        request_timeout: config.redfish_request_timeout,
        ..Default::default()
    };
    operator::context::BmcConnector::with_resolver(
        Arc::new(move |endpoint: &str| {
            let host = endpoint.split("://").nth(1).unwrap_or_default();
            let name = host.split(".sim.invalid").next().unwrap_or_default();
            transports
                .get(name)
                .cloned()
                .unwrap_or_else(|| nowhere.clone())
        }),
        options,
    )
}

fn vendor(v: spec::Vendor) -> sim_bmc::vendor::Vendor {
    use sim_bmc::vendor::Vendor as V;
    match v {
        spec::Vendor::Dell => V::Dell,
        spec::Vendor::Hpe => V::Hpe,
        spec::Vendor::Lenovo => V::Lenovo,
        spec::Vendor::Supermicro => V::Supermicro,
        spec::Vendor::Ami => V::Ami,
    }
}

fn operator_config(
    s: &Scenario,
    registry: SocketAddr,
    probe_os_image: &str,
) -> anyhow::Result<operator::config::Config> {
    let mut args: Vec<String> = vec!["metal-operator".into()];
    let user = &s.operator.args;
    let mentioned = |flag: &str| {
        user.iter()
            .any(|a| a == flag || a.starts_with(&format!("{flag}=")))
    };
    for (flag, value) in OPERATOR_PRESETS {
        if !mentioned(flag) {
            args.extend([flag.to_string(), value.to_string()]);
        }
    }
    if !mentioned("--readiness-gate") {
        let gate = match s.operator.readiness_gate {
            spec::ReadinessGate::Strict => "strict",
            spec::ReadinessGate::Upstream => "upstream",
        };
        args.extend(["--readiness-gate".into(), gate.into()]);
    }
    if let Some(t) = s.operator.discovery_timeout {
        args.extend(["--discovery-timeout".into(), t.to_string()]);
    }
    if !mentioned("--probe-os-image") {
        args.extend(["--probe-os-image".into(), probe_os_image.to_string()]);
    }
    args.extend(["--registry-url".into(), format!("http://{registry}")]);
    args.extend(user.iter().cloned());
    let flags = operator::config::Flags::try_parse_from(&args)
        .map_err(|e| anyhow::anyhow!("operator flags {:?}: {}", user, e.to_string().trim()))?;
    flags.to_config()
}

fn free_port() -> std::io::Result<SocketAddr> {
    std::net::TcpListener::bind(("127.0.0.1", 0))?.local_addr()
}
