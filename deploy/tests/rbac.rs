//! RBAC against reality: each component runs against the embedded API server through its own
//! recording proxy (a tower layer over the server's router on a loopback listener), and the
//! (verb, group, resource, subresource, namespace) of every call it makes must be granted by the
//! Role/ClusterRole its ServiceAccount gets in config/overlays/kind. Grants no call used are printed,
//! and any that is not on the documented list below fails the test (least privilege).

mod common;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use deploy::rbac::Grants;
use deploy::recorder::{Recording, RecordingProxy};
use futures::future::BoxFuture;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use metal_api::{
    BMC, BMCSecret, Endpoint, Server, ServerBootConfiguration, ServerClaim, ServerReadinessRule,
};
use operator::redfish::{ClientOptions, HttpService, service_transport};
use serde_json::json;
use sim_bmc::boot::{BootOutcome, BootedOs, NetworkBoot, NetworkBootRequest};
use sim_bmc::fleet::{BindMode, FleetOptions, FleetSpec};
use tower::ServiceExt as _;

const OPERATOR_NS: &str = "metal-operator-system";
const HARNESS_NS: &str = "metal-harness-system";
const TENANT_NS: &str = "tenant";
const WAIT: Duration = Duration::from_secs(60);

async fn api_server() -> apiserver::Handle {
    let api = apiserver::Server::start(apiserver::Options::default())
        .await
        .expect("apiserver");
    api.install_crds(&metal_api::crds::all())
        .await
        .expect("CRDs");
    api
}

fn client_via(proxy: &RecordingProxy) -> kube::Client {
    let uri: http::Uri = proxy.url().parse().unwrap();
    kube::Client::try_from(kube::Config::new(uri)).unwrap()
}

/// Compares what `component` did with what `namespace/service_account` is granted; `documented_unused`
/// lists grants a short run cannot exercise, each with the reason it stays.
fn check(
    component: &str,
    recording: &Recording,
    namespace: &str,
    service_account: &str,
    documented_unused: &[(&str, &str)],
) {
    let manifests = common::build("overlays/kind");
    let grants =
        Grants::for_service_account(&manifests, namespace, service_account).expect("RBAC objects");
    assert!(
        !grants.grants.is_empty(),
        "{namespace}/{service_account} has no RBAC at all"
    );
    let used = recording.requests();
    assert!(
        !used.is_empty(),
        "{component} made no API calls: the run did not happen"
    );
    println!(
        "{component} used:\n  {}",
        recording
            .permissions()
            .into_iter()
            .collect::<Vec<_>>()
            .join("\n  ")
    );
    let denied: BTreeSet<String> = used
        .iter()
        .filter(|r| !grants.allows(r))
        .map(|r| {
            format!(
                "{} (namespace {:?}, name {:?})",
                r.permission(),
                r.namespace,
                r.name
            )
        })
        .collect();
    assert!(
        denied.is_empty(),
        "{component} made calls its RBAC in config/ does not grant:\n  {}",
        denied.into_iter().collect::<Vec<_>>().join("\n  ")
    );
    let unused = grants.unused(&used);
    println!(
        "{component} granted but unused in this run:\n  {}",
        unused.join("\n  ")
    );
    let documented: BTreeSet<&str> = documented_unused.iter().map(|(grant, _)| *grant).collect();
    let unexplained: Vec<&String> = unused
        .iter()
        .filter(|u| !documented.contains(u.as_str()))
        .collect();
    assert!(
        unexplained.is_empty(),
        "{component}: granted, never used, not documented as needed (remove it from config/):\n  {unexplained:#?}"
    );
}

async fn eventually<T, F>(what: &str, mut probe: impl FnMut() -> F) -> T
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

