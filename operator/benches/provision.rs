//! Provisioning benchmark: N servers discovered, then N claims created at once with the backend
//! answering Ready immediately and zero sim latencies; reports wall time to all powered on, API
//! writes and reconciles per server, and RSS — each against a baseline measured in the same run.
//!
//! `cargo bench -p operator --bench provision -- [--servers N] [--concurrency C]`

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use common::*;
use futures::StreamExt as _;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt as _, watcher};
use metal_api::{Server, ServerBootConfiguration, ServerClaim};
use operator::config::ReadinessGate;
use operator::redfish::{ClientOptions, Credentials, RedfishClient, ResetType, service_transport};
use serde_json::json;

struct Args {
    servers: usize,
    concurrency: u16,
}

fn args() -> Args {
    let mut args = Args {
        servers: 100,
        concurrency: 5,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--servers" => {
                args.servers = it.next().and_then(|v| v.parse().ok()).expect("--servers N")
            }
            "--concurrency" => {
                args.concurrency = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--concurrency C")
            }
            _ => {} // cargo bench passes --bench
        }
    }
    args
}

fn rss_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The backend: answers every SBC Ready as soon as it appears; counts its own writes.
fn spawn_backend(h: &Harness, counters: Arc<ApiCounters>) {
    let client = counting_client(h.api.router(), counters);
    tokio::spawn(async move {
        let api = Api::<ServerBootConfiguration>::all(client.clone());
        let stream = watcher(api, watcher::Config::default()).default_backoff();
        let mut objects = std::pin::pin!(stream.applied_objects());
        while let Some(event) = objects.next().await {
            // A watch error (e.g. a re-list) must not stop the backend: the watcher recovers.
            let Ok(sbc) = event else { continue };
            let ready = sbc
                .status
                .as_ref()
                .and_then(|s| s.state.as_ref())
                .is_some_and(|s| s.as_str() == "Ready");
            if ready {
                continue;
            }
            let ns = sbc.metadata.namespace.clone().unwrap_or_default();
            let name = sbc.metadata.name.clone().unwrap_or_default();
            let api = Api::<ServerBootConfiguration>::namespaced(client.clone(), &ns);
            tokio::spawn(async move {
                let patch = json!({ "status": { "state": "Ready" } });
                let _ = api
                    .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await;
            });
        }
    });
}

