//! `cargo bench -p sim-bmc --bench fleet`: GET System and POST Reset throughput and p99 latency for one BMC
//! and for 1,000 BMCs, power-change visibility, and RSS per BMC with 10,000 BMCs in one process. sushy-tools'
//! emulator (fake driver) is measured in the same run as the baseline when METAL_HARNESS_PYTHON points at a
//! venv that has it (`pip install sushy-tools`). The servers run as separate processes; one load generator
//! (this binary) drives both.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

const BASIC: &str = "Basic YWRtaW46cGFzc3dvcmQ="; // admin:password

struct Target {
    /// host:port
    addr: String,
    system_path: String,
    auth: bool,
}

#[derive(Default)]
struct Stats {
    latencies: Vec<Duration>,
    errors: usize,
    elapsed: Duration,
}

impl Stats {
    fn rate(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64()
    }
    fn pct(&self, p: f64) -> Duration {
        let mut v = self.latencies.clone();
        v.sort();
        v.get(((v.len() as f64 - 1.0) * p) as usize)
            .copied()
            .unwrap_or_default()
    }
    fn line(&self, label: &str) -> String {
        format!(
            "{label:<44} {:>9.0} req/s  p50 {:>8.2?}  p99 {:>8.2?}  errors {}",
            self.rate(),
            self.pct(0.5),
            self.pct(0.99),
            self.errors
        )
    }
}

type Sender = http1::SendRequest<Full<Bytes>>;

async fn connect(addr: &str) -> Sender {
    let stream = TcpStream::connect(addr).await.expect("connect");
    stream.set_nodelay(true).ok();
    let (sender, conn) = http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    sender
}

async fn request(sender: &mut Sender, t: &Target, post: Option<&'static str>) -> Result<u16, ()> {
    let path = match post {
        Some(_) => format!("{}/Actions/ComputerSystem.Reset", t.system_path),
        None => t.system_path.clone(),
    };
    let mut req = http::Request::builder().uri(path).header("host", &t.addr);
    if t.auth {
        req = req.header("authorization", BASIC);
    }
    let req = match post {
        Some(body) => req
            .method("POST")
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body))),
        None => req.method("GET").body(Full::new(Bytes::new())),
    }
    .map_err(|_| ())?;
    sender.ready().await.map_err(|_| ())?;
    let resp = sender.send_request(req).await.map_err(|_| ())?;
    let status = resp.status().as_u16();
    resp.into_body().collect().await.map_err(|_| ())?;
    Ok(status)
}

/// `connections` keep-alive connections spread over `targets`, each looping for `duration`.
async fn load(
    targets: Arc<Vec<Target>>,
    connections: usize,
    duration: Duration,
    post: Option<&'static str>,
) -> Stats {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..connections {
        let targets = targets.clone();
        tasks.push(tokio::spawn(async move {
            let mut stats = Stats::default();
            let mut i = c;
            let mut sender = connect(&targets[i % targets.len()].addr).await;
            let mut current = i % targets.len();
            while start.elapsed() < duration {
                let idx = i % targets.len();
                if idx != current {
                    sender = connect(&targets[idx].addr).await;
                    current = idx;
                }
                let t0 = Instant::now();
                let mut outcome = request(&mut sender, &targets[idx], post).await;
                if outcome.is_err() {
                    // The server closed the connection (HTTP/1.0 style): reconnecting is part of the cost.
                    sender = connect(&targets[idx].addr).await;
                    outcome = request(&mut sender, &targets[idx], post).await;
                }
                match outcome {
                    Ok(s) if s < 300 => stats.latencies.push(t0.elapsed()),
                    _ => {
                        stats.errors += 1;
                        sender = connect(&targets[idx].addr).await;
                    }
                }
                // With many BMCs, move to another BMC every 50 requests (keeps connections warm, spreads load).
                if targets.len() > 1 && stats.latencies.len() % 50 == 0 {
                    i += connections;
                }
            }
            stats
        }));
    }
    let mut total = Stats::default();
    for t in tasks {
        let s = t.await.expect("worker");
        total.latencies.extend(s.latencies);
        total.errors += s.errors;
    }
    total.elapsed = start.elapsed();
    total
}

