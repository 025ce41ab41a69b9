//! The strict readiness gate: no power-on or boot-type reset reaches the BMC while the Server's SBC
//! is Pending, Error, Ready-for-an-older-generation, missing, or replaced mid-flight. Evidence is
//! sim-bmc's machine event log, not the operator's own state.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::*;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::ResourceExt as _;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use metal_api::{Server, ServerBootConfiguration, ServerClaim};
use operator::config::ReadinessGate;
use serde_json::json;

const T: Duration = Duration::from_secs(30);
const IMAGE: &str = "ghcr.io/example/os:1.0";

async fn reserved_with_claim(h: &mut Harness, claim: &str) -> (String, String, Api<ServerClaim>) {
    let (server, uuid) = h.discovered().await;
    let claims = Api::<ServerClaim>::namespaced(h.client.clone(), NS);
    h.claim(claim, Some(&server), "On", IMAGE).await;
    h.wait_state(&server, "Reserved").await;
    h.wait_sbc(claim, "claim SBC").await;
    (server, uuid, claims)
}

async fn wait_gate_reason(h: &Harness, server: &str, reason: &str) -> Server {
    h.wait_for(
        &h.servers(),
        server,
        T,
        &format!("gate reason {reason}"),
        |s: &Server| {
            server_condition(s, "BootConfigurationReady")
                .is_some_and(|c| c.status == "False" && c.reason == reason)
        },
    )
    .await
}

/// The backend's `ImageValidation=True` condition for the given generation.
fn image_resolved(generation: Option<i64>) -> Condition {
    condition("ImageValidation", "True", "Resolved", "", generation)
}

/// Three reconciles pass without a power-on beyond the `before` seen earlier.
async fn no_power_on_meanwhile(h: &Harness, uuid: &str, before: usize, what: &str) {
    h.reconciles(3).await;
    assert_eq!(h.power_on_requests(uuid).len(), before, "{what}");
}

/// Once the backend answers the claim SBC `c` Ready, the server powers on, exactly once.
async fn ready_powers_on_once(h: &Harness, server: &str, uuid: &str, before: usize) {
    h.backend_set(NS, "c", "Ready", vec![]).await;
    h.wait_power(server, "On").await;
    assert_eq!(h.power_on_requests(uuid).len(), before + 1);
}

#[tokio::test]
async fn pending_sbc_blocks_power_on_until_ready() {
    let mut h = Harness::start(HarnessOptions::new(1)).await;
    let (server, uuid, _) = reserved_with_claim(&mut h, "c").await;
    let before = h.power_on_requests(&uuid).len();
    wait_gate_reason(&h, &server, "Pending").await;
    no_power_on_meanwhile(&h, &uuid, before, "power-on while Pending").await;
    ready_powers_on_once(&h, &server, &uuid, before).await;
}

#[tokio::test]
async fn error_sbc_is_surfaced_on_server_and_claim_and_recovery_clears_it() {
    let mut h = Harness::start(HarnessOptions::new(1)).await;
    let (server, uuid, _) = reserved_with_claim(&mut h, "c").await;
    let before = h.power_on_requests(&uuid).len();
    let failing = condition(
        "ImageValidation",
        "False",
        "ValidationFailed",
        "manifest unknown: ghcr.io/example/os:1.0",
        Some(1),
    );
    h.backend_set(NS, "c", "Error", vec![failing]).await;
    let s = wait_gate_reason(&h, &server, "ValidationFailed").await;
    let c = server_condition(&s, "BootConfigurationReady").unwrap();
    assert!(
        c.message.contains("manifest unknown"),
        "backend message carried: {c:?}"
    );
    eventually_async(|| async {
        !h.events_for(&server, "BootConfigurationError")
            .await
            .is_empty()
    })
    .await;
    eventually_async(|| async { !h.events_for("c", "BootConfigurationError").await.is_empty() })
        .await;
    no_power_on_meanwhile(&h, &uuid, before, "power-on while Error").await;
    // Recovery: the backend fixes it; the condition clears and the server powers on once.
    h.backend_set(NS, "c", "Ready", vec![image_resolved(Some(1))])
        .await;
    h.wait_for(&h.servers(), &server, T, "gate open", |s: &Server| {
        server_condition(s, "BootConfigurationReady").is_some_and(|c| c.status == "True")
    })
    .await;
    h.wait_power(&server, "On").await;
    assert_eq!(h.power_on_requests(&uuid).len(), before + 1);
    eventually_async(|| async {
        !h.events_for(&server, "BootConfigurationRecovered")
            .await
            .is_empty()
    })
    .await;
}

