//! The misbehaviour modes that lie about things other than booting: status vocabulary, missing Servers,
//! leftovers after deletion, and state lost across a restart. (The boot-visible lies are exercised by
//! netboot's tests; every mode also goes through the conformance self-test.)

mod common;

use std::time::Duration;

use common::*;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use sim_boot::oci::names;
use sim_boot::{Backend, Misbehaviour};

const UUID: &str = "2C4A1E5B-0000-4000-8000-0000000000c1";
const OTHER_UUID: &str = "2C4A1E5B-0000-4000-8000-0000000000c2";

#[tokio::test]
async fn invented_state_writes_preparing_instead_of_pending() {
    let env = env(Misbehaviour::InventedState).await;
    // Not referenced by its Server yet: honest sim-boot says Pending here.
    let waiting = env.unreferenced_machine("m", UUID).await;
    assert_eq!(state_of(&waiting), "Preparing");
    env.reference("m", "m").await;
    env.wait_state("m", "Ready").await;
}

#[tokio::test]
async fn ready_without_server_claims_ready_for_nobody() {
    let env = env(Misbehaviour::ReadyWithoutServer).await;
    env.sbc("m", "absent", &env.backend.image(names::OS_V1), None)
        .await;
    let ready = env.wait_state("m", "Ready").await;
    let server = condition(&ready, "ServerResolved").expect("ServerResolved");
    assert_eq!(server.status, "True", "{server:?}");
    assert_eq!(env.get(&format!("/ipxe/{UUID}")).await.status, 404);
    // Once the Server exists and references the SBC, its machine is served.
    env.server("absent", UUID).await;
    env.reference("absent", "m").await;
    let ipxe = format!("/ipxe/{UUID}");
    env.wait_for_status(&ipxe, 200, Duration::from_secs(20), "never served")
        .await;
}

#[tokio::test]
async fn leak_children_leaves_an_unowned_config_map_behind() {
    let env = env(Misbehaviour::LeakChildren).await;
    env.ready_machine("m", UUID).await;
    let children: Api<ConfigMap> = Api::namespaced(env.client.clone(), NS);
    env.sbcs().delete("m", &Default::default()).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while env.sbcs().get_opt("m").await.unwrap().is_some() {
        assert!(tokio::time::Instant::now() < deadline, "SBC never gone");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let child = children
        .get_opt("sim-boot-m")
        .await
        .unwrap()
        .expect("the child outlives its SBC");
    assert!(child.metadata.owner_references.is_none(), "{child:?}");
    let data = child.data.unwrap_or_default();
    assert_eq!(data["systemUUID"], UUID.to_lowercase());
}

#[tokio::test]
async fn watch_from_now_forgets_ready_configurations_across_a_restart() {
    let mut options = options(Misbehaviour::WatchFromNow);
    options.controller.misbehaviour_options.queue_delay = Duration::from_millis(300);
    let mut env = env_with(options.clone()).await;
    env.ready_machine("before", UUID).await;
    let old = std::mem::replace(
        &mut env.backend,
        Backend::start(env.client.clone(), options)
            .await
            .expect("backend restarts"),
    );
    old.shutdown().await;
    // Positive witness that the restarted controller runs: a configuration created after it is served.
    env.ready_machine("after", OTHER_UUID).await;
    assert_eq!(env.get(&format!("/ipxe/{OTHER_UUID}")).await.status, 200);
    // The one from before still says Ready, but its machine gets nothing.
    let before = env.sbcs().get("before").await.unwrap();
    assert_eq!(state_of(&before), "Ready");
    assert_eq!(env.get(&format!("/ipxe/{UUID}")).await.status, 404);
}

#[tokio::test]
async fn watch_gives_up_stops_provisioning_after_a_dropped_watch() {
    let env = env(Misbehaviour::WatchGivesUp).await;
    env.ready_machine("before", UUID).await;
    assert!(!env.backend.controller_stopped());
    env.api.faults().drop_watches();
    // The bug itself is the witness: the controller ends for good instead of relisting.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !env.backend.controller_stopped() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the controller outlived its broken watch"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let reconciles = env.backend.reconciles().started();
    env.server("after", OTHER_UUID).await;
    env.sbc("after", "after", &env.backend.image(names::OS_V1), None)
        .await;
    env.reference("after", "after").await;
    assert_eq!(env.backend.reconciles().started(), reconciles);
    assert_eq!(state_of(&env.sbcs().get("after").await.unwrap()), "");
}

#[tokio::test]
async fn single_worker_reconciles_one_configuration_at_a_time() {
    let mut options = options(Misbehaviour::SingleWorker);
    options.controller.misbehaviour_options.serial_delay = Duration::from_millis(200);
    let env = env_with(options).await;
    let names: Vec<String> = (0..4).map(|i| format!("m{i}")).collect();
    let started = tokio::time::Instant::now();
    for (i, name) in names.iter().enumerate() {
        env.server(name, &format!("2C4A1E5B-0000-4000-8000-0000000000d{i}"))
            .await;
        env.sbc(name, name, &env.backend.image(names::OS_V1), None)
            .await;
        env.reference(name, name).await;
    }
    for name in &names {
        env.wait_state(name, "Ready").await;
    }
    assert_eq!(env.backend.reconciles().peak_in_flight(), 1);
    // At least one 200 ms reconcile per configuration, one after the other.
    assert!(started.elapsed() >= Duration::from_millis(800));
}
