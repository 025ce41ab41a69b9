//! Test harness: the embedded API server, a sim-bmc fleet, the operator in-process, a probe that
//! registers with the real registry protocol when a machine network-boots, and the test playing
//! the boot backend (it writes SBC status through the status subresource).
#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use http_body_util::Full;
use k8s_openapi::api::core::v1::LocalObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::api::{Api, Patch, PatchParams, PostParams};
use metal_api::{Server, ServerBootConfiguration, ServerReadinessRule};
use operator::config::{Config, ReadinessGate};
use operator::redfish::{ClientOptions, HttpService, TlsVerification, service_transport};
use serde_json::json;
use sim_bmc::boot::{BootOutcome, BootedOs, NetworkBoot, NetworkBootRequest};
use sim_bmc::fleet::{BindMode, FleetHandle, FleetOptions, FleetSpec};
use sim_bmc::{MachineEvent, MachineEventKind};
use tower::ServiceExt as _;

pub const NS: &str = "default";

/// Short intervals so every flow completes in seconds.
pub fn test_config(gate: ReadinessGate) -> Config {
    Config {
        manager_namespace: NS.into(),
        probe_image: "ghcr.io/ironcore-dev/metalprobe:test".into(),
        probe_os_image: "ghcr.io/ironcore-dev/os-images/gardenlinux:test".into(),
        registry_url: "http://registry.test".into(),
        discovery_timeout: Duration::from_secs(60),
        // Tighter than the preset: the operator tests' waits were tuned against these timeouts.
        power_polling_timeout: Duration::from_secs(3),
        resource_polling_timeout: Duration::from_secs(3),
        redfish_request_timeout: Duration::from_secs(1),
        readiness_gate: gate,
        ..Config::fast_polling()
    }
}

/// A ServerReadinessRule requiring `condition`=True of the Servers `selector` picks, which carry `taint`
/// until it holds.
pub fn readiness_rule(
    name: &str,
    condition: &str,
    mode: &str,
    taint: serde_json::Value,
    selector: serde_json::Value,
) -> ServerReadinessRule {
    serde_json::from_value(json!({
        "apiVersion": "metal.ironcore.dev/v1alpha1", "kind": "ServerReadinessRule",
        "metadata": {"name": name},
        "spec": {
            "conditions": [{"type": condition, "requiredStatus": "True"}],
            "enforcementMode": mode,
            "taint": taint,
            "serverSelector": selector,
        }
    }))
    .unwrap()
}

pub struct HarnessOptions {
    pub mac_db: operator::macdb::MacDb,
    pub bmcs: usize,
    pub bind: BindMode,
    pub config: Config,
    pub fleet: FleetSpec,
    /// Whether a network boot runs the probe (registers with the registry).
    pub probe: bool,
}

impl HarnessOptions {
    pub fn new(bmcs: usize) -> Self {
        let mut fleet = FleetSpec::uniform(bmcs, sim_bmc::vendor::Vendor::Dell, 7);
        fleet.defaults.latencies = Some(sim_bmc::fleet::spec::LatencySpec::FAST);
        fleet.boot_network.ipxe_url_template = Some("http://boot.test/ipxe?uuid={uuid}".into());
        fleet.boot_network.http_boot_url_template =
            Some("http://boot.test/http?uuid={uuid}".into());
        Self {
            mac_db: Default::default(),
            bmcs,
            bind: BindMode::InProcess,
            config: test_config(ReadinessGate::Strict),
            fleet,
            probe: true,
        }
    }
}

/// The probe, as the discovery OS would run it: registers the machine's NICs once booted.
struct ProbeBoot {
    registry: Arc<Mutex<Option<HttpService>>>,
}

impl NetworkBoot for ProbeBoot {
    fn boot(&self, req: NetworkBootRequest) -> BoxFuture<'static, BootOutcome> {
        let registry = self.registry.lock().unwrap().clone();
        Box::pin(async move {
            let task = registry.map(|registry| {
                tokio::spawn(register(
                    registry,
                    req.system_uuid.clone(),
                    req.macs.clone(),
                ))
            });
            BootOutcome::Booted(BootedOs {
                image: "probe".into(),
                image_digest: None,
                ignition_sha256: None,
                artifacts: vec![],
                os_task: task,
            })
        })
    }
}

