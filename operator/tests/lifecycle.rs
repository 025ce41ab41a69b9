//! End-to-end Server lifecycle against the embedded API server and sim-bmc: BMC discovery,
//! Initial → Discovery → Available, claim → Reserved → power-on, release with power-off
//! confirmation (Recycle and Retain), and the BMC status.

mod common;

use std::time::Duration;

use common::*;
use kube::api::{Api, DeleteParams, PostParams};
use metal_api::{BMC, Server, ServerClaim, ServerClaimSpec};
use serde_json::json;

const T: Duration = Duration::from_secs(30);

async fn discovered(h: &mut Harness) -> (String, String) {
    let bmcs = h.create_bmcs_and_start().await;
    let server = format!("{}-system-0", bmcs[0]);
    let uuid = h.first_system_uuid();
    // Initial → Discovery: discovery SBC prepared; the backend answers Ready.
    h.wait_sbc(&server, "discovery SBC").await;
    h.backend_set(NS, &server, "Ready", vec![]).await;
    h.wait_state(&server, "Available").await;
    (server, uuid)
}

pub fn claim(name: &str, server: Option<&str>, power: &str) -> ServerClaim {
    let mut claim = ServerClaim::new(
        name,
        ServerClaimSpec {
            power: power.into(),
            server_ref: server
                .map(|s| k8s_openapi::api::core::v1::LocalObjectReference { name: s.into() }),
            server_selector: None,
            ignition_secret_ref: None,
            image: "ghcr.io/example/os:1.0".into(),
            user_data_ref: None,
            tolerations: vec![],
        },
    );
    claim.metadata.namespace = Some(NS.into());
    claim
}

#[tokio::test]
async fn bmc_discovery_fills_status_and_creates_owned_servers() {
    let mut h = Harness::start(HarnessOptions::new(1)).await;
    let bmcs = h.create_bmcs_and_start().await;
    let bmc_api = Api::<BMC>::all(h.client.clone());
    let bmc = h
        .wait_for(&bmc_api, &bmcs[0], T, "BMC Ready", |b: &BMC| {
            b.status.as_ref().is_some_and(|s| {
                s.conditions
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == "True" && c.reason == "Connected")
            })
        })
        .await;
    let status = bmc.status.unwrap();
    assert!(
        status.firmware_version.is_some() && status.manufacturer.is_some(),
        "{status:?}"
    );
    assert_eq!(status.state.as_ref().map(|s| s.as_str()), Some("Enabled"));
    let server_name = format!("{}-system-0", bmcs[0]);
    let server = h
        .wait_for(
            &h.servers(),
            &server_name,
            T,
            "server created",
            |_: &Server| true,
        )
        .await;
    let info = &h.fleet.bmcs()[0].systems[0];
    assert_eq!(server.spec.system_uuid, info.uuid.to_lowercase());
    assert_eq!(
        server.spec.system_uri.as_deref(),
        Some(info.odata_id.as_str())
    );
    let owner = &server.metadata.owner_references.unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str(), owner.controller),
        ("BMC", bmcs[0].as_str(), Some(true))
    );
}

#[tokio::test]
async fn discovery_boots_probe_and_server_becomes_available_powered_off() {
    let mut h = Harness::start(HarnessOptions::new(1)).await;
    let (server, uuid) = discovered(&mut h).await;
    let s = h.servers().get(&server).await.unwrap();
    let status = s.status.unwrap();
    // Discovery data from the probe's registration landed in the status.
    assert_eq!(
        status.network_interfaces[0].ips,
        vec!["10.0.0.10".to_owned()]
    );
    assert_eq!(
        status.network_interfaces[0].neighbors[0]
            .system_name
            .as_deref(),
        Some("leaf-1")
    );
    assert!(status.total_system_memory.is_some() && !status.processors.is_empty());
    // The internal discovery SBC is deleted and the reference cleared; the server is powered off.
    h.wait_for(
        &h.servers(),
        &server,
        T,
        "ref cleared, Off",
        |s: &Server| {
            s.spec.boot_configuration_ref.is_none()
                && s.status
                    .as_ref()
                    .and_then(|st| st.power_state.as_ref())
                    .is_some_and(|p| p.as_str() == "Off")
        },
    )
    .await;
    assert!(
        h.sbcs(NS).get_opt(&server).await.unwrap().is_none(),
        "discovery SBC deleted"
    );
    assert_eq!(
        h.power_on_requests(&uuid),
        vec!["On".to_owned()],
        "exactly one power-on for discovery"
    );
    // The PXE-once override was set before the power-on reached the BMC.
    let events = h.events(&uuid);
    let pxe = events.iter().position(|e| matches!(&e.kind, sim_bmc::MachineEventKind::BootOverrideChanged { target, enabled } if target == "Pxe" && enabled == "Once"));
    let on = events.iter().position(|e| matches!(&e.kind, sim_bmc::MachineEventKind::ResetRequested { reset_type, .. } if reset_type == "On"));
    assert!(
        pxe.is_some() && pxe < on,
        "PXE override before power-on: {events:#?}"
    );
}

