//! The generated registry over real HTTP, read through `oci-client`.

use http_client::HttpClient;
use sim_boot::oci::catalog::{BlobSizes, Catalog, names};
use sim_boot::oci::reference::parse;
use sim_boot::oci::{
    HttpResolver, ImageResolver, LayerKind, OciClientResolver, Registry, ResolveError,
};

async fn start() -> (String, OciClientResolver, Registry) {
    let registry = Registry::new(Catalog::standard(42, BlobSizes::default()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host = listener.local_addr().unwrap().to_string();
    let router = registry.router();
    tokio::spawn(async move { axum::serve(listener, router).await });
    (host.clone(), OciClientResolver::new(vec![host]), registry)
}

fn image(host: &str, name: &str) -> sim_boot::oci::reference::ImageRef {
    parse(&format!("{host}/{name}")).unwrap()
}

#[tokio::test]
async fn resolves_each_architecture_of_an_index_and_downloads_verified_blobs() {
    let (host, resolver, _) = start().await;
    for arch in ["amd64", "arm64"] {
        let resolved = resolver
            .resolve(image(&host, names::OS_V1), arch.into())
            .await
            .unwrap();
        assert_eq!(resolved.architecture, arch);
        assert_ne!(
            resolved.top_digest, resolved.manifest_digest,
            "an index points at a platform manifest"
        );
        for kind in LayerKind::ALL {
            let layer = resolved.layer(kind).unwrap().clone();
            let bytes = resolver
                .fetch_blob(resolved.image.clone(), layer.clone())
                .await
                .unwrap();
            assert_eq!(bytes.len() as u64, layer.size);
            let header =
                String::from_utf8_lossy(&bytes[..bytes.iter().position(|&b| b == b'\n').unwrap()])
                    .to_string();
            assert!(
                header.starts_with(kind.magic()) && header.contains(&format!("arch={arch}")),
                "{header}"
            );
        }
    }
}

#[tokio::test]
async fn legacy_flat_and_by_digest_references() {
    let (host, resolver, _) = start().await;
    let legacy = resolver
        .resolve(image(&host, names::LEGACY_GARDENLINUX), "arm64".into())
        .await
        .unwrap();
    assert_eq!(
        legacy.layer(LayerKind::Kernel).unwrap().media_type,
        "application/io.gardenlinux.kernel"
    );
    assert_eq!(
        legacy.layer(LayerKind::Initramfs).unwrap().media_type,
        "application/io.gardenlinux.initrd"
    );
    let flat = resolver
        .resolve(image(&host, names::FLAT_AMD64), "amd64".into())
        .await
        .unwrap();
    assert_eq!(flat.top_digest, flat.manifest_digest);
    let v1 = resolver
        .resolve(image(&host, names::OS_V1), "amd64".into())
        .await
        .unwrap();
    let pinned = parse(&format!("{host}/ironcore/os@{}", v1.top_digest)).unwrap();
    let by_digest = resolver.resolve(pinned, "amd64".into()).await.unwrap();
    assert_eq!(by_digest.manifest_digest, v1.manifest_digest);
}

#[tokio::test]
async fn negative_cases_have_precise_errors() {
    let (host, resolver, _) = start().await;
    negative_cases(&host, &resolver).await;
    let closed = OciClientResolver::new(vec!["127.0.0.1:1".into()]);
    let image = parse("127.0.0.1:1/x/y:1").unwrap();
    let refused = closed.resolve(image, "amd64".into()).await;
    assert!(
        matches!(refused, Err(ResolveError::Registry { .. })),
        "{refused:?}"
    );
}

/// The tower-based resolver, in-process against the registry router: same results, no sockets.
#[tokio::test]
async fn http_resolver_in_process_matches_oci_client() {
    let (host, oci, registry) = start().await;
    let in_process = HttpResolver::new(HttpClient::from_service(registry.router()));
    for arch in ["amd64", "arm64"] {
        let a = oci
            .resolve(image(&host, names::OS_V1), arch.into())
            .await
            .unwrap();
        let b = in_process
            .resolve(image(&host, names::OS_V1), arch.into())
            .await
            .unwrap();
        assert_eq!(a, b);
        let kernel = b.layer(LayerKind::Kernel).unwrap().clone();
        assert_eq!(
            in_process
                .fetch_blob(b.image.clone(), kernel.clone())
                .await
                .unwrap()
                .len() as u64,
            kernel.size
        );
    }
    negative_cases(&host, &in_process).await;
}

async fn negative_cases(host: &str, resolver: &dyn ImageResolver) {
    let host = host.to_string();
    // An unknown tag, then an unknown repository.
    for missing in ["ironcore/os:9.9", "nope/nothing:1"] {
        let refused = resolver
            .resolve(image(&host, missing), "amd64".into())
            .await;
        assert!(
            matches!(refused, Err(ResolveError::NotFound { .. })),
            "{missing}: {refused:?}"
        );
    }
    let arch = resolver
        .resolve(image(&host, names::AMD64_ONLY), "arm64".into())
        .await
        .unwrap_err();
    assert!(
        matches!(&arch, ResolveError::NoManifestForArchitecture { available, .. } if available == "amd64"),
        "{arch:?}"
    );
    let no_kernel = resolver
        .resolve(image(&host, names::NO_KERNEL), "amd64".into())
        .await
        .unwrap();
    assert!(no_kernel.layer(LayerKind::Kernel).is_none());
    let broken = resolver
        .resolve(image(&host, names::MISSING_BLOB), "amd64".into())
        .await
        .unwrap();
    let initrd = broken.layer(LayerKind::Initramfs).unwrap().clone();
    let error = resolver
        .fetch_blob(broken.image.clone(), initrd)
        .await
        .unwrap_err();
    assert!(
        matches!(&error, ResolveError::BlobUnavailable { detail, .. } if detail.contains("BlobUnknown") || detail.contains("BLOB_UNKNOWN")),
        "{error:?}"
    );
}

/// A manifest GET accepting what oci-client accepts (the registry negotiates on `Accept`, as distribution does).
fn manifest_request(url: &str) -> http::Request<axum::body::Body> {
    http::Request::get(url)
        .header(
            "accept",
            "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json",
        )
        .body(axum::body::Body::empty())
        .unwrap()
}

#[tokio::test]
async fn distribution_api_headers_ranges_and_errors() {
    let (host, _, registry) = start().await;
    let http = HttpClient::hyper();
    let base = http.get(&format!("http://{host}/v2/")).await.unwrap();
    assert_eq!(base.status, 200);
    assert_eq!(
        base.headers["docker-distribution-api-version"],
        "registry/2.0"
    );
    let manifest = registry
        .catalog()
        .manifest("ironcore/os", "1.0")
        .unwrap()
        .clone();
    let got = http
        .send(manifest_request(&format!(
            "http://{host}/v2/ironcore/os/manifests/1.0"
        )))
        .await
        .unwrap();
    assert_eq!(
        got.headers["docker-content-digest"],
        manifest.digest.as_str()
    );
    assert_eq!(
        got.headers["content-type"],
        "application/vnd.oci.image.index.v1+json"
    );
    assert_eq!(got.body, manifest.bytes);
    let index: serde_json::Value = serde_json::from_slice(&got.body).unwrap();
    let platform = index["manifests"][0]["digest"].as_str().unwrap();
    let platform: serde_json::Value = serde_json::from_slice(
        &http
            .send(manifest_request(&format!(
                "http://{host}/v2/ironcore/os/manifests/{platform}"
            )))
            .await
            .unwrap()
            .body,
    )
    .unwrap();
    let kernel = platform["layers"][0]["digest"].as_str().unwrap();
    let request = http::Request::get(format!("http://{host}/v2/ironcore/os/blobs/{kernel}"))
        .header("range", "bytes=0-8")
        .body(axum::body::Body::empty())
        .unwrap();
    let partial = http.send(request).await.unwrap();
    assert_eq!(partial.status, 206);
    assert_eq!(&partial.body[..], b"SIMKERNEL");
    assert_eq!(partial.headers["etag"], format!("\"{kernel}\"").as_str());
    let head = http::Request::head(format!("http://{host}/v2/ironcore/os/blobs/{kernel}"))
        .body(axum::body::Body::empty())
        .unwrap();
    let head = http.send(head).await.unwrap();
    assert_eq!(head.headers["content-length"], "8192");
    assert!(head.body.is_empty());
    let missing = http
        .get(&format!(
            "http://{host}/v2/ironcore/os/blobs/sha256:{}",
            "0".repeat(64)
        ))
        .await
        .unwrap();
    assert_eq!(missing.status, 404);
    let error: serde_json::Value = serde_json::from_slice(&missing.body).unwrap();
    assert_eq!(error["errors"][0]["code"], "BLOB_UNKNOWN");
    let bad = http
        .get(&format!("http://{host}/v2/ironcore/os/blobs/md5:abc"))
        .await
        .unwrap();
    assert_eq!(bad.status, 400);
    let put = http::Request::put(format!("http://{host}/v2/ironcore/os/manifests/1.0"))
        .body(axum::body::Body::empty())
        .unwrap();
    assert_eq!(http.send(put).await.unwrap().status, 405);
    let tags: serde_json::Value = serde_json::from_slice(
        &http
            .get(&format!("http://{host}/v2/ironcore/os/tags/list"))
            .await
            .unwrap()
            .body,
    )
    .unwrap();
    assert_eq!(tags["tags"], serde_json::json!(["1.0", "2.0"]));
}
