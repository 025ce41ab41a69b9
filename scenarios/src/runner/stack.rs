//! The components a run needs, assembled by `testbed`: the embedded API server (or a real cluster), the sim-bmc
//! fleet booting through netboot from the backend, the backend (sim-boot in-process or the scenario's command as
//! a supervised child), and the operator — each restartable for fault injection.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser as _;
use kube::Client;
use testbed::{ApiSpec, ChildSpec, FleetSetup, OperatorSetup, Program, Role, Testbed};

use super::observe::Sink;
use super::requests::{ApiRequestCounters, Component};
use crate::evidence::{ComponentEvent, Event};
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

/// Where the simulated clock starts: a fixed instant, so two runs write the same timestamps.
const SIMULATED_EPOCH: clock::Timestamp = clock::Timestamp::constant(1_767_225_600, 0); // 2026-01-01T00:00:00Z

pub struct Stack {
    pub bed: Testbed,
    /// The runner's own client (evidence watches, workload, labelling).
    pub client: Client,
    /// API requests per component, counted on each client's tower stack.
    pub requests: ApiRequestCounters,
    /// Full reference prefix of the embedded OCI registry (`127.0.0.1:PORT`), if sim-boot runs.
    pub registry_host: Option<String>,
    /// QEMU VMs for the fleet's `machines: {driver: qemu}` BMCs (dropping it ends every VM).
    pub real_machines: Option<qemu_machines::RealMachines>,
}

impl Stack {
    /// Starts everything; `run.kubeconfig` selects a real cluster instead of the embedded server.
    pub async fn start(
        s: &Scenario,
        run: &super::RunOptions,
        sink: &Sink,
    ) -> anyhow::Result<Stack> {
        // Only a scenario that restarts the API server needs its data on disk; otherwise every
        // write would wait for an fsync nobody reads back.
        let durable = s
            .faults
            .iter()
            .any(|f| matches!(f.fault, spec::Fault::ApiServerRestart));
        let api = match &run.kubeconfig {
            Some(path) => ApiSpec::External(path.clone()),
            None => ApiSpec::Embedded { durable },
        };
        let real_machines = start_real_machines(s).await?;
        let real_registry = real_machines
            .as_ref()
            .map(|r| r.registry_host().to_string());
        let requests = ApiRequestCounters::default();
        let counted = requests.clone();
        let simulated = run.clock == spec::ClockMode::Simulated;
        // On the simulated clock every timestamp starts at one fixed epoch and every random draw (uids, generated
        // names, keys, jitter) comes from the run's seed, so a run replays.
        let run_clock = simulated.then(|| clock::Clock::simulated(SIMULATED_EPOCH));
        let builder = match run_clock {
            Some(c) => Testbed::builder().socket_free().clock(c).seed(run.seed),
            None => Testbed::builder(),
        };
        // On the simulated clock the machines reach sim-boot, its registries and the operator's probe
        // registry through the testbed's in-process network; on the wall clock, through sockets.
        let machines_http = simulated.then(|| builder.network().client());
        let mut builder = builder
            .api(api)
            .clients(Arc::new(move |role, access| {
                counted.client(access, component(role))
            }))
            .fleet(fleet_setup(
                s,
                run.seed,
                run.bmcs_in_process || simulated,
                real_machines.as_ref(),
                machines_http,
                run_clock,
            ))
            .bmc_objects();
        if let Some(backend) = backend(s, sink, real_registry.as_deref())? {
            builder = builder.backend(backend);
        }
        let mut bed = builder.start().await?;
        if let Some(real) = &real_machines {
            assign_real_machines(s, bed.fleet(), real);
        }
        let registry_host = real_registry.or_else(|| {
            bed.sim_boot()
                .and_then(|b| b.registry_host().map(str::to_string))
        });
        let probe_image = match &registry_host {
            Some(host) => format!("{host}/{}", sim_boot::oci::names::PROBE),
            None => String::new(),
        };
        let setup = if simulated {
            // The testbed serves the operator's probe registry as an in-process host.
            let url = format!("http://{}", testbed::OPERATOR_HOST);
            OperatorSetup::new(operator_config(s, &url, &probe_image)?)
        } else {
            let addr = free_port().context("reserving a port for the operator's registry")?;
            let mut setup =
                OperatorSetup::new(operator_config(s, &format!("http://{addr}"), &probe_image)?);
            setup.registry_listen = Some(addr);
            setup
        };
        bed.operator_setup = Some(setup);
        if let Err(e) = bed.start_operator().await {
            bed.shutdown().await;
            return Err(e);
        }
        Ok(Stack {
            client: bed.client.clone(),
            bed,
            requests,
            registry_host,
            real_machines,
        })
    }

    pub fn fleet(&self) -> &sim_bmc::FleetHandle {
        self.bed.fleet()
    }

    /// `${registry}` in image references is the embedded registry.
    pub fn image(&self, reference: &str) -> String {
        match &self.registry_host {
            Some(host) => reference.replace("${registry}", host),
            None => reference.to_string(),
        }
    }