/// The real reference backend instead of the test playing it: sim-boot fails an image that does not
/// exist with `ImageResolved=False/ImageValidationFailed` and, in the same write, the steps after it
/// `Unknown/WaitingForPrerequisites`. The Server, its claim and their Events must name the failure.
#[tokio::test]
async fn sim_boot_error_is_named_by_its_failed_condition() {
    let mut h = Harness::start(HarnessOptions::new(1)).await;
    let (server, uuid) = h.discovered().await;
    let before = h.power_on_requests(&uuid).len();
    let backend = sim_boot::Backend::start(h.client.clone(), sim_boot::BackendOptions::default())
        .await
        .expect("sim-boot starts");
    let image = backend.image("metal-harness/no-such-image:1.0");
    h.claim("c", Some(&server), "On", &image).await;
    // What sim-boot wrote: the premise of this test.
    let sbc = h
        .wait_for(
            &h.sbcs(NS),
            "c",
            T,
            "SBC in Error",
            |s: &ServerBootConfiguration| {
                s.status
                    .as_ref()
                    .and_then(|s| s.state.as_ref())
                    .is_some_and(|s| s.as_str() == "Error")
            },
        )
        .await;
    let conditions = &sbc.status.as_ref().unwrap().conditions;
    assert!(
        conditions
            .iter()
            .any(|c| c.status == "Unknown" && c.reason == "WaitingForPrerequisites"),
        "sim-boot writes waiting conditions next to the failure: {conditions:?}"
    );
    let s = wait_gate_reason(&h, &server, "ImageValidationFailed").await;
    let c = server_condition(&s, "BootConfigurationReady").unwrap();
    assert!(
        c.message.contains("no-such-image"),
        "backend message carried: {c:?}"
    );
    for regarding in [server.as_str(), "c"] {
        eventually_async(|| async {
            !h.events_for(regarding, "BootConfigurationError")
                .await
                .is_empty()
        })
        .await;
        for event in h.events_for(regarding, "BootConfigurationError").await {
            let note = event.note.unwrap_or_default();
            assert!(
                note.contains("ImageValidationFailed")
                    && !note.contains("WaitingForPrerequisites:"),
                "{regarding}: the Event names the failure, not a waiting step: {note}"
            );
        }
    }
    assert_eq!(
        h.power_on_requests(&uuid).len(),
        before,
        "power-on while Error"
    );
    backend.shutdown().await;
}

async fn stale_generation_scenario(gate: ReadinessGate) -> (Harness, String, String, usize) {
    let mut options = HarnessOptions::new(1);
    options.config = test_config(gate);
    let mut h = Harness::start(options).await;
    let (server, uuid, _) = reserved_with_claim(&mut h, "c").await;
    let before = h.power_on_requests(&uuid).len();
    // The backend validated generation 1, then the claim's image changed: the SBC is at generation 2.
    let sbc = h.sbcs(NS).get("c").await.unwrap();
    let g1 = sbc.metadata.generation.unwrap();
    h.merge_claim("c", json!({"spec": {"image": "ghcr.io/example/os:2.0"}}))
        .await;
    h.wait_for(&h.sbcs(NS), "c", T, "SBC follows claim", |s| {
        s.spec.image.as_deref() == Some("ghcr.io/example/os:2.0")
    })
    .await;
    h.backend_set(NS, "c", "Ready", vec![image_resolved(Some(g1))])
        .await;
    (h, server, uuid, before)
}

#[tokio::test]
async fn ready_for_an_older_generation_does_not_open_the_gate() {
    let (h, server, uuid, before) = stale_generation_scenario(ReadinessGate::Strict).await;
    wait_gate_reason(&h, &server, "StaleGeneration").await;
    no_power_on_meanwhile(&h, &uuid, before, "power-on on a stale Ready").await;
    let g2 = h.sbcs(NS).get("c").await.unwrap().metadata.generation;
    h.backend_set(NS, "c", "Ready", vec![image_resolved(g2)])
        .await;
    h.wait_power(&server, "On").await;
    assert_eq!(h.power_on_requests(&uuid).len(), before + 1);
}

#[tokio::test]
async fn upstream_gate_powers_on_a_stale_ready() {
    // Documents the difference: `--readiness-gate=upstream` only compares `state == Ready`.
    let (h, server, uuid, before) = stale_generation_scenario(ReadinessGate::Upstream).await;
    h.wait_power(&server, "On").await;
    assert_eq!(h.power_on_requests(&uuid).len(), before + 1);
}

