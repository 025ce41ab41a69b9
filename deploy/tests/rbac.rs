//! RBAC against reality: each component runs against the embedded API server through its own
//! recording proxy (a tower layer over the server's router on a loopback listener), and the
//! (verb, group, resource, subresource, namespace) of every call it makes must be granted by the
//! Role/ClusterRole its ServiceAccount gets in config/overlays/kind. Grants no call used are printed,
//! and any that is not on the documented list below fails the test (least privilege).

mod common;
mod lifecycle;

use std::collections::BTreeSet;
use std::sync::Arc;

use deploy::rbac::Grants;
use deploy::recorder::{Recording, RecordingProxy};
use lifecycle::{OPERATOR_NS, api_server, client_via};

const HARNESS_NS: &str = "metal-harness-system";

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
        activity: Default::default(),
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
        SIM_BOOT_UNUSED_BY_DESIGN,
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

/// The operator through a whole server lifecycle (BMC → discovery → Available → claim → powered on →
/// release → Available) with sim-boot as the backend, leader election included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_and_sim_boot_stay_within_their_roles_through_a_lifecycle() {
    let stack = lifecycle::OperatorStack::start().await;
    let server = stack.discover().await;
    stack.park_and_unpark(&server).await;
    stack.taint_with_a_readiness_rule(&server).await;
    stack.claim_boot_and_release(&server).await;
    stack.endpoint_becomes_a_bmc().await;
    let (api, operator_calls, boot_calls) = stack.stop().await;
    check(
        "metal-operator",
        &operator_calls,
        OPERATOR_NS,
        "metal-operator",
        OPERATOR_UNUSED_BY_DESIGN,
    );
    check(
        "sim-boot",
        &boot_calls,
        HARNESS_NS,
        "sim-boot",
        SIM_BOOT_UNUSED_BY_DESIGN,
    );
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

/// sim-boot grants a run on a settled cache does not exercise, and why they stay.
const SIM_BOOT_UNUSED_BY_DESIGN: &[(&str, &str)] = &[
    (
        "ClusterRole/metal-harness-sim-boot: get core/secrets",
        "an ignition Secret is rendered from the Secret watch's cache; a fresh GET only confirms a Secret the \
         cache does not have (yet) or that does not render, which a settled run may never meet",
    ),
    (
        "ClusterRole/metal-harness-sim-boot: get metal.ironcore.dev/servers",
        "an SBC's Server is read from the Server watch's cache; a fresh GET only when the cache does not have \
         the Server yet (an SBC created right after its Server) or its facts do not resolve from the cached copy",
    ),
    (
        "ClusterRole/metal-harness-sim-boot: get metal.ironcore.dev/serverbootconfigurations",
        "a status write starts from the SBC the reconcile read; a fresh GET only after that write lost a \
         conflict to another writer",
    ),
];

/// Conformance grants the embedded run cannot exercise, and why they stay.
const CONFORMANCE_UNUSED_BY_DESIGN: &[(&str, &str)] = &[];