async fn register(registry: HttpService, uuid: String, macs: Vec<String>) {
    let nics: Vec<_> = macs
        .iter()
        .enumerate()
        .map(|(i, mac)| json!({ "name": format!("eth{i}"), "ipAddresses": [format!("10.0.0.{}", i + 10)], "macAddress": mac, "carrierStatus": "up" }))
        .collect();
    let body = json!({
        "systemUUID": uuid,
        "data": {
            "timestamp": k8s_openapi::jiff::Timestamp::now().to_string(),
            "networkInterfaces": nics,
            "lldp": [{ "name": "eth0", "neighbors": [{ "chassisId": "aa:bb:cc:00:00:01", "portId": "Ethernet1", "systemName": "leaf-1" }] }],
        }
    });
    let request = http::Request::post("http://registry.test/register")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap();
    let _ = registry.oneshot(request).await;
}

pub use testbed::RedfishRequest;

/// Requests the operator's client sent to the API server (writes = everything but GET).
#[derive(Default)]
pub struct ApiCounters {
    pub requests: std::sync::atomic::AtomicU64,
    pub writes: std::sync::atomic::AtomicU64,
}

/// A kube client over the in-process API server that counts what it sends.
pub fn counting_client(router: axum::Router, counters: Arc<ApiCounters>) -> kube::Client {
    hooked_client(router, counters, None)
}

/// Sees each request of the operator (method, path, body) before the API server does; the
/// request waits for the returned future, so a test can change the world at an exact moment.
pub type ApiHook = Arc<dyn Fn(&http::Method, &str, &Bytes) -> BoxFuture<'static, ()> + Send + Sync>;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// [`counting_client`] with an optional [`ApiHook`].
pub fn hooked_client(
    router: axum::Router,
    counters: Arc<ApiCounters>,
    hook: Option<ApiHook>,
) -> kube::Client {
    use http_body_util::BodyExt as _;
    use std::sync::atomic::Ordering::Relaxed;
    let service = tower::service_fn(move |request: http::Request<kube::client::Body>| {
        counters.requests.fetch_add(1, Relaxed);
        if request.method() != http::Method::GET {
            counters.writes.fetch_add(1, Relaxed);
        }
        let (router, hook) = (router.clone(), hook.clone());
        async move {
            let request = match hook {
                None => request,
                Some(hook) => {
                    let (parts, body) = request.into_parts();
                    let bytes = body.collect().await?.to_bytes();
                    hook(&parts.method, parts.uri.path(), &bytes).await;
                    http::Request::from_parts(parts, kube::client::Body::from(bytes))
                }
            };
            Ok::<_, BoxError>(router.oneshot(request).await?)
        }
    });
    kube::Client::new(service, NS)
}

pub struct Harness {
    /// The assembly (its API server and fleet handles are taken out into the fields below).
    pub bed: testbed::Testbed,
    pub api: apiserver::Handle,
    pub client: kube::Client,
    /// What the operator (not the test) sent to the API server.
    pub operator_api: Arc<ApiCounters>,
    pub fleet: FleetHandle,
    pub operator: Option<operator::OperatorHandle>,
    pub config: Config,
    /// Installed on the operator's API client at the next `start_operator`.
    pub operator_hook: Option<ApiHook>,
    /// Every Redfish request the operator sent (in-process BMCs only), in order.
    pub redfish_requests: Arc<Mutex<Vec<RedfishRequest>>>,
    /// Where the operator serves its Redfish event receiver (none by default).
    pub event_listen: Option<std::net::SocketAddr>,
    probe_registry: Arc<Mutex<Option<HttpService>>>,
    probe: bool,
}

