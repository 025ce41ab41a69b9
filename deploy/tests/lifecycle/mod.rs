//! The operator's world for the RBAC test: the embedded API server, recording proxies, sim-boot, a
//! one-BMC sim-bmc fleet whose machines run the discovery probe, and the operator with leader election;
//! plus the lifecycle steps a user drives (each waits on the API with a deadline, never a bare sleep).
#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use deploy::recorder::{Recording, RecordingProxy};
use futures::future::BoxFuture;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use metal_api::{
    BMC, BMCSecret, Endpoint, Server, ServerBootConfiguration, ServerClaim, ServerReadinessRule,
};
use operator::redfish::{ClientOptions, HttpService, service_transport};
use serde_json::json;
use sim_bmc::boot::{BootOutcome, BootedOs, NetworkBoot, NetworkBootRequest};
use sim_bmc::fleet::{BindMode, BmcInfo, FleetHandle, FleetOptions, FleetSpec};
use tower::ServiceExt as _;

pub const OPERATOR_NS: &str = "metal-operator-system";
pub const TENANT_NS: &str = "tenant";
pub const WAIT: Duration = Duration::from_secs(60);
const LEASE: &str = "f26702e4.ironcore.dev";

pub async fn api_server() -> apiserver::Handle {
    let api = apiserver::Server::start(apiserver::Options::default())
        .await
        .expect("apiserver");
    api.install_crds(&metal_api::crds::all())
        .await
        .expect("CRDs");
    api
}

/// A kube client that reaches the API server only through `proxy`.
pub fn client_via(proxy: &RecordingProxy) -> kube::Client {
    let uri: http::Uri = proxy.url().parse().unwrap();
    kube::Client::try_from(kube::Config::new(uri)).unwrap()
}

pub async fn eventually<T, F>(what: &str, mut probe: impl FnMut() -> F) -> T
where
    F: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {WAIT:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn create_namespace(admin: &kube::Client, name: &str) {
    let api = Api::<k8s_openapi::api::core::v1::Namespace>::all(admin.clone());
    let ns = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
    api.create(&PostParams::default(), &ns)
        .await
        .expect("namespace");
}

/// What the discovery OS does once booted: the probe registers the machine's NICs with the
/// operator's registry (over its HTTP API, not the Kubernetes API).
struct ProbeOs {
    registry: Arc<Mutex<Option<HttpService>>>,
}

impl NetworkBoot for ProbeOs {
    fn boot(&self, req: NetworkBootRequest) -> BoxFuture<'static, BootOutcome> {
        let registry = self
            .registry
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        Box::pin(async move {
            let os_task = registry
                .map(|registry| tokio::spawn(register(registry, req.system_uuid, req.macs)));
            BootOutcome::Booted(BootedOs {
                image: "probe".into(),
                image_digest: None,
                ignition_sha256: None,
                artifacts: vec![],
                os_task,
            })
        })
    }
}

async fn register(registry: HttpService, uuid: String, macs: Vec<String>) {
    let nics: Vec<_> = macs
        .iter()
        .enumerate()
        .map(|(i, mac)| json!({"name": format!("eth{i}"), "ipAddresses": [format!("10.1.0.{}", i + 2)], "macAddress": mac, "carrierStatus": "up"}))
        .collect();
    let body = json!({"systemUUID": uuid, "data": {"timestamp": k8s_openapi::jiff::Timestamp::now().to_string(), "networkInterfaces": nics}});
    let request = http::Request::post("http://metal-registry/register")
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(bytes::Bytes::from(
            body.to_string(),
        )))
        .unwrap();
    if let Err(error) = registry.oneshot(request).await {
        eprintln!("probe registration failed: {error}");
    }
}

