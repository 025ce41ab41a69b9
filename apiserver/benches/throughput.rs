//! Benchmark: creates/s and updates/s of a Server-sized object from 16 concurrent clients with 10 active
//! watchers, p50/p99 watch delivery latency, list latency at 10,000 objects and server RSS per 10,000 objects.
//! The server runs as the release `apiserver` binary (so its RSS is its own); the baseline measured in the same
//! run is the request rate and latency of `GET /version` (the HTTP floor of this machine).
//!
//! Run: `cargo bench -p apiserver` (BENCH_OBJECTS overrides the object count, default 20000; APISERVER_BIN
//! points at another server binary to compare builds under the same load).

use std::sync::Arc;
use std::time::Duration;

use http::Request;
use http_body_util::BodyExt;
use kube::client::Body;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::Mutex;
use tokio::time::Instant;

const CLIENTS: usize = 16;
const WATCHERS: usize = 10;
const SERVERS: &str = "/apis/metal.ironcore.dev/v1alpha1/servers";

fn server_object(name: &str, sent_us: u64, generation: u64) -> Vec<u8> {
    format!(
        r#"{{"apiVersion":"metal.ironcore.dev/v1alpha1","kind":"Server","metadata":{{"name":"{name}","labels":{{"rack":"r{rack}","bench":"true"}},"annotations":{{"bench-sent":"{sent_us}"}}}},
"spec":{{"systemUUID":"38947555-7742-3448-3784-{uuid:012}","power":"On","indicatorLED":"Off","bmcRef":{{"name":"bmc-{name}"}},
"bootOrder":[{{"name":"PXE","priority":1,"device":"Pxe"}},{{"name":"Disk","priority":2,"device":"Hdd"}}],
"bmc":{{"address":"10.0.{rack}.{host}","port":443,"protocol":{{"name":"Redfish","port":443,"scheme":"https"}},"bmcSecretRef":{{"name":"bmc-secret-{name}"}}}},
"taints":[{{"key":"metal.ironcore.dev/maintenance","value":"gen-{generation}","effect":"NoBind"}}]}}}}"#,
        rack = sent_us % 40,
        host = sent_us % 250,
        uuid = sent_us,
    )
    .into_bytes()
}

async fn send(client: &kube::Client, method: &str, uri: &str, ct: &str, body: Vec<u8>) -> u16 {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", ct)
        .body(Body::from(body))
        .unwrap();
    let resp = client.send(req).await.expect("request");
    let status = resp.status().as_u16();
    let _ = resp.into_body().collect().await;
    status
}

async fn fetch(client: &kube::Client, uri: &str) -> bytes::Bytes {
    let req = Request::builder().uri(uri).body(Body::empty()).unwrap();
    let resp = client.send(req).await.expect("request");
    resp.into_body().collect().await.expect("body").to_bytes()
}

fn micros_since(base: Instant) -> u64 {
    base.elapsed().as_micros() as u64
}

/// A raw watch that scans each event line for the `bench-sent` annotation and records delivery latency.
async fn watcher(
    url: String,
    base: Instant,
    lat: Arc<Mutex<Vec<u64>>>,
    ready: tokio::sync::mpsc::Sender<()>,
) {
    let client = reqwest_like(&url);
    let req = Request::builder()
        .uri(format!("{SERVERS}?watch=true&timeoutSeconds=600"))
        .body(Body::empty())
        .unwrap();
    let resp = client.send(req).await.expect("watch");
    let _ = ready.send(()).await;
    let stream = resp.into_body().into_data_stream();
    let reader = tokio_util_lines(stream);
    let mut lines = reader;
    let mut local = Vec::new();
    while let Ok(Some(line)) = lines.next_line().await {
        if let Some(i) = line.find("\"bench-sent\":\"") {
            let rest = &line[i + 14..];
            let end = rest.find('"').unwrap_or(0);
            if let Ok(sent) = rest[..end].parse::<u64>() {
                local.push(micros_since(base).saturating_sub(sent));
                if local.len() >= 1024 {
                    lat.lock().await.append(&mut local);
                }
            }
        }
    }
    lat.lock().await.append(&mut local);
}

