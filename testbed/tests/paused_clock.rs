//! The in-process parts on a paused tokio clock (what the simulated-time mode builds on): the API server reached
//! through its router, an in-process fleet and the operator reconcile as they do on the wall clock, and an hour
//! of virtual time costs no wall time.

use std::time::Duration;

use kube::api::Api;
use metal_api::Server;
use sim_bmc::fleet::FleetSpec;

#[tokio::test(start_paused = true)]
async fn api_fleet_and_operator_run_on_a_paused_clock() {
    let wall = std::time::Instant::now();
    let fleet = FleetSpec::uniform(2, sim_bmc::vendor::Vendor::Lenovo, 5);
    let bed = testbed::sim::fleet_and_operator(fleet, operator::config::Config::default())
        .start()
        .await
        .expect("the testbed starts on a paused clock");
    let servers = Api::<Server>::all(bed.client.clone());
    let virtual_start = tokio::time::Instant::now();
    let deadline = virtual_start + Duration::from_secs(600);
    while servers.list(&Default::default()).await.unwrap().items.len() < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no Servers within 10 virtual minutes"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // An hour of fleet life: resyncs and polls fire on the virtual clock.
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert_eq!(
        servers.list(&Default::default()).await.unwrap().items.len(),
        2
    );
    println!(
        "virtual {:?} in wall {:?}",
        virtual_start.elapsed(),
        wall.elapsed()
    );
    bed.shutdown().await;
}