#[tokio::test]
async fn missing_sbc_blocks_discovery_power_on() {
    let mut h = Harness::start(HarnessOptions::new(1)).await;
    let (server, uuid) = h.discovering().await;
    h.sbcs(NS)
        .delete(&server, &DeleteParams::default())
        .await
        .unwrap();
    wait_gate_reason(&h, &server, "BootConfigurationMissing").await;
    h.reconciles(3).await;
    assert!(
        h.power_on_requests(&uuid).is_empty(),
        "power-on with a missing SBC"
    );
    assert_eq!(h.server_state(&server).await, "Discovery");
}

#[tokio::test]
async fn sbc_deleted_mid_flight_is_recreated_and_gated_again() {
    let mut h = Harness::start(HarnessOptions::new(1)).await;
    let (server, uuid, _) = reserved_with_claim(&mut h, "c").await;
    let before = h.power_on_requests(&uuid).len();
    let old = h.sbcs(NS).get("c").await.unwrap();
    h.sbcs(NS)
        .delete("c", &DeleteParams::default())
        .await
        .unwrap();
    // The claim reconciler recreates it; the fresh object starts without a verdict (Pending).
    let fresh = h
        .wait_for(&h.sbcs(NS), "c", T, "recreated SBC", |s| {
            s.uid() != old.uid()
        })
        .await;
    assert_ne!(fresh.uid(), old.uid());
    h.wait_for(&h.sbcs(NS), "c", T, "Pending", |s| {
        s.status
            .as_ref()
            .and_then(|st| st.state.as_ref())
            .is_some_and(|st| st.as_str() == "Pending")
    })
    .await;
    no_power_on_meanwhile(&h, &uuid, before, "power-on after SBC deletion").await;
    ready_powers_on_once(&h, &server, &uuid, before).await;
}

/// Upstream bug #247: with an invalid claim image the server was power-cycled before its SBC was
/// Ready. Here: neither the claim nor an operator's reset annotation boots it while the SBC is in
/// Error, and the machine never attempts a boot.
#[tokio::test]
async fn regression_247_invalid_image_never_boots_the_server() {
    let mut h = Harness::start(HarnessOptions::new(1)).await;
    let (server, uuid) = h.discovered().await;
    let boots_before = boot_attempts(&h, &uuid);
    let power_ons_before = h.power_on_requests(&uuid).len();
    h.claim(
        "bad",
        Some(&server),
        "On",
        "ghcr.io/example/does-not-exist:0",
    )
    .await;
    h.wait_sbc("bad", "claim SBC").await;
    let failing = condition(
        "ImageValidation",
        "False",
        "ValidationFailed",
        "failed to resolve image",
        Some(1),
    );
    h.backend_set(NS, "bad", "Error", vec![failing]).await;
    wait_gate_reason(&h, &server, "ValidationFailed").await;
    // Even an explicit power-cycle request waits for the boot configuration.
    h.merge_server(&server, json!({"metadata": {"annotations": {"metal.ironcore.dev/operation": "power-cycle-server"}}})).await;
    eventually_async(|| async { !h.events_for(&server, "ResetDeferred").await.is_empty() }).await;
    h.reconciles(4).await;
    assert_eq!(
        h.power_on_requests(&uuid).len(),
        power_ons_before,
        "reset reached the BMC: {:#?}",
        h.events(&uuid)
    );
    assert_eq!(
        boot_attempts(&h, &uuid),
        boots_before,
        "machine attempted a boot"
    );
    assert_eq!(h.machine(&uuid).power_state(), sim_bmc::PowerState::Off);
}

#[tokio::test]
async fn discovery_times_out_while_waiting_for_the_sbc() {
    let mut options = HarnessOptions::new(1);
    options.config.discovery_timeout = Duration::from_secs(2);
    let mut h = Harness::start(options).await;
    let bmcs = h.create_bmcs_and_start().await;
    let server = format!("{}-system-0", bmcs[0]);
    h.wait_state(&server, "Discovery").await;
    // The backend never answers: the server goes back to Initial (and re-enters Discovery).
    eventually_async(|| async { !h.events_for(&server, "DiscoveryTimedOut").await.is_empty() })
        .await;
    let s = h.servers().get(&server).await.unwrap();
    let discovery = server_condition(&s, "Discovery").unwrap();
    assert!(
        discovery.reason == "TimedOut" || discovery.reason == "InProgress",
        "{discovery:?}"
    );
    assert!(h.power_on_requests(&h.first_system_uuid()).is_empty());
}