fn base64(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn state_of(server: &Server) -> Option<&str> {
    server.state().map(|s| s.as_str())
}

fn power_of(server: &Server) -> Option<&str> {
    server.power_state().map(|s| s.as_str())
}

fn available_and_off(s: &Server) -> bool {
    state_of(s) == Some("Available") && power_of(s) == Some("Off")
}

/// A one-BMC fleet (in-process, Dell flavour, fast power) whose machines boot the probe.
async fn start_fleet(boot_url: &str, registry: Arc<Mutex<Option<HttpService>>>) -> FleetHandle {
    let mut spec = FleetSpec::uniform(1, sim_bmc::vendor::Vendor::Dell, 11);
    spec.defaults.systems = Some(1);
    spec.defaults.latencies = Some(sim_bmc::fleet::spec::LatencySpec::FAST);
    spec.boot_network.ipxe_url_template = Some(format!("{boot_url}/ipxe/{{uuid}}"));
    let options = FleetOptions {
        network_boot: Some(Arc::new(ProbeOs { registry })),
        bind: BindMode::InProcess,
        ..FleetOptions::default()
    };
    sim_bmc::Fleet::start(spec, options).await.expect("fleet")
}

/// Short intervals, the discovery image from sim-boot's registry, a MAC-prefix entry for the Endpoint
/// path, and every BMC endpoint resolved to the in-process BMC.
fn operator_options(
    backend: &sim_boot::BackendHandle,
    fleet: &FleetHandle,
    bmc: &BmcInfo,
) -> operator::Options {
    let config = operator::config::Config {
        manager_namespace: OPERATOR_NS.into(),
        probe_image: "ghcr.io/ironcore-dev/metalprobe:test".into(),
        probe_os_image: backend.image(sim_boot::oci::catalog::names::PROBE),
        registry_url: "http://metal-registry.metal-operator-system.svc.cluster.local:10000".into(),
        ..operator::config::Config::fast_polling()
    };
    let mut options = operator::Options::new(config);
    options.mac_db = serde_saphyr::from_str(&format!(
        "macPrefixes:\n- {{macPrefix: \"02aa\", manufacturer: Sim, protocol: Redfish, port: 80, type: bmc, \
         defaultCredentials: [{{username: {}, password: {}}}]}}\n",
        bmc.username, bmc.password
    ))
    .expect("MAC prefix database");
    let router = fleet.router(&bmc.name).unwrap();
    options.connector = operator::context::BmcConnector::with_resolver(
        Arc::new(move |_endpoint: &str| service_transport(router.clone())),
        ClientOptions::default(),
    );
    options
}

/// Everything running, with the operator's and sim-boot's API calls recorded separately.
pub struct OperatorStack {
    pub api: apiserver::Handle,
    /// Unrecorded client for the test's own (user's) actions.
    pub admin: kube::Client,
    operator_proxy: RecordingProxy,
    boot_proxy: RecordingProxy,
    backend: sim_boot::BackendHandle,
    fleet: FleetHandle,
    operator: operator::OperatorHandle,
    elector: operator::leader::LeaderElector,
    bmc: BmcInfo,
}

impl OperatorStack {
    pub async fn start() -> OperatorStack {
        let api = api_server().await;
        let admin = kube::Client::new(api.router(), "default");
        for ns in [OPERATOR_NS, TENANT_NS] {
            create_namespace(&admin, ns).await;
        }
        let operator_proxy = RecordingProxy::start(api.router()).await.unwrap();
        let boot_proxy = RecordingProxy::start(api.router()).await.unwrap();
        let backend =
            sim_boot::Backend::start(client_via(&boot_proxy), sim_boot::BackendOptions::default())
                .await
                .expect("sim-boot");
        let registry_slot = Arc::new(Mutex::new(None));
        let fleet = start_fleet(backend.url(), registry_slot.clone()).await;
        let bmc = fleet.bmcs()[0].clone();
        let options = operator_options(&backend, &fleet, &bmc);
        let client = client_via(&operator_proxy);
        let lease = operator::leader::LeaseConfig {
            namespace: OPERATOR_NS.into(),
            name: LEASE.into(),
            identity: "deploy-rbac-test".into(),
            lease_duration: Duration::from_secs(15),
            retry_period: Duration::from_secs(2),
        };
        let elector = operator::leader::LeaderElector::new(client.clone(), lease);
        tokio::time::timeout(WAIT, elector.acquire())
            .await
            .expect("leader election");
        let operator = operator::run(options, client).await.expect("operator");
        *registry_slot.lock().unwrap() = Some(service_transport(operator.registry.router()));
        OperatorStack {
            api,
            admin,
            operator_proxy,
            boot_proxy,
            backend,
            fleet,
            operator,
            elector,
            bmc,
        }
    }

    /// Stops everything but the API server; returns the operator's and sim-boot's recordings.
    pub async fn stop(self) -> (apiserver::Handle, Recording, Recording) {
        self.operator.shutdown().await;
        self.elector.release().await;
        self.backend.shutdown().await;
        self.fleet.shutdown().await;
        let recordings = (
            self.operator_proxy.recording.clone(),
            self.boot_proxy.recording.clone(),
        );
        self.operator_proxy.stop();
        self.boot_proxy.stop();
        (self.api, recordings.0, recordings.1)
    }

    async fn wait_server(&self, name: &str, what: &str, ok: impl Fn(&Server) -> bool) -> Server {
        let servers = Api::<Server>::all(self.admin.clone());
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let current = servers.get_opt(name).await.ok().flatten();
            if let Some(server) = current.as_ref().filter(|s| ok(s)) {
                return server.clone();
            }
            if tokio::time::Instant::now() >= deadline {
                let sbcs = Api::<ServerBootConfiguration>::all(self.admin.clone())
                    .list(&Default::default())
                    .await
                    .map(|l| l.items);
                panic!(
                    "timed out after {WAIT:?} waiting for {what}\nserver: {current:#?}\nSBCs: {sbcs:#?}"
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A BMC with its credentials, as a user creates them; returns its Server once discovered.
    pub async fn discover(&self) -> String {
        let (name, user, password) = (&self.bmc.name, &self.bmc.username, &self.bmc.password);
        let secret: BMCSecret = serde_json::from_value(json!({
            "apiVersion": "metal.ironcore.dev/v1alpha1", "kind": "BMCSecret", "metadata": {"name": name},
            "stringData": {"username": user, "password": password}
        }))
        .unwrap();
        Api::<BMCSecret>::all(self.admin.clone())
            .create(&PostParams::default(), &secret)
            .await
            .unwrap();
        let bmc: BMC = serde_json::from_value(json!({
            "apiVersion": "metal.ironcore.dev/v1alpha1", "kind": "BMC", "metadata": {"name": name},
            "spec": {"access": {"ip": "192.0.2.10", "macAddress": self.bmc.mac}, "bmcSecretRef": {"name": name},
                     "protocol": {"name": "Redfish", "port": 80, "scheme": "http"}}
        }))
        .unwrap();
        Api::<BMC>::all(self.admin.clone())
            .create(&PostParams::default(), &bmc)
            .await
            .unwrap();
        let server = format!("{name}-system-0");
        self.wait_server(
            &server,
            "discovery to finish (Available, powered off)",
            available_and_off,
        )
        .await;
        server
    }

    /// Park and unpark (the day-2 hand-off): Events are recorded for both.
    pub async fn park_and_unpark(&self, server: &str) {
        for (operation, state) in [("park", "Parked"), ("unpark", "Available")] {
            let patch =
                json!({"metadata": {"annotations": {"metal.ironcore.dev/operation": operation}}});
            Api::<Server>::all(self.admin.clone())
                .patch(server, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .unwrap();
            self.wait_server(server, &format!("{operation} to reach {state}"), |s| {
                state_of(s) == Some(state)
            })
            .await;
        }
    }

    /// A readiness rule taints the server until a condition shows up; deleting the rule removes the taint.
    pub async fn taint_with_a_readiness_rule(&self, server: &str) {
        let rules = Api::<ServerReadinessRule>::all(self.admin.clone());
        let rule: ServerReadinessRule = serde_json::from_value(json!({
            "apiVersion": "metal.ironcore.dev/v1alpha1", "kind": "ServerReadinessRule", "metadata": {"name": "burn-in"},
            "spec": {"conditions": [{"type": "BurnInPassed", "requiredStatus": "True"}], "enforcementMode": "Continuous",
                     "taint": {"key": "example.com/burn-in", "effect": "NoBind"}, "serverSelector": {}}
        }))
        .unwrap();
        rules.create(&PostParams::default(), &rule).await.unwrap();
        let tainted = |s: &Server| s.spec.taints.iter().any(|t| t.key == "example.com/burn-in");
        self.wait_server(server, "the readiness rule's taint", tainted)
            .await;
        rules
            .delete("burn-in", &DeleteParams::default())
            .await
            .unwrap();
        self.wait_server(server, "the taint removed with its rule", |s| !tainted(s))
            .await;
    }

    /// A tenant claims the server (image from sim-boot's registry, ignition Secret), changes the image,
    /// and releases it: powered on, SBC follows the claim, powered off and back in the pool.
    pub async fn claim_boot_and_release(&self, server: &str) {
        let ignition: k8s_openapi::api::core::v1::Secret = serde_json::from_value(json!({
            // `data`, not `stringData`: the embedded server does not fold stringData into data (a real one does).
            "metadata": {"name": "ignition"}, "data": {"ignition": base64(r#"{"ignition":{"version":"3.3.0"}}"#)}
        }))
        .unwrap();
        Api::<k8s_openapi::api::core::v1::Secret>::namespaced(self.admin.clone(), TENANT_NS)
            .create(&PostParams::default(), &ignition)
            .await
            .unwrap();
        let image = self.backend.image(sim_boot::oci::catalog::names::OS_V1);
        let claim: ServerClaim = serde_json::from_value(json!({
            "apiVersion": "metal.ironcore.dev/v1alpha1", "kind": "ServerClaim", "metadata": {"name": "web-0"},
            "spec": {"power": "On", "serverRef": {"name": server}, "image": image, "ignitionSecretRef": {"name": "ignition"}}
        }))
        .unwrap();
        let claims = Api::<ServerClaim>::namespaced(self.admin.clone(), TENANT_NS);
        claims.create(&PostParams::default(), &claim).await.unwrap();
        let on = |s: &Server| state_of(s) == Some("Reserved") && power_of(s) == Some("On");
        self.wait_server(server, "the claimed server powered on", on)
            .await;
        let v2 = self.backend.image(sim_boot::oci::catalog::names::OS_V2);
        let patch = json!({"spec": {"image": v2}});
        claims
            .patch("web-0", &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
        let sbcs = Api::<ServerBootConfiguration>::namespaced(self.admin.clone(), TENANT_NS);
        eventually("the claim's SBC to follow the new image", || async {
            sbcs.get_opt("web-0")
                .await
                .ok()
                .flatten()
                .filter(|sbc| sbc.spec.image.as_deref() == Some(v2.as_str()))
        })
        .await;
        claims
            .delete("web-0", &DeleteParams::default())
            .await
            .unwrap();
        self.wait_server(
            server,
            "the released server back in Available",
            available_and_off,
        )
        .await;
    }

    /// The deprecated Endpoint path: a MAC from the MAC-prefix database becomes a BMCSecret and a BMC.
    pub async fn endpoint_becomes_a_bmc(&self) {
        let endpoint: Endpoint = serde_json::from_value(json!({
            "apiVersion": "metal.ironcore.dev/v1alpha1", "kind": "Endpoint", "metadata": {"name": "ep-1"},
            "spec": {"macAddress": "02:aa:00:00:00:01", "ip": "192.0.2.20"}
        }))
        .unwrap();
        Api::<Endpoint>::all(self.admin.clone())
            .create(&PostParams::default(), &endpoint)
            .await
            .unwrap();
        let bmcs = Api::<BMC>::all(self.admin.clone());
        eventually("the Endpoint's BMC", || async {
            bmcs.get_opt("ep-1").await.ok().flatten()
        })
        .await;
    }
}