impl Harness {
    pub async fn start(options: HarnessOptions) -> Self {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()))
            .with_test_writer()
            .try_init();
        let probe_registry = Arc::new(Mutex::new(None));
        let mut spec = options.fleet;
        spec.count = options.bmcs;
        let fleet_options = FleetOptions {
            network_boot: Some(Arc::new(ProbeBoot {
                registry: probe_registry.clone(),
            })),
            bind: options.bind,
            ..FleetOptions::default()
        };
        let mut setup = testbed::OperatorSetup::new(options.config.clone());
        setup.mac_db = options.mac_db;
        setup.record_redfish = true;
        setup.tls = TlsVerification::Skip;
        setup.redfish = ClientOptions {
            request_timeout: options.config.redfish_request_timeout,
            max_attempts: 2,
            backoff_base: Duration::from_millis(20),
            backoff_max: Duration::from_millis(100),
            ..ClientOptions::default()
        };
        let mut bed = testbed::Testbed::builder()
            .transport(testbed::Transport::InProcess)
            .fleet(testbed::FleetSetup::new(spec, fleet_options))
            .start()
            .await
            .expect("API server and fleet start");
        bed.operator_setup = Some(setup);
        Self {
            api: bed.api.take_handle().expect("embedded API server"),
            client: bed.client.clone(),
            fleet: bed.fleet.take().expect("fleet"),
            redfish_requests: bed.redfish_requests(),
            bed,
            operator: None,
            operator_hook: None,
            event_listen: None,
            operator_api: Arc::default(),
            config: options.config,
            probe_registry,
            probe: options.probe,
        }
    }

    pub async fn start_operator(&mut self) {
        assert!(self.operator.is_none(), "operator already running");
        let setup = self.bed.operator_setup.as_mut().expect("operator setup");
        setup.config = self.config.clone();
        setup.event_listen = self.event_listen;
        let options = self.bed.operator_options().expect("operator options");
        let client = hooked_client(
            self.api.router(),
            self.operator_api.clone(),
            self.operator_hook.clone(),
        );
        let handle = operator::run(options, client)
            .await
            .expect("operator starts");
        if self.probe {
            *self.probe_registry.lock().unwrap() =
                Some(service_transport(handle.registry.router()));
        }
        self.operator = Some(handle);
    }

    pub fn set_mac_db(&mut self, mac_db: operator::macdb::MacDb) {
        if let Some(setup) = self.bed.operator_setup.as_mut() {
            setup.mac_db = mac_db;
        }
    }

    pub async fn stop_operator(&mut self) {
        if let Some(handle) = self.operator.take() {
            handle.shutdown().await;
        }
    }

    /// A BMCSecret and a BMC (inline access) per fleet BMC; returns the BMC names.
    pub async fn create_bmcs(&self) -> Vec<String> {
        testbed::fleet::create_bmc_objects(&self.client, &self.fleet)
            .await
            .expect("BMC objects created")
    }

    /// Creates the fleet's BMC objects, then starts the operator; returns the BMC names.
    pub async fn create_bmcs_and_start(&mut self) -> Vec<String> {
        let bmcs = self.create_bmcs().await;
        self.start_operator().await;
        bmcs
    }

    pub fn servers(&self) -> Api<Server> {
        Api::all(self.client.clone())
    }

    pub fn sbcs(&self, ns: &str) -> Api<ServerBootConfiguration> {
        Api::namespaced(self.client.clone(), ns)
    }

    /// Polls until `check` accepts the object, or panics after `timeout` with the last value seen.
    pub async fn wait_for<K, F>(
        &self,
        api: &Api<K>,
        name: &str,
        timeout: Duration,
        what: &str,
        check: F,
    ) -> K
    where
        K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
        F: Fn(&K) -> bool,
    {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let current = api.get_opt(name).await.unwrap();
            if let Some(obj) = &current
                && check(obj)
            {
                return obj.clone();
            }
            if tokio::time::Instant::now() >= deadline {
                panic!(
                    "timed out after {timeout:?} waiting for {what} on {name}; last seen: {current:#?}"
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn wait_state(&self, server: &str, state: &str) -> Server {
        self.wait_for(
            &self.servers(),
            server,
            Duration::from_secs(30),
            &format!("state {state}"),
            |s: &Server| {
                s.status
                    .as_ref()
                    .and_then(|st| st.state.as_ref())
                    .is_some_and(|st| st.as_str() == state)
            },
        )
        .await
    }

    /// Plays the boot backend: writes SBC state and conditions through the status subresource.
    pub async fn backend_set(&self, ns: &str, name: &str, state: &str, conditions: Vec<Condition>) {
        let patch = json!({ "status": { "state": state, "conditions": conditions } });
        self.sbcs(ns)
            .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
    }

    pub fn machine(&self, uuid: &str) -> sim_bmc::MachineHandle {
        self.fleet
            .machine(uuid)
            .unwrap_or_else(|| panic!("no machine {uuid}"))
    }

    pub fn events(&self, uuid: &str) -> Vec<MachineEvent> {
        self.machine(uuid).events()
    }

    /// Boot-type resets the BMC received (On, ForceOn, restarts, power cycles): the gate's evidence.
    pub fn power_on_requests(&self, uuid: &str) -> Vec<String> {
        self.events(uuid)
            .into_iter()
            .filter_map(|e| match e.kind {
                MachineEventKind::ResetRequested { reset_type, .. }
                    if sim_bmc::machine::POWER_ON_RESETS.contains(&reset_type.as_str()) =>
                {
                    Some(reset_type)
                }
                _ => None,
            })
            .collect()
    }

    /// How many `Manager.Reset` actions the operator sent to the BMC.
    pub fn manager_resets(&self, bmc: &str) -> usize {
        self.redfish_requests
            .lock()
            .unwrap()
            .iter()
            .filter(|r| {
                r.bmc == bmc && r.method == http::Method::POST && r.path.ends_with("/Manager.Reset")
            })
            .count()
    }

    /// Plays the discovery probe for a machine outside the simulated fleet (a third-party BMC's):
    /// registers `uuid` with these NICs at the running operator's registry.
    pub async fn register_probe(&self, uuid: &str, macs: &[&str]) {
        let operator = self.operator.as_ref().expect("operator running");
        let registry = service_transport(operator.registry.router());
        let macs = macs.iter().map(|m| (*m).to_owned()).collect();
        register(registry, uuid.to_owned(), macs).await;
    }

    pub fn first_system_uuid(&self) -> String {
        self.fleet.bmcs()[0].systems[0].uuid.clone()
    }
}

pub fn condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    generation: Option<i64>,
) -> Condition {
    Condition {
        type_: type_.into(),
        status: status.into(),
        reason: reason.into(),
        message: message.into(),
        observed_generation: generation,
        last_transition_time: Time(k8s_openapi::jiff::Timestamp::now()),
    }
}

/// Polls `check` until true or panics after `timeout`.
pub async fn eventually(timeout: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + timeout;
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {timeout:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

impl Harness {
    /// Waits until the Server controller has finished `n` more reconciles (a sync point instead of a sleep).
    pub async fn reconciles(&self, n: u64) {
        let metrics = self
            .operator
            .as_ref()
            .expect("operator running")
            .metrics
            .clone();
        let target = metrics.reconcile_count("server") + n;
        eventually(Duration::from_secs(30), "server reconciles", || {
            metrics.reconcile_count("server") >= target
        })
        .await;
    }

    /// Waits (30 s) until the Server reports `power` as its power state.
    pub async fn wait_power(&self, server: &str, power: &str) -> Server {
        self.wait_for(
            &self.servers(),
            server,
            Duration::from_secs(30),
            power,
            |s: &Server| power_is(s, power),
        )
        .await
    }

    /// Waits (30 s) until the SBC `name` exists in [`NS`].
    pub async fn wait_sbc(&self, name: &str, what: &str) -> ServerBootConfiguration {
        self.wait_for(&self.sbcs(NS), name, Duration::from_secs(30), what, |_| {
            true
        })
        .await
    }

    /// Merge-patches the Server (`patch` is the whole JSON merge patch).
    pub async fn merge_server(&self, server: &str, patch: serde_json::Value) -> Server {
        let params = PatchParams::default();
        let patch = Patch::Merge(patch);
        self.servers().patch(server, &params, &patch).await.unwrap()
    }

    /// Merge-patches ServerClaim `claim` in [`NS`].
    pub async fn merge_claim(
        &self,
        claim: &str,
        patch: serde_json::Value,
    ) -> metal_api::ServerClaim {
        let claims = Api::<metal_api::ServerClaim>::namespaced(self.client.clone(), NS);
        let patch = Patch::Merge(patch);
        claims
            .patch(claim, &PatchParams::default(), &patch)
            .await
            .unwrap()
    }

    /// Merge-patches the Server's status subresource.
    pub async fn merge_server_status(&self, server: &str, patch: serde_json::Value) -> Server {
        let params = PatchParams::default();
        let patch = Patch::Merge(patch);
        self.servers()
            .patch_status(server, &params, &patch)
            .await
            .unwrap()
    }

    /// The name in the Server's `spec.serverClaimRef` as it is now.
    pub async fn claim_ref_of(&self, server: &str) -> Option<String> {
        let server = self.servers().get(server).await.unwrap();
        server.spec.server_claim_ref.map(|reference| reference.name)
    }

    /// The Server's `status.state` as it is now (panics when unset).
    pub async fn server_state(&self, server: &str) -> String {
        let server = self.servers().get(server).await.unwrap();
        server.status.unwrap().state.unwrap().as_str().to_owned()
    }

    /// Creates the fleet's BMCs, starts the operator and waits for the first server to enter
    /// Discovery; returns its name and system UUID.
    pub async fn discovering(&mut self) -> (String, String) {
        let bmcs = self.create_bmcs_and_start().await;
        let server = format!("{}-system-0", bmcs[0]);
        let uuid = self.first_system_uuid();
        self.wait_state(&server, "Discovery").await;
        (server, uuid)
    }

    /// Discovers the first server of the fleet (backend answers the discovery SBC Ready).
    pub async fn discovered(&mut self) -> (String, String) {
        let bmcs = self.create_bmcs().await;
        if self.operator.is_none() {
            self.start_operator().await;
        }
        let server = format!("{}-system-0", bmcs[0]);
        self.wait_sbc(&server, "discovery SBC").await;
        self.backend_set(NS, &server, "Ready", vec![]).await;
        self.wait_state(&server, "Available").await;
        self.wait_power(&server, "Off").await;
        (server, self.first_system_uuid())
    }

    /// Waits until an event with `reason` about the named object exists.
    pub async fn wait_event(&self, name: &str, reason: &str) {
        self.until(&format!("{reason} event"), || async {
            !self.events_for(name, reason).await.is_empty()
        })
        .await;
    }

    /// Events (events.k8s.io) about the named object with the given reason.
    pub async fn events_for(
        &self,
        name: &str,
        reason: &str,
    ) -> Vec<k8s_openapi::api::events::v1::Event> {
        events_about(&self.client, name, reason).await
    }
}

pub fn power_is(server: &Server, power: &str) -> bool {
    server
        .status
        .as_ref()
        .and_then(|s| s.power_state.as_ref())
        .is_some_and(|p| p.as_str() == power)
}

pub fn server_condition(server: &Server, type_: &str) -> Option<Condition> {
    server
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .cloned()
}

pub fn new_claim(
    name: &str,
    server: Option<&str>,
    power: &str,
    image: &str,
) -> metal_api::ServerClaim {
    let mut claim = metal_api::ServerClaim::new(
        name,
        metal_api::ServerClaimSpec {
            power: power.into(),
            server_ref: server.map(|s| LocalObjectReference { name: s.into() }),
            server_selector: None,
            ignition_secret_ref: None,
            image: image.into(),
            user_data_ref: None,
            tolerations: vec![],
        },
    );
    claim.metadata.namespace = Some(NS.into());
    claim
}

impl Harness {
    /// Creates a ServerClaim in `NS` (see [`new_claim`]).
    pub async fn claim(
        &self,
        name: &str,
        server: Option<&str>,
        power: &str,
        image: &str,
    ) -> metal_api::ServerClaim {
        Api::<metal_api::ServerClaim>::namespaced(self.client.clone(), NS)
            .create(
                &PostParams::default(),
                &new_claim(name, server, power, image),
            )
            .await
            .unwrap_or_else(|e| panic!("creating claim {name}: {e}"))
    }

    pub async fn annotate(&self, server: &str, operation: Option<&str>) {
        let patch =
            json!({"metadata": {"annotations": {"metal.ironcore.dev/operation": operation}}});
        self.servers()
            .patch(server, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
    }

    pub async fn wait_annotation_gone(&self, server: &str) -> Server {
        self.wait_for(
            &self.servers(),
            server,
            Duration::from_secs(30),
            "operation consumed",
            |s: &Server| {
                !s.metadata
                    .annotations
                    .as_ref()
                    .is_some_and(|a| a.contains_key("metal.ironcore.dev/operation"))
            },
        )
        .await
    }

    /// Polls an async check with a deadline.
    pub async fn until<F, Fut>(&self, what: &str, mut check: F)
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = bool>,
    {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while !check().await {
            assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A discovered server bound to a claim whose SBC the backend made Ready, powered On.
    pub async fn running(&mut self, claim: &str) -> (String, String) {
        let (server, uuid) = self.discovered().await;
        let claims = Api::<metal_api::ServerClaim>::namespaced(self.client.clone(), NS);
        claims
            .create(
                &PostParams::default(),
                &new_claim(claim, Some(&server), "On", "ghcr.io/example/os:1.0"),
            )
            .await
            .unwrap();
        self.wait_sbc(claim, "claim SBC").await;
        self.backend_set(NS, claim, "Ready", vec![]).await;
        self.wait_power(&server, "On").await;
        (server, uuid)
    }

    /// All resets the BMC received, in order.
    pub fn resets(&self, uuid: &str) -> Vec<String> {
        self.events(uuid)
            .into_iter()
            .filter_map(|e| match e.kind {
                MachineEventKind::ResetRequested { reset_type, .. } => Some(reset_type),
                _ => None,
            })
            .collect()
    }
}

/// A boot backend that answers in bursts: every `period` it sets every not-yet-Ready SBC Ready at
/// once (how a backend with a work queue behaves under load). Abort the handle to stop it.
pub fn spawn_burst_backend(h: &Harness, period: Duration) -> tokio::task::JoinHandle<()> {
    let api = Api::<ServerBootConfiguration>::all(h.client.clone());
    let client = h.client.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        loop {
            tick.tick().await;
            let Ok(list) = api.list(&Default::default()).await else {
                continue;
            };
            let pending = list.items.into_iter().filter(|sbc| {
                sbc.status
                    .as_ref()
                    .and_then(|s| s.state.as_ref())
                    .is_none_or(|s| s.as_str() != "Ready")
            });
            let writes = pending.map(|sbc| {
                let ns = sbc.metadata.namespace.clone().unwrap_or_default();
                let name = sbc.metadata.name.clone().unwrap_or_default();
                let api = Api::<ServerBootConfiguration>::namespaced(client.clone(), &ns);
                async move {
                    let patch = json!({ "status": { "state": "Ready" } });
                    // A lost write (e.g. the SBC was just deleted) is retried on the next burst.
                    let _ = api
                        .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
                        .await;
                }
            });
            futures::future::join_all(writes).await;
        }
    })
}

/// Events (events.k8s.io) about the named object with the given reason.
pub async fn events_about(
    client: &kube::Client,
    name: &str,
    reason: &str,
) -> Vec<k8s_openapi::api::events::v1::Event> {
    let api = Api::<k8s_openapi::api::events::v1::Event>::all(client.clone());
    api.list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| {
            e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name)
                && e.reason.as_deref() == Some(reason)
        })
        .collect()
}
