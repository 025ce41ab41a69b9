//! The images, run: hack/container-images.sh builds them from this build's binaries on a base made with
//! debootstrap, and testcontainers runs each workload of config/overlays/kind with the args, env, ports,
//! user, read-only root filesystem and mounts the manifests give it, on a Docker network where the
//! Services' DNS names resolve to the containers they select. Without a Docker engine (or without the
//! tools to build the images) every test says why and skips; METAL_HARNESS_CONTAINER_TESTS=require
//! (set by .ci/run) makes that a failure.

mod common;
mod docker;

use std::time::Duration;

use deploy::manifests::{Manifests, kind_of};
use deploy::pods::PodPlan;
use docker::{eventually, service_hosts};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use metal_api::{BMC, Server, ServerClaim};
use serde_json::{Value, json};

const OS_IMAGE: &str =
    "sim-boot-registry.metal-harness-system.svc.cluster.local:5000/ironcore/os:1.0";

fn kind_overlay() -> Manifests {
    common::build("overlays/kind")
}

fn plan(m: &Manifests, kind: &str, name: &str) -> PodPlan {
    PodPlan::from_manifests(m, kind, name).unwrap_or_else(|e| panic!("{kind} {name}: {e}"))
}

/// The API server image alone: it runs as 65532 on a read-only root, serves TLS with the token to kubectl
/// on the host, takes the CRDs, and answers its health endpoints.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apiserver_image_serves_kubectl_read_only_as_65532() {
    let Some(run) = docker::prepare("api") else {
        return;
    };
    let api = docker::start_apiserver(&run, &kind_overlay()).await;
    api.started.assert_user(65532);
    let crds = api.kubectl(&["get", "crd", "-o", "name"]);
    assert!(crds.contains("servers.metal.ironcore.dev"), "{crds}");
    for path in ["/healthz", "/readyz", "/livez"] {
        let out = api.kubectl(&["get", "--raw", path]);
        assert_eq!(out.trim(), "ok", "{path}");
    }
    drop(api);
    run.assert_clean();
}