/// Sequential resets on one keep-alive connection (as the scouting measured sushy); a server that closes
/// the connection after each answer (HTTP/1.0 style) costs a reconnect, which is part of its time.
async fn sequential_resets(t: &Target, n: usize, body: &'static str) -> Stats {
    let mut sender = connect(&t.addr).await;
    let mut stats = Stats::default();
    let start = Instant::now();
    for _ in 0..n {
        let t0 = Instant::now();
        let mut outcome = request(&mut sender, t, Some(body)).await;
        if outcome.is_err() {
            sender = connect(&t.addr).await;
            outcome = request(&mut sender, t, Some(body)).await;
        }
        match outcome {
            Ok(s) if s < 300 => stats.latencies.push(t0.elapsed()),
            _ => stats.errors += 1,
        }
    }
    stats.elapsed = start.elapsed();
    stats
}

async fn power_state(t: &Target) -> String {
    let mut sender = connect(&t.addr).await;
    let mut req = http::Request::get(&t.system_path).header("host", &t.addr);
    if t.auth {
        req = req.header("authorization", BASIC);
    }
    let resp = sender
        .send_request(req.body(Full::new(Bytes::new())).unwrap())
        .await
        .expect("get");
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    v["PowerState"].as_str().unwrap_or("").to_string()
}

