//! Benchmark (prints figures; `cargo bench -p sim-boot --bench registry_tls`): what HTTPS with the per-run CA
//! costs a backend reading the generated registry, as ratios against plain HTTP measured in the same run.
//! Three workloads per scheme: `oci-client` resolving an image and downloading its kernel (sim-boot's path),
//! four requests on one pooled connection, and the same with a fresh connection (so a fresh TLS handshake) each
//! time. Iterations: `BENCH_ITERATIONS` (default 200); blob size `BENCH_BLOB_KIB` (default 1024).

use std::time::Duration;

use http_client::HttpClient;
use sim_boot::oci::catalog::{BlobSizes, Catalog, names};
use sim_boot::oci::reference::parse;
use sim_boot::oci::{
    ImageResolver, LayerKind, OciClientResolver, Registry, RegistryCa, registry_tls,
};
use tokio::time::Instant;

const ACCEPT: &str =
    "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json";

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// index, amd64 manifest, kernel and initrd blobs: what resolving and fetching a PXE image reads.
async fn four_requests(client: &HttpClient, base: &str) {
    let get = |url: String| {
        let request = http::Request::get(url)
            .header("accept", ACCEPT)
            .body(axum::body::Body::empty())
            .unwrap();
        client.send(request)
    };
    let index = get(format!("{base}/v2/ironcore/os/manifests/1.0"))
        .await
        .unwrap();
    let index: serde_json::Value = serde_json::from_slice(&index.body).unwrap();
    let digest = index["manifests"][0]["digest"].as_str().unwrap();
    let manifest = get(format!("{base}/v2/ironcore/os/manifests/{digest}"))
        .await
        .unwrap();
    let manifest: serde_json::Value = serde_json::from_slice(&manifest.body).unwrap();
    for layer in &manifest["layers"].as_array().unwrap()[..2] {
        let blob = get(format!(
            "{base}/v2/ironcore/os/blobs/{}",
            layer["digest"].as_str().unwrap()
        ))
        .await
        .unwrap();
        assert_eq!(blob.status, 200);
    }
}

#[tokio::main]
async fn main() {
    let iterations = env("BENCH_ITERATIONS", 200);
    let blob = env("BENCH_BLOB_KIB", 1024) << 10;
    let registry = Registry::new(Catalog::standard(1, BlobSizes::uniform(blob)));
    let ca = RegistryCa::generate().unwrap();
    let mut hosts = Vec::new();
    for tls in [None, Some(ca.acceptor())] {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        hosts.push(listener.local_addr().unwrap().to_string());
        tokio::spawn(registry_tls::serve(listener, registry.router(), tls));
    }
    let (http_host, https_host) = (hosts[0].clone(), hosts[1].clone());
    println!(
        "registry_tls: {iterations} iterations, blobs of {} KiB",
        blob >> 10
    );
    println!(
        "{:<34} {:>12} {:>12} {:>8}",
        "workload", "http ms/it", "https ms/it", "ratio"
    );

    let oci = |https: bool| {
        if https {
            OciClientResolver::with_extra_roots(vec![], vec![ca.ca_pem().to_string()])
        } else {
            OciClientResolver::new(vec![http_host.clone()])
        }
    };
    let mut rows: Vec<(&str, Duration, Duration)> = Vec::new();
    let mut per_scheme = [Duration::ZERO; 2];
    for (slot, (https, host)) in [(false, &http_host), (true, &https_host)]
        .into_iter()
        .enumerate()
    {
        let resolver = oci(https);
        let image = parse(&format!("{host}/{}", names::OS_V1)).unwrap();
        let start = Instant::now();
        for _ in 0..iterations {
            let resolved = resolver
                .resolve(image.clone(), "amd64".into())
                .await
                .unwrap();
            let kernel = resolved.layer(LayerKind::Kernel).unwrap().clone();
            resolver.fetch_blob(resolved.image, kernel).await.unwrap();
        }
        per_scheme[slot] = start.elapsed();
    }
    rows.push(("oci-client resolve + kernel", per_scheme[0], per_scheme[1]));

    for (label, fresh) in [
        ("4 requests, pooled connection", false),
        ("4 requests, new connection each", true),
    ] {
        let mut per_scheme = [Duration::ZERO; 2];
        for (slot, base) in [
            format!("http://{http_host}"),
            format!("https://{https_host}"),
        ]
        .into_iter()
        .enumerate()
        {
            let client = || HttpClient::hyper_tls(Some(ca.ca_pem())).unwrap();
            let pooled = client();
            let start = Instant::now();
            for _ in 0..iterations {
                if fresh {
                    four_requests(&client(), &base).await;
                } else {
                    four_requests(&pooled, &base).await;
                }
            }
            per_scheme[slot] = start.elapsed();
        }
        rows.push((label, per_scheme[0], per_scheme[1]));
    }
    for (label, http, https) in rows {
        let per = |d: Duration| d.as_secs_f64() * 1000.0 / iterations as f64;
        println!(
            "{label:<34} {:>12.3} {:>12.3} {:>7.2}x",
            per(http),
            per(https),
            https.as_secs_f64() / http.as_secs_f64()
        );
    }
}
