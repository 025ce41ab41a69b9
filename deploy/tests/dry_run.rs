//! Every manifest passes `kubectl apply --dry-run=server` against the embedded API server: real kubectl,
//! real discovery, the CRD schemas (and CEL rules) of the metal kinds, and nothing is persisted.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use common::{build, config};
use deploy::manifests::{Manifests, kind_of, name_of};
use deploy::tools::run_tool;
use serde_json::Value;

struct Cluster {
    handle: apiserver::Handle,
    kubeconfig: PathBuf,
    _dir: tempfile::TempDir,
}

async fn kubectl(kubeconfig: &Path, args: &[&str]) -> Result<String, String> {
    let mut full = vec!["--kubeconfig".to_string(), kubeconfig.display().to_string()];
    full.extend(args.iter().map(|a| a.to_string()));
    tokio::task::spawn_blocking(move || run_tool("kubectl", &full).map_err(|e| e.to_string()))
        .await
        .unwrap()
}

/// The embedded server with the CRDs installed by `kubectl apply --server-side -k config`, the
/// ServiceMonitor stand-in, and the namespaces the overlays use (a dry run creates no namespace).
async fn cluster() -> Cluster {
    let handle = apiserver::Server::start(apiserver::Options::default())
        .await
        .expect("apiserver");
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    handle.write_kubeconfig(&kubeconfig).unwrap();
    let crds = config("").display().to_string();
    kubectl(&kubeconfig, &["apply", "--server-side", "-k", &crds])
        .await
        .expect("installing the CRDs with kubectl");
    let monitor =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/servicemonitor-crd.yaml");
    kubectl(
        &kubeconfig,
        &["apply", "-f", &monitor.display().to_string()],
    )
    .await
    .expect("ServiceMonitor CRD");
    kubectl(
        &kubeconfig,
        &[
            "wait",
            "--for=condition=Established",
            "--timeout=30s",
            "crd",
            "--all",
        ],
    )
    .await
    .expect("CRDs established");
    let namespaces = build("overlays/kind").filtered(|o| kind_of(o) == "Namespace");
    apply_file(&kubeconfig, dir.path(), "namespaces", &namespaces, &[])
        .await
        .expect("namespaces");
    Cluster {
        handle,
        kubeconfig,
        _dir: dir,
    }
}

async fn apply_file(
    kubeconfig: &Path,
    dir: &Path,
    name: &str,
    m: &Manifests,
    extra: &[&str],
) -> Result<String, String> {
    let file = dir.join(format!("{name}.yaml"));
    std::fs::write(&file, m.to_yaml()).unwrap();
    let file = file.display().to_string();
    let mut args = vec!["apply", "-f", file.as_str()];
    args.extend_from_slice(extra);
    kubectl(kubeconfig, &args).await
}

/// `(apiVersion, kind)` pairs the server's discovery lists.
async fn served_kinds(handle: &apiserver::Handle) -> BTreeSet<(String, String)> {
    let discovery = kube::Discovery::new(handle.client())
        .run()
        .await
        .expect("discovery");
    let mut out = BTreeSet::new();
    for group in discovery.groups() {
        for (resource, _) in group.recommended_resources() {
            out.insert((resource.api_version.clone(), resource.kind.clone()));
        }
    }
    out
}

fn key(o: &Value) -> (String, String) {
    (
        o["apiVersion"].as_str().unwrap().to_string(),
        kind_of(o).to_string(),
    )
}

/// Dry-runs `m` and checks kubectl reported every object as a server dry run.
/// Dry-runs `m` with client-side apply and with server-side apply (`--server-side`, the way the scripts
/// apply), and checks kubectl reported every object as a server dry run each time.
async fn dry_run(c: &Cluster, name: &str, m: &Manifests) {
    for mode in [
        &["--dry-run=server"][..],
        &["--server-side", "--dry-run=server"][..],
    ] {
        let out = apply_file(&c.kubeconfig, c._dir.path(), name, m, mode)
            .await
            .unwrap_or_else(|e| panic!("{name}: kubectl apply {mode:?} failed:\n{e}"));
        let lines: Vec<&str> = out.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(
            lines.len(),
            m.objects().len(),
            "{name} {mode:?}: one line per object:\n{out}"
        );
        assert!(
            lines.iter().all(|l| l.ends_with("(server dry run)")),
            "{name} {mode:?}:\n{out}"
        );
    }
}