/// The quickstart across containers: the API server, sim-boot, the operator and the sim-bmc fleet each in
/// its own container as config/overlays/kind runs them; the fleet's BMC is registered as
/// config/overlays/kind/fleet does (with the container's address), both servers are discovered through a
/// network boot of the probe OS, a claim boots the OS image, and its release powers the server off and
/// returns it to Available. Every probe of the manifests answers, and the operator's metrics are served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quickstart_across_containers() {
    let Some(run) = docker::prepare("quickstart") else {
        return;
    };
    let overlay = kind_overlay();
    let api = docker::start_apiserver(&run, &overlay).await;

    let sim_boot = run
        .start(&plan(&overlay, "Deployment", "sim-boot"), &api.extra())
        .await;
    let mut extra = api.extra();
    extra.hosts.extend(service_hosts(&sim_boot));
    let operator = run
        .start(&plan(&overlay, "Deployment", "metal-operator"), &extra)
        .await;
    extra.hosts.extend(service_hosts(&operator));
    let sim_bmc = run
        .start(&plan(&overlay, "Deployment", "sim-bmc"), &extra)
        .await;
    let all = [&sim_boot, &operator, &sim_bmc];
    let logs = || async {
        let mut out = String::new();
        for c in all {
            out.push_str(&c.logs().await);
            out.push('\n');
        }
        out
    };
    for c in all {
        c.wait_probes(Duration::from_secs(60)).await;
        c.assert_user(65532);
    }

    // The BMC as config/overlays/kind/fleet registers it, at the sim-bmc container's address.
    let fleet = common::build("overlays/kind/fleet");
    let mut objects = fleet.objects().to_vec();
    for o in &mut objects {
        if kind_of(o) == "BMC" {
            o["spec"]["access"]["ip"] = json!(sim_bmc.ip.to_string());
        }
    }
    let fleet = Manifests::parse(
        &objects
            .iter()
            .map(|o| format!("---\n{o}\n"))
            .collect::<String>(),
    )
    .expect("fleet objects");
    let fleet_file = run.file(&fleet.to_yaml());
    api.kubectl(&["apply", "--server-side", "-f", fleet_file.to_str().unwrap()]);

    let client = api.client.clone();
    let bmcs = Api::<BMC>::all(client.clone());
    let servers = Api::<Server>::all(client.clone());
    let enabled = eventually("BMC sim-bmc-0 Enabled", Duration::from_secs(60), || async {
        let b = bmcs.get("sim-bmc-0").await.map_err(|e| e.to_string())?;
        let state = serde_json::to_value(&b.status).unwrap_or_default()["state"].clone();
        if state == "Enabled" {
            Ok(())
        } else {
            Err(format!("state {state}"))
        }
    })
    .await;
    if let Err(e) = enabled {
        panic!("{e}\n{}", logs().await);
    }
    let discovered = eventually(
        "both servers Available (discovered)",
        Duration::from_secs(180),
        || async {
            let list = servers
                .list(&ListParams::default())
                .await
                .map_err(|e| e.to_string())?;
            let states: Vec<Value> = list
                .items
                .iter()
                .map(|s| serde_json::to_value(&s.status).unwrap_or_default()["state"].clone())
                .collect();
            if states.len() == 2 && states.iter().all(|s| s == "Available") {
                Ok(list.items)
            } else {
                Err(format!("{states:?}"))
            }
        },
    )
    .await;
    let discovered = match discovered {
        Ok(d) => d,
        Err(e) => panic!("{e}\n{}", logs().await),
    };
    assert_eq!(discovered.len(), 2);

    // A claim boots the OS image from sim-boot's registry.
    let secrets = Api::<Secret>::namespaced(client.clone(), "default");
    let secret = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some("web-ignition".into()),
            ..Default::default()
        },
        data: Some(
            [(
                metal_api::constants::IGNITION_KEY.to_string(),
                k8s_openapi::ByteString(br#"{"ignition":{"version":"3.4.0"}}"#.to_vec()),
            )]
            .into(),
        ),
        ..Default::default()
    };
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .expect("ignition secret");
    let claims = Api::<ServerClaim>::namespaced(client.clone(), "default");
    let claim: ServerClaim = serde_json::from_value(json!({
        "apiVersion": metal_api::API_VERSION, "kind": "ServerClaim",
        "metadata": {"name": "web"},
        "spec": {"power": "On", "image": OS_IMAGE, "ignitionSecretRef": {"name": "web-ignition"}},
    }))
    .unwrap();
    claims
        .create(&PostParams::default(), &claim)
        .await
        .expect("claim");
    let control = sim_bmc.url("control").await;
    let http = http_client::HttpClient::hyper().with_timeout(Duration::from_secs(5));
    let booted = eventually(
        "the claim's server boots ironcore/os:1.0",
        Duration::from_secs(120),
        || async {
            let c = claims.get("web").await.map_err(|e| e.to_string())?;
            let server = c
                .spec
                .server_ref
                .as_ref()
                .ok_or("not bound".to_string())?
                .name
                .clone();
            let s = servers.get(&server).await.map_err(|e| e.to_string())?;
            let uuid = s.spec.system_uuid.clone();
            let machine = machine(&http, &control, &uuid).await?;
            let os = machine["runningOs"]["image"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            if machine["powerState"] == "On" && os.ends_with("ironcore/os:1.0") {
                Ok((server, uuid))
            } else {
                Err(format!("machine {machine}"))
            }
        },
    )
    .await;
    let (server, uuid) = match booted {
        Ok(b) => b,
        Err(e) => panic!("{e}\n{}", logs().await),
    };

    // The operator's metrics endpoint (the ServiceMonitor's target) serves its reconcile counters.
    let metrics = http
        .get(&format!("{}/metrics", operator.url("metrics").await))
        .await
        .expect("operator metrics");
    let text = String::from_utf8_lossy(&metrics.body);
    assert!(
        metrics.status.is_success() && text.contains("reconcile"),
        "{text}"
    );

    // The release powers the server off and returns it to Available.
    claims
        .delete("web", &DeleteParams::default())
        .await
        .expect("delete claim");
    let released = eventually(
        "the released server Available and off",
        Duration::from_secs(120),
        || async {
            let s = servers.get(&server).await.map_err(|e| e.to_string())?;
            let state = serde_json::to_value(&s.status).unwrap_or_default()["state"].clone();
            let m = machine(&http, &control, &uuid).await?;
            if state == "Available" && m["powerState"] == "Off" {
                Ok(())
            } else {
                Err(format!("server {state}, machine {}", m["powerState"]))
            }
        },
    )
    .await;
    if let Err(e) = released {
        panic!("{e}\n{}", logs().await);
    }

    // SIGTERM, as the kubelet and `docker stop` send it to PID 1: each component exits by itself, except
    // sim-boot, which stops on SIGINT only (config/sim-boot/deployment.yaml keeps its grace period short).
    for c in all {
        let (code, took) = c.stop_like_kubelet().await;
        println!(
            "{} on SIGTERM: exit {code:?} after {:.1}s",
            c.plan.workload,
            took.as_secs_f64()
        );
        if c.plan.workload != "sim-boot" {
            assert_eq!(
                code,
                Some(0),
                "{} did not exit on SIGTERM\n{}",
                c.plan.workload,
                c.logs().await
            );
        }
    }
    drop((sim_bmc, operator, sim_boot, api));
    run.assert_clean();
}

