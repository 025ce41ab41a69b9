//! testbed: starts any subset of the metal-harness stack in one process — the embedded API server with the metal
//! CRDs, a sim-bmc fleet, a boot backend (in-process sim-boot or a supervised child), the operator, OCI registries —
//! so scenarios, conformance, the crates' tests and the benches assemble it one way instead of six.

pub mod api;
pub mod backend;
pub mod fleet;
pub mod metal_operator;
pub mod objects;
pub mod registries;
pub mod sim;
pub mod supervisor;

use std::sync::Arc;

use anyhow::Context as _;
use http_client::InProcessNet;
use sim_bmc::fleet::FleetHandle;

pub use api::{ApiAccess, ApiServer, ApiSpec, ClientFactory, Role, Transport};
pub use backend::{Backend, InProcessBackend, RunningBackend, SimBoot};
pub use fleet::{FleetRoutes, FleetSetup, RedfishLog, RedfishRequest};
pub use metal_operator::{OPERATOR_HOST, OperatorSetup};
pub use registries::{BuiltinRegistries, RegistryOptions};
pub use supervisor::{ChildSpec, Exit, ExitObserver, Program, Supervisor};

/// The runtime a simulated run lives on: one thread with tokio's clock paused, so virtual time jumps ahead
/// whenever every task waits, and tokio's own random draws (which branch of a `select!` goes first, which
/// waiter of a watch channel wakes first) seeded from `seed`, so that one seed replays one way. Seeding
/// needs `--cfg tokio_unstable` (the workspace's `.cargo/config.toml`); built without it (a RUSTFLAGS
/// variable replaces that file's flags) the runtime works, but one seed may interleave two ways.
pub fn simulated_runtime(seed: u64) -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_current_thread();
    builder.enable_all().start_paused(true);
    #[cfg(tokio_unstable)]
    builder.rng_seed(tokio::runtime::RngSeed::from_bytes(
        &clock::derive_seed(seed, "tokio").to_le_bytes(),
    ));
    #[cfg(not(tokio_unstable))]
    let _ = seed;
    builder.build()
}

/// Which parts to start, and how. Nothing starts until [`TestbedBuilder::start`].
#[derive(Default)]
pub struct TestbedBuilder {
    api: ApiSpec,
    transport: Transport,
    clients: Option<ClientFactory>,
    fleet: Option<FleetSetup>,
    backend: Option<Backend>,
    operator: Option<OperatorSetup>,
    bmc_objects: bool,
    registries: Option<(registries::RegistryOptions, sim_boot::oci::catalog::Catalog)>,
    /// The in-process network the servers join under [`Transport::InProcess`].
    net: InProcessNet,
    socket_free: bool,
    clock: Option<clock::Clock>,
    seed: Option<u64>,
}

impl TestbedBuilder {
    /// The API server (embedded and not durable unless said otherwise; always started).
    pub fn api(mut self, spec: ApiSpec) -> Self {
        self.api = spec;
        self
    }

    /// How every component's kube client reaches the API server.
    pub fn transport(mut self, transport: Transport) -> Self {
        self.transport = transport;
        self
    }

    /// No socket at all: [`Transport::InProcess`], the embedded API server without a listener, and every other
    /// server a host of [`Self::network`] (sim-boot as `boot.sim.invalid`, the built-in registries, the operator
    /// as [`OPERATOR_HOST`]). Plain `Transport::InProcess` leaves those on loopback sockets.
    pub fn socket_free(mut self) -> Self {
        self.transport = Transport::InProcess;
        self.socket_free = true;
        self
    }

    /// The network a [`Self::socket_free`] testbed's servers join: hand its [`InProcessNet::client`] to the
    /// fleet's machines (netboot) before [`Self::start`].
    pub fn network(&self) -> InProcessNet {
        self.net.clone()
    }

    /// Builds each component's kube client (default: [`api::plain_client`]).
    pub fn clients(mut self, factory: ClientFactory) -> Self {
        self.clients = Some(factory);
        self
    }

    pub fn fleet(mut self, setup: FleetSetup) -> Self {
        self.fleet = Some(setup);
        self
    }

