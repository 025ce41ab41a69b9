//! Shared by the container tests: the engine check, the images (built once per test process from this
//! build's binaries by hack/container-images.sh), and running a manifest's workload as a container on a
//! Docker network, with the Service DNS names of the manifests as /etc/hosts entries.
#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use deploy::pods::PodPlan;
use deploy::tools::{repo_root, run_tool};
use testcontainers::core::{AccessMode, ContainerPort, Host, Mount, WaitFor};
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, ContainerRequest, GenericImage, ImageExt};

/// `kubectl` arguments that wait until every CRD is served.
pub const WAIT_FOR_CRDS: [&str; 5] = [
    "wait",
    "--for=condition=Established",
    "--timeout=60s",
    "crd",
    "--all",
];

/// The tag the tests build and run (not `dev`, which hack/kind-up.sh builds from the registry Dockerfile).
pub const TAG: &str = "ctest";
/// `require` turns every skip into a failure (CI sets it once dockerd runs and the base image is made).
pub const REQUIRE_ENV: &str = "METAL_HARNESS_CONTAINER_TESTS";
/// The images the tests run.
pub const IMAGES: &[&str] = &[
    "apiserver",
    "metal-operator",
    "sim-boot",
    "sim-bmc",
    "conformance",
];
/// Where the apiserver container is found from other containers (an /etc/hosts entry).
pub const API_HOST: &str = "kubernetes.default.svc";
pub const API_PORT: u16 = 6443;
/// Mount point of the kubeconfig in the components' containers (KUBECONFIG points at it).
pub const KUBECONFIG_PATH: &str = "/var/run/metal-harness/kubeconfig";
/// Label on every container of one test, to prove that none is left behind.
const RUN_LABEL: &str = "metal-harness.test-run";

/// Prints why the test cannot run and returns `None`, or panics when the environment demands the tests.
pub fn skip(why: &str) -> Option<Run> {
    if std::env::var(REQUIRE_ENV).as_deref() == Ok("require") {
        panic!("{REQUIRE_ENV}=require, but: {why}");
    }
    println!("SKIP: {why}");
    None
}

/// A Docker engine and the images, or the reason they are missing.
pub fn prepare(test: &str) -> Option<Run> {
    if let Some(why) = engine_missing() {
        return skip(&why);
    }
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    if let Err(why) = BUILT.get_or_init(build_images) {
        return skip(why);
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .subsec_nanos();
    let id = format!("{test}-{}-{nanos}", std::process::id());
    Some(Run {
        network: format!("mh-{id}"),
        id,
        scratch: tempfile::tempdir().expect("scratch directory"),
    })
}

fn engine_missing() -> Option<String> {
    if run_tool("docker", &["--version"]).is_err() {
        return Some("no docker CLI (apt-get install docker.io)".into());
    }
    if let Err(e) = run_tool("docker", &["info", "--format", "{{.ServerVersion}}"]) {
        return Some(format!("no Docker daemon answers (start dockerd): {e}"));
    }
    None
}

/// The directory of this build's binaries: the test runs from `<target>/<profile>/deps/`.
fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    exe.parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .expect("<target>/<profile>/deps/<test>")
}

fn build_images() -> Result<(), String> {
    let dir = bin_dir();
    let script = repo_root().join("hack/container-images.sh");
    let started = Instant::now();
    let out = std::process::Command::new("bash")
        .arg(&script)
        .arg("--bin-dir")
        .arg(&dir)
        .args(["--images", &IMAGES.join(","), "--tag", TAG])
        .output()
        .map_err(|e| format!("running {}: {e}", script.display()))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    match out.status.code() {
        Some(0) => {
            println!(
                "images built in {:.1}s from {}",
                started.elapsed().as_secs_f64(),
                dir.display()
            );
            Ok(())
        }
        // 2: a missing tool, binary or daemon (the script names it).
        Some(2) => Err(format!(
            "hack/container-images.sh cannot build the images: {stderr}"
        )),
        _ => panic!(
            "hack/container-images.sh failed ({}):\n{stderr}",
            out.status
        ),
    }
}

/// One test's network, scratch files and container label; `assert_clean` proves nothing was left.
pub struct Run {
    pub id: String,
    pub network: String,
    scratch: tempfile::TempDir,
}