/// The conformance image certifies the sim-boot container from outside it, with the arguments of
/// config/conformance/job (core and boot profiles: its simulated machines network-boot from sim-boot).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_image_certifies_the_sim_boot_container() {
    let Some(run) = docker::prepare("conformance") else {
        return;
    };
    let (code, logs) = certify(&run, &[]).await;
    assert_eq!(code, Some(0), "conformance against sim-boot\n{logs}");
    run.assert_clean();
}

/// The same run against a sim-boot container that reports Ready before it serves anything is not
/// conformant: the container path can fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_image_rejects_a_lying_sim_boot_container() {
    let Some(run) = docker::prepare("conformance-lying") else {
        return;
    };
    let (code, logs) = certify(&run, &["--misbehave=ready-before-serving"]).await;
    assert!(
        matches!(code, Some(c) if c != 0),
        "a backend that is Ready before serving passed: exit {code:?}\n{logs}"
    );
    run.assert_clean();
}

/// sim-boot (with `extra_args`) and the conformance Job's container; the suite's exit code and output.
async fn certify(run: &docker::Run, extra_args: &[&str]) -> (Option<i64>, String) {
    let overlay = kind_overlay();
    let api = docker::start_apiserver(run, &overlay).await;
    let mut backend = plan(&overlay, "Deployment", "sim-boot");
    backend
        .args
        .extend(extra_args.iter().map(|a| a.to_string()));
    let sim_boot = run.start(&backend, &api.extra()).await;
    sim_boot.wait_probes(Duration::from_secs(60)).await;
    let job = common::build("conformance/job");
    let both = Manifests::parse(&format!("{}{}", overlay.to_yaml(), job.to_yaml())).unwrap();
    let suite = plan(&both, "Job", "conformance");
    let mut extra = api.extra();
    extra.hosts.extend(service_hosts(&sim_boot));
    // The Job's kubeconfig ConfigMap holds the in-cluster ServiceAccount's; here the API server's token.
    let mounted = suite
        .files
        .iter()
        .find(|(p, _)| p.ends_with("/kubeconfig"))
        .map(|(p, _)| p.clone())
        .expect("the Job mounts a kubeconfig");
    extra.files = vec![(mounted, api.in_network_kubeconfig.clone())];
    extra.env.clear();
    extra.run_to_exit = Some(Duration::from_secs(600));
    let started = std::time::Instant::now();
    let conformance = run.start(&suite, &extra).await;
    let code = conformance.container.exit_code().await.expect("exit code");
    println!(
        "conformance (core,boot) against the sim-boot container {extra_args:?}: exit {code:?} in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    let logs = format!("{}\n{}", conformance.logs().await, sim_boot.logs().await);
    (code, logs)
}

/// Where Docker can pull from a registry (a laptop): a real Kubernetes API server (k3s, via
/// testcontainers' k3s module) runs the kind overlay with these images, registers the BMC, and runs the
/// conformance Job, as hack/kind-up.sh and hack/kind-conformance.sh do on kind. Skips where no registry
/// answers (here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn k3s_runs_the_overlay_and_the_conformance_job() {
    let Some(run) = docker::prepare("k3s") else {
        return;
    };
    let k3s_image = "rancher/k3s:v1.28.8-k3s1";
    // The k3s image is the one thing pulled from a registry; without one this test cannot run anywhere.
    if let Err(e) = deploy::tools::run_tool("docker", &["pull", "--quiet", k3s_image]) {
        println!("SKIP: no registry answers, so {k3s_image} cannot be pulled: {e}");
        return;
    }
    k3s::run(&run).await;
    run.assert_clean();
}

/// One machine from the sim-bmc control API (`GET /machines`).
async fn machine(
    http: &http_client::HttpClient,
    control: &str,
    uuid: &str,
) -> Result<Value, String> {
    let r = http.get(&format!("{control}/machines")).await?;
    let list: Value = serde_json::from_slice(&r.body).map_err(|e| e.to_string())?;
    list.as_array()
        .into_iter()
        .flatten()
        .find(|m| m["uuid"] == uuid)
        .cloned()
        .ok_or_else(|| format!("no machine {uuid} in {list}"))
}