async fn wait_all(h: &Harness, n: usize, what: &str, check: impl Fn(&Server) -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(600);
    let mut next_report = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let list = h.servers().list(&Default::default()).await.unwrap().items;
        let done = list.iter().filter(|s| check(s)).count();
        if done >= n {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: only {done}/{n}"
        );
        if tokio::time::Instant::now() >= next_report {
            let mut states = std::collections::BTreeMap::<String, usize>::new();
            for s in &list {
                let st = s.status.clone().unwrap_or_default();
                let state = st.state.map(|x| x.as_str().to_owned()).unwrap_or_default();
                let power = st
                    .power_state
                    .map(|x| x.as_str().to_owned())
                    .unwrap_or_default();
                *states.entry(format!("{state}/{power}")).or_default() += 1;
            }
            eprintln!("{what}: {done}/{n} {states:?}");
            report_orphans(h, &list).await;
            next_report += Duration::from_secs(10);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Reserved Servers whose claim names another Server (a lost binding race), for diagnosis.
async fn report_orphans(h: &Harness, servers: &[Server]) {
    let claims = Api::<ServerClaim>::namespaced(h.client.clone(), NS);
    for server in servers.iter().filter(|s| state_is(s, "Reserved")) {
        let Some(claim_ref) = &server.spec.server_claim_ref else {
            continue;
        };
        let claim = claims.get_opt(&claim_ref.name).await.ok().flatten();
        let bound_to = claim.and_then(|c| c.spec.server_ref).map(|r| r.name);
        let name = server.metadata.name.clone().unwrap_or_default();
        if bound_to.as_deref() != Some(name.as_str()) {
            eprintln!(
                "  orphan: {name} reserved for claim {} which is bound to {bound_to:?}",
                claim_ref.name
            );
        }
    }
}

fn state_is(s: &Server, state: &str) -> bool {
    s.status
        .as_ref()
        .and_then(|st| st.state.as_ref())
        .is_some_and(|st| st.as_str() == state)
}

/// Baseline: the same N power-ons sent straight to the BMCs (no Kubernetes, no operator).
async fn direct_power_ons(h: &Harness, concurrency: usize) -> Duration {
    let start = tokio::time::Instant::now();
    let bmcs = h.fleet.bmcs();
    futures::stream::iter(bmcs)
        .for_each_concurrent(concurrency, |info| async move {
            let http = service_transport(h.fleet.router(&info.name).unwrap());
            let creds = Credentials {
                username: info.username.clone(),
                password: info.password.clone(),
            };
            let client =
                RedfishClient::new(http, &info.url, creds, ClientOptions::default()).unwrap();
            let system = client.system(&info.systems[0].odata_id).await.unwrap();
            client.set_pxe_once(&system).await.unwrap();
            client.reset_system(&system, ResetType::On).await.unwrap();
            let system = client.system(&info.systems[0].odata_id).await.unwrap();
            client
                .reset_system(&system, ResetType::ForceOff)
                .await
                .unwrap();
        })
        .await;
    start.elapsed()
}

#[tokio::main]
async fn main() {
    let args = args();
    let n = args.servers;
    let mut options = HarnessOptions::new(n);
    options.fleet.defaults.latencies = Some(sim_bmc::fleet::spec::LatencySpec::uniform(0));
    options.config = test_config(ReadinessGate::Strict);
    options.config.server_resync_interval = Duration::from_secs(300);
    // As upstream's own suite: a machine left On by the baseline must be powered off before its
    // discovery boot, or it would never network-boot the probe.
    options.config.enforce_first_boot = true;
    options.config.server_max_concurrent_reconciles = args.concurrency;
    options.config.server_claim_max_concurrent_reconciles = args.concurrency;
    options.config.power_polling_interval = Duration::from_millis(50);
    options.config.resource_polling_interval = Duration::from_millis(50);
    let mut h = Harness::start(options).await;
    let baseline_direct = direct_power_ons(&h, usize::from(args.concurrency)).await;
    h.create_bmcs().await;
    let rss_before = rss_kib("VmRSS:");
    let backend = Arc::new(ApiCounters::default());
    spawn_backend(&h, backend.clone());

    let discovery_start = tokio::time::Instant::now();
    h.start_operator().await;
    wait_all(&h, n, "discovered", |s| {
        state_is(s, "Available") && power_is(s, "Off")
    })
    .await;
    let discovery = discovery_start.elapsed();
    let metrics = h.operator.as_ref().unwrap().metrics.clone();
    let (writes0, backend0) = (
        h.operator_api.writes.load(Relaxed),
        backend.writes.load(Relaxed),
    );
    let reconciles0: u64 = ["server", "serverclaim", "serverbootconfiguration"]
        .iter()
        .map(|c| metrics.reconcile_count(c))
        .sum();
    let power_ons0 = metrics.power_on_requests();

    let start = tokio::time::Instant::now();
    let claims = Api::<ServerClaim>::namespaced(h.client.clone(), NS);
    futures::stream::iter(0..n)
        .for_each_concurrent(64, |i| {
            let claims = claims.clone();
            async move {
                claims
                    .create(
                        &PostParams::default(),
                        &new_claim(&format!("claim-{i}"), None, "On", "ghcr.io/example/os:1.0"),
                    )
                    .await
                    .unwrap();
            }
        })
        .await;
    wait_all(&h, n, "powered on", |s| {
        state_is(s, "Reserved") && power_is(s, "On")
    })
    .await;
    let provision = start.elapsed();
    let writes = h.operator_api.writes.load(Relaxed) - writes0;
    let backend_writes = backend.writes.load(Relaxed) - backend0;
    let reconciles: u64 = ["server", "serverclaim", "serverbootconfiguration"]
        .iter()
        .map(|c| metrics.reconcile_count(c))
        .sum::<u64>()
        - reconciles0;
    let power_ons = metrics.power_on_requests() - power_ons0;
    let rss_after = rss_kib("VmRSS:");
    let hwm = rss_kib("VmHWM:");
    let per = |v: u64| v as f64 / n as f64;
    println!(
        "servers                         {n} (concurrency {})",
        args.concurrency
    );
    println!(
        "discovery wall time             {:.2} s",
        discovery.as_secs_f64()
    );
    println!(
        "provision wall time             {:.2} s  (claims created at once -> all Reserved+On)",
        provision.as_secs_f64()
    );
    println!(
        "baseline: direct Redfish        {:.2} s  (PXE+On+Off per server, no Kubernetes)",
        baseline_direct.as_secs_f64()
    );
    println!(
        "ratio provision / baseline      {:.1}x",
        provision.as_secs_f64() / baseline_direct.as_secs_f64().max(1e-9)
    );
    println!(
        "operator API writes / server    {:.1}  (claim lifecycle; backend wrote {:.1}/server)",
        per(writes),
        per(backend_writes)
    );
    println!(
        "operator API requests total     {}",
        h.operator_api.requests.load(Relaxed)
    );
    println!(
        "reconciles / server             {:.1}  (server+claim+sbc controllers)",
        per(reconciles)
    );
    println!("power-on requests / server      {:.2}", per(power_ons));
    println!(
        "process RSS before operator     {:.1} MiB (apiserver + fleet + objects: baseline)",
        rss_before as f64 / 1024.0
    );
    println!(
        "process RSS after provisioning  {:.1} MiB (peak {:.1} MiB)",
        rss_after as f64 / 1024.0,
        hwm as f64 / 1024.0
    );
    println!(
        "operator share (upper bound)    {:.1} MiB ({:.2}x baseline)",
        (rss_after.saturating_sub(rss_before)) as f64 / 1024.0,
        rss_after as f64 / rss_before.max(1) as f64
    );
    h.stop_operator().await;
}