/// The conformance `core` and `boot` profiles against sim-boot (simulated machines network-boot from it):
/// suite and backend record their calls through their own proxies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_suite_and_sim_boot_stay_within_their_roles() {
    use conformance::{
        progress::Display, rules::Profile, runner, target::Target, timeouts::Timeouts,
    };
    let api = api_server().await;
    let boot_proxy = RecordingProxy::start(api.router()).await.unwrap();
    let suite_proxy = RecordingProxy::start(api.router()).await.unwrap();
    let registries = conformance::embedded::BuiltinRegistries::start()
        .await
        .unwrap();
    let options = sim_boot::BackendOptions {
        registry: None,
        insecure_registries: vec![
            registries.allowed.to_string(),
            registries.disallowed.to_string(),
        ],
        controller: sim_boot::ControllerOptions {
            allowed_registries: vec![registries.allowed.to_string()],
            ..Default::default()
        },
        ..Default::default()
    };
    let backend = sim_boot::Backend::start(client_via(&boot_proxy), options)
        .await
        .expect("sim-boot");
    let target = Target {
        client: client_via(&suite_proxy),
        images: registries.images(),
        timeouts: Timeouts::default(),
        backend: None,
        api: None,
        boot: Some(
            conformance::boot_net::network_boot(
                &format!("{}/ipxe/{{uuid}}", backend.url()),
                Some(registries.allowed),
            )
            .unwrap(),
        ),
        scale_count: 5,
        run_id: "deploy-rbac".into(),
        epoch: tokio::time::Instant::now(),
        cancel: Default::default(),
    };
    let result = runner::run(
        Arc::new(target),
        &runner::Selection::profiles(&[Profile::Core, Profile::Boot]),
        &Display::hidden(),
        4,
    )
    .await;
    backend.shutdown().await;
    assert!(!result.checks.is_empty(), "the suite ran no checks");
    let sbc_status_writes = boot_proxy.recording.permissions();
    assert!(
        sbc_status_writes
            .iter()
            .any(|p| p.ends_with("serverbootconfigurations/status")),
        "sim-boot never wrote SBC status: the run proves nothing about its RBAC"
    );
    check(
        "sim-boot",
        &boot_proxy.recording,
        HARNESS_NS,
        "sim-boot",
        &[],
    );
    check(
        "conformance",
        &suite_proxy.recording,
        HARNESS_NS,
        "conformance",
        CONFORMANCE_UNUSED_BY_DESIGN,
    );
    boot_proxy.stop();
    suite_proxy.stop();
    api.shutdown().await;
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
    server
        .status
        .as_ref()
        .and_then(|s| s.state.as_ref())
        .map(|s| s.as_str())
}

fn power_of(server: &Server) -> Option<&str> {
    server
        .status
        .as_ref()
        .and_then(|s| s.power_state.as_ref())
        .map(|s| s.as_str())
}

