//! The operator against Redfish services we did not write, both from PyPI's `sushy-tools`:
//!
//! * `sushy-emulator` (OpenStack) with its fake driver: real power and boot state, power changes
//!   applied 1–11 s after the request, Basic auth from an htpasswd file, no SessionService, no
//!   EventService, no ETags, `BootSourceOverrideEnabled` ignored, and a Storage link that answers 500.
//! * DMTF's `public-rackmount1` mockup (trimmed copy in `tests/fixtures/`, see its SOURCE.md) served by
//!   `sushy-static`: vendor-shaped payloads; every PATCH and POST is answered 204, logged and changes
//!   nothing. The test plays the machine behind it: when the service's own log shows a reset, the
//!   resulting `PowerState` is written into the served file. This one comes in through upstream's
//!   Endpoint path (MAC prefix database → BMCSecret + BMC).
//!
//! Every effect of the operator is asserted on the service itself (a GET of its resources or its own
//! request log), not on the operator's view. The tests need the venv of `.ci/run`
//! (METAL_HARNESS_PYTHON); without it they say why and pass (under CI=true they fail instead).

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use common::*;
use http_body_util::Full;
use k8s_openapi::api::core::v1::LocalObjectReference;
use kube::api::{Api, DeleteParams, PostParams};
use metal_api::{BMC, BMCSecret, BMCSecretFields, BMCSpec, InlineEndpoint, Protocol, Server};
use operator::redfish::{HttpService, TlsVerification, hyper_transport};
use serde_json::{Value, json};
use sim_bmc::fleet::BindMode;
use tokio::time::Instant;
use tower::ServiceExt as _;

const T: Duration = Duration::from_secs(60);
const USER: &str = "metal";
const PASSWORD: &str = "s3cret-pw";

/// The venv's interpreter and one of its console scripts, or `None` (with the reason printed).
fn venv_script(name: &str) -> Option<(PathBuf, PathBuf)> {
    let in_ci = std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false");
    let skip = |why: String| {
        assert!(!in_ci, "CI must run the third-party Redfish tests: {why}");
        eprintln!("SKIP: {why}");
        None
    };
    let Some(py) = std::env::var_os("METAL_HARNESS_PYTHON").map(PathBuf::from) else {
        return skip("METAL_HARNESS_PYTHON is not set (run via .ci/run, which creates the venv from .ci/python-requirements.txt)".into());
    };
    let script = py.parent().expect("venv bin dir").join(name);
    if !script.exists() {
        return skip(format!(
            "{} not found (sushy-tools is pinned in .ci/python-requirements.txt; re-run .ci/run)",
            script.display()
        ));
    }
    Some((py, script))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// One request as the service itself logged it.
#[derive(Clone, Debug)]
struct Logged {
    method: String,
    path: String,
    status: u16,
    /// The request body, where the service logs it (sushy-static does, sushy-emulator does not).
    body: Option<Value>,
}

/// A service's own request log: `"METHOD PATH HTTP/1.x" STATUS` lines (Python's http.server and
/// Werkzeug), each with the `Data: b'…'` line sushy-static prints before it.
fn logged_requests(log: &Path) -> Vec<Logged> {
    let mut out = Vec::new();
    let mut data = None;
    for line in std::fs::read_to_string(log).unwrap_or_default().lines() {
        if let Some(rest) = line.strip_prefix("Data: b'") {
            data = serde_json::from_str(rest.strip_suffix('\'').unwrap_or(rest)).ok();
            continue;
        }
        let Some((_, rest)) = line.split_once('"') else {
            continue;
        };
        let Some((request, tail)) = rest.split_once('"') else {
            continue;
        };
        let parts: Vec<&str> = request.split(' ').collect();
        let [method, path, protocol] = parts[..] else {
            continue;
        };
        if !protocol.starts_with("HTTP/") {
            continue;
        }
        out.push(Logged {
            method: method.into(),
            path: path.into(),
            status: tail
                .split_whitespace()
                .next()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0),
            body: data.take(),
        });
    }
    out
}

fn logged_writes(log: &Path) -> Vec<Logged> {
    logged_requests(log)
        .into_iter()
        .filter(|r| r.method != "GET")
        .collect()
}

/// A third-party Redfish service in its own process (killed on drop) with its log in a temp dir.
struct Service {
    child: tokio::process::Child,
    port: u16,
    log: PathBuf,
    http: HttpService,
    credentials: Option<(String, String)>,
    _dir: tempfile::TempDir,
}