/// The backend flapping Ready -> Pending at the worst moment: once armed, the first time the
/// operator records its power-on intent for `server` (a status write with `PoweringOn=True`, the
/// last API write before the power-on goes to the BMC), the SBC is set back to Pending before
/// that write lands. Returns the hook and its arming switch (disarmed once it has fired).
fn flap_at_power_on_intent(h: &Harness, server: &str, sbc: &str) -> (ApiHook, Arc<AtomicBool>) {
    let armed = Arc::new(AtomicBool::new(false));
    let path = format!("/apis/metal.ironcore.dev/v1alpha1/servers/{server}/status");
    let api = Api::<ServerBootConfiguration>::namespaced(h.client.clone(), NS);
    let (sbc, switch) = (sbc.to_owned(), armed.clone());
    let hook: ApiHook = Arc::new(move |method, request_path, body| {
        let fire = method == http::Method::PATCH
            && request_path == path
            && records_power_on_intent(body)
            && switch.swap(false, Ordering::SeqCst);
        let (api, sbc) = (api.clone(), sbc.clone());
        Box::pin(async move {
            if fire {
                let patch = json!({ "status": { "state": "Pending" } });
                api.patch_status(&sbc, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .expect("backend flips to Pending");
            }
        })
    });
    (hook, armed)
}

fn records_power_on_intent(body: &bytes::Bytes) -> bool {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
        return false;
    };
    value["status"]["conditions"]
        .as_array()
        .is_some_and(|conditions| {
            conditions
                .iter()
                .any(|c| c["type"] == "PoweringOn" && c["status"] == "True")
        })
}

fn power_on_withheld(h: &Harness) -> u64 {
    h.operator.as_ref().unwrap().metrics.power_on_withheld()
}

#[tokio::test]
async fn claim_sbc_leaving_ready_before_the_power_on_withholds_it() {
    let mut h = Harness::start(HarnessOptions::new(1)).await;
    let server = format!("{}-system-0", h.fleet.bmcs()[0].name);
    let (hook, armed) = flap_at_power_on_intent(&h, &server, "c");
    h.operator_hook = Some(hook);
    let (server, uuid, _) = reserved_with_claim(&mut h, "c").await;
    let before = h.power_on_requests(&uuid).len();
    armed.store(true, Ordering::SeqCst);
    h.backend_set(NS, "c", "Ready", vec![]).await;
    eventually(T, "backend flapped", || !armed.load(Ordering::SeqCst)).await;
    wait_gate_reason(&h, &server, "Pending").await;
    no_power_on_meanwhile(
        &h,
        &uuid,
        before,
        "power-on sent although the SBC went Pending after the gate opened",
    )
    .await;
    assert!(power_on_withheld(&h) >= 1);
    let s = h.servers().get(&server).await.unwrap();
    assert!(
        server_condition(&s, "PoweringOn").is_none_or(|c| c.status != "True"),
        "withheld power-on left as intent: {s:?}"
    );
    ready_powers_on_once(&h, &server, &uuid, before).await;
}

#[tokio::test]
async fn discovery_sbc_leaving_ready_before_the_power_on_withholds_it() {
    let mut h = Harness::start(HarnessOptions::new(1)).await;
    let server = format!("{}-system-0", h.fleet.bmcs()[0].name);
    let uuid = h.first_system_uuid();
    let (hook, armed) = flap_at_power_on_intent(&h, &server, &server);
    armed.store(true, Ordering::SeqCst);
    h.operator_hook = Some(hook);
    h.create_bmcs().await;
    h.start_operator().await;
    h.wait_sbc(&server, "discovery SBC").await;
    h.backend_set(NS, &server, "Ready", vec![]).await;
    eventually(T, "backend flapped", || !armed.load(Ordering::SeqCst)).await;
    wait_gate_reason(&h, &server, "Pending").await;
    h.reconciles(3).await;
    assert!(
        h.power_on_requests(&uuid).is_empty(),
        "discovery power-on sent although the SBC went Pending after the gate opened"
    );
    assert!(power_on_withheld(&h) >= 1);
    h.backend_set(NS, &server, "Ready", vec![]).await;
    h.wait_state(&server, "Available").await;
    assert_eq!(h.power_on_requests(&uuid).len(), 1);
}

fn boot_attempts(h: &Harness, uuid: &str) -> usize {
    h.events(uuid)
        .iter()
        .filter(|e| matches!(e.kind, sim_bmc::MachineEventKind::BootAttempt { .. }))
        .count()
}

async fn eventually_async<F, Fut>(mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + T;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not reached within {T:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
