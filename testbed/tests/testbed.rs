//! The builder end to end: every part started, talking in-process where it can, and restarts that keep what
//! clients hold on to.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams};
use metal_api::Server;
use sim_bmc::fleet::{BindMode, FleetOptions, FleetSpec};
use testbed::{ApiSpec, Backend, FleetSetup, OperatorSetup, Testbed, Transport};

/// Polls `check` until it holds, or fails after `timeout` naming `what`.
async fn eventually<F, Fut>(timeout: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_whole_stack_starts_in_process_and_discovers_its_servers() {
    let mut spec = FleetSpec::uniform(2, sim_bmc::vendor::Vendor::Dell, 7);
    spec.defaults.latencies = Some(sim_bmc::fleet::spec::LatencySpec::uniform(10));
    let fleet = FleetSetup::new(
        spec,
        FleetOptions {
            network_boot: Some(Arc::new(netboot::Netboot::new(Default::default()))),
            bind: BindMode::InProcess,
            ..FleetOptions::default()
        },
    );
    let mut setup = OperatorSetup::new(operator::config::Config::default());
    setup.record_redfish = true;
    let bed = Testbed::builder()
        .transport(Transport::InProcess)
        .backend(Backend::InProcess(
            sim_boot::BackendOptions::default().into(),
        ))
        .fleet(fleet)
        .bmc_objects()
        .operator(setup)
        .start()
        .await
        .expect("the testbed starts");
    // The fleet boots from the in-process backend unless told otherwise.
    let sim_boot_url = bed.sim_boot().expect("sim-boot").url().to_string();
    assert!(
        sim_boot_url.starts_with("http://127.0.0.1:"),
        "{sim_boot_url}"
    );
    let servers = Api::<Server>::all(bed.client.clone());
    eventually(Duration::from_secs(60), "a Server per system", || {
        let servers = servers.clone();
        async move {
            servers
                .list(&Default::default())
                .await
                .is_ok_and(|l| l.items.len() == 2)
        }
    })
    .await;
    let requests = bed.redfish_requests();
    assert!(
        requests
            .lock()
            .unwrap()
            .iter()
            .any(|r| r.path.starts_with("/redfish/v1")),
        "the operator reached the BMCs through the recording in-process connector"
    );
    bed.shutdown().await;
}

#[tokio::test]
async fn restarts_keep_data_addresses_and_in_process_clients() {
    let mut bed = Testbed::builder()
        .api(ApiSpec::Embedded { durable: true })
        .transport(Transport::InProcess)
        .backend(Backend::InProcess(
            sim_boot::BackendOptions::default().into(),
        ))
        .start()
        .await
        .expect("the testbed starts");
    let maps = Api::<ConfigMap>::namespaced(bed.client.clone(), "default");
    let mut map = ConfigMap::default();
    map.metadata.name = Some("kept".into());
    maps.create(&PostParams::default(), &map).await.unwrap();

    bed.api.restart().await.expect("the API server restarts");
    // The same client, built before the restart, reaches the new server and its restored data.
    assert!(maps.get_opt("kept").await.unwrap().is_some());

    let url = bed.sim_boot().unwrap().url().to_string();
    bed.restart_backend().await.expect("sim-boot restarts");
    let backend = bed.sim_boot().unwrap();
    assert_eq!(backend.url(), url);
    assert_eq!(backend.handle().expect("running").url(), url);
    bed.shutdown().await;
}

#[tokio::test]
async fn a_restart_without_data_is_refused_and_the_server_keeps_running() {
    let mut bed = Testbed::builder().start().await.unwrap();
    let error = bed.api.restart().await.unwrap_err().to_string();
    assert!(error.contains("without a data dir"), "{error}");
    assert!(bed.api.handle().is_some());
    Api::<ConfigMap>::namespaced(bed.client.clone(), "default")
        .list(&Default::default())
        .await
        .expect("still serving");
    bed.shutdown().await;
}

#[tokio::test]
async fn a_child_backend_gets_the_kubeconfig_and_is_supervised() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("backend.log");
    let bed = Testbed::builder()
        .backend(Backend::Child {
            spec: testbed::ChildSpec {
                program: testbed::Program::Shell(
                    "grep -c server: \"$KUBECONFIG\"; sleep 30".into(),
                ),
                env: vec![],
                log: Some(log),
            },
            boot_url_template: "http://127.0.0.1:1/ipxe/{uuid}".into(),
            observer: None,
        })
        .start()
        .await
        .unwrap();
    let supervisor = bed.backend.as_ref().unwrap().supervisor().unwrap().clone();
    eventually(
        Duration::from_secs(10),
        "the child read its kubeconfig",
        || {
            let tail = supervisor.log_tail(1);
            async move { tail == vec!["1".to_string()] }
        },
    )
    .await;
    bed.shutdown().await;
    let exits = supervisor.exits();
    assert_eq!(exits.len(), 1, "{exits:?}");
    assert!(exits[0].expected, "{exits:?}");
    assert!(supervisor.crashes().is_empty());
}
