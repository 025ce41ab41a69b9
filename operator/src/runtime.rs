//! Assembling and running all controllers and the registry in-process: `operator::run`.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use watches::Fanout;

use crate::config::Config;
use crate::context::{BmcConnector, Context, Stores};
use crate::controllers;
use crate::macdb::MacDb;
use crate::metrics::Metrics;
use crate::probe_registry::{Registry, RegistryClient};
use crate::redfish::{ClientOptions, HttpService, TlsVerification, service_transport};
use clock::{Clock, Entropy, derive_seed};

/// Everything `run` needs besides the API client. `Options::new(config)` gives socket transports.
pub struct Options {
    pub config: Config,
    /// How BMCs are reached (sockets by default; in-process services in tests).
    pub connector: BmcConnector,
    /// Where to serve the registry; `None` serves it in-process only (the operator then talks to it
    /// without sockets, and `config.registry_url` is only what the probe is told).
    pub registry_listen: Option<SocketAddr>,
    /// Transport of the registry client; in-process when `None` and `registry_listen` is `None`.
    pub registry_transport: Option<HttpService>,
    /// Where to serve the Redfish event receiver (`/serverevents/…`); not served when `None`.
    pub event_listen: Option<SocketAddr>,
    pub clock: Clock,
    /// Seeds the discovery SSH material and the Redfish retry jitter (each its own stream); OS randomness
    /// when None.
    pub seed: Option<u64>,
    pub metrics: Arc<Metrics>,
    pub mac_db: MacDb,
}

impl Options {
    pub fn new(config: Config) -> Self {
        let tls = if config.skip_cert_validation {
            TlsVerification::Skip
        } else {
            TlsVerification::Verify
        };
        let options = ClientOptions {
            request_timeout: config.redfish_request_timeout,
            ..ClientOptions::default()
        };
        Self {
            connector: BmcConnector::sockets(tls, options),
            config,
            registry_listen: None,
            registry_transport: None,
            event_listen: None,
            clock: Clock::wall(),
            seed: None,
            metrics: Arc::new(Metrics::new()),
            mac_db: MacDb::default(),
        }
    }
}

/// A running operator. Dropping it does not stop it; call [`OperatorHandle::shutdown`].
pub struct OperatorHandle {
    pub metrics: Arc<Metrics>,
    pub registry: Registry,
    pub stores: Stores,
    /// Bound address of the registry when it listens on a socket.
    pub registry_addr: Option<SocketAddr>,
    /// Bound address of the Redfish event receiver, when it listens.
    pub event_addr: Option<SocketAddr>,
    shutdown: CancellationToken,
    tasks: JoinSet<()>,
}

impl OperatorHandle {
    /// Stops all controllers gracefully (in-flight reconciles finish) and the registry server.
    pub async fn shutdown(mut self) {
        self.shutdown.cancel();
        while self.tasks.join_next().await.is_some() {}
    }

    /// The operator's HTTP endpoints as one in-process service, whatever listens on sockets: the probe registry
    /// (`/register`, `/bootstate`, ...) and the Redfish event receiver (`/serverevents/...`).
    pub fn router(&self) -> axum::Router {
        self.registry.router().merge(crate::serverevents::router(
            self.metrics.server_events.clone(),
        ))
    }

    /// Resolves when shutdown has been requested.
    pub fn cancelled(&self) -> tokio_util::sync::WaitForCancellationFuture<'_> {
        self.shutdown.cancelled()
    }
}