    pub fn backend(mut self, backend: Backend) -> Self {
        self.backend = Some(backend);
        self
    }

    /// Starts the operator last, after the fleet's BMCs are registered when [`Self::bmc_objects`] asks for it.
    pub fn operator(mut self, setup: OperatorSetup) -> Self {
        self.operator = Some(setup);
        self
    }

    /// The two built-in OCI registries, serving `catalog` (say, [`BuiltinRegistries::standard_catalog`]).
    pub fn registries(
        mut self,
        options: registries::RegistryOptions,
        catalog: sim_boot::oci::catalog::Catalog,
    ) -> Self {
        self.registries = Some((options, catalog));
        self
    }

    /// One clock for every part started (API server, backend, fleet, operator): `Clock::simulated(epoch)` on a
    /// paused runtime makes two runs write the same timestamps. Each part's own clock when not set.
    pub fn clock(mut self, clock: clock::Clock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// One seed for every part's random draws (uids, generated names, keys, jitter), each part its own stream
    /// derived from it. The fleet's identities keep coming from its spec's seed.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Create a BMCSecret and a BMC per fleet BMC before the operator starts.
    pub fn bmc_objects(mut self) -> Self {
        self.bmc_objects = true;
        self
    }

    /// Starts the parts in dependency order: API server, backend, fleet (booting from the backend), BMC objects,
    /// operator. On an error, what already started is shut down.
    pub async fn start(mut self) -> anyhow::Result<Testbed> {
        let seed_for = |part: &str| self.seed.map(|s| clock::derive_seed(s, part));
        if let Some(setup) = self.operator.as_mut() {
            setup.clock = setup.clock.or(self.clock);
            setup.seed = setup.seed.or(seed_for("operator"));
        }
        if let Some(clock) = self.clock {
            if let Some(setup) = self.fleet.as_mut() {
                setup.options.clock.get_or_insert(clock);
            }
            if let Some(Backend::InProcess(setup)) = self.backend.as_mut() {
                setup.clock = clock;
            }
        }
        let api = ApiServer::start_with(
            &self.api,
            self.transport,
            !self.socket_free,
            self.clock,
            seed_for("apiserver"),
        )
        .await?;
        let clients = self
            .clients
            .take()
            .unwrap_or_else(|| Arc::new(|_, access| api::plain_client(access)));
        let client = clients(Role::Harness, api.access()?)?;
        let scratch = tempfile::tempdir().context("creating the testbed's scratch directory")?;
        let mut bed = Testbed {
            api,
            client,
            clients,
            fleet: None,
            routes: FleetRoutes::default(),
            backend: None,
            operator: None,
            registries: None,
            operator_setup: self.operator.clone(),
            redfish_log: RedfishLog::default(),
            scratch: Some(scratch),
            stop_on_drop: true,
            net: self.net.clone(),
            socket_free: self.socket_free,
            clock: self.clock,
            seed: self.seed,
        };
        if let Err(e) = bed.start_parts(self).await {
            bed.shutdown().await;
            return Err(e);
        }
        Ok(bed)
    }
}

/// A running stack. Stop it with [`Testbed::shutdown`]; dropping it stops what can be stopped without waiting.
pub struct Testbed {
    pub api: ApiServer,
    /// The harness's own client (tests, the runner's watches and workload).
    pub client: kube::Client,
    clients: ClientFactory,
    pub fleet: Option<FleetHandle>,
    /// How the operator reaches the fleet (kept even when a caller takes the fleet handle).
    routes: FleetRoutes,
    pub backend: Option<RunningBackend>,
    pub operator: Option<operator::OperatorHandle>,
    pub registries: Option<BuiltinRegistries>,
    /// Used by the next [`Testbed::start_operator`]; change it between a stop and a start.
    pub operator_setup: Option<OperatorSetup>,
    redfish_log: RedfishLog,
    /// Holds files written for child processes (the kubeconfig).
    scratch: Option<tempfile::TempDir>,
    /// False for the stand-in a drop hands to a shutdown task: if the runtime is shutting down, that task is
    /// dropped unrun, and the stand-in must not hand itself on again (that recursed until the stack overflowed
    /// when a test panicked with a testbed alive).
    stop_on_drop: bool,
    net: InProcessNet,
    socket_free: bool,
    /// The builder's clock and seed, for an operator started later (`operator_setup` may leave them unset).
    clock: Option<clock::Clock>,
    seed: Option<u64>,
}

impl Testbed {
    pub fn builder() -> TestbedBuilder {
        TestbedBuilder::default()
    }

