//! Benchmark (prints figures; `cargo bench -p netboot --bench backend`): SBCs per second brought to Ready,
//! artifact bytes per second served to concurrently booting machines, and RSS — each next to a baseline
//! measured in the same run. Sizes: `BENCH_SBCS` (default 1000), `BENCH_MACHINES` (default 100).

use std::time::Duration;

use futures::future::join_all;
use http_client::HttpClient;
use kube::api::ListParams;
use kube::{Api, Client};
use metal_api::ServerBootConfiguration;
use netboot::{Netboot, NetbootOptions};
use sim_bmc::boot::{BootOutcome, BootTarget, NetworkBoot, NetworkBootRequest};
use sim_boot::oci::{BlobSizes, names};
use sim_boot::{BackendHandle, BackendOptions, EmbeddedRegistry};
use tokio::time::Instant;

const NS: &str = "default";

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn uuid(i: usize) -> String {
    format!("00000000-0000-4000-8000-{i:012x}")
}

async fn create(client: &Client, backend: &BackendHandle, n: usize) {
    use testbed::objects;
    let image = backend.image(names::OS_V1);
    for chunk in (0..n).collect::<Vec<_>>().chunks(50) {
        join_all(chunk.iter().map(|&i| {
            let image = image.clone();
            async move {
                let name = format!("m{i}");
                objects::create_server(client, &name, &uuid(i))
                    .await
                    .expect("Server");
                objects::create_sbc(client, NS, &name, &name, &image, None)
                    .await
                    .expect("SBC");
                objects::reference_sbc(client, &name, NS, &name)
                    .await
                    .expect("ref");
            }
        }))
        .await;
    }
}

async fn count_ready(client: &Client) -> usize {
    let sbcs = Api::<ServerBootConfiguration>::namespaced(client.clone(), NS);
    let list = sbcs.list(&ListParams::default()).await.expect("list");
    list.items
        .iter()
        .filter(|s| {
            s.status
                .as_ref()
                .and_then(|st| st.state.as_ref())
                .is_some_and(|st| st.as_str() == "Ready")
        })
        .count()
}

async fn readiness(n: usize) -> testbed::Testbed {
    let sizes = BlobSizes {
        kernel: 1 << 20,
        initramfs: 4 << 20,
        squashfs: 64 << 10,
        uki: 2 << 20,
    };
    let options = BackendOptions {
        registry: Some(EmbeddedRegistry {
            sizes,
            ..Default::default()
        }),
        ..Default::default()
    };
    let bed = testbed::Testbed::builder()
        .backend(testbed::Backend::InProcess(options.into()))
        .start()
        .await
        .expect("API server and backend");
    let client = bed.client.clone();
    let backend = sim_boot(&bed);
    let rss_before = rss_kib();
    let started = Instant::now();
    create(&client, backend, n).await;
    let created = started.elapsed();
    let deadline = Instant::now() + Duration::from_secs(600);
    while count_ready(&client).await < n {
        assert!(
            Instant::now() < deadline,
            "not all SBCs Ready within 10 minutes"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let ready = started.elapsed();
    let rss_after = rss_kib();
    let create_rate = n as f64 / created.as_secs_f64();
    let ready_rate = n as f64 / ready.as_secs_f64();
    println!("readiness: {n} SBCs (with Servers, references; one shared image)");
    println!(
        "  baseline: objects written to the API server: {create_rate:.0}/s ({created:.2?} for {n} Server+SBC+patch)"
    );
    println!(
        "  SBCs brought to Ready (resolve, publish, self-probe over HTTP, status): {ready_rate:.0}/s ({ready:.2?} total)"
    );
    println!(
        "  ratio Ready rate / write rate: {:.2}",
        ready_rate / create_rate
    );
    println!(
        "  RSS: {} MiB before, {} MiB after ({:.1} KiB per SBC incl. API server objects)",
        rss_before / 1024,
        rss_after / 1024,
        (rss_after.saturating_sub(rss_before)) as f64 / n as f64
    );
    bed
}

fn sim_boot(bed: &testbed::Testbed) -> &BackendHandle {
    bed.sim_boot()
        .and_then(|b| b.handle())
        .expect("in-process sim-boot")
}

async fn boot_throughput(backend: &BackendHandle, machines: usize) {
    let http = HttpClient::hyper().with_timeout(Duration::from_secs(300));
    let netboot = Netboot::new(NetbootOptions {
        http,
        ..NetbootOptions::default()
    });
    let started = Instant::now();
    let outcomes = join_all((0..machines).map(|i| {
        let request = NetworkBootRequest {
            system_uuid: uuid(i),
            macs: vec![format!("02:00:00:00:{:02x}:{:02x}", i / 256, i % 256)],
            architecture: "amd64".into(),
            target: BootTarget::Pxe,
            boot_url: Some(format!("{}/ipxe?uuid={}", backend.url(), uuid(i))),
        };
        netboot.boot(request)
    }))
    .await;
    let elapsed = started.elapsed();
    let failures: Vec<_> = outcomes
        .iter()
        .filter_map(|o| match o {
            BootOutcome::Failed { reason } => Some(reason.clone()),
            _ => None,
        })
        .collect();
    assert!(
        failures.is_empty(),
        "boot failures: {:?}",
        &failures[..failures.len().min(3)]
    );
    let record = backend
        .records()
        .get(&sim_boot::records::SbcKey::new(NS, "m0"))
        .expect("record");
    let per_machine =
        record.kernel.as_ref().unwrap().size + record.initramfs.as_ref().unwrap().size;
    let boot_rate = (per_machine * machines as u64) as f64 / elapsed.as_secs_f64();
    // Baseline: the same bytes straight from the embedded registry's blob endpoint, same concurrency.
    let http = HttpClient::hyper().with_timeout(Duration::from_secs(120));
    let registry = backend.registry_url().expect("registry");
    let blobs = [
        record.kernel.clone().unwrap(),
        record.initramfs.clone().unwrap(),
    ];
    let started = Instant::now();
    let fetched = join_all((0..machines).map(|_| {
        let (http, registry, blobs) = (http.clone(), registry.clone(), blobs.clone());
        async move {
            let mut bytes = 0;
            for blob in &blobs {
                bytes += http
                    .get(&format!("{registry}/v2/ironcore/os/blobs/{}", blob.digest))
                    .await
                    .expect("blob")
                    .body
                    .len();
            }
            bytes
        }
    }))
    .await;
    let baseline = fetched.iter().sum::<usize>() as f64 / started.elapsed().as_secs_f64();
    println!(
        "boot: {machines} machines PXE-booting concurrently (script, {} KiB kernel + initrd each, digest-checked)",
        per_machine / 1024
    );
    println!(
        "  baseline: raw registry blob GETs at the same concurrency: {:.1} MiB/s",
        baseline / (1 << 20) as f64
    );
    println!(
        "  artifact bytes to booting machines: {:.1} MiB/s ({elapsed:.2?})",
        boot_rate / (1 << 20) as f64
    );
    println!("  ratio boot / raw: {:.2}", boot_rate / baseline);
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let sbcs = env("BENCH_SBCS", 1000);
        let machines = env("BENCH_MACHINES", 100).min(sbcs);
        let bed = readiness(sbcs).await;
        boot_throughput(sim_boot(&bed), machines).await;
        bed.shutdown().await;
    });
}