/// Time from a reset to the first GET that shows `wanted` (polling every 10 ms, bounded at 30 s).
/// Three Off/On rounds: how long each power change takes to show in the System.
async fn power_lags(t: &Target) -> Vec<Duration> {
    let mut lags = Vec::new();
    for _ in 0..3 {
        lags.push(power_visibility(t, r#"{"ResetType":"ForceOff"}"#, "Off").await);
        lags.push(power_visibility(t, r#"{"ResetType":"On"}"#, "On").await);
    }
    lags
}

async fn power_visibility(t: &Target, reset: &'static str, wanted: &str) -> Duration {
    let mut sender = connect(&t.addr).await;
    let t0 = Instant::now();
    request(&mut sender, t, Some(reset)).await.expect("reset");
    while t0.elapsed() < Duration::from_secs(30) {
        if power_state(t).await == wanted {
            return t0.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Duration::from_secs(30)
}

/// The child's resident set in KiB; 0 once it has gone (the figure is then meaningless anyway).
fn rss_kib(pid: u32) -> u64 {
    let status = procfs::process::Process::new(pid as i32).and_then(|p| p.status());
    status.ok().and_then(|s| s.vmrss).unwrap_or(0)
}

struct Server {
    child: Child,
    lines: Vec<String>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the sim-bmc binary with `count` BMCs and reads its address table.
fn start_sim(count: usize, dir: &std::path::Path) -> Server {
    let fleet = dir.join(format!("fleet-{count}.yaml"));
    std::fs::write(
        &fleet,
        format!("seed: 1\ncount: {count}\ndefaults:\n  latencies: {{powerOnMs: 200, powerOffMs: 100, gracefulShutdownMs: 100, postMs: 50}}\n"),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_sim-bmc"))
        .arg("--fleet")
        .arg(&fleet)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("sim-bmc starts");
    let reader = BufReader::new(child.stdout.take().unwrap());
    let mut lines = Vec::new();
    for line in reader.lines() {
        let line = line.unwrap();
        if line.starts_with("bmc-") {
            lines.push(line);
        }
        if lines.len() == count {
            break;
        }
    }
    Server { child, lines }
}

fn sim_targets(server: &Server) -> Vec<Target> {
    server
        .lines
        .iter()
        .map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            let system = cols[5].split('=').next().unwrap();
            Target {
                addr: cols[2].trim_start_matches("http://").to_string(),
                system_path: format!("/redfish/v1/Systems/{system}"),
                auth: true,
            }
        })
        .collect()
}

fn start_sushy(dir: &std::path::Path) -> Option<(Server, Target)> {
    let py = std::env::var_os("METAL_HARNESS_PYTHON")?;
    let emulator = std::path::Path::new(&py).parent()?.join("sushy-emulator");
    if !emulator.exists() {
        println!(
            "baseline skipped: {} not found (pip install sushy-tools into that venv)",
            emulator.display()
        );
        return None;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()?
        .port();
    let conf = dir.join("sushy.conf");
    std::fs::write(
        &conf,
        format!(
            "SUSHY_EMULATOR_LISTEN_IP = '127.0.0.1'\nSUSHY_EMULATOR_LISTEN_PORT = {port}\nSUSHY_EMULATOR_FAKE_DRIVER = True\nSUSHY_EMULATOR_STATE_DIR = '{}'\n",
            dir.join("sushy-state").display()
        ),
    )
    .ok()?;
    let child = Command::new(emulator)
        .args(["--config"])
        .arg(&conf)
        .args(["--fake", "-i", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let addr = format!("127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(&addr).is_err() {
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let body = Command::new("curl")
        .args(["-s", &format!("http://{addr}/redfish/v1/Systems")])
        .output()
        .ok()?
        .stdout;
    let v: serde_json::Value = serde_json::from_slice(&body).ok()?;
    let system_path = v["Members"][0]["@odata.id"].as_str()?.to_string();
    Some((
        Server {
            child,
            lines: vec![],
        },
        Target {
            addr,
            system_path,
            auth: false,
        },
    ))
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let secs = Duration::from_secs(5);
    println!(
        "== GET System / POST Reset (16 keep-alive connections, {secs:?} each; server in its own process)"
    );

    let sushy = start_sushy(dir.path());
    let mut baseline = None;
    if let Some((server, t)) = &sushy {
        let t = Arc::new(vec![Target {
            addr: t.addr.clone(),
            system_path: t.system_path.clone(),
            auth: false,
        }]);
        let get = load(t.clone(), 16, secs, None).await;
        println!("{}", get.line("sushy-emulator fake, 1 system, GET"));
        let _ = power_visibility(&t[0], r#"{"ResetType":"On"}"#, "On").await;
        let resets = sequential_resets(&t[0], 200, r#"{"ResetType":"ForceRestart"}"#).await;
        println!(
            "{}",
            resets.line("sushy-emulator fake, 200 sequential resets")
        );
        let lags = power_lags(&t[0]).await;
        println!(
            "{:<44} {lags:.2?} (configured: random 1-11 s)",
            "sushy-emulator power change visible after"
        );
        println!(
            "sushy-emulator RSS: {} MiB",
            rss_kib(server.child.id()) / 1024
        );
        baseline = Some((get.rate(), resets.rate()));
    }
    drop(sushy);

    let one = start_sim(1, dir.path());
    let t = Arc::new(sim_targets(&one));
    let get1 = load(t.clone(), 16, secs, None).await;
    println!("{}", get1.line("sim-bmc, 1 BMC, GET (Basic auth)"));
    // The Manager payload is rendered on every GET (only System payloads are cached): the uncached cost.
    let manager = Arc::new(vec![Target {
        addr: t[0].addr.clone(),
        system_path: "/redfish/v1/Managers/iDRAC.Embedded.1".into(),
        auth: true,
    }]);
    println!(
        "{}",
        load(manager, 16, secs, None)
            .await
            .line("sim-bmc, 1 BMC, GET Manager (rendered each time)")
    );
    let _ = power_visibility(&t[0], r#"{"ResetType":"On"}"#, "On").await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let resets1 = sequential_resets(&t[0], 2000, r#"{"ResetType":"ForceRestart"}"#).await;
    println!("{}", resets1.line("sim-bmc, 1 BMC, 2000 sequential resets"));
    let lags = power_lags(&t[0]).await;
    println!(
        "{:<44} {lags:.2?} (configured: off 100 ms, on 200 ms)",
        "sim-bmc power change visible after"
    );
    drop(one);

    let many = start_sim(1000, dir.path());
    let t = Arc::new(sim_targets(&many));
    let get1000 = load(t.clone(), 16, secs, None).await;
    println!("{}", get1000.line("sim-bmc, 1,000 BMCs, GET"));
    let reset1000 = load(t.clone(), 16, secs, Some(r#"{"ResetType":"Nmi"}"#)).await;
    println!(
        "{}",
        reset1000.line("sim-bmc, 1,000 BMCs, POST Reset (Nmi)")
    );
    drop(many);

    if let Some((get, reset)) = baseline {
        println!("== ratios against sushy-emulator in this run");
        println!(
            "GET 1 BMC: {:.0}x   GET 1,000 BMCs: {:.0}x   resets: {:.0}x",
            get1.rate() / get,
            get1000.rate() / get,
            resets1.rate() / reset
        );
    }

    println!("== memory");
    let t0 = Instant::now();
    let big = start_sim(10_000, dir.path());
    let startup = t0.elapsed();
    let targets = sim_targets(&big);
    let probe = Target {
        addr: targets[9_999].addr.clone(),
        system_path: targets[9_999].system_path.clone(),
        auth: true,
    };
    let state = power_state(&probe).await;
    let rss = rss_kib(big.child.id());
    println!(
        "10,000 BMCs (10,000 listeners): RSS {} MiB = {:.1} KiB per BMC; started in {startup:.2?}; last BMC answers ({state})",
        rss / 1024,
        rss as f64 / 10_000.0
    );
}