    async fn start_parts(&mut self, b: TestbedBuilder) -> anyhow::Result<()> {
        let in_process = self.in_process();
        if let Some((options, catalog)) = b.registries {
            self.registries = Some(match in_process {
                true => BuiltinRegistries::in_process(
                    options,
                    catalog,
                    &self.net,
                    self.clock,
                    self.seed.map(|s| clock::derive_seed(s, "registries")),
                )?,
                false => BuiltinRegistries::start_with(options, catalog).await?,
            });
        }
        self.backend = match b.backend {
            None => None,
            Some(Backend::InProcess(mut setup)) => {
                if in_process {
                    setup.options.network = Some(self.net.clone());
                    if matches!(setup.resolver, sim_boot::ResolverKind::OciClient) {
                        // oci-client needs sockets; the distribution API over the network reaches every
                        // in-process registry.
                        setup.resolver = sim_boot::ResolverKind::Http(Some(self.net.client()));
                    }
                }
                let client = self.client_for(Role::Backend)?;
                Some(RunningBackend::InProcess(
                    InProcessBackend::start(client, setup).await?,
                ))
            }
            Some(Backend::Child {
                mut spec,
                boot_url_template,
                observer,
            }) => {
                let kubeconfig = match &b.api {
                    ApiSpec::External(path) => path.clone(),
                    ApiSpec::Embedded { .. } => {
                        let dir = self.scratch.as_ref().context("no scratch directory")?;
                        let path = dir.path().join("kubeconfig");
                        self.api.write_kubeconfig(&path)?;
                        path
                    }
                };
                spec.env
                    .push(("KUBECONFIG".into(), kubeconfig.display().to_string()));
                Some(RunningBackend::Child {
                    supervisor: Supervisor::start(spec, observer)?,
                    boot_url_template,
                })
            }
        };
        if let Some(mut setup) = b.fleet {
            if setup.spec.boot_network.ipxe_url_template.is_none()
                && let Some(backend) = &self.backend
            {
                setup.spec.boot_network.ipxe_url_template = Some(backend.boot_url_template());
            }
            if in_process && setup.options.events_http.is_none() {
                // Events go where a subscription says: the operator's in-process host, or a socket an
                // operator with `event_listen` bound.
                setup.options.events_http = Some(
                    self.net
                        .client_with_fallback(http_client::HttpClient::hyper()),
                );
            }
            let bind = setup.options.bind;
            let fleet = fleet::start(setup).await?;
            self.routes = FleetRoutes::of(&fleet, bind);
            self.fleet = Some(fleet);
            if b.bmc_objects {
                self.create_bmc_objects().await?;
            }
        }
        if self.operator_setup.is_some() {
            self.start_operator().await?;
        }
        Ok(())
    }

    /// A new kube client for `role`, built as the factory says.
    pub fn client_for(&self, role: Role) -> anyhow::Result<kube::Client> {
        (self.clients)(role, self.api.access()?)
    }

    /// The running fleet (panics without one: a test that asks for it built the testbed with one).
    pub fn fleet(&self) -> &FleetHandle {
        self.fleet
            .as_ref()
            .expect("the testbed was built without a fleet")
    }

    /// A BMCSecret and a BMC per fleet BMC; returns the BMC names.
    pub async fn create_bmc_objects(&self) -> anyhow::Result<Vec<String>> {
        fleet::create_bmc_objects(&self.client, self.fleet()).await
    }

    /// Takes the in-process sim-boot's handle out (a fixture that keeps it as a plain field owns its shutdown).
    pub fn take_sim_boot(&mut self) -> Option<sim_boot::BackendHandle> {
        match self.backend.as_mut()? {
            RunningBackend::InProcess(b) => b.take_handle(),
            RunningBackend::Child { .. } => None,
        }
    }