mod k3s {
    //! The k3s path: images saved into k3s's auto-import directory, the overlay applied with kubectl.

    use std::time::Duration;

    use testcontainers::ImageExt;
    use testcontainers::core::{AccessMode, Mount};
    use testcontainers::runners::AsyncRunner;
    use testcontainers_modules::k3s::{K3s, KUBE_SECURE_PORT};

    use super::docker::{IMAGES, Run, TAG};
    use deploy::tools::{repo_root, run_tool};

    pub async fn run(run: &Run) {
        let dir = tempfile::tempdir().unwrap();
        let images = dir.path().join("images");
        std::fs::create_dir(&images).unwrap();
        // k3s imports every tarball in agent/images at start; the kind overlay wants tag `dev`.
        let mut refs = Vec::new();
        for image in IMAGES.iter().filter(|i| **i != "apiserver") {
            let dev = format!("metal-harness/{image}:dev");
            run_tool(
                "docker",
                &["tag", &format!("metal-harness/{image}:{TAG}"), &dev],
            )
            .unwrap();
            refs.push(dev);
        }
        let tar = images.join("metal-harness.tar");
        let mut args = vec!["save".to_string(), "-o".into(), tar.display().to_string()];
        args.extend(refs);
        run_tool("docker", &args).unwrap();
        let conf = dir.path().join("conf");
        std::fs::create_dir(&conf).unwrap();
        let k3s = K3s::default()
            .with_conf_mount(&conf)
            .with_privileged(true)
            .with_userns_mode("host")
            // The kind overlay pins the sim-bmc Service to 10.96.200.10 (kind's service range).
            .with_cmd([
                "server",
                "--disable=traefik",
                "--service-cidr=10.96.0.0/16",
                "--cluster-dns=10.96.0.10",
            ])
            .with_label("metal-harness.test-run", run.id.clone())
            .with_mount(
                Mount::bind_mount(
                    images.display().to_string(),
                    "/var/lib/rancher/k3s/agent/images",
                )
                .with_access_mode(AccessMode::ReadOnly),
            )
            .with_startup_timeout(Duration::from_secs(300))
            .start()
            .await
            .expect("k3s");
        let port = k3s.get_host_port_ipv4(KUBE_SECURE_PORT).await.unwrap();
        let kubeconfig = std::fs::read_to_string(conf.join("k3s.yaml")).expect("k3s.yaml");
        let kubeconfig = kubeconfig.replace(
            "https://127.0.0.1:6443",
            &format!("https://127.0.0.1:{port}"),
        );
        let path = dir.path().join("kubeconfig");
        std::fs::write(&path, kubeconfig).unwrap();
        let root = repo_root();
        let kubectl = |args: &[&str]| {
            let mut all = vec!["--kubeconfig", path.to_str().unwrap()];
            all.extend_from_slice(args);
            run_tool("kubectl", &all).unwrap_or_else(|e| panic!("kubectl {args:?}: {e}"))
        };
        let at = |rel: &str| root.join(rel).display().to_string();
        kubectl(&[
            "apply",
            "--server-side",
            "-f",
            &at("deploy/tests/fixtures/servicemonitor-crd.yaml"),
        ]);
        kubectl(&["apply", "--server-side", "-k", &at("config")]);
        kubectl(&crate::docker::WAIT_FOR_CRDS);
        kubectl(&["apply", "--server-side", "-k", &at("config/overlays/kind")]);
        for (ns, deployment) in [
            ("metal-operator-system", "metal-operator"),
            ("metal-harness-system", "sim-boot"),
            ("metal-harness-system", "sim-bmc"),
        ] {
            kubectl(&[
                "-n",
                ns,
                "rollout",
                "status",
                &format!("deployment/{deployment}"),
                "--timeout=110s",
            ]);
        }
        kubectl(&[
            "apply",
            "--server-side",
            "-k",
            &at("config/overlays/kind/fleet"),
        ]);
        kubectl(&[
            "wait",
            "--for=jsonpath={.status.state}=Enabled",
            "bmc/sim-bmc-0",
            "--timeout=120s",
        ]);
        kubectl(&["apply", "-k", &at("config/conformance/job")]);
        kubectl(&[
            "-n",
            "metal-harness-system",
            "wait",
            "--for=condition=Complete",
            "job/conformance",
            "--timeout=110s",
        ]);
        drop(k3s);
    }
}