/// Starts every controller and the registry against `client`.
pub async fn run(mut options: Options, client: kube::Client) -> anyhow::Result<OperatorHandle> {
    let stream = |purpose| Entropy::from_seed(options.seed.map(|s| derive_seed(s, purpose)));
    let entropy = stream("operator/discovery");
    if options.seed.is_some() {
        options.connector.options.jitter = stream("operator/redfish-jitter");
    }
    // One watch per kind that other controllers react to: its controller hands it on to them once its
    // store has each event, so what a trigger wakes reads that event or a newer one (`watches::Fanout`).
    let (servers, bmcs) = (Fanout::default(), Fanout::default());
    let (bmc_secrets, endpoints) = (Fanout::default(), Fanout::default());
    let controllers::server::ServerController {
        controller: server,
        boot_configs,
        claims,
    } = controllers::server::controller(client.clone(), &servers, &bmcs);
    let claim = controllers::server_claim::controller(client.clone(), &servers);
    let sbc = controllers::server_boot_configuration::controller(client.clone());
    let bmc = controllers::bmc::controller(client.clone(), &bmcs, &bmc_secrets, &endpoints);
    let bmc_secret = controllers::bmcsecret::controller(client.clone(), &bmc_secrets);
    let endpoint = controllers::endpoint::controller(client.clone(), &endpoints);
    let rule = controllers::readiness_rule::controller(client.clone(), &servers);
    let stores = Stores {
        servers: server.store(),
        claims,
        boot_configs,
        bmcs: bmc.store(),
        bmc_secrets: bmc_secret.store(),
        endpoints: endpoint.store(),
        readiness_rules: rule.store(),
    };
    let registry = Registry::new(client.clone(), stores.servers.clone(), options.clock);
    let shutdown = CancellationToken::new();
    let mut tasks = JoinSet::new();
    let mut registry_addr = None;
    let registry_transport = match (options.registry_transport, options.registry_listen) {
        (Some(transport), _) => transport,
        (None, Some(_)) => crate::redfish::hyper_transport(TlsVerification::Verify),
        (None, None) => service_transport(registry.router()),
    };
    if let Some(addr) = options.registry_listen {
        registry_addr =
            Some(serve(&mut tasks, addr, registry.router(), &shutdown, "registry").await?);
    }
    let event_addr = match options.event_listen {
        Some(addr) => {
            let router = crate::serverevents::router(options.metrics.server_events.clone());
            Some(serve(&mut tasks, addr, router, &shutdown, "event receiver").await?)
        }
        None => None,
    };
    let registry_client = RegistryClient::new(
        registry_transport,
        &options.config.registry_url,
        options.config.registry_client_timeout,
    );
    let ctx = Arc::new(Context {
        recorder: Context::new_recorder(client.clone(), options.clock),
        client,
        config: options.config,
        connector: options.connector,
        registry: registry_client,
        metrics: options.metrics.clone(),
        clock: options.clock,
        entropy,
        stores: stores.clone(),
        mac_db: options.mac_db,
        bindings: Default::default(),
        gate_backoff: Default::default(),
        server_writes: Default::default(),
    });
    let stop = || shutdown.clone().cancelled_owned();
    let server_concurrency = ctx.config.server_max_concurrent_reconciles;
    let claim_concurrency = ctx.config.server_claim_max_concurrent_reconciles;
    use controllers::{
        bmc, bmcsecret, endpoint, readiness_rule, server, server_boot_configuration as sbcs,
        server_claim,
    };
    tasks.spawn(controllers::run(
        server::CONTROLLER,
        server,
        server_concurrency,
        ctx.clone(),
        stop(),
        server::reconcile,
    ));
    tasks.spawn(controllers::run(
        server_claim::CONTROLLER,
        claim,
        claim_concurrency,
        ctx.clone(),
        stop(),
        server_claim::reconcile,
    ));
    tasks.spawn(controllers::run(
        sbcs::CONTROLLER,
        sbc,
        0,
        ctx.clone(),
        stop(),
        sbcs::reconcile,
    ));
    tasks.spawn(controllers::run(
        bmc::CONTROLLER,
        bmc,
        server_concurrency,
        ctx.clone(),
        stop(),
        bmc::reconcile,
    ));
    tasks.spawn(controllers::run(
        bmcsecret::CONTROLLER,
        bmc_secret,
        0,
        ctx.clone(),
        stop(),
        bmcsecret::reconcile,
    ));
    tasks.spawn(controllers::run(
        endpoint::CONTROLLER,
        endpoint,
        0,
        ctx.clone(),
        stop(),
        endpoint::reconcile,
    ));
    tasks.spawn(controllers::run(
        readiness_rule::CONTROLLER,
        rule,
        0,
        ctx,
        stop(),
        readiness_rule::reconcile,
    ));
    Ok(OperatorHandle {
        metrics: options.metrics,
        registry,
        stores,
        registry_addr,
        event_addr,
        shutdown,
        tasks,
    })
}

/// Serves `router` on `addr` until shutdown; returns the bound address.
async fn serve(
    tasks: &mut JoinSet<()>,
    addr: SocketAddr,
    router: axum::Router,
    shutdown: &CancellationToken,
    what: &'static str,
) -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("{what}: binding {addr}: {e}"))?;
    let bound = listener.local_addr()?;
    let stop = shutdown.clone();
    tasks.spawn(async move {
        let serve = axum::serve(listener, router).with_graceful_shutdown(stop.cancelled_owned());
        if let Err(error) = serve.await {
            tracing::error!(%error, what, "HTTP server failed");
        }
    });
    Ok(bound)
}
