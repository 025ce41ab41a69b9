//! Ctrl-C during a run: the suite stops, deletes exactly what it created, and still writes its report.

mod common;

use conformance::fixtures::{SUITE_LABEL, sbc_resource, server_resource};
use kube::api::{Api, DynamicObject, ListParams};
use sim_boot::Misbehaviour;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_ctrl_c_cleans_up_everything_the_suite_created() {
    // A backend that never becomes Ready keeps every check busy until its deadline: the interrupt lands mid-run.
    let (env, backend) = common::sim_boot_env(Misbehaviour::NeverReady, Duration::ZERO).await;
    let dir = tempfile::tempdir().unwrap();
    let images = env.registries.images();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_conformance"))
        .arg("certify")
        .arg("--kubeconfig")
        .arg(&env.kubeconfig)
        .args([
            "--valid-image",
            &images.valid,
            "--profile",
            "core",
            "--quiet",
        ])
        .arg("--report-dir")
        .arg(dir.path())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run conformance");
    let client = env.api.client().await.unwrap();
    let sbcs: Api<DynamicObject> = Api::all_with(client.clone(), &sbc_resource());
    let labelled = ListParams::default().labels(SUITE_LABEL);
    // Interrupt once the suite has created SBCs.
    let until = tokio::time::Instant::now() + Duration::from_secs(30);
    while sbcs.list(&labelled).await.unwrap().items.is_empty() {
        assert!(
            tokio::time::Instant::now() < until,
            "the suite created no SBC"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let pid = nix::unistd::Pid::from_raw(child.id().unwrap() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    let status = tokio::time::timeout(Duration::from_secs(60), child.wait())
        .await
        .expect("exits")
        .unwrap();
    assert_eq!(
        status.code(),
        Some(1),
        "an interrupted run is not conformant"
    );
    let report = std::fs::read_to_string(dir.path().join("report.json")).expect("report written");
    assert!(report.contains("the run was interrupted"), "{report}");
    let servers: Api<DynamicObject> = Api::all_with(client.clone(), &server_resource());
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::all(client.clone());
    assert!(
        sbcs.list(&labelled).await.unwrap().items.is_empty(),
        "SBCs left behind"
    );
    assert!(
        servers.list(&labelled).await.unwrap().items.is_empty(),
        "Servers left behind"
    );
    assert!(
        secrets.list(&labelled).await.unwrap().items.is_empty(),
        "Secrets left behind"
    );
    backend.shutdown().await;
    env.api.shutdown().await;
}
