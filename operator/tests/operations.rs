//! The `metal.ironcore.dev/operation` annotation end to end: park/unpark, every reset value,
//! ignore, retry, unknown values, and the BMC reset.

mod common;

use std::time::Duration;

use common::*;
use kube::api::{Api, Patch, PatchParams};
use metal_api::{BMC, Server, ServerClaim};
use serde_json::json;

const T: Duration = Duration::from_secs(30);

fn annotations(s: &Server) -> std::collections::BTreeMap<String, String> {
    s.metadata.annotations.clone().unwrap_or_default()
}

#[tokio::test]
async fn park_and_unpark_available_server() {
    let mut h = Harness::start(HarnessOptions::new(1)).await;
    let (server, _) = h.discovered().await;
    h.annotate(&server, Some("park")).await;
    let s = h.wait_state(&server, "Parked").await;
    let s = if annotations(&s).contains_key("metal.ironcore.dev/operation") {
        h.wait_annotation_gone(&server).await
    } else {
        s
    };
    assert_eq!(
        annotations(&s)
            .get("metal.ironcore.dev/parked")
            .map(String::as_str),
        Some("true")
    );
    h.annotate(&server, Some("unpark")).await;
    let s = h.wait_state(&server, "Available").await;
    assert!(!annotations(&s).contains_key("metal.ironcore.dev/parked"));
}

#[tokio::test]
async fn park_reserved_server_powers_off_drops_other_operations_and_unpark_resumes() {
    let mut h = Harness::start(HarnessOptions::new(1)).await;
    let (server, uuid) = h.running("c").await;
    h.annotate(&server, Some("park")).await;
    h.wait_state(&server, "Parked").await;
    assert_eq!(
        h.machine(&uuid).power_state(),
        sim_bmc::PowerState::Off,
        "parking powers off"
    );
    let power_ons = h.power_on_requests(&uuid).len();
    // While parked, other operations are dropped and no power healing happens despite claim power On.
    h.annotate(&server, Some("force-on-server")).await;
    h.wait_annotation_gone(&server).await;
    h.wait_event(&server, "ParkedOperationDropped").await;
    h.reconciles(3).await;
    assert_eq!(h.power_on_requests(&uuid).len(), power_ons);
    let claim = Api::<ServerClaim>::namespaced(h.client.clone(), NS)
        .get("c")
        .await
        .unwrap();
    assert!(
        claim.status.unwrap().phase.unwrap().as_str() == "Bound",
        "claim kept while parked"
    );
    h.annotate(&server, Some("unpark")).await;
    h.wait_state(&server, "Reserved").await;
    h.wait_power(&server, "On").await;
    assert_eq!(h.power_on_requests(&uuid).len(), power_ons + 1);
}

#[tokio::test]
async fn park_in_discovery_is_deferred() {
    let mut h = Harness::start(HarnessOptions::new(1)).await;
    let bmcs = h.create_bmcs_and_start().await;
    let server = format!("{}-system-0", bmcs[0]);
    h.wait_state(&server, "Discovery").await;
    h.annotate(&server, Some("park")).await;
    h.wait_event(&server, "ParkDeferred").await;
    let s = h.servers().get(&server).await.unwrap();
    assert_eq!(
        annotations(&s)
            .get("metal.ironcore.dev/operation")
            .map(String::as_str),
        Some("park"),
        "annotation kept"
    );
}

#[tokio::test]
async fn reset_operations_reach_the_bmc_and_are_consumed() {
    let mut h = Harness::start(HarnessOptions::new(1)).await;
    let (server, uuid) = h.running("c").await;
    for (operation, reset) in [
        ("graceful-restart-server", "GracefulRestart"),
        ("hard-restart-server", "ForceRestart"),
        ("power-cycle-server", "PowerCycle"),
        ("force-off-server", "ForceOff"),
    ] {
        let before = h.resets(&uuid).iter().filter(|r| *r == reset).count();
        h.annotate(&server, Some(operation)).await;
        h.wait_annotation_gone(&server).await;
        let after = h.resets(&uuid).iter().filter(|r| *r == reset).count();
        assert_eq!(
            after,
            before + 1,
            "{operation} sent {reset}: {:?}",
            h.resets(&uuid)
        );
        h.wait_power(&server, "On").await;
    }
    // Dell-like BMCs do not list ForceOn: the request is reported and dropped, not retried forever.
    h.annotate(&server, Some("force-on-server")).await;
    h.wait_annotation_gone(&server).await;
    h.wait_event(&server, "ResetFailed").await;
    assert!(!h.resets(&uuid).contains(&"ForceOn".to_owned()));
}

#[tokio::test]
async fn ignore_skips_reconciles_and_unknown_operations_are_dropped() {
    let mut h = Harness::start(HarnessOptions::new(1)).await;
    let (server, uuid) = h.discovered().await;
    h.claim("c", Some(&server), "On", "img:1").await;
    h.wait_sbc("c", "claim SBC").await;
    h.wait_state(&server, "Reserved").await;
    h.annotate(&server, Some("ignore")).await;
    h.reconciles(2).await;
    let before = h.power_on_requests(&uuid).len();
    h.backend_set(NS, "c", "Ready", vec![]).await;
    h.reconciles(4).await;
    assert_eq!(
        h.power_on_requests(&uuid).len(),
        before,
        "ignored server was acted on"
    );
    h.annotate(&server, Some("definitely-not-an-operation"))
        .await;
    h.wait_annotation_gone(&server).await;
    h.wait_event(&server, "UnsupportedOperation").await;
    h.wait_power(&server, "On").await;
}

#[tokio::test]
async fn retry_moves_an_errored_server_back_to_initial() {
    let mut h = Harness::start(HarnessOptions::new(1)).await;
    let (server, _) = h.discovered().await;
    h.annotate(&server, Some("ignore")).await;
    h.merge_server_status(&server, json!({"status": {"state": "Error"}}))
        .await;
    h.annotate(&server, Some("retry")).await;
    h.wait_annotation_gone(&server).await;
    // Back through discovery.
    h.wait_for(&h.servers(), &server, T, "left Error", |s: &Server| {
        s.status
            .as_ref()
            .and_then(|st| st.state.as_ref())
            .is_some_and(|st| ["Initial", "Discovery"].contains(&st.as_str()))
    })
    .await;
}

#[tokio::test]
async fn graceful_restart_bmc_resets_the_manager() {
    let mut h = Harness::start(HarnessOptions::new(1)).await;
    let bmcs = h.create_bmcs_and_start().await;
    let api = Api::<BMC>::all(h.client.clone());
    h.wait_for(&api, &bmcs[0], T, "Ready", |b: &BMC| {
        let conditions = b.status.as_ref().map(|s| s.conditions.as_slice());
        metal_api::is_condition_true(conditions.unwrap_or_default(), "Ready")
    })
    .await;
    api.patch(&bmcs[0], &PatchParams::default(), &Patch::Merge(json!({"metadata": {"annotations": {"metal.ironcore.dev/operation": "graceful-restart-bmc"}}}))).await.unwrap();
    let bmc = h
        .wait_for(&api, &bmcs[0], T, "Reset condition", |b: &BMC| {
            b.status.as_ref().is_some_and(|s| {
                s.conditions
                    .iter()
                    .any(|c| c.type_ == "Reset" && c.reason == "UserRequested")
            })
        })
        .await;
    assert!(
        !bmc.metadata
            .annotations
            .unwrap_or_default()
            .contains_key("metal.ironcore.dev/operation")
    );
}