/// A started container with its address on the test network.
pub struct Started {
    pub container: ContainerAsync<GenericImage>,
    pub ip: IpAddr,
    pub plan: PodPlan,
}

impl Started {
    /// The host port docker mapped for a container port.
    pub async fn host_port(&self, port: u16) -> u16 {
        self.container
            .get_host_port_ipv4(ContainerPort::Tcp(port))
            .await
            .unwrap_or_else(|e| panic!("{}: port {port} is not mapped: {e}", self.plan.workload))
    }

    /// `http://127.0.0.1:MAPPED` for a named container port.
    pub async fn url(&self, port_name: &str) -> String {
        let port = self.plan.ports[port_name];
        format!("http://127.0.0.1:{}", self.host_port(port).await)
    }

    /// The container's output so far, for failure messages.
    pub async fn logs(&self) -> String {
        let out = self.container.stdout_to_vec().await.unwrap_or_default();
        let err = self.container.stderr_to_vec().await.unwrap_or_default();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out),
            String::from_utf8_lossy(&err)
        );
        let tail: Vec<&str> = text.lines().rev().take(40).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        format!(
            "--- {} (last lines)\n{}",
            self.plan.workload,
            tail.join("\n")
        )
    }

    /// Every HTTP probe of the manifest answers 200 (polled until `timeout`), as the kubelet would see it.
    pub async fn wait_probes(&self, timeout: Duration) {
        let http = http_client::HttpClient::hyper().with_timeout(Duration::from_secs(2));
        for probe in &self.plan.probes {
            let url = format!(
                "http://127.0.0.1:{}{}",
                self.host_port(probe.port).await,
                probe.path
            );
            let deadline = Instant::now() + timeout;
            loop {
                let last = match http.get(&url).await {
                    Ok(r) if r.status.is_success() => break,
                    Ok(r) => format!("status {}", r.status),
                    Err(e) => e,
                };
                if Instant::now() > deadline {
                    panic!(
                        "{} {} {url} did not answer 200 within {timeout:?}: {last}\n{}",
                        self.plan.workload,
                        probe.kind,
                        self.logs().await
                    );
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }

    /// Stops the container as the kubelet would (SIGTERM, SIGKILL after the manifest's grace period) and
    /// returns the exit code and how long it took: 137 means SIGTERM was not acted on in time.
    pub async fn stop_like_kubelet(&self) -> (Option<i64>, Duration) {
        let started = Instant::now();
        let grace = i32::try_from(self.plan.termination_grace_seconds).unwrap_or(30);
        self.container
            .stop_with_timeout(Some(grace))
            .await
            .unwrap_or_else(|e| panic!("stopping {}: {e}", self.plan.workload));
        let code = self.container.exit_code().await.expect("exit code");
        (code, started.elapsed())
    }

    /// The process runs as the manifest's user (docker top reads the host's process table).
    pub fn assert_user(&self, uid: u32) {
        let top = run_tool(
            "docker",
            &["top", self.container.id(), "-o", "pid,uid,gid,comm"],
        )
        .expect("docker top");
        let row = top.lines().nth(1).unwrap_or_default();
        let fields: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(
            fields.get(1).copied(),
            Some(uid.to_string().as_str()),
            "{}: process table\n{top}",
            self.plan.workload
        );
    }
}

/// What a container needs besides its plan: hosts entries, more env and files.
#[derive(Default, Clone)]
pub struct Extra {
    pub hosts: Vec<(String, IpAddr)>,
    pub env: Vec<(String, String)>,
    pub files: Vec<(String, String)>,
    /// Wait until the container exits (a Job) instead of for its probes.
    pub run_to_exit: Option<Duration>,
}

impl Run {
    /// A host file for a bind mount, readable by uid 65532.
    pub fn file(&self, content: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt as _;
        let n = std::fs::read_dir(self.scratch.path())
            .map(|d| d.count())
            .unwrap_or(0);
        let path = self.scratch.path().join(format!("f{n}"));
        std::fs::write(&path, content).expect("writing a mounted file");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        path
    }

    /// Runs `plan` as the manifest says: args, env, user, read-only root, tmpfs for emptyDirs, ConfigMap
    /// files, every container port exposed; its own Service names resolve to itself.
    pub async fn start(&self, plan: &PodPlan, extra: &Extra) -> Started {
        let mut image = GenericImage::new(plan.image.clone(), TAG.to_string());
        for port in plan.ports.values() {
            image = image.with_exposed_port(ContainerPort::Tcp(*port));
        }
        if extra.run_to_exit.is_some() {
            image = image.with_wait_for(WaitFor::exit(
                testcontainers::core::wait::ExitWaitStrategy::new()
                    .with_poll_interval(Duration::from_millis(500)),
            ));
        }
        let mut req: ContainerRequest<GenericImage> = image
            .with_cmd(plan.args.clone())
            .with_network(self.network.clone())
            .with_label(RUN_LABEL, self.id.clone())
            .with_readonly_rootfs(plan.read_only_root)
            .with_startup_timeout(extra.run_to_exit.unwrap_or(Duration::from_secs(60)));
        if let Some(user) = &plan.user {
            req = req.with_user(user.clone());
        }
        for cap in &plan.cap_drop {
            req = req.with_cap_drop(cap.clone());
        }
        for dir in &plan.scratch_dirs {
            req = req.with_mount(Mount::tmpfs_mount(dir.clone()));
        }
        let mut files: Vec<(String, String)> = plan.files.clone();
        for (path, content) in &extra.files {
            files.retain(|(p, _)| p != path);
            files.push((path.clone(), content.clone()));
        }
        for (path, content) in &files {
            let host = self.file(content);
            req = req.with_mount(
                Mount::bind_mount(host.display().to_string(), path.clone())
                    .with_access_mode(AccessMode::ReadOnly),
            );
        }
        for (k, v) in plan.env.iter().chain(&extra.env) {
            req = req.with_env_var(k.clone(), v.clone());
        }
        for name in &plan.service_names {
            req = req.with_host(name.clone(), Host::Addr(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        }
        for (name, ip) in &extra.hosts {
            req = req.with_host(name.clone(), Host::Addr(*ip));
        }
        let container = req.start().await.unwrap_or_else(|e| {
            panic!(
                "starting {}:{TAG} ({}): {e}",
                plan.image,
                plan.args.join(" ")
            )
        });
        let ip = if extra.run_to_exit.is_some() {
            IpAddr::V4(Ipv4Addr::UNSPECIFIED)
        } else {
            container
                .get_bridge_ip_address()
                .await
                .unwrap_or_else(|e| panic!("{}: no address on the network: {e}", plan.workload))
        };
        Started {
            container,
            ip,
            plan: plan.clone(),
        }
    }

    /// No container or network of this run is left (call after dropping every container).
    pub fn assert_clean(&self) {
        let docker = |args: &[&str]| {
            run_tool("docker", args).unwrap_or_else(|e| panic!("docker {args:?}: {e}"))
        };
        let label = format!("label={RUN_LABEL}={}", self.id);
        let containers = docker(&["ps", "-a", "-q", "--filter", &label]);
        assert!(
            containers.trim().is_empty(),
            "containers left behind: {containers}"
        );
        let name = format!("name=^{}$", self.network);
        let networks = docker(&["network", "ls", "-q", "--filter", &name]);
        assert!(
            networks.trim().is_empty(),
            "network {} left behind",
            self.network
        );
    }
}

impl Drop for Run {
    /// Best effort after a panic: testcontainers removes the containers it started, this removes the rest.
    fn drop(&mut self) {
        if let Ok(ids) = run_tool(
            "docker",
            &[
                "ps",
                "-a",
                "-q",
                "--filter",
                &format!("label={RUN_LABEL}={}", self.id),
            ],
        ) {
            for id in ids.split_whitespace() {
                let _ = run_tool("docker", &["rm", "-f", "-v", id]);
            }
        }
        let _ = run_tool("docker", &["network", "rm", &self.network]);
    }
}

/// A kubeconfig for the apiserver container at `server` with the bearer token; its certificate names
/// only localhost and 127.0.0.1, so clients skip verification.
pub fn kubeconfig(server: &str, token: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {server}\n    insecure-skip-tls-verify: true\nusers:\n- name: u\n  user:\n    token: {token}\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\n    namespace: default\ncurrent-context: c\n"
    )
}

/// A kube client from kubeconfig text.
pub async fn client(kubeconfig_yaml: &str) -> kube::Client {
    let kc = kube::config::Kubeconfig::from_yaml(kubeconfig_yaml).expect("kubeconfig");
    let config =
        kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
            .await
            .expect("client config");
    kube::Client::try_from(config).expect("client")
}

/// The embedded API server in its container (bound to all interfaces: TLS and the token), the metal CRDs
/// and the manifests' Namespaces installed with kubectl from the host. Returns it, the host kubeconfig
/// path and the kubeconfig the other containers use.
pub async fn start_apiserver(run: &Run, namespaces: &deploy::manifests::Manifests) -> ApiServer {
    let token = format!("token-{}", run.id);
    let plan = PodPlan {
        workload: "apiserver".into(),
        namespace: "default".into(),
        image: "metal-harness/apiserver".into(),
        args: vec![
            "--bind-address=0.0.0.0".into(),
            format!("--port={API_PORT}"),
            format!("--token={token}"),
        ],
        env: vec![],
        // The image's own user: the test checks that the image runs as 65532 without being told.
        user: None,
        read_only_root: true,
        cap_drop: vec!["ALL".into()],
        scratch_dirs: vec!["/tmp".into()],
        files: vec![],
        ports: [("https".to_string(), API_PORT)].into(),
        probes: vec![],
        service_names: vec![],
        termination_grace_seconds: 30,
    };
    let started = run.start(&plan, &Extra::default()).await;
    let host_port = started.host_port(API_PORT).await;
    let host_kubeconfig = kubeconfig(&format!("https://127.0.0.1:{host_port}"), &token);
    let path = run.scratch.path().join("host-kubeconfig");
    std::fs::write(&path, &host_kubeconfig).expect("kubeconfig");
    let client = client(&host_kubeconfig).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while let Err(e) = client.apiserver_version().await {
        if Instant::now() > deadline {
            panic!(
                "the apiserver container does not answer: {e}\n{}",
                started.logs().await
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let kubectl = |args: &[&str]| {
        let mut all = vec!["--kubeconfig", path.to_str().unwrap()];
        all.extend_from_slice(args);
        run_tool("kubectl", &all).unwrap_or_else(|e| panic!("kubectl {args:?}: {e}"))
    };
    let crds = repo_root().join("config");
    kubectl(&["apply", "--server-side", "-k", crds.to_str().unwrap()]);
    kubectl(&WAIT_FOR_CRDS);
    let ns = namespaces.filtered(|o| deploy::manifests::kind_of(o) == "Namespace");
    let ns_file = run.file(&ns.to_yaml());
    kubectl(&["apply", "--server-side", "-f", ns_file.to_str().unwrap()]);
    ApiServer {
        in_network_kubeconfig: kubeconfig(&format!("https://{API_HOST}:{API_PORT}"), &token),
        host_kubeconfig_path: path,
        client,
        started,
    }
}

pub struct ApiServer {
    pub started: Started,
    pub client: kube::Client,
    pub host_kubeconfig_path: PathBuf,
    pub in_network_kubeconfig: String,
}

impl ApiServer {
    /// What every component container needs to reach the API server.
    pub fn extra(&self) -> Extra {
        Extra {
            hosts: vec![(API_HOST.into(), self.started.ip)],
            env: vec![("KUBECONFIG".into(), KUBECONFIG_PATH.into())],
            files: vec![(KUBECONFIG_PATH.into(), self.in_network_kubeconfig.clone())],
            run_to_exit: None,
        }
    }

    pub fn kubectl(&self, args: &[&str]) -> String {
        let mut all = vec!["--kubeconfig", self.host_kubeconfig_path.to_str().unwrap()];
        all.extend_from_slice(args);
        run_tool("kubectl", &all).unwrap_or_else(|e| panic!("kubectl {args:?}: {e}"))
    }
}

/// Hosts entries resolving every Service name of `started` to its container.
pub fn service_hosts(started: &Started) -> Vec<(String, IpAddr)> {
    started
        .plan
        .service_names
        .iter()
        .map(|n| (n.clone(), started.ip))
        .collect()
}

/// Polls `check` every 500 ms until it returns `Ok` or `timeout` passes (then an error naming `what` and
/// the last observation).
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        match check().await {
            Ok(v) => return Ok(v),
            Err(last) if Instant::now() > deadline => {
                return Err(format!("{what}: not within {timeout:?}; last seen: {last}"));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}
