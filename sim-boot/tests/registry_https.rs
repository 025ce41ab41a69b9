//! The generated registry as backends meet it in `certify --embedded`: HTTPS with a per-run CA, the bearer-token
//! flow, HEAD and `Accept` negotiation of manifests, read through `oci-client` and the workspace's HTTP client.

use http_client::{Fetched, HttpClient};
use sim_boot::oci::catalog::{BlobSizes, Catalog, names};
use sim_boot::oci::reference::parse;
use sim_boot::oci::{
    ImageResolver, LayerKind, OciClientResolver, Registry, RegistryCa, ResolveError,
};

const INDEX: &str = "application/vnd.oci.image.index.v1+json";
const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// Serves the standard catalog over TLS (token auth optional); returns `host:port`, the CA PEM and the registry.
async fn start(token_auth: bool) -> (String, String, Registry) {
    let mut registry = Registry::new(Catalog::standard(42, BlobSizes::default()));
    if token_auth {
        registry = registry.with_token_auth("https", clock::Clock::wall(), None);
    }
    let ca = RegistryCa::generate().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host = listener.local_addr().unwrap().to_string();
    tokio::spawn(sim_boot::oci::registry_tls::serve(
        listener,
        registry.router(),
        Some(ca.acceptor()),
    ));
    (host, ca.ca_pem().to_string(), registry)
}

async fn send(client: &HttpClient, method: http::Method, url: &str, accept: &[&str]) -> Fetched {
    let mut request = http::Request::builder().method(method).uri(url);
    for value in accept {
        request = request.header("accept", *value);
    }
    client
        .send(request.body(axum::body::Body::empty()).unwrap())
        .await
        .unwrap()
}

#[tokio::test]
async fn oci_client_resolves_over_https_through_the_token_flow() {
    let (host, ca, _) = start(true).await;
    let resolver = OciClientResolver::with_extra_roots(vec![], vec![ca]);
    let image = parse(&format!("{host}/{}", names::OS_V1)).unwrap();
    let resolved = resolver.resolve(image, "amd64".into()).await.unwrap();
    let kernel = resolved.layer(LayerKind::Kernel).unwrap().clone();
    let bytes = resolver
        .fetch_blob(resolved.image.clone(), kernel.clone())
        .await
        .unwrap();
    assert_eq!(bytes.len() as u64, kernel.size);
    assert!(bytes.starts_with(b"SIMKERNEL"));

    // Without the CA the same client refuses the registry's certificate.
    let untrusting = OciClientResolver::new(vec![]);
    let refused = untrusting
        .resolve(resolved.image.clone(), "amd64".into())
        .await
        .unwrap_err();
    assert!(
        matches!(refused, ResolveError::Registry { .. }),
        "{refused:?}"
    );
}

#[tokio::test]
async fn token_challenge_names_realm_service_and_scope() {
    let (host, ca, _) = start(true).await;
    let client = HttpClient::hyper_tls(Some(&ca)).unwrap();
    let url = format!("https://{host}/v2/ironcore/os/manifests/1.0");
    let challenged = send(&client, http::Method::GET, &url, &[INDEX]).await;
    assert_eq!(challenged.status, 401);
    assert_eq!(
        challenged.headers["www-authenticate"],
        format!(
            "Bearer realm=\"https://{host}/token\",service=\"metal-harness-registry\",scope=\"repository:ironcore/os:pull\""
        )
        .as_str()
    );
    let error: serde_json::Value = serde_json::from_slice(&challenged.body).unwrap();
    assert_eq!(error["errors"][0]["code"], "UNAUTHORIZED");
    let token = client
        .get(&format!(
            "https://{host}/token?service=metal-harness-registry&scope=repository:ironcore/os:pull"
        ))
        .await
        .unwrap();
    let token: serde_json::Value = serde_json::from_slice(&token.body).unwrap();
    let bearer = format!("Bearer {}", token["token"].as_str().unwrap());
    let with_token = |url: &str| {
        http::Request::get(url)
            .header("accept", INDEX)
            .header("authorization", &bearer)
            .body(axum::body::Body::empty())
            .unwrap()
    };
    assert_eq!(client.send(with_token(&url)).await.unwrap().status, 200);
    // The token is scoped: another repository is challenged again, naming the missing scope.
    let other = client
        .send(with_token(&format!(
            "https://{host}/v2/ironcore/probe-os/manifests/1.0"
        )))
        .await
        .unwrap();
    assert_eq!(other.status, 401);
    assert!(
        other.headers["www-authenticate"]
            .to_str()
            .unwrap()
            .ends_with("scope=\"repository:ironcore/probe-os:pull\",error=\"insufficient_scope\""),
        "{:?}",
        other.headers
    );
}

#[tokio::test]
async fn head_and_accept_negotiation_as_distribution_answers() {
    let (host, ca, registry) = start(false).await;
    let client = HttpClient::hyper_tls(Some(&ca)).unwrap();
    let stored = registry
        .catalog()
        .manifest("ironcore/os", "1.0")
        .unwrap()
        .clone();
    let url = format!("https://{host}/v2/ironcore/os/manifests/1.0");

    // containerd's resolver: HEAD first, trusting Docker-Content-Digest, Content-Type and Content-Length.
    let head = send(
        &client,
        http::Method::HEAD,
        &url,
        &[&format!("{MANIFEST}, {INDEX}")],
    )
    .await;
    assert_eq!(head.status, 200);
    assert_eq!(
        head.headers["docker-content-digest"],
        stored.digest.as_str()
    );
    assert_eq!(head.headers["content-type"], INDEX);
    assert_eq!(
        head.headers["content-length"],
        stored.bytes.len().to_string().as_str()
    );
    assert!(head.body.is_empty());

    // Repeated Accept headers and parameters count; the stored type must be among them.
    let repeated = send(
        &client,
        http::Method::GET,
        &url,
        &[MANIFEST, &format!("{INDEX}; q=0.5")],
    )
    .await;
    assert_eq!(
        (repeated.status, repeated.body.clone()),
        (http::StatusCode::OK, stored.bytes.clone())
    );
    for accept in [&[][..], &[MANIFEST][..]] {
        let refused = send(&client, http::Method::GET, &url, accept).await;
        assert_eq!(refused.status, 404, "Accept {accept:?}");
        let error: serde_json::Value = serde_json::from_slice(&refused.body).unwrap();
        assert_eq!(error["errors"][0]["code"], "MANIFEST_UNKNOWN");
        assert_eq!(
            error["errors"][0]["message"],
            "OCI index found, but accept header does not support OCI indexes"
        );
    }

    // Plain HTTP on the TLS port gets Go's answer instead of a hang or a reset.
    let plain = HttpClient::hyper()
        .get(&format!("http://{host}/v2/"))
        .await
        .unwrap();
    assert_eq!(plain.status, 400);
    assert_eq!(
        String::from_utf8_lossy(&plain.body),
        "Client sent an HTTP request to an HTTPS server.\n"
    );

    // A client without the CA fails the handshake.
    let error = HttpClient::hyper_tls(None)
        .unwrap()
        .get(&format!("https://{host}/v2/"))
        .await
        .unwrap_err();
    assert!(
        error.starts_with(&format!("GET https://{host}/v2/: ")),
        "{error}"
    );
    assert!(HttpClient::hyper_tls(Some("not a certificate")).is_err());
}