    /// The in-process sim-boot, when that is the backend.
    pub fn sim_boot(&self) -> Option<&InProcessBackend> {
        self.backend.as_ref()?.in_process()
    }

    /// The in-process network of a [`TestbedBuilder::socket_free`] testbed's servers (empty otherwise).
    pub fn network(&self) -> &InProcessNet {
        &self.net
    }

    fn in_process(&self) -> bool {
        self.socket_free
    }

    /// Every Redfish request the operator sent to an in-process fleet, when `record_redfish` is on.
    pub fn redfish_requests(&self) -> RedfishLog {
        self.redfish_log.clone()
    }

    /// The operator's options from [`Testbed::operator_setup`], with a BMC connector for the fleet.
    pub fn operator_options(&self) -> anyhow::Result<operator::Options> {
        let setup = self
            .operator_setup
            .as_ref()
            .context("the testbed has no operator setup")?;
        let mut options = operator::Options::new(setup.config.clone());
        options.registry_listen = setup.registry_listen;
        options.event_listen = setup.event_listen;
        options.mac_db = setup.mac_db.clone();
        options.clock = setup.clock.or(self.clock).unwrap_or(options.clock);
        options.seed = setup
            .seed
            .or_else(|| self.seed.map(|s| clock::derive_seed(s, "operator")));
        let log = setup.record_redfish.then(|| self.redfish_log.clone());
        options.connector = fleet::connector(&self.routes, setup.tls, setup.redfish.clone(), log);
        Ok(options)
    }

    /// Starts the operator with [`Testbed::operator_setup`] (a fresh client and BMC connector each time).
    pub async fn start_operator(&mut self) -> anyhow::Result<()> {
        anyhow::ensure!(self.operator.is_none(), "the operator is already running");
        let options = self.operator_options()?;
        let client = self.client_for(Role::Operator)?;
        let handle = operator::run(options, client)
            .await
            .context("starting the operator")?;
        if self.in_process() {
            self.net.serve(OPERATOR_HOST, handle.router());
        }
        self.operator = Some(handle);
        Ok(())
    }

    pub async fn stop_operator(&mut self) {
        if let Some(op) = self.operator.take() {
            self.net.remove(OPERATOR_HOST);
            op.shutdown().await;
        }
    }

    /// Restarts the backend (in-process: same addresses; child: a new process).
    pub async fn restart_backend(&mut self) -> anyhow::Result<()> {
        self.backend
            .as_mut()
            .context("the testbed has no backend")?
            .restart()
            .await
    }

    /// Stops every part, the operator first so nothing acts on a half-stopped system.
    pub async fn shutdown(mut self) {
        self.stop_all().await;
    }

    async fn stop_all(&mut self) {
        self.stop_operator().await;
        if let Some(mut b) = self.backend.take() {
            b.shutdown().await;
        }
        if let Some(f) = self.fleet.take() {
            f.shutdown().await;
        }
        self.api.shutdown().await;
    }
}

impl Drop for Testbed {
    fn drop(&mut self) {
        // Nothing to do after an explicit shutdown; otherwise stop the rest on the runtime, if one still runs (a
        // child backend's process group is killed by its supervisor's own Drop).
        let pending = self.operator.is_some()
            || self.backend.is_some()
            || self.fleet.is_some()
            || self.api.handle().is_some();
        if !pending || !self.stop_on_drop {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let mut rest = Testbed {
            api: std::mem::replace(&mut self.api, ApiServer::stopped()),
            client: self.client.clone(),
            clients: self.clients.clone(),
            fleet: self.fleet.take(),
            routes: FleetRoutes::default(),
            backend: self.backend.take(),
            operator: self.operator.take(),
            registries: self.registries.take(),
            operator_setup: None,
            redfish_log: RedfishLog::default(),
            scratch: None,
            stop_on_drop: false,
            net: self.net.clone(),
            socket_free: self.socket_free,
            clock: self.clock,
            seed: self.seed,
        };
        runtime.spawn(async move { rest.stop_all().await });
    }
}
