//! `kubectl kustomize` builds every kustomization, and what it yields matches what the binaries do:
//! container args parse with the binaries' own flag parsers, ports line up with Services and probes,
//! workloads are hardened, and every image has a Dockerfile target.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use clap::Parser as _;
use common::{KUSTOMIZATIONS, build, config};
use deploy::manifests::{Manifests, containers, kind_of, name_of, namespace_of, pod_spec};
use deploy::tools::repo_root;
use serde_json::Value;

fn counts(pairs: &[(&str, usize)]) -> BTreeMap<String, usize> {
    pairs.iter().map(|(k, n)| (k.to_string(), *n)).collect()
}

#[test]
fn every_kustomization_builds_with_the_expected_kinds() {
    let expected = [
        ("", counts(&[("CustomResourceDefinition", 8)])),
        (
            "overlays/kind",
            counts(&[
                ("ClusterRole", 5),
                ("ClusterRoleBinding", 4),
                ("ConfigMap", 2),
                ("Deployment", 3),
                ("Namespace", 2),
                ("Role", 2),
                ("RoleBinding", 2),
                ("Service", 6),
                ("ServiceAccount", 4),
                ("ServiceMonitor", 1),
            ]),
        ),
        (
            "overlays/operator-only",
            counts(&[
                ("ClusterRole", 1),
                ("ClusterRoleBinding", 1),
                ("Deployment", 1),
                ("Namespace", 1),
                ("Role", 2),
                ("RoleBinding", 2),
                ("Service", 2),
                ("ServiceAccount", 1),
            ]),
        ),
        (
            "overlays/kind/fleet",
            counts(&[("BMC", 1), ("BMCSecret", 1)]),
        ),
        ("conformance/job", counts(&[("Job", 1)])),
    ];
    assert_eq!(expected.len(), KUSTOMIZATIONS.len());
    for (rel, kinds) in expected {
        let built = build(rel);
        assert_eq!(built.kind_counts(), kinds, "config/{rel}");
    }
}

#[test]
fn the_crd_base_lists_every_generated_crd() {
    let listed: BTreeSet<String> = build("")
        .objects()
        .iter()
        .map(|crd| {
            format!(
                "{}.{}",
                crd["spec"]["names"]["plural"].as_str().unwrap(),
                crd["spec"]["group"].as_str().unwrap()
            )
        })
        .collect();
    let generated: BTreeSet<String> = std::fs::read_dir(config("crd"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|f| f.ends_with(".yaml"))
        .map(|f| {
            let (group, plural) = f.trim_end_matches(".yaml").split_once('_').unwrap();
            format!("{plural}.{group}")
        })
        .collect();
    assert_eq!(
        listed, generated,
        "config/kustomization.yaml must list every file in config/crd/"
    );
}

fn workloads(m: &Manifests) -> Vec<&Value> {
    m.objects()
        .iter()
        .filter(|o| {
            matches!(
                kind_of(o),
                "Deployment" | "Job" | "StatefulSet" | "DaemonSet"
            )
        })
        .collect()
}

#[test]
fn workloads_run_non_root_read_only_with_probes_and_resources() {
    for rel in ["overlays/kind", "conformance/job"] {
        let built = build(rel);
        for w in workloads(&built) {
            let id = format!("{rel}: {} {}", kind_of(w), name_of(w));
            let pod = pod_spec(w);
            assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{id}");
            assert_eq!(
                pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault",
                "{id}"
            );
            for c in containers(w) {
                let sc = &c["securityContext"];
                assert_eq!(sc["readOnlyRootFilesystem"], true, "{id}");
                assert_eq!(sc["allowPrivilegeEscalation"], false, "{id}");
                assert_eq!(
                    sc["capabilities"]["drop"],
                    serde_json::json!(["ALL"]),
                    "{id}"
                );
                for r in ["cpu", "memory"] {
                    assert!(
                        c["resources"]["requests"][r].is_string(),
                        "{id}: requests.{r}"
                    );
                }
                assert!(
                    c["resources"]["limits"]["memory"].is_string(),
                    "{id}: limits.memory"
                );
                let image = c["image"].as_str().unwrap_or_default();
                assert!(
                    image.rsplit('/').next().unwrap().contains(':'),
                    "{id}: image {image} has no tag"
                );
                if kind_of(w) == "Deployment" {
                    let ports: BTreeSet<&str> = c["ports"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|p| p["name"].as_str())
                        .collect();
                    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
                        let port = c[probe]["httpGet"]["port"].as_str();
                        assert!(
                            port.is_some_and(|p| ports.contains(p)),
                            "{id}: {probe} must probe a named container port"
                        );
                    }
                }
            }
        }
    }
}