async fn wait_server(
    admin: &kube::Client,
    name: &str,
    what: &str,
    ok: impl Fn(&Server) -> bool,
) -> Server {
    let servers = Api::<Server>::all(admin.clone());
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let current = servers.get_opt(name).await.ok().flatten();
        if let Some(server) = current.as_ref().filter(|s| ok(s)) {
            return server.clone();
        }
        if tokio::time::Instant::now() >= deadline {
            let sbcs = Api::<ServerBootConfiguration>::all(admin.clone())
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

/// The operator through a whole server lifecycle (BMC → discovery → Available → claim → powered on →
/// release → Available) with sim-boot as the backend, leader election included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_and_sim_boot_stay_within_their_roles_through_a_lifecycle() {
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
    let mut spec = FleetSpec::uniform(1, sim_bmc::vendor::Vendor::Dell, 11);
    spec.defaults.systems = Some(1);
    spec.defaults.latencies = Some(sim_bmc::fleet::spec::LatencySpec {
        power_on_ms: 20,
        power_off_ms: 20,
        graceful_shutdown_ms: 30,
        post_ms: 10,
        os_ignores_graceful_shutdown: false,
    });
    spec.boot_network.ipxe_url_template = Some(format!("{}/ipxe/{{uuid}}", backend.url()));
    let fleet_options = FleetOptions {
        network_boot: Some(Arc::new(ProbeOs {
            registry: registry_slot.clone(),
        })),
        bind: BindMode::InProcess,
        ..FleetOptions::default()
    };
    let fleet = sim_bmc::Fleet::start(spec, fleet_options)
        .await
        .expect("fleet");
    let bmc_info = fleet.bmcs()[0].clone();
    let bmc_router = fleet.router(&bmc_info.name).unwrap();

    let config = operator::config::Config {
        manager_namespace: OPERATOR_NS.into(),
        probe_image: "ghcr.io/ironcore-dev/metalprobe:test".into(),
        probe_os_image: backend.image(sim_boot::oci::catalog::names::PROBE),
        registry_url: "http://metal-registry.metal-operator-system.svc.cluster.local:10000".into(),
        server_resync_interval: Duration::from_secs(3),
        power_polling_interval: Duration::from_millis(100),
        power_polling_timeout: Duration::from_secs(5),
        resource_polling_interval: Duration::from_millis(100),
        resource_polling_timeout: Duration::from_secs(5),
        error_backoff: Duration::from_millis(300),
        redfish_request_timeout: Duration::from_secs(2),
        ..Default::default()
    };
    let mut options = operator::Options::new(config);
    options.mac_db = serde_saphyr::from_str(&format!(
        "macPrefixes:\n- {{macPrefix: \"02aa\", manufacturer: Sim, protocol: Redfish, port: 80, type: bmc, \
         defaultCredentials: [{{username: {}, password: {}}}]}}\n",
        bmc_info.username, bmc_info.password
    ))
    .expect("MAC prefix database");
    options.connector = operator::context::BmcConnector::with_resolver(
        Arc::new(move |_endpoint: &str| service_transport(bmc_router.clone())),
        ClientOptions::default(),
    );
    let operator_client = client_via(&operator_proxy);
    let elector = operator::leader::LeaderElector::new(
        operator_client.clone(),
        operator::leader::LeaseConfig {
            namespace: OPERATOR_NS.into(),
            name: "f26702e4.ironcore.dev".into(),
            identity: "deploy-rbac-test".into(),
            lease_duration: Duration::from_secs(15),
            retry_period: Duration::from_secs(2),
        },
    );
    tokio::time::timeout(WAIT, elector.acquire())
        .await
        .expect("leader election");
    let handle = operator::run(options, operator_client)
        .await
        .expect("operator");
    *registry_slot.lock().unwrap() = Some(service_transport(handle.registry.router()));

    // A BMC with its credentials, as a user (or the Endpoint controller) creates them.
    let secret: BMCSecret = serde_json::from_value(json!({
        "apiVersion": "metal.ironcore.dev/v1alpha1", "kind": "BMCSecret", "metadata": {"name": bmc_info.name},
        "stringData": {"username": bmc_info.username, "password": bmc_info.password}
    }))
    .unwrap();
    Api::<BMCSecret>::all(admin.clone())
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    let bmc: BMC = serde_json::from_value(json!({
        "apiVersion": "metal.ironcore.dev/v1alpha1", "kind": "BMC", "metadata": {"name": bmc_info.name},
        "spec": {"access": {"ip": "192.0.2.10", "macAddress": bmc_info.mac}, "bmcSecretRef": {"name": bmc_info.name},
                 "protocol": {"name": "Redfish", "port": 80, "scheme": "http"}}
    }))
    .unwrap();
    Api::<BMC>::all(admin.clone())
        .create(&PostParams::default(), &bmc)
        .await
        .unwrap();

    let server = format!("{}-system-0", bmc_info.name);
    wait_server(
        &admin,
        &server,
        "discovery to finish (Available, powered off)",
        |s| state_of(s) == Some("Available") && power_of(s) == Some("Off"),
    )
    .await;

    // Park and unpark (an operator's day-2 hand-off): Events are recorded for both.
    for (operation, state) in [("park", "Parked"), ("unpark", "Available")] {
        let patch =
            json!({"metadata": {"annotations": {"metal.ironcore.dev/operation": operation}}});
        Api::<Server>::all(admin.clone())
            .patch(&server, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
        wait_server(
            &admin,
            &server,
            &format!("{operation} to reach {state}"),
            |s| state_of(s) == Some(state),
        )
        .await;
    }

    // A readiness rule taints the server until a condition shows up; deleting the rule removes its taint.
    let rules = Api::<ServerReadinessRule>::all(admin.clone());
    let rule: ServerReadinessRule = serde_json::from_value(json!({
        "apiVersion": "metal.ironcore.dev/v1alpha1", "kind": "ServerReadinessRule", "metadata": {"name": "burn-in"},
        "spec": {"conditions": [{"type": "BurnInPassed", "requiredStatus": "True"}], "enforcementMode": "Continuous",
                 "taint": {"key": "example.com/burn-in", "effect": "NoBind"}, "serverSelector": {}}
    }))
    .unwrap();
    rules.create(&PostParams::default(), &rule).await.unwrap();
    let tainted = |s: &Server| s.spec.taints.iter().any(|t| t.key == "example.com/burn-in");
    wait_server(&admin, &server, "the readiness rule's taint", tainted).await;
    rules
        .delete("burn-in", &DeleteParams::default())
        .await
        .unwrap();
    wait_server(&admin, &server, "the taint removed with its rule", |s| {
        !tainted(s)
    })
    .await;

    // A tenant claims it with an image from sim-boot's registry and an ignition Secret.
    let ignition: k8s_openapi::api::core::v1::Secret = serde_json::from_value(json!({
        // `data`, not `stringData`: the embedded server does not fold stringData into data (a real one does).
        "metadata": {"name": "ignition"}, "data": {"ignition": base64(r#"{"ignition":{"version":"3.3.0"}}"#)}
    }))
    .unwrap();
    Api::<k8s_openapi::api::core::v1::Secret>::namespaced(admin.clone(), TENANT_NS)
        .create(&PostParams::default(), &ignition)
        .await
        .unwrap();
    let claim: ServerClaim = serde_json::from_value(json!({
        "apiVersion": "metal.ironcore.dev/v1alpha1", "kind": "ServerClaim", "metadata": {"name": "web-0"},
        "spec": {"power": "On", "serverRef": {"name": server}, "image": backend.image(sim_boot::oci::catalog::names::OS_V1),
                 "ignitionSecretRef": {"name": "ignition"}}
    }))
    .unwrap();
    let claims = Api::<ServerClaim>::namespaced(admin.clone(), TENANT_NS);
    claims.create(&PostParams::default(), &claim).await.unwrap();
    wait_server(&admin, &server, "the claimed server powered on", |s| {
        state_of(s) == Some("Reserved") && power_of(s) == Some("On")
    })
    .await;
    let sbcs = Api::<ServerBootConfiguration>::namespaced(admin.clone(), TENANT_NS);
    assert!(
        sbcs.get_opt("web-0").await.unwrap().is_some(),
        "the claim's SBC"
    );

    // A new image for the claim reaches its SBC.
    let v2 = backend.image(sim_boot::oci::catalog::names::OS_V2);
    claims
        .patch(
            "web-0",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"image": v2}})),
        )
        .await
        .unwrap();
    eventually("the claim's SBC to follow the new image", || async {
        sbcs.get_opt("web-0")
            .await
            .ok()
            .flatten()
            .filter(|sbc| sbc.spec.image.as_deref() == Some(v2.as_str()))
    })
    .await;

    // Release: the claim goes, the server is powered off and returns to the pool.
    claims
        .delete("web-0", &DeleteParams::default())
        .await
        .unwrap();
    wait_server(
        &admin,
        &server,
        "the released server back in Available",
        |s| state_of(s) == Some("Available") && power_of(s) == Some("Off"),
    )
    .await;

    // The deprecated Endpoint path: a MAC from the MAC-prefix database becomes a BMCSecret and a BMC.
    let endpoint: Endpoint = serde_json::from_value(json!({
        "apiVersion": "metal.ironcore.dev/v1alpha1", "kind": "Endpoint", "metadata": {"name": "ep-1"},
        "spec": {"macAddress": "02:aa:00:00:00:01", "ip": "192.0.2.20"}
    }))
    .unwrap();
    Api::<Endpoint>::all(admin.clone())
        .create(&PostParams::default(), &endpoint)
        .await
        .unwrap();
    let bmcs = Api::<BMC>::all(admin.clone());
    eventually("the Endpoint's BMC", || async {
        bmcs.get_opt("ep-1").await.ok().flatten()
    })
    .await;

    handle.shutdown().await;
    elector.release().await;
    backend.shutdown().await;
    fleet.shutdown().await;
    check(
        "metal-operator",
        &operator_proxy.recording,
        OPERATOR_NS,
        "metal-operator",
        OPERATOR_UNUSED_BY_DESIGN,
    );
    check(
        "sim-boot",
        &boot_proxy.recording,
        HARNESS_NS,
        "sim-boot",
        &[],
    );
    operator_proxy.stop();
    boot_proxy.stop();
    api.shutdown().await;
}