fn tokio_util_lines<S, E>(
    stream: S,
) -> tokio::io::Lines<BufReader<tokio_util_reader::StreamReader<S>>>
where
    S: futures::Stream<Item = Result<bytes::Bytes, E>> + Unpin,
{
    BufReader::new(tokio_util_reader::StreamReader::new(stream)).lines()
}

/// Minimal `AsyncRead` over a byte stream (avoids a dependency just for the bench).
mod tokio_util_reader {
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use bytes::{Buf, Bytes};
    use futures::Stream;
    use tokio::io::{AsyncRead, ReadBuf};

    pub struct StreamReader<S> {
        inner: S,
        chunk: Bytes,
    }

    impl<S> StreamReader<S> {
        pub fn new(inner: S) -> Self {
            StreamReader {
                inner,
                chunk: Bytes::new(),
            }
        }
    }

    impl<S, E> AsyncRead for StreamReader<S>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
    {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<std::io::Result<()>> {
            while self.chunk.is_empty() {
                match Pin::new(&mut self.inner).poll_next(cx) {
                    Poll::Ready(Some(Ok(c))) => self.chunk = c,
                    Poll::Ready(Some(Err(_))) | Poll::Ready(None) => return Poll::Ready(Ok(())),
                    Poll::Pending => return Poll::Pending,
                }
            }
            let n = self.chunk.len().min(buf.remaining());
            buf.put_slice(&self.chunk[..n]);
            self.chunk.advance(n);
            Poll::Ready(Ok(()))
        }
    }
}

fn reqwest_like(url: &str) -> kube::Client {
    kube::Client::try_from(kube::Config::new(url.parse().unwrap())).unwrap()
}

