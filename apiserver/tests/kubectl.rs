//! The real kubectl (/usr/bin/kubectl) against the embedded server: CRDs, discovery, explain, printer columns,
//! apply (client- and server-side), status patches, wait, watch and delete blocking on a finalizer.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use apiserver::Handle;
use tokio::process::Command;

const KUBECTL: &str = "/usr/bin/kubectl";

struct Kubectl {
    _dir: tempfile::TempDir,
    kubeconfig: PathBuf,
    cache: PathBuf,
}

impl Kubectl {
    fn new(h: &Handle) -> Self {
        assert!(
            Path::new(KUBECTL).exists(),
            "kubectl is required at {KUBECTL} for these tests"
        );
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        h.write_kubeconfig(&kubeconfig).unwrap();
        let cache = dir.path().join("cache");
        Kubectl {
            _dir: dir,
            kubeconfig,
            cache,
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(KUBECTL);
        c.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(&self.cache)
            .args(args);
        c.stdin(Stdio::null()).kill_on_drop(true);
        c
    }

    async fn run(&self, args: &[&str]) -> Output {
        tokio::time::timeout(Duration::from_secs(60), self.command(args).output())
            .await
            .unwrap_or_else(|_| panic!("kubectl {args:?} timed out"))
            .expect("kubectl runs")
    }

    /// Runs kubectl and returns stdout, failing with kubectl's stderr if it exits non-zero.
    async fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args).await;
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}\n{stdout}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }
}

fn crds_dir() -> String {
    format!(
        "{}/../../shared/upstream/metal-operator/crds/",
        env!("CARGO_MANIFEST_DIR")
    )
}

fn write(dir: &Path, name: &str, body: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, body).unwrap();
    p.to_string_lossy().into_owned()
}

const SERVER: &str = "apiVersion: metal.ironcore.dev/v1alpha1
kind: Server
metadata:
  name: srv-1
  labels: {rack: r1}
spec:
  systemUUID: 38947555-7742-3448-3784-823347823834
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crds_discovery_explain_and_printer_columns() {
    let h = common::start().await;
    let k = Kubectl::new(&h);
    let out = k.ok(&["apply", "-f", &crds_dir()]).await;
    assert!(out.contains("servers.metal.ironcore.dev created"), "{out}");
    let resources = k
        .ok(&["api-resources", "--api-group=metal.ironcore.dev"])
        .await;
    for kind in [
        "Server",
        "BMC",
        "ServerClaim",
        "ServerBootConfiguration",
        "Endpoint",
    ] {
        assert!(
            resources.contains(kind),
            "{kind} missing from api-resources:\n{resources}"
        );
    }
    let explain = k.ok(&["explain", "servers.spec"]).await;
    assert!(explain.contains("systemUUID"), "{explain}");
    // Built-in kinds carry the upstream schemas (from k8s-openapi).
    let explain = k.ok(&["explain", "configmap.data"]).await;
    assert!(
        explain.contains("Data contains the configuration data"),
        "{explain}"
    );
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "srv.yaml", SERVER);
    k.ok(&["apply", "-f", &file]).await;
    let table = k.ok(&["get", "servers"]).await;
    let header = table.lines().next().unwrap();
    for col in [
        "NAME",
        "SYSTEMUUID",
        "MANUFACTURER",
        "POWERSTATE",
        "STATE",
        "AGE",
    ] {
        assert!(header.contains(col), "{col} missing in {header}");
    }
    assert!(table.contains("38947555-7742-3448-3784-823347823834"));
    let wide = k
        .ok(&["get", "servers", "-o", "wide", "-l", "rack=r1"])
        .await;
    assert!(
        wide.lines().next().unwrap().contains("SERIALNUMBER"),
        "{wide}"
    );
    assert!(wide.contains("srv-1"));
    let none = k.ok(&["get", "servers", "-l", "rack=r2"]).await;
    assert!(!none.contains("srv-1"));
    let yaml = k.ok(&["get", "srv", "srv-1", "-o", "yaml"]).await;
    assert!(
        yaml.contains("generation: 1") && yaml.contains("uid:"),
        "{yaml}"
    );
    h.shutdown().await;
}