/// Operator grants a BMC→claim→release run does not exercise, and why they stay.
const OPERATOR_UNUSED_BY_DESIGN: &[(&str, &str)] = &[
    (
        "Role/metal-operator-discovery-secrets: patch core/secrets",
        "discovery re-renders the Secrets it already created whenever Initial runs again for a Server (after a \
         discovery timeout; in a short run only when a reconcile repeats before the state is written)",
    ),
    (
        "ClusterRole/metal-operator: patch metal.ironcore.dev/bmcsecrets",
        "the Endpoint controller rewrites the credentials of a BMCSecret that already exists (not on first sight)",
    ),
    (
        "ClusterRole/metal-operator: patch events.k8s.io/events",
        "the event recorder patches an existing Event when the same event repeats (an event series)",
    ),
    (
        "ClusterRole/metal-operator: update metal.ironcore.dev/serverbootconfigurations/finalizers",
        "checked by the OwnerReferencesPermissionEnforcement admission plugin (blockOwnerDeletion on the \
         discovery Secrets' owner reference), not a call: no API server request carries it",
    ),
];

/// Conformance grants the embedded run cannot exercise, and why they stay.
const CONFORMANCE_UNUSED_BY_DESIGN: &[(&str, &str)] = &[
    (
        "ClusterRole/metal-harness-conformance-children: list boot.ironcore.dev/httpbootconfigs",
        "boot-operator's per-SBC child kind, searched for leftovers after deletion; not served by the embedded server",
    ),
    (
        "ClusterRole/metal-harness-conformance-children: list boot.ironcore.dev/ipxebootconfigs",
        "boot-operator's per-SBC child kind, searched for leftovers after deletion; not served by the embedded server",
    ),
];
