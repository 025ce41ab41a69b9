//! The `sim-boot` binary: flag errors exit 2 with a message; a real run against an API server via a kubeconfig
//! serves what it reports.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::*;
use sim_boot::oci::names;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_sim-boot");

#[tokio::test]
async fn bad_flags_exit_2_with_a_message() {
    for (args, needle) in [
        (
            vec!["--misbehave", "ready-always"],
            "unknown misbehaviour \"ready-always\"",
        ),
        (
            vec!["--boot-modes", "tftp", "--kubeconfig", "/nonexistent"],
            "--boot-modes: unknown mode \"tftp\"",
        ),
        (
            vec!["--kubeconfig", "/nonexistent/kubeconfig"],
            "reading /nonexistent/kubeconfig",
        ),
    ] {
        let output = Command::new(BIN).args(&args).output().await.unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
}

#[tokio::test]
async fn serves_against_a_kubeconfig() {
    let api = apiserver::Server::start(apiserver::Options::default())
        .await
        .unwrap();
    api.install_crds(&metal_api::crds::all()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    api.write_kubeconfig(&kubeconfig).unwrap();
    let mut child = Command::new(BIN)
        .args([
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--registry-listen",
            "127.0.0.1:0",
        ])
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let banner = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.contains("boot server at") {
                return line;
            }
        }
        panic!("sim-boot exited without a banner");
    })
    .await
    .expect("banner within 30 s");
    // "sim-boot: boot server at http://A, registry at http://B, misbehaviour none"
    let url = field_after(&banner, "boot server at ");
    let registry = field_after(&banner, "registry at http://");
    let env_client = api.client();
    let uuid = "2c4a1e5b-0000-4000-8000-0000000000c1";
    let env = CliEnv { client: env_client };
    env.prepare(uuid, &format!("{registry}/{}", names::OS_V1))
        .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let got = http_client::HttpClient::hyper()
            .get(&format!("{url}/ipxe/{uuid}"))
            .await
            .unwrap();
        if got.status == 200 {
            assert!(String::from_utf8_lossy(&got.body).starts_with("#!ipxe"));
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "never served");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    child.kill().await.unwrap();
}

struct CliEnv {
    client: kube::Client,
}

impl CliEnv {
    async fn prepare(&self, uuid: &str, image: &str) {
        use kube::api::{Patch, PatchParams, PostParams};
        let server = metal_api::Server::new(
            "cli",
            metal_api::ServerSpec {
                system_uuid: uuid.into(),
                ..Default::default()
            },
        );
        kube::Api::<metal_api::Server>::all(self.client.clone())
            .create(&PostParams::default(), &server)
            .await
            .unwrap();
        let spec = metal_api::ServerBootConfigurationSpec {
            server_ref: k8s_openapi::api::core::v1::LocalObjectReference { name: "cli".into() },
            image: Some(image.into()),
            ignition_secret_ref: None,
        };
        let sbcs =
            kube::Api::<metal_api::ServerBootConfiguration>::namespaced(self.client.clone(), NS);
        sbcs.create(
            &PostParams::default(),
            &metal_api::ServerBootConfiguration::new("cli", spec),
        )
        .await
        .unwrap();
        let patch =
            serde_json::json!({"spec": {"bootConfigurationRef": {"namespace": NS, "name": "cli"}}});
        kube::Api::<metal_api::Server>::all(self.client.clone())
            .patch("cli", &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
    }
}

/// The text in `banner` from after `marker` to the next comma.
fn field_after(banner: &str, marker: &str) -> String {
    let rest = banner.split(marker).nth(1).unwrap();
    rest.split(',').next().unwrap().to_string()
}