fn pct(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

/// The child's resident set in KiB; 0 once it has gone (the figure is then meaningless anyway).
fn rss_kib(pid: u32) -> u64 {
    let status = procfs::process::Process::new(pid as i32).and_then(|p| p.status());
    status.ok().and_then(|s| s.vmrss).unwrap_or(0)
}

/// Runs `total` requests from CLIENTS tasks; `make(i)` gives (method, uri, content type, body).
async fn load<F>(client: &kube::Client, total: usize, make: F) -> f64
where
    F: Fn(usize) -> (&'static str, String, &'static str, Vec<u8>) + Send + Sync + 'static,
{
    let make = Arc::new(make);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let (client, make, next) = (client.clone(), make.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= total {
                    return;
                }
                let (m, uri, ct, body) = make(i);
                let code = send(&client, m, &uri, ct, body).await;
                assert!(code < 300, "{m} {uri}: {code}");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    total as f64 / start.elapsed().as_secs_f64()
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let objects: usize = std::env::var("BENCH_OBJECTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    // APISERVER_BIN runs another build of the server (e.g. the previous commit's) under the same load.
    let server_bin =
        std::env::var("APISERVER_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_apiserver").into());
    let mut child = tokio::process::Command::new(&server_bin)
        .args(["--port", "0"])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("server binary starts");
    let pid = child.id().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap()).lines();
    let url = out
        .next_line()
        .await
        .unwrap()
        .unwrap()
        .rsplit(' ')
        .next()
        .unwrap()
        .to_string();
    let client = reqwest_like(&url);

    let crd = std::fs::read_to_string(format!(
        "{}/../../shared/upstream/metal-operator/crds/metal.ironcore.dev_servers.yaml",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect("upstream servers CRD");
    let code = send(
        &client,
        "POST",
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
        "application/yaml",
        crd.into_bytes(),
    )
    .await;
    assert_eq!(code, 201);
    tokio::time::sleep(Duration::from_millis(200)).await;

    // Baseline: the HTTP floor (GET /version) with the same concurrency.
    let baseline_n = objects.min(20_000);
    let base_rate = load(&client, baseline_n, |_| {
        ("GET", "/version".to_string(), "application/json", vec![])
    })
    .await;
    let mut base_lat = Vec::new();
    for _ in 0..200 {
        let t = Instant::now();
        send(&client, "GET", "/version", "application/json", vec![]).await;
        base_lat.push(t.elapsed().as_micros() as u64);
    }
    base_lat.sort_unstable();
    let rss_empty = rss_kib(pid);

    let base = Instant::now();
    let lat = Arc::new(Mutex::new(Vec::new()));
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel(WATCHERS);
    let mut watch_tasks = Vec::new();
    for _ in 0..WATCHERS {
        watch_tasks.push(tokio::spawn(watcher(
            url.clone(),
            base,
            lat.clone(),
            ready_tx.clone(),
        )));
    }
    for _ in 0..WATCHERS {
        ready_rx.recv().await;
    }

    let creates = load(&client, objects, move |i| {
        let body = server_object(&format!("srv-{i:06}"), micros_since(base), 0);
        ("POST", SERVERS.to_string(), "application/json", body)
    })
    .await;
    let rss_created = rss_kib(pid);
    let updates = load(&client, objects, move |i| {
        let name = format!("srv-{i:06}");
        let patch = format!(
            r#"{{"metadata":{{"annotations":{{"bench-sent":"{}"}}}},"spec":{{"power":"Off"}}}}"#,
            micros_since(base)
        );
        (
            "PATCH",
            format!("{SERVERS}/{name}"),
            "application/merge-patch+json",
            patch.into_bytes(),
        )
    })
    .await;
    // Let the watchers drain, then collect latencies.
    let expected = WATCHERS * objects * 2;
    let deadline = Instant::now() + Duration::from_secs(60);
    while lat.lock().await.len() < expected * 9 / 10 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let rss_full = rss_kib(pid);
    let mut list_lat = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        send(
            &client,
            "GET",
            &format!("{SERVERS}?limit=10000"),
            "application/json",
            vec![],
        )
        .await;
        list_lat.push(t.elapsed().as_micros() as u64);
    }
    list_lat.sort_unstable();
    // The memory floor: the objects' own JSON (what a list returns), per 10,000 objects.
    let listed = fetch(&client, &format!("{SERVERS}?limit=10000")).await;
    let listed_items = objects.min(10_000);
    let json_per_10k = listed.len() as f64 * 10_000.0 / listed_items as f64 / (1024.0 * 1024.0);
    for t in &watch_tasks {
        t.abort();
    }
    let mut lats = lat.lock().await.clone();
    lats.sort_unstable();

    let per_10k = (rss_full.saturating_sub(rss_empty)) as f64 * 10_000.0 / objects as f64 / 1024.0;
    let per_10k_created =
        (rss_created.saturating_sub(rss_empty)) as f64 * 10_000.0 / objects as f64 / 1024.0;
    println!(
        "apiserver benchmark ({objects} Server objects, {CLIENTS} clients, {WATCHERS} watchers)"
    );
    println!(
        "baseline GET /version: {base_rate:.0} req/s, p50 {:.2} ms",
        pct(&base_lat, 0.5)
    );
    println!(
        "creates/s: {creates:.0}  ({:.2}x baseline)",
        creates / base_rate
    );
    println!(
        "updates/s: {updates:.0}  ({:.2}x baseline)",
        updates / base_rate
    );
    println!(
        "watch delivery: {} events, p50 {:.2} ms, p99 {:.2} ms  (p50 {:.1}x baseline request latency)",
        lats.len(),
        pct(&lats, 0.5),
        pct(&lats, 0.99),
        pct(&lats, 0.5) / pct(&base_lat, 0.5)
    );
    println!("list of 10,000 objects: p50 {:.1} ms", pct(&list_lat, 0.5));
    println!(
        "server RSS: {:.1} MiB empty, {:.1} MiB full; {per_10k:.1} MiB per 10,000 objects",
        rss_empty as f64 / 1024.0,
        rss_full as f64 / 1024.0
    );
    println!(
        "server RSS after the creates only: {per_10k_created:.1} MiB per 10,000 objects (history and watch ring included)"
    );
    println!(
        "baseline: the objects' JSON is {json_per_10k:.1} MiB per 10,000 objects; RSS per 10,000 objects is {:.1}x that ({:.1}x after the creates only)",
        per_10k / json_per_10k,
        per_10k_created / json_per_10k
    );
    let _ = child.start_kill();
}