/// A fresh server with the metal CRDs applied through kubectl.
async fn with_metal_crds() -> (Handle, Kubectl) {
    let h = common::start().await;
    let k = Kubectl::new(&h);
    k.ok(&["apply", "-f", &crds_dir()]).await;
    (h, k)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_side_apply_status_patch_wait_and_watch() {
    let (h, k) = with_metal_crds().await;
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "srv.yaml", SERVER);
    let out = k.ok(&["apply", "--server-side", "-f", &file]).await;
    assert!(out.contains("serverside-applied"), "{out}");
    let managers = k
        .ok(&[
            "get",
            "server",
            "srv-1",
            "--show-managed-fields",
            "-o",
            "jsonpath={.metadata.managedFields[*].manager}",
        ])
        .await;
    assert!(managers.contains("kubectl"), "{managers}");

    let mut watch = k
        .command(&["get", "servers", "-w"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = common::stdout_lines(&mut watch);
    let first = common::next_line(&mut lines).await;
    assert!(first.contains("NAME"), "{first}");

    let waiter = k
        .command(&[
            "wait",
            "--for=jsonpath={.status.state}=Ready",
            "server/srv-1",
            "--timeout=30s",
        ])
        .output();
    let waiter = tokio::spawn(waiter);
    k.ok(&[
        "patch",
        "server",
        "srv-1",
        "--type",
        "merge",
        "--subresource",
        "status",
        "-p",
        r#"{"status":{"state":"Ready"}}"#,
    ])
    .await;
    let waited = tokio::time::timeout(Duration::from_secs(40), waiter)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(
        waited.status.success(),
        "{}",
        String::from_utf8_lossy(&waited.stderr)
    );
    // The watch streams the change with the new printer-column value.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let line = tokio::time::timeout(left, lines.next_line())
            .await
            .expect("watch line")
            .unwrap()
            .unwrap();
        if line.contains("srv-1") && line.contains("Ready") {
            break;
        }
    }
    watch.kill().await.unwrap();
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_blocks_on_finalizer() {
    let (h, k) = with_metal_crds().await;
    let dir = tempfile::tempdir().unwrap();
    let held = SERVER.replace("labels: {rack: r1}", "finalizers: [test.metal.dev/hold]");
    let file = write(dir.path(), "srv.yaml", &held);
    k.ok(&["apply", "-f", &file]).await;
    let mut delete = k
        .command(&["delete", "server", "srv-1", "--timeout=60s"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let marked = common::eventually(30, "deletionTimestamp", || async {
        let ts = k
            .ok(&[
                "get",
                "server",
                "srv-1",
                "-o",
                "jsonpath={.metadata.deletionTimestamp}",
            ])
            .await;
        (!ts.is_empty()).then_some(ts)
    })
    .await;
    assert!(!marked.is_empty());
    assert!(
        delete.try_wait().unwrap().is_none(),
        "kubectl delete must wait while the finalizer holds the object"
    );
    k.ok(&[
        "patch",
        "server",
        "srv-1",
        "--type",
        "json",
        "-p",
        r#"[{"op":"remove","path":"/metadata/finalizers"}]"#,
    ])
    .await;
    let status = tokio::time::timeout(Duration::from_secs(30), delete.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success());
    let gone = k.run(&["get", "server", "srv-1"]).await;
    assert!(String::from_utf8_lossy(&gone.stderr).contains("NotFound"));
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_creates_of_builtin_kinds() {
    let h = common::start().await;
    let k = Kubectl::new(&h);
    // kubectl's typed clients send protobuf for these.
    k.ok(&["create", "namespace", "team-a"]).await;
    k.ok(&[
        "create",
        "configmap",
        "settings",
        "-n",
        "team-a",
        "--from-literal=a=1",
        "--from-literal=b=2",
    ])
    .await;
    k.ok(&[
        "create",
        "secret",
        "generic",
        "creds",
        "-n",
        "team-a",
        "--from-literal=user=admin",
    ])
    .await;
    let cms = k.ok(&["get", "configmaps", "-n", "team-a"]).await;
    let row = cms
        .lines()
        .find(|l| l.starts_with("settings"))
        .expect("settings listed");
    assert_eq!(
        row.split_whitespace().nth(1),
        Some("2"),
        "DATA column: {cms}"
    );
    let user = k
        .ok(&[
            "get",
            "secret",
            "creds",
            "-n",
            "team-a",
            "-o",
            "jsonpath={.data.user}",
        ])
        .await;
    assert_eq!(user, "YWRtaW4=");
    let phase = k
        .ok(&["get", "ns", "team-a", "-o", "jsonpath={.status.phase}"])
        .await;
    assert_eq!(phase, "Active");
    k.ok(&[
        "label",
        "configmap",
        "settings",
        "-n",
        "team-a",
        "tier=gold",
    ])
    .await;
    let labelled = k
        .ok(&["get", "cm", "-n", "team-a", "-l", "tier=gold", "-o", "name"])
        .await;
    assert_eq!(labelled.trim(), "configmap/settings");
    k.ok(&["delete", "namespace", "team-a", "--timeout=60s"])
        .await;
    let gone = k.run(&["get", "ns", "team-a"]).await;
    assert!(String::from_utf8_lossy(&gone.stderr).contains("NotFound"));
    h.shutdown().await;
}