#[tokio::test]
async fn claim_binds_reserves_powers_on_and_release_recycles() {
    let mut h = Harness::start(HarnessOptions::new(1)).await;
    let (server, uuid) = discovered(&mut h).await;
    let before = h.power_on_requests(&uuid).len();
    let claims = Api::<ServerClaim>::namespaced(h.client.clone(), NS);
    claims
        .create(&PostParams::default(), &claim("web", None, "On"))
        .await
        .unwrap();
    let s = h.wait_state(&server, "Reserved").await;
    let claim_ref = s.spec.server_claim_ref.unwrap();
    assert_eq!(
        (claim_ref.namespace.as_str(), claim_ref.name.as_str()),
        (NS, "web")
    );
    // The claim SBC: same name/namespace as the claim, owned by it, spec following the claim.
    let sbc = h.wait_sbc("web", "claim SBC").await;
    assert_eq!(sbc.spec.server_ref.name, server);
    assert_eq!(sbc.spec.image.as_deref(), Some("ghcr.io/example/os:1.0"));
    let owner = &sbc.metadata.owner_references.unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("ServerClaim", "web")
    );
    h.wait_for(&claims, "web", T, "Bound", |c: &ServerClaim| {
        c.status
            .as_ref()
            .and_then(|s| s.phase.as_ref())
            .is_some_and(|p| p.as_str() == "Bound")
    })
    .await;
    assert_eq!(
        h.power_on_requests(&uuid).len(),
        before,
        "no power-on before the SBC is Ready"
    );
    h.backend_set(NS, "web", "Ready", vec![]).await;
    h.wait_power(&server, "On").await;
    assert_eq!(h.power_on_requests(&uuid).len(), before + 1);
    // Release: the claim goes, the server powers off (confirmed) and is recycled.
    claims
        .delete("web", &DeleteParams::default())
        .await
        .unwrap();
    let s = h.wait_state(&server, "Available").await;
    assert!(s.spec.server_claim_ref.is_none() && s.spec.boot_configuration_ref.is_none());
    let s = h.wait_power(&server, "Off").await;
    let waiting = server_condition(&s, "WaitingForPowerOff").expect("power-off was awaited");
    assert_eq!(
        (waiting.status.as_str(), waiting.reason.as_str()),
        ("False", "PowerOffConfirmed")
    );
    assert_eq!(h.machine(&uuid).power_state(), sim_bmc::PowerState::Off);
    assert!(
        h.sbcs(NS).get_opt("web").await.unwrap().is_none(),
        "claim SBC deleted with the claim"
    );
}

#[tokio::test]
async fn retain_policy_releases_then_operator_clears_ref() {
    let mut h = Harness::start(HarnessOptions::new(1)).await;
    let (server, _) = discovered(&mut h).await;
    h.merge_server(&server, json!({"spec": {"reclaimPolicy": "Retain"}}))
        .await;
    let claims = Api::<ServerClaim>::namespaced(h.client.clone(), NS);
    claims
        .create(&PostParams::default(), &claim("db", Some(&server), "On"))
        .await
        .unwrap();
    h.wait_state(&server, "Reserved").await;
    h.wait_sbc("db", "claim SBC").await;
    h.backend_set(NS, "db", "Ready", vec![]).await;
    h.wait_power(&server, "On").await;
    claims.delete("db", &DeleteParams::default()).await.unwrap();
    let s = h.wait_state(&server, "Released").await;
    assert!(
        s.spec.server_claim_ref.is_some(),
        "Retain keeps the claim reference"
    );
    h.merge_server(&server, json!({"spec": {"serverClaimRef": null}}))
        .await;
    h.wait_state(&server, "Available").await;
}

#[tokio::test]
async fn claim_power_off_powers_server_down() {
    let mut h = Harness::start(HarnessOptions::new(1)).await;
    let (server, uuid) = discovered(&mut h).await;
    let claims = Api::<ServerClaim>::namespaced(h.client.clone(), NS);
    claims
        .create(&PostParams::default(), &claim("c", Some(&server), "On"))
        .await
        .unwrap();
    h.wait_sbc("c", "claim SBC").await;
    h.backend_set(NS, "c", "Ready", vec![]).await;
    h.wait_power(&server, "On").await;
    h.merge_claim("c", json!({"spec": {"power": "Off"}})).await;
    h.wait_power(&server, "Off").await;
    assert_eq!(h.machine(&uuid).power_state(), sim_bmc::PowerState::Off);
}