impl Service {
    async fn spawn(
        program: &Path,
        args: &[String],
        dir: tempfile::TempDir,
        port: u16,
        credentials: Option<(String, String)>,
    ) -> Self {
        let log = dir.path().join("service.log");
        let file = std::fs::File::create(&log).unwrap();
        let child = tokio::process::Command::new(program)
            .args(args)
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("{} starts: {e}", program.display()));
        let mut service = Self {
            child,
            port,
            log,
            http: hyper_transport(TlsVerification::Skip),
            credentials,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok((200, _)) = service.try_request("GET", "/redfish/v1/", None).await {
                break;
            }
            let exited = service.child.try_wait().unwrap();
            assert!(
                exited.is_none() && Instant::now() < deadline,
                "{} did not answer within 30 s (exit: {exited:?}); its log:\n{}",
                program.display(),
                service.log_text()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        service
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Every request but GETs, in order, from the service's own log.
    fn writes(&self) -> Vec<Logged> {
        logged_writes(&self.log)
    }

    async fn try_request(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<(u16, Value), String> {
        let mut request = http::Request::builder()
            .method(method)
            .uri(format!("http://127.0.0.1:{}{path}", self.port))
            .header("accept", "application/json");
        if let Some((user, password)) = &self.credentials {
            let token =
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
            request = request.header("authorization", format!("Basic {token}"));
        }
        let bytes = match body {
            Some(body) => {
                request = request.header("content-type", "application/json");
                Bytes::from(body.to_string())
            }
            None => Bytes::new(),
        };
        let request = request.body(Full::new(bytes)).map_err(|e| e.to_string())?;
        let call = self.http.clone().oneshot(request);
        let response = tokio::time::timeout(Duration::from_secs(10), call)
            .await
            .map_err(|_| "timed out".to_owned())?
            .map_err(|e| e.to_string())?;
        let value = serde_json::from_slice(response.body()).unwrap_or(Value::Null);
        Ok((response.status().as_u16(), value))
    }

    /// A GET of the service's own resource (200 expected).
    async fn get(&self, path: &str) -> Value {
        match self.try_request("GET", path, None).await {
            Ok((200, value)) => value,
            other => panic!("GET {path}: {other:?}"),
        }
    }

    async fn power(&self, system: &str) -> String {
        self.get(system).await["PowerState"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    async fn boot_target(&self, system: &str) -> String {
        self.get(system).await["Boot"]["BootSourceOverrideTarget"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Polls the service (not the operator) until `system` reports `power`.
    async fn wait_power(&self, system: &str, power: &str) {
        let deadline = Instant::now() + T;
        loop {
            let now = self.power(system).await;
            if now == power {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{system} still {now} on the service after {T:?}, wanted {power}; writes: {:#?}",
                self.writes()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The harness without a simulated fleet: embedded API server, the real operator over sockets.
async fn harness() -> Harness {
    let mut options = HarnessOptions::new(0);
    options.bind = BindMode::Loopback;
    options.probe = false;
    // sushy's fake driver applies a power change 1–11 s after the request; a shorter timeout would
    // only make the operator repeat requests the service already accepted.
    options.config.power_polling_timeout = Duration::from_secs(20);
    // Python services on two shared cores: one slow answer must not look like a dead BMC.
    options.config.redfish_request_timeout = Duration::from_secs(5);
    // Neither service has an EventService: subscribing is attempted and must not hold anything up.
    options.config.event_url = "http://127.0.0.1:9".into();
    Harness::start(options).await
}

/// A BMCSecret and a BMC with inline access to `127.0.0.1:port`, as upstream's samples write them.
async fn create_bmc(h: &Harness, name: &str, port: u16, user: &str, password: &str) {
    let secret = BMCSecret::new(
        name,
        BMCSecretFields {
            string_data: Some(
                [
                    ("username".to_owned(), user.to_owned()),
                    ("password".to_owned(), password.to_owned()),
                ]
                .into(),
            ),
            ..BMCSecretFields::default()
        },
    );
    Api::<BMCSecret>::all(h.client.clone())
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    let spec = BMCSpec {
        bmc_uuid: None,
        endpoint_ref: None,
        access: Some(InlineEndpoint {
            mac_address: Some("02:00:5e:10:00:01".into()),
            ip: Some("127.0.0.1".into()),
        }),
        bmc_secret_ref: LocalObjectReference { name: name.into() },
        protocol: Protocol {
            name: "Redfish".into(),
            port: i32::from(port),
            scheme: Some("http".into()),
        },
        console_protocol: None,
        hostname: None,
    };
    Api::<BMC>::all(h.client.clone())
        .create(&PostParams::default(), &BMC::new(name, spec))
        .await
        .unwrap();
}

const ENDPOINT_MAC: &str = "02:00:5e:10:00:01";

/// An Endpoint at `127.0.0.1` whose MAC prefix the operator's database maps to a Redfish BMC on
/// `port` with our credentials as its defaults (set before the operator starts).
async fn create_endpoint(h: &mut Harness, name: &str, port: u16) {
    use operator::macdb::{Console, DefaultCredential, MacDb, MacPrefix};
    h.set_mac_db(MacDb {
        mac_prefixes: vec![MacPrefix {
            mac_prefix: "02005e".into(),
            manufacturer: "Contoso".into(),
            protocol: "Redfish".into(),
            protocol_scheme: Some("http".into()),
            port: i32::from(port),
            type_: "bmc".into(),
            default_credentials: vec![DefaultCredential {
                username: USER.into(),
                password: PASSWORD.into(),
            }],
            console: Some(Console {
                type_: "SSH".into(),
                port: 22,
            }),
        }],
    });
    let endpoint = metal_api::Endpoint::new(
        name,
        metal_api::EndpointSpec {
            mac_address: Some(ENDPOINT_MAC.into()),
            ip: Some("127.0.0.1".into()),
        },
    );
    Api::<metal_api::Endpoint>::all(h.client.clone())
        .create(&PostParams::default(), &endpoint)
        .await
        .unwrap();
}

fn ready_condition(bmc: &BMC) -> Option<(String, String)> {
    let status = bmc.status.as_ref()?;
    let c = status.conditions.iter().find(|c| c.type_ == "Ready")?;
    Some((c.status.clone(), c.reason.clone()))
}

async fn wait_bmc_ready(h: &Harness, name: &str) -> BMC {
    h.wait_for(
        &Api::<BMC>::all(h.client.clone()),
        name,
        T,
        "BMC Ready",
        |b: &BMC| ready_condition(b) == Some(("True".into(), "Connected".into())),
    )
    .await
}

/// The BMC status against the service's first Manager, read from the service itself.
async fn assert_bmc_matches_manager(bmc: &BMC, service: &Service) {
    let managers = service.get("/redfish/v1/Managers").await;
    let first = managers["Members"][0]["@odata.id"].as_str().unwrap();
    let manager = service.get(first).await;
    let status = bmc.status.as_ref().unwrap();
    let field = |k: &str| manager[k].as_str().map(str::to_owned);
    assert_eq!(status.firmware_version, field("FirmwareVersion"));
    assert_eq!(status.model, field("Model"));
    assert_eq!(status.manufacturer, field("Manufacturer"));
    assert_eq!(
        status.state.as_ref().map(|s| s.as_str().to_owned()),
        manager["Status"]["State"].as_str().map(str::to_owned)
    );
    assert_eq!(status.state.as_ref().map(|s| s.as_str()), Some("Enabled"));
    assert_eq!(
        status.power_state.as_ref().map(|s| s.as_str().to_owned()),
        field("PowerState")
    );
}

/// The service's Systems as (lower-case UUID, `@odata.id`), read from the service itself.
async fn service_systems(service: &Service) -> Vec<(String, String)> {
    let collection = service.get("/redfish/v1/Systems").await;
    let mut out = Vec::new();
    for member in collection["Members"].as_array().unwrap() {
        let uri = member["@odata.id"].as_str().unwrap();
        let system = service.get(uri).await;
        out.push((
            system["UUID"].as_str().unwrap().to_lowercase(),
            system["@odata.id"].as_str().unwrap().to_owned(),
        ));
    }
    out.sort();
    out
}

/// One Server per ComputerSystem, with the service's UUID (lower-case) and URI; returns them.
async fn assert_servers_match_systems(h: &Harness, bmc: &str, service: &Service) -> Vec<Server> {
    let systems = service_systems(service).await;
    let mut servers = Vec::new();
    for index in 0..systems.len() {
        let name = format!("{bmc}-system-{index}");
        servers.push(
            h.wait_for(&h.servers(), &name, T, "Server created", |_: &Server| true)
                .await,
        );
    }
    let mut found: Vec<(String, String)> = servers
        .iter()
        .map(|s| {
            (
                s.spec.system_uuid.clone(),
                s.spec.system_uri.clone().unwrap_or_default(),
            )
        })
        .collect();
    found.sort();
    assert_eq!(found, systems, "one Server per ComputerSystem");
    servers
}

async fn wait_server_power(h: &Harness, server: &str, power: &str) {
    h.wait_for(&h.servers(), server, T, power, |s: &Server| {
        power_is(s, power)
    })
    .await;
}

/// Claims `server` as `web` and waits until the claim is bound and its SBC exists.
async fn claim_web(h: &Harness, server: &str) -> Api<metal_api::ServerClaim> {
    h.claim("web", Some(server), "On", "ghcr.io/example/os:1.0")
        .await;
    wait_claim_bound(h, "web").await;
    h.wait_for(&h.sbcs(NS), "web", T, "claim SBC", |_| true)
        .await;
    Api::namespaced(h.client.clone(), NS)
}

async fn wait_claim_bound(h: &Harness, claim: &str) {
    let claims = Api::<metal_api::ServerClaim>::namespaced(h.client.clone(), NS);
    h.wait_for(&claims, claim, T, "Bound", |c: &metal_api::ServerClaim| {
        c.status
            .as_ref()
            .and_then(|s| s.phase.as_ref())
            .is_some_and(|p| p.as_str() == "Bound")
    })
    .await;
}

/// Asks for a BMC reset the way users do: the `graceful-restart-bmc` operation annotation.
async fn request_bmc_reset(h: &Harness, bmc: &str) {
    let patch = json!({"metadata": {"annotations": {"metal.ironcore.dev/operation": "graceful-restart-bmc"}}});
    Api::<BMC>::all(h.client.clone())
        .patch(
            bmc,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&patch),
        )
        .await
        .unwrap();
}

fn is_reset(r: &Logged, system: &str) -> bool {
    r.method == "POST" && r.path == format!("{system}/Actions/ComputerSystem.Reset")
}

fn is_patch(r: &Logged, system: &str) -> bool {
    r.method == "PATCH" && r.path == system
}

// ---------------------------------------------------------------------------------------------
// sushy-emulator, fake driver

/// Two fake machines; upper-case UUIDs (the Server's `systemUUID` is lower-case, as upstream).
const SUSHY_SYSTEMS: [(&str, &str, &str); 2] = [
    (
        "8E1C5A94-27F3-4C4B-9D0E-3A9B6F0C1D01",
        "node-a",
        "52:54:00:aa:00:01",
    ),
    (
        "8E1C5A94-27F3-4C4B-9D0E-3A9B6F0C1D02",
        "node-b",
        "52:54:00:aa:00:02",
    ),
];

async fn start_sushy_emulator() -> Option<Service> {
    let (py, emulator) = venv_script("sushy-emulator")?;
    let dir = tempfile::tempdir().unwrap();
    // Basic auth: an htpasswd entry with a bcrypt hash (the only kind sushy accepts), cost 4 so
    // that hashing on every request stays cheap.
    let hash = tokio::process::Command::new(&py)
        .args([
            "-c",
            "import bcrypt,sys; print(bcrypt.hashpw(sys.argv[1].encode(), bcrypt.gensalt(4)).decode())",
            PASSWORD,
        ])
        .output()
        .await
        .expect("venv python runs");
    assert!(hash.status.success(), "bcrypt hash: {hash:?}");
    let htpasswd = dir.path().join("htpasswd");
    std::fs::write(
        &htpasswd,
        format!("{USER}:{}\n", String::from_utf8_lossy(&hash.stdout).trim()),
    )
    .unwrap();
    let systems: Vec<String> = SUSHY_SYSTEMS
        .iter()
        .map(|(uuid, name, mac)| {
            format!("{{'uuid': '{uuid}', 'name': '{name}', 'power_state': 'Off', 'nics': [{{'mac': '{mac}'}}]}}")
        })
        .collect();
    let port = free_port();
    let config = dir.path().join("sushy.conf");
    std::fs::write(
        &config,
        format!(
            "SUSHY_EMULATOR_LISTEN_IP = '127.0.0.1'\nSUSHY_EMULATOR_LISTEN_PORT = {port}\n\
             SUSHY_EMULATOR_FAKE_DRIVER = True\nSUSHY_EMULATOR_STATE_DIR = '{}'\n\
             SUSHY_EMULATOR_AUTH_FILE = '{}'\nSUSHY_EMULATOR_FAKE_SYSTEMS = [{}]\n",
            dir.path().join("state").display(),
            htpasswd.display(),
            systems.join(", ")
        ),
    )
    .unwrap();
    let args = [
        "--config".to_owned(),
        config.display().to_string(),
        "--fake".into(),
        "-i".into(),
        "127.0.0.1".into(),
        "-p".into(),
        port.to_string(),
    ];
    let credentials = Some((USER.to_owned(), PASSWORD.to_owned()));
    Some(Service::spawn(&emulator, &args, dir, port, credentials).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sushy_emulator_discovery_boot_power_and_release() {
    let Some(sushy) = start_sushy_emulator().await else {
        return;
    };
    let started = Instant::now();
    let mut h = harness().await;
    create_bmc(&h, "sushy", sushy.port, USER, PASSWORD).await;
    create_bmc(&h, "sushy-wrong", sushy.port, USER, "not-the-password").await;
    h.start_operator().await;

    // The BMC: Ready/Enabled with what the service's Manager says; wrong credentials are told apart.
    let bmc = wait_bmc_ready(&h, "sushy").await;
    assert_bmc_matches_manager(&bmc, &sushy).await;
    h.wait_for(
        &Api::<BMC>::all(h.client.clone()),
        "sushy-wrong",
        T,
        "AuthenticationFailed",
        |b: &BMC| ready_condition(b) == Some(("False".into(), "AuthenticationFailed".into())),
    )
    .await;

    // A Server per ComputerSystem, its power state read from the service.
    let servers = assert_servers_match_systems(&h, "sushy", &sushy).await;
    let uuid = SUSHY_SYSTEMS[0].0.to_lowercase();
    let server = servers.iter().find(|s| s.spec.system_uuid == uuid).unwrap();
    let other = servers.iter().find(|s| s.spec.system_uuid != uuid).unwrap();
    let name = server.metadata.name.clone().unwrap();
    let system = server.spec.system_uri.clone().unwrap();
    let other_system = other.spec.system_uri.clone().unwrap();
    assert_eq!(sushy.power(&system).await, "Off");
    wait_server_power(&h, &name, "Off").await;

    // Initial → Discovery: the PXE boot override reached the service, and no power-on did.
    h.wait_state(&name, "Discovery").await;
    assert_eq!(sushy.boot_target(&system).await, "Pxe");
    assert_eq!(sushy.power(&system).await, "Off");
    assert!(
        !sushy.writes().iter().any(|r| is_reset(r, &system)),
        "no reset before the discovery SBC is Ready: {:#?}",
        sushy.writes()
    );

    // The backend answers Ready: the machine is powered on; the other one (SBC still Pending) is not.
    h.backend_set(NS, &name, "Ready", vec![]).await;
    sushy.wait_power(&system, "On").await;
    assert_eq!(sushy.power(&other_system).await, "Off");

    // The probe registers: Available, and the machine is powered off again.
    h.register_probe(&uuid, &[SUSHY_SYSTEMS[0].2]).await;
    h.wait_state(&name, "Available").await;
    sushy.wait_power(&system, "On").await;
    sushy.wait_power(&system, "Off").await;
    wait_server_power(&h, &name, "Off").await;

    // sushy ignores BootSourceOverrideEnabled=Once: play the firmware that consumed the override.
    match sushy
        .try_request(
            "PATCH",
            &system,
            Some(json!({"Boot": {"BootSourceOverrideTarget": "Hdd"}})),
        )
        .await
    {
        Ok((204 | 200, _)) => {}
        other => panic!("resetting the boot target: {other:?}"),
    }
    let mark = sushy.writes().len();

    // A claim binds; nothing reaches the machine before its SBC is Ready.
    let claims = claim_web(&h, &name).await;
    assert_eq!(sushy.power(&system).await, "Off");
    assert_eq!(sushy.boot_target(&system).await, "Hdd");
    assert!(sushy.writes().len() == mark, "{:#?}", sushy.writes());

    // SBC Ready: PXE once, then power-on, on the service.
    h.backend_set(NS, "web", "Ready", vec![]).await;
    sushy.wait_power(&system, "On").await;
    assert_eq!(sushy.boot_target(&system).await, "Pxe");
    let after: Vec<Logged> = sushy.writes().split_off(mark);
    let patch = after.iter().position(|r| is_patch(r, &system));
    let reset = after.iter().position(|r| is_reset(r, &system));
    assert!(
        patch.is_some() && patch < reset,
        "boot override before the power-on: {after:#?}"
    );

    // Release: the claim goes, the machine is powered off, the Server is Available again.
    claims
        .delete("web", &DeleteParams::default())
        .await
        .unwrap();
    sushy.wait_power(&system, "Off").await;
    h.wait_state(&name, "Available").await;

    // The service's log: exactly four resets for this machine (discovery On, Off, claim On, Off),
    // all accepted, and none for the machine whose SBC never became Ready.
    let writes = sushy.writes();
    let resets: Vec<&Logged> = writes.iter().filter(|r| is_reset(r, &system)).collect();
    assert_eq!(resets.len(), 4, "{writes:#?}");
    assert!(resets.iter().all(|r| r.status == 204), "{resets:#?}");
    assert!(!writes.iter().any(|r| is_reset(r, &other_system)));

    // sushy's Manager advertises no Manager.Reset: a requested BMC reset is dropped with a Warning,
    // nothing is POSTed to a guessed URL, and the BMC stays Ready.
    request_bmc_reset(&h, "sushy").await;
    h.wait_for(
        &Api::<BMC>::all(h.client.clone()),
        "sushy",
        T,
        "operation consumed",
        |b: &BMC| {
            !b.metadata
                .annotations
                .as_ref()
                .is_some_and(|a| a.contains_key("metal.ironcore.dev/operation"))
        },
    )
    .await;
    h.wait_event("sushy", "BMCResetUnsupported").await;
    assert!(
        !sushy
            .writes()
            .iter()
            .any(|r| r.path.starts_with("/redfish/v1/Managers")),
        "{:#?}",
        sushy.writes()
    );
    let bmc = wait_bmc_ready(&h, "sushy").await;
    assert_eq!(
        bmc.status
            .unwrap()
            .state
            .map(|s| s.as_str().to_owned())
            .as_deref(),
        Some("Enabled")
    );
    eprintln!("sushy-emulator lifecycle took {:?}", started.elapsed());
}

// ---------------------------------------------------------------------------------------------
// DMTF public-rackmount1 served by sushy-static

const MOCKUP_SYSTEM: &str = "/redfish/v1/Systems/437XR1138R2";

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

async fn start_sushy_static() -> Option<(Service, PathBuf)> {
    let (_, script) = venv_script("sushy-static")?;
    let dir = tempfile::tempdir().unwrap();
    let mockup = dir.path().join("mockup");
    copy_tree(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/dmtf-public-rackmount1"),
        &mockup,
    );
    let port = free_port();
    let args = [
        "-i".to_owned(),
        "127.0.0.1".into(),
        "-p".into(),
        port.to_string(),
        "-m".into(),
        mockup.display().to_string(),
    ];
    // The mockup server enforces no auth; the operator sends Basic credentials all the same.
    let service = Service::spawn(&script, &args, dir, port, None).await;
    Some((service, mockup))
}

/// The machine behind a static mockup: applies each reset the service logged to the served
/// System's `PowerState` (atomically, so a concurrent GET never sees half a file).
fn spawn_static_machine(service: &Service, mockup: PathBuf) -> tokio::task::JoinHandle<()> {
    let log = service.log.clone();
    tokio::spawn(async move {
        let file = mockup.join("Systems/437XR1138R2/index.json");
        let mut applied = 0;
        loop {
            let resets: Vec<Logged> = logged_writes(&log)
                .into_iter()
                .filter(|r| is_reset(r, MOCKUP_SYSTEM))
                .collect();
            for reset in &resets[applied.min(resets.len())..] {
                let kind = reset
                    .body
                    .as_ref()
                    .and_then(|b| b["ResetType"].as_str())
                    .unwrap_or_default();
                let power = match kind {
                    "On" | "ForceOn" | "GracefulRestart" | "ForceRestart" | "PowerCycle" => "On",
                    "ForceOff" | "GracefulShutdown" => "Off",
                    _ => continue,
                };
                let mut system: Value =
                    serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
                system["PowerState"] = json!(power);
                let tmp = file.with_extension("tmp");
                std::fs::write(&tmp, serde_json::to_vec_pretty(&system).unwrap()).unwrap();
                std::fs::rename(&tmp, &file).unwrap();
            }
            applied = resets.len();
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
}

fn reset_type(r: &Logged) -> Option<&str> {
    r.body.as_ref()?["ResetType"].as_str()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dmtf_rackmount1_mockup_discovery_boot_power_and_release() {
    let Some((mockup, files)) = start_sushy_static().await else {
        return;
    };
    let started = Instant::now();
    let machine = spawn_static_machine(&mockup, files);
    let mut h = harness().await;
    // Upstream's Endpoint path: a MAC prefix database entry with default credentials turns the
    // Endpoint into a BMCSecret and a BMC of the same name.
    create_endpoint(&mut h, "dmtf", mockup.port).await;
    h.start_operator().await;

    let bmc = wait_bmc_ready(&h, "dmtf").await;
    assert_bmc_matches_manager(&bmc, &mockup).await;
    assert_eq!(
        bmc.spec.endpoint_ref.as_ref().map(|r| r.name.as_str()),
        Some("dmtf")
    );
    assert_eq!(
        bmc.status.as_ref().and_then(|s| s.mac_address.as_deref()),
        Some(ENDPOINT_MAC)
    );
    // The BMC names the Manager with a graphical console (upstream's DiscoverManager).
    let manager = mockup.get("/redfish/v1/Managers/BMC").await;
    assert!(manager["GraphicalConsole"]["MaxConcurrentSessions"].as_i64() > Some(0));
    assert_eq!(bmc.spec.bmc_uuid.as_deref(), manager["UUID"].as_str());
    let secret = Api::<BMCSecret>::all(h.client.clone())
        .get("dmtf")
        .await
        .unwrap();
    assert_eq!(
        secret.credentials(),
        Some((USER.to_owned(), PASSWORD.to_owned()))
    );
    let servers = assert_servers_match_systems(&h, "dmtf", &mockup).await;
    let name = servers[0].metadata.name.clone().unwrap();
    assert_eq!(servers[0].spec.system_uri.as_deref(), Some(MOCKUP_SYSTEM));
    // The mockup's machine is On; that is what the Server reports.
    wait_server_power(&h, &name, "On").await;

    // Initial → Discovery: inventory read from the mockup's own resources.
    let s = h.wait_state(&name, "Discovery").await;
    let system = mockup.get(MOCKUP_SYSTEM).await;
    let status = s.status.unwrap();
    let text = |k: &str| system[k].as_str().map(str::to_owned);
    assert_eq!(status.manufacturer, text("Manufacturer"));
    assert_eq!(status.model, text("Model"));
    assert_eq!(status.sku, text("SKU"));
    assert_eq!(status.serial_number, text("SerialNumber"));
    assert_eq!(status.bios_version, text("BiosVersion"));
    assert_eq!(
        status.total_system_memory.map(|q| q.0),
        system["MemorySummary"]["TotalSystemMemoryGiB"]
            .as_f64()
            .map(|g| format!("{g}Gi"))
    );
    let processors = mockup.get(&format!("{MOCKUP_SYSTEM}/Processors")).await;
    let mut want = Vec::new();
    for member in processors["Members"].as_array().unwrap() {
        let p = mockup.get(member["@odata.id"].as_str().unwrap()).await;
        want.push((
            p["Id"].as_str().unwrap().to_owned(),
            p["ProcessorType"].as_str().map(str::to_owned),
            p["TotalCores"].as_i64().map(|c| c as i32),
        ));
    }
    let got: Vec<_> = status
        .processors
        .iter()
        .map(|p| (p.id.clone(), p.type_.clone(), p.total_cores))
        .collect();
    assert_eq!(got, want);
    let simple = mockup
        .get(&format!("{MOCKUP_SYSTEM}/SimpleStorage/1"))
        .await;
    let devices = simple["Devices"].as_array().unwrap();
    assert_eq!(status.storages.len(), 1);
    let drives = &status.storages[0].drives;
    assert_eq!(drives.len(), devices.len());
    for (drive, device) in drives.iter().zip(devices) {
        assert_eq!(drive.name.as_deref(), device["Name"].as_str());
        assert_eq!(
            drive.capacity.as_ref().map(|q| q.0.clone()),
            device["CapacityBytes"].as_i64().map(|b| b.to_string())
        );
        assert_eq!(drive.state.as_deref(), device["Status"]["State"].as_str());
    }

    // The PXE-once override, as the mockup server received it; no reset yet.
    let pxe =
        json!({"Boot": {"BootSourceOverrideEnabled": "Once", "BootSourceOverrideTarget": "Pxe"}});
    // (A retried Initial may repeat the PATCH: harmless, so repeats are not counted.)
    let writes = mockup.writes();
    assert!(
        !writes.is_empty()
            && writes
                .iter()
                .all(|w| is_patch(w, MOCKUP_SYSTEM) && w.body.as_ref() == Some(&pxe)),
        "{writes:#?}"
    );

    // SBC Ready: the machine is already On, so no power-on is sent; the probe registers → Available,
    // and the operator powers it off (GracefulShutdown on the wire, Off in the mockup).
    h.backend_set(NS, &name, "Ready", vec![]).await;
    h.register_probe(&servers[0].spec.system_uuid, &["aa:bb:cc:00:00:01"])
        .await;
    h.wait_state(&name, "Available").await;
    mockup.wait_power(MOCKUP_SYSTEM, "Off").await;
    wait_server_power(&h, &name, "Off").await;
    let mark = mockup.writes().len();

    // A claim: nothing before its SBC is Ready; then PXE once and On, in that order.
    let claims = claim_web(&h, &name).await;
    assert_eq!(mockup.writes().len(), mark, "{:#?}", mockup.writes());
    h.backend_set(NS, "web", "Ready", vec![]).await;
    mockup.wait_power(MOCKUP_SYSTEM, "On").await;
    wait_server_power(&h, &name, "On").await;

    // Release: GracefulShutdown, Off, Available.
    claims
        .delete("web", &DeleteParams::default())
        .await
        .unwrap();
    mockup.wait_power(MOCKUP_SYSTEM, "Off").await;
    h.wait_state(&name, "Available").await;

    let mut sequence: Vec<(String, Option<String>)> = mockup
        .writes()
        .iter()
        .map(|r| {
            let what = if is_patch(r, MOCKUP_SYSTEM) {
                assert_eq!(r.body.as_ref(), Some(&pxe), "{r:#?}");
                "PATCH Boot"
            } else if is_reset(r, MOCKUP_SYSTEM) {
                "Reset"
            } else {
                panic!("unexpected write {r:#?}")
            };
            (what.to_owned(), reset_type(r).map(str::to_owned))
        })
        .collect();
    sequence.dedup_by(|a, b| a.0 == "PATCH Boot" && a == b);
    let expected = [
        ("PATCH Boot", None),
        ("Reset", Some("GracefulShutdown")),
        ("PATCH Boot", None),
        ("Reset", Some("On")),
        ("Reset", Some("GracefulShutdown")),
    ]
    .map(|(w, r)| (w.to_owned(), r.map(str::to_owned)));
    assert_eq!(sequence, expected);

    // A BMC reset: Manager.Reset GracefulRestart at the Manager's advertised target.
    request_bmc_reset(&h, "dmtf").await;
    h.until("Manager.Reset on the wire", || async {
        mockup.writes().iter().any(|r| {
            r.method == "POST"
                && r.path == "/redfish/v1/Managers/BMC/Actions/Manager.Reset"
                && r.body == Some(json!({"ResetType": "GracefulRestart"}))
        })
    })
    .await;
    h.wait_for(
        &Api::<BMC>::all(h.client.clone()),
        "dmtf",
        T,
        "Reset=True",
        |b: &BMC| {
            b.status.as_ref().is_some_and(|s| {
                s.conditions
                    .iter()
                    .any(|c| c.type_ == "Reset" && c.status == "True")
            })
        },
    )
    .await;
    machine.abort();
    eprintln!("DMTF mockup lifecycle took {:?}", started.elapsed());
}

// ---------------------------------------------------------------------------------------------
// sushy's payload samples

/// Whether a payload decodes into one operator type.
type Decoder = fn(&str) -> serde_json::Result<()>;

/// Decodes `text` as a `T`, keeping only whether that worked.
fn decodes<T: serde::de::DeserializeOwned>(text: &str) -> serde_json::Result<()> {
    serde_json::from_str::<T>(text).map(drop)
}

/// The kinds the sushy samples only have to decode into.
const ONLY_DECODED: [(&str, Decoder); 7] = {
    use operator::redfish::types::*;
    [
        ("Processor", decodes::<Processor>),
        ("Storage", decodes::<Storage>),
        ("Drive", decodes::<Drive>),
        ("Volume", decodes::<Volume>),
        ("ServiceRoot", decodes::<ServiceRoot>),
        ("EventService", decodes::<EventService>),
        ("EventDestination", decodes::<EventDestination>),
    ]
};

/// The `sushy` client package ships payload samples of real BMCs (its unit tests' json_samples:
/// Lenovo, Nokia, Dell and DMTF-mockup shapes). Every sample of a kind the operator reads must
/// decode into the operator's types, with the fields it acts on.
#[test]
fn sushy_payload_samples_decode_into_the_operator_types() {
    use operator::redfish::types::*;
    let Some(py) = std::env::var_os("METAL_HARNESS_PYTHON").map(PathBuf::from) else {
        let _ = venv_script("sushy-emulator");
        return;
    };
    let out = std::process::Command::new(&py)
        .args([
            "-c",
            "import os, sushy; print(os.path.join(os.path.dirname(sushy.__file__), 'tests', 'unit', 'json_samples'))",
        ])
        .output()
        .expect("venv python runs");
    assert!(out.status.success(), "sushy is in the venv: {out:?}");
    let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    let mut decoded = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let Ok(value) = serde_json::from_str::<Value>(&text) else {
            continue;
        };
        let kind = value["@odata.type"].as_str().unwrap_or_default().to_owned();
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        let fail = |e: serde_json::Error| -> ! { panic!("{file} ({kind}): {e}") };
        let is = |k: &str| kind.starts_with(&format!("#{k}.")) && !kind.contains("Collection");
        if kind.ends_with("Collection") {
            let c: Collection = serde_json::from_str(&text).unwrap_or_else(|e| fail(e));
            let listed = value["Members"].as_array().map_or(0, Vec::len);
            assert_eq!(c.members.len(), listed, "{file}");
        } else if is("ComputerSystem") {
            let s: ComputerSystem = serde_json::from_str(&text).unwrap_or_else(|e| fail(e));
            if value.get("Actions").is_some() {
                assert!(s.reset_target().ends_with("ComputerSystem.Reset"), "{file}");
            }
        } else if is("Manager") {
            let m: Manager = serde_json::from_str(&text).unwrap_or_else(|e| fail(e));
            assert_eq!(m.uuid.as_deref(), value["UUID"].as_str(), "{file}");
        } else if let Some((_, decode)) = ONLY_DECODED.iter().find(|(k, _)| is(k)) {
            decode(&text).unwrap_or_else(|e| fail(e));
        } else {
            continue;
        }
        decoded += 1;
    }
    assert!(
        decoded >= 40,
        "only {decoded} samples decoded from {}",
        dir.display()
    );
    eprintln!("{decoded} sushy payload samples decode");
}
