//! `--kubeconfig`: the `metal-harness` binary runs the quickstart against an API server it did not
//! start (served over TLS with a bearer token, as a real cluster is), reached only through the
//! kubeconfig file, and leaves its objects there.

use std::time::Duration;

use kube::Api;
use kube::api::ListParams;
use metal_api::{BMC, Server, ServerClaim};

/// The quickstart takes ~10 s here; a debug build on a loaded 2-core machine gets ample headroom.
const RUN_TIMEOUT: Duration = Duration::from_secs(240);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quickstart_runs_against_the_cluster_of_a_kubeconfig() {
    let data = tempfile::tempdir().unwrap();
    let cluster = apiserver::Server::start(apiserver::Options {
        secure: true,
        data_dir: Some(data.path().join("etcd")),
        ..apiserver::Options::default()
    })
    .await
    .expect("the cluster's API server starts");
    cluster
        .install_crds(&metal_api::crds::all())
        .await
        .expect("the metal CRDs install");
    let kubeconfig = data.path().join("kubeconfig");
    cluster.write_kubeconfig(&kubeconfig).unwrap();
    let before = cluster.resource_version();

    let out = data.path().join("out");
    let scenario = concat!(env!("CARGO_MANIFEST_DIR"), "/quickstart.yaml");
    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_metal-harness"))
        .args(["run", scenario, "--quiet", "--kubeconfig"])
        .arg(&kubeconfig)
        .arg("--out")
        .arg(&out)
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(RUN_TIMEOUT, run)
        .await
        .expect("the run ends within its timeout")
        .expect("metal-harness starts");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "exit {:?}\n{stdout}\n{stderr}",
        output.status.code()
    );

    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(
        report["apiServer"],
        cluster.url(),
        "the run used the kubeconfig's cluster, not an embedded one"
    );
    assert!(
        report["figures"].get("apiWrites").is_none(),
        "embedded-only figures appear without an embedded API server: {report:#}"
    );
    assert_eq!(report["serversByState"]["Available"], 3, "{stdout}");
    assert!(report["apiRequests"]["byComponent"]["operator"]["total"].as_u64() > Some(0));

    // The objects of the run live in this cluster.
    let client = cluster.client();
    let servers = Api::<Server>::all(client.clone())
        .list(&ListParams::default())
        .await
        .unwrap();
    assert_eq!(servers.items.len(), 4);
    let bmcs = Api::<BMC>::all(client.clone())
        .list(&ListParams::default())
        .await
        .unwrap();
    assert_eq!(bmcs.items.len(), 4);
    let claims = Api::<ServerClaim>::all(client)
        .list(&ListParams::default())
        .await
        .unwrap();
    let names: Vec<_> = claims
        .items
        .iter()
        .filter_map(|c| c.metadata.name.clone())
        .collect();
    assert_eq!(names, ["web-0"], "web-1 was deleted by the workload");
    assert!(cluster.resource_version() > before + 50);
    cluster.shutdown().await;
}