/// Objects of every kind the embedded server serves pass a server-side dry run, and none is stored.
/// Kinds it does not serve (yet) are listed; the full run is `every_manifest_passes_a_server_side_dry_run`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn served_kinds_pass_a_server_side_dry_run() {
    let c = cluster().await;
    let served = served_kinds(&c.handle).await;
    let mut covered = BTreeSet::new();
    for rel in [
        "overlays/kind",
        "overlays/operator-only",
        "overlays/kind/fleet",
        "conformance/job",
    ] {
        let all = build(rel);
        let (ok, missing): (Vec<&Value>, Vec<&Value>) =
            all.objects().iter().partition(|o| served.contains(&key(o)));
        let missing: BTreeSet<String> = missing
            .iter()
            .map(|o| format!("{}/{}", o["apiVersion"].as_str().unwrap(), kind_of(o)))
            .collect();
        if !missing.is_empty() {
            println!(
                "config/{rel}: the embedded API server does not serve {missing:?}; those objects were not dry-run"
            );
        }
        let servable = all.filtered(|o| served.contains(&key(o)));
        if !ok.is_empty() {
            dry_run(&c, &rel.replace('/', "-"), &servable).await;
        }
        covered.extend(ok.iter().map(|o| kind_of(o).to_string()));
    }
    for kind in [
        "Namespace",
        "Service",
        "ServiceAccount",
        "ConfigMap",
        "BMC",
        "BMCSecret",
        "ServiceMonitor",
    ] {
        assert!(
            covered.contains(kind),
            "{kind} was not dry-run: {covered:?}"
        );
    }
    // Nothing was persisted by the dry runs (the namespaces were created beforehand, on purpose).
    let bmcs = kubectl(&c.kubeconfig, &["get", "bmcs", "-o", "name"])
        .await
        .unwrap();
    let monitors = kubectl(
        &c.kubeconfig,
        &["get", "servicemonitors", "-A", "-o", "name"],
    )
    .await
    .unwrap();
    let services = kubectl(
        &c.kubeconfig,
        &[
            "get",
            "services",
            "-n",
            "metal-operator-system",
            "-o",
            "name",
        ],
    )
    .await
    .unwrap();
    assert_eq!(
        (bmcs.trim(), monitors.trim(), services.trim()),
        ("", "", ""),
        "a dry run stored objects"
    );
    c.handle.shutdown().await;
}

/// A dry run is validated: a BMC that breaks its CRD's CEL rule (both `access` and `endpointRef`) is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_of_an_invalid_bmc_is_refused_with_the_schema_error() {
    let c = cluster().await;
    let mut fleet = build("overlays/kind/fleet");
    let broken = fleet.filtered(|o| kind_of(o) == "BMC");
    let mut bmc = broken.objects()[0].clone();
    bmc["spec"]["endpointRef"] = serde_json::json!({"name": "also-an-endpoint"});
    fleet = Manifests::parse(&format!("---\n{bmc}\n")).unwrap();
    let err = apply_file(
        &c.kubeconfig,
        c._dir.path(),
        "broken",
        &fleet,
        &["--dry-run=server"],
    )
    .await
    .unwrap_err();
    assert!(
        err.contains("Invalid") || err.contains("invalid"),
        "expected a validation error for {}: {err}",
        name_of(&bmc)
    );
    c.handle.shutdown().await;
}

/// Every manifest, Deployments, RBAC and the Job included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_manifest_passes_a_server_side_dry_run() {
    let c = cluster().await;
    for rel in [
        "overlays/kind",
        "overlays/operator-only",
        "overlays/kind/fleet",
        "conformance/job",
    ] {
        dry_run(&c, &rel.replace('/', "-"), &build(rel)).await;
    }
    c.handle.shutdown().await;
}
