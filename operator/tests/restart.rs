//! Operator restarts in the middle of every state: the new instance resumes from what the API
//! server holds, never sends a second power-on and never loses a claim.

mod common;

use std::time::Duration;

use common::*;
use kube::api::{Api, DeleteParams};
use metal_api::ServerClaim;
use serde_json::json;

const T: Duration = Duration::from_secs(30);

async fn restart(h: &mut Harness) {
    h.stop_operator().await;
    h.start_operator().await;
    h.reconciles(3).await;
}

fn bound(claim: &ServerClaim) -> bool {
    claim
        .status
        .as_ref()
        .and_then(|s| s.phase.as_ref())
        .is_some_and(|p| p.as_str() == "Bound")
}

#[tokio::test]
async fn restart_during_discovery_and_in_available() {
    let mut h = Harness::start(HarnessOptions::new(1)).await;
    let (server, uuid) = h.discovering().await;
    restart(&mut h).await;
    assert_eq!(h.server_state(&server).await, "Discovery");
    h.backend_set(NS, &server, "Ready", vec![]).await;
    h.wait_state(&server, "Available").await;
    h.wait_power(&server, "Off").await;
    restart(&mut h).await;
    h.wait_state(&server, "Available").await;
    assert_eq!(
        h.power_on_requests(&uuid),
        vec!["On".to_owned()],
        "one discovery power-on across restarts"
    );
}

#[tokio::test]
async fn restart_while_power_on_is_in_flight_sends_no_second_power_on() {
    let mut options = HarnessOptions::new(1);
    if let Some(latencies) = options.fleet.defaults.latencies.as_mut() {
        latencies.power_on_ms = 1500;
    }
    let mut h = Harness::start(options).await;
    let (server, uuid) = h.discovered().await;
    let claims = Api::<ServerClaim>::namespaced(h.client.clone(), NS);
    h.claim("c", Some(&server), "On", "img:1").await;
    h.wait_sbc("c", "claim SBC").await;
    h.reconciles(2).await;
    let before = h.power_on_requests(&uuid).len();
    restart(&mut h).await; // Reserved, SBC Pending
    assert_eq!(h.power_on_requests(&uuid).len(), before);
    h.backend_set(NS, "c", "Ready", vec![]).await;
    let requests = || h.power_on_requests(&uuid).len();
    eventually(T, "power-on sent", || requests() > before).await;
    restart(&mut h).await; // power-on in flight (the machine takes 1.5 s)
    h.wait_power(&server, "On").await;
    restart(&mut h).await; // Reserved and On
    assert_eq!(
        h.power_on_requests(&uuid).len(),
        before + 1,
        "exactly one power-on: {:?}",
        h.resets(&uuid)
    );
    let claim = claims.get("c").await.unwrap();
    assert!(bound(&claim), "claim lost: {claim:?}");
    assert_eq!(h.claim_ref_of(&server).await.unwrap(), "c");
}

#[tokio::test]
async fn restart_during_release_parked_and_released() {
    let mut h = Harness::start(HarnessOptions::new(1)).await;
    let (server, uuid) = h.running("c").await;
    let power_ons = h.power_on_requests(&uuid).len();
    // Parked survives a restart and stays powered off.
    h.annotate(&server, Some("park")).await;
    h.wait_state(&server, "Parked").await;
    restart(&mut h).await;
    h.wait_state(&server, "Parked").await;
    assert_eq!(h.power_on_requests(&uuid).len(), power_ons);
    h.annotate(&server, Some("unpark")).await;
    h.wait_power(&server, "On").await;
    let power_ons = h.power_on_requests(&uuid).len();
    // Release with Retain, restarting while the power-off is awaited and once Released.
    h.merge_server(&server, json!({"spec": {"reclaimPolicy": "Retain"}}))
        .await;
    Api::<ServerClaim>::namespaced(h.client.clone(), NS)
        .delete("c", &DeleteParams::default())
        .await
        .unwrap();
    restart(&mut h).await;
    h.wait_state(&server, "Released").await;
    restart(&mut h).await;
    h.wait_state(&server, "Released").await;
    assert_eq!(
        h.power_on_requests(&uuid).len(),
        power_ons,
        "no power-on after release"
    );
    assert_eq!(h.machine(&uuid).power_state(), sim_bmc::PowerState::Off);
}
