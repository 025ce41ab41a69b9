//! Upstream's real time spans on a paused tokio clock: the operator's default 30-minute discovery timeout
//! fires (the backend never prepares the discovery boot) after 30 virtual minutes, at a small cost in wall time,
//! and not a virtual minute before.

mod common;

use std::time::Duration;

use kube::api::{Api, ListParams};
use metal_api::Server;
use sim_bmc::fleet::FleetSpec;

#[tokio::test(start_paused = true)]
async fn the_default_discovery_timeout_fires_after_thirty_virtual_minutes() {
    let wall = std::time::Instant::now();
    let config = operator::config::Config::default();
    assert_eq!(
        config.discovery_timeout,
        Duration::from_secs(30 * 60),
        "upstream's default"
    );
    let fleet = FleetSpec::uniform(1, sim_bmc::vendor::Vendor::Dell, 1);
    // No backend: the discovery ServerBootConfiguration is never Ready, so the strict gate keeps the
    // Server off and its discovery can only time out.
    let bed = testbed::sim::fleet_and_operator(fleet, config)
        .start()
        .await
        .expect("the testbed starts on a paused clock");
    let servers = Api::<Server>::all(bed.client.clone());
    let start = tokio::time::Instant::now();
    let in_discovery = loop {
        let found = servers
            .list(&ListParams::default())
            .await
            .expect("servers list")
            .items;
        if let Some(s) = found.into_iter().find(|s| {
            s.status
                .as_ref()
                .and_then(|st| st.state.as_ref())
                .map(|st| st.as_str())
                == Some("Discovery")
        }) {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "no Server in Discovery within 5 virtual minutes"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let name = in_discovery.metadata.name.clone().expect("a name");
    let entered = tokio::time::Instant::now();
    // Poll each virtual minute; the timeout must not fire early and must fire within a resync interval
    // (upstream's two minutes) of the thirty minutes.
    let fired_after = loop {
        if !common::events_about(&bed.client, &name, "DiscoveryTimedOut")
            .await
            .is_empty()
        {
            break entered.elapsed();
        }
        assert!(
            entered.elapsed() < Duration::from_secs(40 * 60),
            "no DiscoveryTimedOut within 40 virtual minutes"
        );
        tokio::time::sleep(Duration::from_secs(60)).await;
    };
    assert!(
        fired_after >= Duration::from_secs(29 * 60),
        "the 30-minute timeout fired after {fired_after:?}"
    );
    assert!(
        fired_after <= Duration::from_secs(33 * 60),
        "the 30-minute timeout fired only after {fired_after:?}"
    );
    let uuid = in_discovery.spec.system_uuid.clone();
    let machine = bed.fleet().machine(&uuid).expect("the Server's machine");
    assert_eq!(
        machine.power_state(),
        sim_bmc::PowerState::Off,
        "the strict gate kept the machine off throughout"
    );
    println!(
        "DiscoveryTimedOut after {fired_after:?} of virtual time, {:?} of wall time",
        wall.elapsed()
    );
    bed.shutdown().await;
}
