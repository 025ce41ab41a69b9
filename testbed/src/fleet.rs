//! The BMC fleet of a testbed: sim-bmc BMCs (one loopback listener each, or in-process routers), the
//! BMCSecret and BMC objects that register them with the operator, and the Redfish transports that reach them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use k8s_openapi::api::core::v1::LocalObjectReference;
use kube::api::{Api, PostParams};
use metal_api::{BMC, BMCSecret, BMCSecretFields, BMCSpec, InlineEndpoint, Protocol};
use operator::context::BmcConnector;
use operator::redfish::{ClientOptions, HttpService, TlsVerification, service_transport};
use sim_bmc::fleet::{BindMode, FleetHandle, FleetOptions, FleetSpec};

/// A fleet to start. The testbed fills `spec.boot_network.ipxe_url_template` from an in-process backend when the
/// spec leaves it empty.
#[derive(Clone)]
pub struct FleetSetup {
    pub spec: FleetSpec,
    pub options: FleetOptions,
}

impl FleetSetup {
    pub fn new(spec: FleetSpec, options: FleetOptions) -> Self {
        Self { spec, options }
    }

    /// `spec` with no socket per BMC: the operator reaches each BMC's in-process service.
    pub fn in_process(spec: FleetSpec) -> Self {
        Self::new(
            spec,
            FleetOptions {
                bind: BindMode::InProcess,
                ..FleetOptions::default()
            },
        )
    }
}

/// Starts the fleet.
pub async fn start(setup: FleetSetup) -> anyhow::Result<FleetHandle> {
    sim_bmc::Fleet::start(setup.spec, setup.options)
        .await
        .context("starting the sim-bmc fleet")
}

/// One Redfish request the operator sent to a simulated BMC.
#[derive(Clone, Debug)]
pub struct RedfishRequest {
    pub bmc: String,
    pub method: http::Method,
    pub path: String,
}

/// Every Redfish request sent through an in-process connector that records (in order).
pub type RedfishLog = Arc<Mutex<Vec<RedfishRequest>>>;

/// What the operator needs to reach a fleet, kept apart from the [`FleetHandle`] so a caller may own the handle.
#[derive(Clone, Default)]
pub struct FleetRoutes {
    pub bind: BindMode,
    /// Each BMC's in-process service (its router, and its `unreachable` faults), by BMC name.
    pub services: HashMap<String, sim_bmc::fleet::BmcService>,
}

impl FleetRoutes {
    pub fn of(fleet: &FleetHandle, bind: BindMode) -> Self {
        let services = match bind {
            BindMode::Loopback => HashMap::new(),
            BindMode::InProcess => fleet
                .bmcs()
                .iter()
                .filter_map(|b| Some((b.name.clone(), fleet.service(&b.name)?)))
                .collect(),
        };
        FleetRoutes { bind, services }
    }
}

/// How the operator reaches the fleet: sockets for a loopback fleet; for an in-process one, each BMC's service
/// behind `http://NAME.sim.invalid` (and, when `log` is given, every request recorded there first).
pub fn connector(
    routes: &FleetRoutes,
    tls: TlsVerification,
    options: ClientOptions,
    log: Option<RedfishLog>,
) -> BmcConnector {
    if routes.bind == BindMode::Loopback {
        return BmcConnector::sockets(tls, options);
    }
    let transports: HashMap<String, HttpService> = routes
        .services
        .iter()
        .map(|(name, service)| {
            let transport = match &log {
                Some(log) => recorded(service, name, log),
                None => service_transport(service.clone()),
            };
            (name.clone(), transport)
        })
        .collect();
    // An endpoint no BMC serves answers 200 with HTML to everything: garbage to a Redfish client.
    let nowhere =
        service_transport(axum::Router::new().fallback(|| async { "<html>not redfish</html>" }));
    BmcConnector::with_resolver(
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

/// The BMC's service, recording each request into `log` first (refused ones too: they were sent).
fn recorded(service: &sim_bmc::fleet::BmcService, bmc: &str, log: &RedfishLog) -> HttpService {
    let (service, bmc, log) = (service.clone(), bmc.to_owned(), log.clone());
    service_transport(tower::service_fn(
        move |request: http::Request<operator::redfish::RequestBody>| {
            log.lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(RedfishRequest {
                    bmc: bmc.clone(),
                    method: request.method().clone(),
                    path: request.uri().path().to_owned(),
                });
            tower::ServiceExt::oneshot(service.clone(), request)
        },
    ))
}

/// A BMCSecret and a BMC (inline access over Redfish/HTTP) per fleet BMC, as an admin registers them; returns the
/// BMC names.
pub async fn create_bmc_objects(
    client: &kube::Client,
    fleet: &FleetHandle,
) -> anyhow::Result<Vec<String>> {
    let secrets = Api::<BMCSecret>::all(client.clone());
    let bmcs = Api::<BMC>::all(client.clone());
    let mut names = Vec::new();
    for info in fleet.bmcs() {
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
        names.push(info.name);
    }
    Ok(names)
}
