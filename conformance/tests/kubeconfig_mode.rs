//! `certify --kubeconfig`: the path a vendor with a running cluster uses. The "cluster" here is the embedded API
//! server with sim-boot running in this process; the CLI only gets a kubeconfig, images and the boot URL template.

mod common;

use sim_boot::Misbehaviour;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_kubeconfig_mode_certifies_with_declared_images() {
    let (env, backend) = common::sim_boot_env(Misbehaviour::None, Duration::ZERO).await;
    let images = env.registries.images();
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_conformance"));
    cmd.arg("certify").arg("--kubeconfig").arg(&env.kubeconfig);
    cmd.args(["--valid-image", &images.valid]);
    // No unresolvable image declared: its rules are skipped with a reason, and the run cannot pass.
    cmd.args(["--valid-image-alt", images.valid_alt.as_deref().unwrap()]);
    cmd.args([
        "--missing-layer-image",
        images.missing_layer.as_deref().unwrap(),
    ]);
    cmd.args([
        "--disallowed-image",
        images.disallowed_registry.as_deref().unwrap(),
    ]);
    cmd.args(["--boot-url-template", &backend.boot_url_template()]);
    cmd.args([
        "--profile",
        "core,boot",
        "--quiet",
        "--implementation",
        "sim-boot",
    ]);
    cmd.arg("--report-dir").arg(dir.path());
    let out = cmd.output().await.expect("run conformance");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("report.json")).expect("report.json"),
    )
    .expect("json");
    let verdict = |id: &str| {
        report["rules"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == id)
            .unwrap()["verdict"]
            .clone()
    };
    assert_eq!(verdict("SBC-IMG-001"), "skip", "{stdout}");
    assert_eq!(
        out.status.code(),
        Some(1),
        "a skipped MUST rule is not a pass: {stdout}"
    );
    for id in [
        "SBC-CORE-001",
        "SBC-IMG-002",
        "SBC-IMG-003",
        "SBC-GEN-002",
        "SBC-BOOT-001",
        "SBC-BOOT-003",
    ] {
        assert_eq!(verdict(id), "pass", "{id}: {stdout}");
    }
    backend.shutdown().await;
    env.api.shutdown().await;
}