/// Each Service selects exactly the pods of one workload, and each targetPort is a port those pods name.
#[test]
fn services_select_a_workload_and_target_its_named_ports() {
    let built = build("overlays/kind");
    for svc in built.of_kind("Service") {
        let selector = svc["spec"]["selector"].as_object().expect("selector");
        let matching: Vec<&Value> = workloads(&built)
            .into_iter()
            .filter(|w| namespace_of(w) == namespace_of(svc))
            .filter(|w| {
                let labels = &w["spec"]["template"]["metadata"]["labels"];
                selector.iter().all(|(k, v)| labels[k] == *v)
            })
            .collect();
        assert_eq!(
            matching.len(),
            1,
            "Service {} must select exactly one workload",
            name_of(svc)
        );
        let names: BTreeSet<&str> = containers(matching[0])
            .into_iter()
            .flat_map(|c| c["ports"].as_array().into_iter().flatten())
            .filter_map(|p| p["name"].as_str())
            .collect();
        for port in svc["spec"]["ports"].as_array().unwrap() {
            let target = port["targetPort"].as_str().expect("targetPort by name");
            assert!(
                names.contains(target),
                "Service {} targets {target}, which its pods do not name",
                name_of(svc)
            );
        }
    }
}

fn container_args(w: &Value) -> Vec<String> {
    containers(w)[0]["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect()
}

fn container_port(w: &Value, name: &str) -> u16 {
    let ports = containers(w)[0]["ports"].as_array().unwrap();
    let port = ports
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("{} has no port {name}", name_of(w)));
    port["containerPort"].as_u64().unwrap() as u16
}

fn port_of(bind: &str) -> u16 {
    bind.rsplit(':').next().unwrap().parse().unwrap()
}

#[test]
fn operator_args_parse_with_the_operator_flags_and_match_the_ports() {
    for rel in ["overlays/kind", "overlays/operator-only"] {
        let built = build(rel);
        let deployment = built
            .get("Deployment", "metal-operator")
            .expect("operator Deployment");
        let args = container_args(deployment);
        let flags = operator::config::Flags::try_parse_from(
            std::iter::once("metal-operator".to_string()).chain(args),
        )
        .unwrap_or_else(|e| panic!("{rel}: operator args: {e}"));
        let config = flags.to_config().unwrap_or_else(|e| panic!("{rel}: {e:#}"));
        assert!(
            flags.leader_elect,
            "{rel}: two pods may overlap during a rollout; leader election keeps one active"
        );
        // A standby is never Ready (readyz waits for the lease), so a surging rollout could never finish.
        assert_eq!(
            deployment["spec"]["strategy"]["rollingUpdate"]["maxSurge"], 0,
            "{rel}: the operator must not surge"
        );
        assert_eq!(
            flags.manager_namespace,
            namespace_of(deployment).unwrap(),
            "{rel}: discovery SBCs live beside the manager"
        );
        assert_eq!(
            flags.registry_port,
            container_port(deployment, "registry"),
            "{rel}"
        );
        assert_eq!(
            port_of(&flags.metrics_bind_address),
            container_port(deployment, "metrics"),
            "{rel}"
        );
        assert_eq!(
            port_of(&flags.health_probe_bind_address),
            container_port(deployment, "health"),
            "{rel}"
        );
        let registry = built
            .get("Service", "metal-registry")
            .expect("metal-registry Service");
        let url = format!(
            "http://metal-registry.{}.svc.cluster.local:{}",
            namespace_of(registry).unwrap(),
            registry["spec"]["ports"][0]["port"]
        );
        assert_eq!(
            config.registry_url, url,
            "{rel}: the probe must be told the registry Service"
        );
        // The lease the Role grants by name is the one the operator takes.
        let role = built
            .get("Role", "metal-operator-leader-election")
            .expect("leader election Role");
        assert!(
            role.to_string()
                .contains(&format!("\"{}\"", flags.leader_election_id)),
            "{rel}"
        );
    }
}