    pub async fn start_operator(&mut self) -> anyhow::Result<()> {
        self.bed.start_operator().await
    }

    pub async fn stop_operator(&mut self) {
        self.bed.stop_operator().await;
    }

    pub async fn restart_backend(&mut self) -> anyhow::Result<()> {
        if self.bed.backend.is_none() {
            anyhow::bail!(
                "backend restart needs the in-process sim-boot backend or a backend command"
            );
        }
        self.bed.restart_backend().await
    }

    /// Stops and starts the embedded API server on the same address with the same data.
    pub async fn restart_api(&mut self) -> anyhow::Result<()> {
        self.bed.api.restart().await
    }

    pub fn api_faults(&self) -> Option<apiserver::Faults> {
        self.bed.api.faults()
    }

    /// Counters from the components: API writes (embedded: resourceVersion), operator reconciles
    /// per controller (since its last start), power-on requests.
    pub fn figures(&self) -> std::collections::BTreeMap<String, f64> {
        let mut out = std::collections::BTreeMap::new();
        if let Some(h) = self.bed.api.handle() {
            out.insert("apiWrites".into(), h.resource_version() as f64);
        }
        if let Some(op) = &self.bed.operator {
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

    /// Stops every component (operator first, so nothing acts on a half-stopped system).
    pub async fn shutdown(mut self) {
        // Nothing may power a VM on once they are stopped.
        self.bed.stop_operator().await;
        if let Some(real) = self.real_machines.take() {
            real.driver.stop_all();
        }
        self.bed.shutdown().await;
    }
}

fn component(role: Role) -> Component {
    match role {
        Role::Operator => Component::Operator,
        Role::Backend => Component::Backend,
        Role::Harness => Component::Harness,
    }
}

/// The scenario's backend; None when it names an external one that is already running.
fn backend(
    s: &Scenario,
    sink: &Sink,
    real_registry: Option<&str>,
) -> anyhow::Result<Option<testbed::Backend>> {
    Ok(match &s.backend {
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
            Some(testbed::Backend::InProcess(options.into()))
        }
        Backend::Command {
            command,
            args,
            ipxe_url_template,
        } => {
            let (sink, name) = (sink.clone(), command.clone());
            let observer: testbed::ExitObserver = Arc::new(move |exit: &testbed::Exit| {
                sink.send(Event::Component(ComponentEvent::Exited {
                    component: format!("backend {name}"),
                    expected: exit.expected,
                    detail: exit.status.clone(),
                }))
            });
            Some(testbed::Backend::Child {
                spec: ChildSpec {
                    program: Program::Exec {
                        command: command.clone(),
                        args: args.clone(),
                    },
                    env: vec![],
                    log: None,
                },
                boot_url_template: ipxe_url_template.clone(),
                observer: Some(observer),
            })
        }
        Backend::External { .. } => None,
    })
}

/// The sim-bmc fleet the scenario declares, its machines network-booting through netboot. The boot URL is the
/// backend's: set here for a command or external backend, by the testbed for the in-process sim-boot.
pub fn fleet_setup(
    s: &Scenario,
    seed: u64,
    in_process: bool,
    real: Option<&qemu_machines::RealMachines>,
    machines_http: Option<http_client::HttpClient>,
    run_clock: Option<clock::Clock>,
) -> FleetSetup {
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
            vendor: Some(b.vendor),
            systems: Some(b.systems as usize),
            ..Default::default()
        });
    }
    fleet.boot_network.ipxe_url_template = match &s.backend {
        Backend::SimBoot { .. } => None,
        Backend::Command {
            ipxe_url_template, ..
        }
        | Backend::External { ipxe_url_template } => Some(ipxe_url_template.clone()),
    };
    let mut options = netboot::NetbootOptions {
        probe_images: vec![sim_boot::oci::names::PROBE.to_string()],
        ..Default::default()
    };
    if let Some(http) = machines_http {
        options.http = http;
    }
    if let Some(c) = run_clock {
        options.clock = c;
    }
    let simulated: Arc<dyn sim_bmc::boot::NetworkBoot> = Arc::new(netboot::Netboot::new(options));
    let options = sim_bmc::FleetOptions {
        network_boot: Some(real.map_or(simulated, |r| r.network_boot())),
        bind: if in_process {
            sim_bmc::fleet::BindMode::InProcess
        } else {
            sim_bmc::fleet::BindMode::Loopback
        },
        ..Default::default()
    };
    FleetSetup::new(fleet, options)
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

fn operator_config(
    s: &Scenario,
    registry_url: &str,
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
    args.extend(["--registry-url".into(), registry_url.to_string()]);
    args.extend(user.iter().cloned());
    let flags = operator::config::Flags::try_parse_from(&args)
        .map_err(|e| anyhow::anyhow!("operator flags {:?}: {}", user, e.to_string().trim()))?;
    flags.to_config()
}

fn free_port() -> std::io::Result<SocketAddr> {
    std::net::TcpListener::bind(("127.0.0.1", 0))?.local_addr()
}