#[test]
fn sim_boot_and_sim_bmc_manifests_agree_with_the_fleet_and_the_services() {
    let built = build("overlays/kind");
    let fleet_text = std::fs::read_to_string(config("sim-bmc/fleet.yaml")).unwrap();
    let fleet = sim_bmc::FleetSpec::from_yaml(&fleet_text)
        .expect("config/sim-bmc/fleet.yaml is a valid fleet");
    let sim_bmc = built.get("Deployment", "sim-bmc").unwrap();
    assert_eq!(fleet.network.port, container_port(sim_bmc, "redfish"));
    assert!(
        fleet.network.address_base.is_unspecified(),
        "BMCs must listen on the pod IP to be reachable through the Service"
    );
    let control = container_args(sim_bmc)
        .into_iter()
        .find_map(|a| a.strip_prefix("--control-addr=").map(String::from))
        .unwrap();
    assert_eq!(port_of(&control), container_port(sim_bmc, "control"));
    let sim_boot = built.get("Deployment", "sim-boot").unwrap();
    let args = container_args(sim_boot);
    let arg = |name: &str| {
        args.iter()
            .find_map(|a| a.strip_prefix(&format!("--{name}=")))
            .unwrap_or_else(|| panic!("--{name}"))
    };
    assert_eq!(port_of(arg("listen")), container_port(sim_boot, "boot"));
    assert_eq!(
        port_of(arg("registry-listen")),
        container_port(sim_boot, "registry")
    );
    let template = fleet.boot_network.ipxe_url_template.as_deref().unwrap();
    assert!(
        template.starts_with(arg("public-url")),
        "machines boot from sim-boot's public URL: {template}"
    );
    // The kind fleet objects point the operator at the sim-bmc Service with the fleet's credentials.
    let fleet_objects = build("overlays/kind/fleet");
    let bmc = fleet_objects.of_kind("BMC").next().unwrap();
    let svc = built.get("Service", "sim-bmc").unwrap();
    assert_eq!(bmc["spec"]["access"]["ip"], svc["spec"]["clusterIP"]);
    let redfish = svc["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "redfish")
        .unwrap();
    assert_eq!(bmc["spec"]["protocol"]["port"], redfish["port"]);
    let secret = fleet_objects.of_kind("BMCSecret").next().unwrap();
    assert_eq!(
        bmc["spec"]["bmcSecretRef"]["name"],
        secret["metadata"]["name"]
    );
    let creds = fleet.defaults.credentials.as_ref().unwrap();
    assert_eq!(secret["data"]["username"], base64(&creds.username));
    assert_eq!(secret["data"]["password"], base64(&creds.password));
}

fn base64(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[test]
fn conformance_job_args_parse_with_the_conformance_cli() {
    let built = build("conformance/job");
    let job = built.get("Job", "conformance").unwrap();
    let args = container_args(job);
    let cli = conformance::cli::Cli::try_parse_from(
        std::iter::once("conformance".to_string()).chain(args.clone()),
    )
    .unwrap_or_else(|e| panic!("conformance Job args: {e}"));
    let conformance::cli::Command::Certify(certify) = cli.command else {
        panic!("the Job must run `certify`")
    };
    let kubeconfig = certify.kubeconfig.expect("--kubeconfig");
    let mount = containers(job)[0]["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "kubeconfig")
        .unwrap();
    assert_eq!(
        kubeconfig.parent().unwrap().to_str(),
        mount["mountPath"].as_str()
    );
    // The kubeconfig the Job mounts is the one config/conformance generates.
    let kind = build("overlays/kind");
    let cm = kind
        .get("ConfigMap", "conformance-kubeconfig")
        .expect("kubeconfig ConfigMap");
    let text = cm["data"][kubeconfig.file_name().unwrap().to_str().unwrap()]
        .as_str()
        .expect("kubeconfig key");
    let parsed: kube::config::Kubeconfig =
        serde_saphyr::from_str(text).expect("a valid kubeconfig");
    assert_eq!(
        parsed.auth_infos[0]
            .auth_info
            .as_ref()
            .unwrap()
            .token_file
            .as_deref(),
        Some("/var/run/secrets/kubernetes.io/serviceaccount/token")
    );
    assert_eq!(
        job["spec"]["template"]["spec"]["serviceAccountName"],
        "conformance"
    );
    assert!(kind.get("ServiceAccount", "conformance").is_some());
}

/// Every image the manifests use is a Dockerfile target building the binary of the same name.
#[test]
fn every_image_has_a_dockerfile_target() {
    let dockerfile = std::fs::read_to_string(repo_root().join("Dockerfile")).unwrap();
    let mut images = BTreeSet::new();
    for rel in KUSTOMIZATIONS {
        for w in workloads(&build(rel)) {
            for c in containers(w) {
                images.insert(c["image"].as_str().unwrap().to_string());
            }
        }
    }
    assert!(!images.is_empty());
    for image in images {
        let name = image
            .strip_prefix("metal-harness/")
            .and_then(|i| i.split(':').next())
            .unwrap_or_else(|| panic!("{image}"));
        let stage: Vec<&str> = dockerfile
            .split("\nFROM ")
            .find(|s| s.starts_with(&format!("runtime AS {name}\n")))
            .unwrap_or_else(|| panic!("no Dockerfile target {name}"))
            .lines()
            .collect();
        // The binary may be named differently from the image (sim-bmc ships sim-bmc-netboot).
        let binary = stage
            .iter()
            .find_map(|l| l.strip_prefix("ENTRYPOINT [\"/usr/local/bin/"))
            .and_then(|l| l.strip_suffix("\"]"))
            .unwrap_or_else(|| panic!("{name}: no ENTRYPOINT [\"/usr/local/bin/...\"]"));
        assert!(
            stage.contains(
                &format!("COPY --from=builder /out/{binary} /usr/local/bin/{binary}").as_str()
            ),
            "{name}: the stage does not copy {binary} from the builder"
        );
        assert!(
            dockerfile.contains(&format!("--bin {binary} "))
                || dockerfile.contains(&format!("--bin {binary}\n")),
            "the builder does not build {binary}"
        );
    }
    let users: Vec<&str> = dockerfile
        .lines()
        .filter(|l| l.starts_with("USER "))
        .collect();
    assert_eq!(
        users,
        vec!["USER 65532:65532"],
        "the runtime runs as the distroless nonroot user only"
    );
    assert!(
        dockerfile.contains("\nARG BASE_IMAGE=gcr.io/distroless/")
            && dockerfile.contains("\nFROM ${BASE_IMAGE} AS runtime\n"),
        "distroless runtime unless hack/container-images.sh passes its local base"
    );
    assert!(
        dockerfile.contains("cargo chef cook"),
        "dependencies are cached in their own layer"
    );
}

/// hack/kind-up.sh loads the images with tag `dev` and nothing is pulled: every image the kind overlay and
/// the conformance Job (run on the same cluster) use must carry that tag.
#[test]
fn kind_workloads_use_the_images_kind_up_loads() {
    for rel in ["overlays/kind", "conformance/job"] {
        for w in workloads(&build(rel)) {
            for c in containers(w) {
                let image = c["image"].as_str().unwrap_or_default();
                assert!(
                    image.starts_with("metal-harness/") && image.ends_with(":dev"),
                    "config/{rel}: {} uses {image}, but hack/kind-up.sh loads metal-harness/*:dev",
                    name_of(w)
                );
            }
        }
    }
}

/// Every workload runs as a ServiceAccount of the overlay; one without RBAC does not mount a token,
/// and every RBAC binding names a ServiceAccount that exists.
#[test]
fn service_accounts_exist_and_only_those_with_rbac_mount_tokens() {
    let built = build("overlays/kind");
    let accounts: BTreeSet<(String, String)> = built
        .of_kind("ServiceAccount")
        .map(|sa| {
            (
                namespace_of(sa).unwrap().to_string(),
                name_of(sa).to_string(),
            )
        })
        .collect();
    for w in workloads(&built) {
        let ns = namespace_of(w).unwrap().to_string();
        let sa = pod_spec(w)["serviceAccountName"]
            .as_str()
            .unwrap_or("default")
            .to_string();
        assert!(
            accounts.contains(&(ns.clone(), sa.clone())),
            "{} runs as {ns}/{sa}, which the overlay does not create",
            name_of(w)
        );
        let grants = deploy::rbac::Grants::for_service_account(&built, &ns, &sa).unwrap();
        if grants.grants.is_empty() {
            assert_eq!(
                pod_spec(w)["automountServiceAccountToken"],
                false,
                "{}: no RBAC, so no API token",
                name_of(w)
            );
        }
    }
    for binding in built
        .objects()
        .iter()
        .filter(|o| matches!(kind_of(o), "RoleBinding" | "ClusterRoleBinding"))
    {
        for subject in binding["subjects"].as_array().unwrap() {
            let ns = subject["namespace"]
                .as_str()
                .or(namespace_of(binding))
                .unwrap()
                .to_string();
            let name = subject["name"].as_str().unwrap().to_string();
            assert!(
                accounts.contains(&(ns.clone(), name.clone())),
                "{} binds {ns}/{name}, which does not exist",
                name_of(binding)
            );
        }
    }
}
