//! A small HTTP client over a tower `Service`: real sockets through hyper, or any in-process service
//! (an axum `Router`), so a whole fleet can run in one process without sockets. Every read is bounded
//! by a timeout and a body limit. Shared by the boot backend's self-probe and the simulated firmware.
//! [`InProcessNet`] names in-process servers by host, so URLs written into objects resolve without sockets.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum_core::body::Body;
use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower::util::BoxCloneSyncService;
use tower::{Service, ServiceExt};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The transport: requests in, responses out.
pub type Transport = BoxCloneSyncService<Request<Body>, Response<Body>, BoxError>;

/// A fully read response.
#[derive(Clone, Debug)]
pub struct Fetched {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

#[derive(Clone)]
pub struct HttpClient {
    transport: Transport,
    timeout: Duration,
    max_body: usize,
}

impl HttpClient {
    /// Default bound of one exchange (request, response headers and the whole body).
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
    /// Default bound of a response body: boot artifacts are large, but not unbounded.
    pub const DEFAULT_MAX_BODY: usize = 1 << 30;

    /// Plain HTTP over real sockets.
    pub fn hyper() -> Self {
        Self::over(Client::builder(TokioExecutor::new()).build_http::<Body>())
    }

    /// A hyper client (any connector) as the transport.
    fn over<C>(client: Client<C, Body>) -> Self
    where
        C: hyper_util::client::legacy::connect::Connect + Clone + Send + Sync + 'static,
    {
        let service = tower::service_fn(move |request: Request<Body>| {
            let client = client.clone();
            async move {
                let response = client
                    .request(request)
                    .await
                    .map_err(|e| Box::new(e) as BoxError)?;
                Ok::<_, BoxError>(response.map(Body::new))
            }
        });
        Self::from_transport(BoxCloneSyncService::new(service))
    }

    /// HTTP and HTTPS over real sockets. HTTPS trusts the system roots (`SSL_CERT_FILE`/`SSL_CERT_DIR` are
    /// honoured) plus every certificate in `extra_ca_pem`, e.g. the per-run CA of a test registry. A bundle
    /// that holds no certificate is an error, so a wrong file is noticed at start rather than at first use.
    pub fn hyper_tls(extra_ca_pem: Option<&str>) -> Result<Self, String> {
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        // Unreadable system certificates are skipped: the extra CA alone may be all a caller needs.
        let native = rustls_native_certs::load_native_certs();
        roots.add_parsable_certificates(native.certs);
        if let Some(pem) = extra_ca_pem {
            let extra: Vec<CertificateDer<'static>> =
                CertificateDer::pem_slice_iter(pem.as_bytes())
                    .collect::<Result<_, _>>()
                    .map_err(|e| format!("extra CA bundle: {e}"))?;
            if extra.is_empty() {
                return Err("extra CA bundle holds no PEM certificate".into());
            }
            for certificate in extra {
                roots
                    .add(certificate)
                    .map_err(|e| format!("extra CA bundle: {e}"))?;
            }
        }
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS client config: {e}"))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .build();
        Ok(Self::over(
            Client::builder(TokioExecutor::new()).build::<_, Body>(connector),
        ))
    }

    /// Any service, e.g. an axum `Router`, answering in-process.
    pub fn from_service<S>(service: S) -> Self
    where
        S: Service<Request<Body>, Response = Response<Body>> + Clone + Send + Sync + 'static,
        S::Error: Into<BoxError>,
        S::Future: Send + 'static,
    {
        Self::from_transport(BoxCloneSyncService::new(service.map_err(Into::into)))
    }

    pub fn from_transport(transport: Transport) -> Self {
        Self {
            transport,
            timeout: Self::DEFAULT_TIMEOUT,
            max_body: Self::DEFAULT_MAX_BODY,
        }
    }

    /// Requests to the listed authorities (`host` or `host:port`) go to their clients' transports (e.g.
    /// in-process routers); all others to `fallback`, whose timeout and body limit the result keeps. Lets
    /// an in-process fleet reach in-process servers by name (e.g. the operator's registry).
    pub fn routed(routes: Vec<(String, HttpClient)>, fallback: HttpClient) -> Self {
        let routes: Arc<Vec<(String, Transport)>> = Arc::new(
            routes
                .into_iter()
                .map(|(authority, client)| (authority, client.transport))
                .collect(),
        );
        let fallback_transport = fallback.transport.clone();
        let service = tower::service_fn(move |request: Request<Body>| {
            let authority = request.uri().authority().map(|a| a.as_str().to_owned());
            let transport = routes
                .iter()
                .find(|(route, _)| Some(route) == authority.as_ref())
                .map(|(_, transport)| transport.clone())
                .unwrap_or_else(|| fallback_transport.clone());
            transport.oneshot(request)
        });
        Self {
            transport: BoxCloneSyncService::new(service),
            ..fallback
        }
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn with_max_body(mut self, max_body: usize) -> Self {
        self.max_body = max_body;
        self
    }

    /// GETs `url` and reads the whole body.
    pub async fn get(&self, url: &str) -> Result<Fetched, String> {
        let request = Request::get(url)
            .body(Body::empty())
            .map_err(|e| format!("invalid URL {url:?}: {e}"))?;
        self.send(request).await
    }

    /// POSTs `json`, an already serialised JSON document, and reads the whole answer.
    pub async fn post_json(&self, url: &str, json: impl Into<Bytes>) -> Result<Fetched, String> {
        let request = Request::post(url)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Body::from(json.into()))
            .map_err(|e| format!("invalid URL {url:?}: {e}"))?;
        self.send(request).await
    }

    /// Sends `request` and reads the whole body, bounded by the timeout and the body limit. Errors name
    /// the method and URL.
    pub async fn send(&self, request: Request<Body>) -> Result<Fetched, String> {
        let what = format!("{} {}", request.method(), request.uri());
        let exchange = async {
            let response = self
                .transport
                .clone()
                .oneshot(request)
                .await
                .map_err(|e| format!("{what}: {e}"))?;
            let (parts, body) = response.into_parts();
            let body = Limited::new(body, self.max_body)
                .collect()
                .await
                .map_err(|e| format!("{what}: reading body: {e}"))?
                .to_bytes();
            Ok(Fetched {
                status: parts.status,
                headers: parts.headers,
                body,
            })
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| format!("{what}: timed out after {:?}", self.timeout))?
    }
}

/// In-process servers by host name (`boot.sim.invalid`, `registry.sim.invalid`, ...): a client over it sends
/// `http://HOST/...` to HOST's service, so a whole stack reaches its servers with no socket. Servers may come
/// and go (a restart re-registers its host); a request to a host nobody serves fails like a refused connection.
#[derive(Clone, Default)]
pub struct InProcessNet {
    hosts: Arc<RwLock<BTreeMap<String, Transport>>>,
}

impl std::fmt::Debug for InProcessNet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InProcessNet")
            .field("hosts", &self.hosts())
            .finish()
    }
}

impl InProcessNet {
    /// Serves `host` (a name, or `name:port`) with `service`, replacing whoever served it before.
    pub fn serve<S>(&self, host: &str, service: S)
    where
        S: Service<Request<Body>, Response = Response<Body>> + Clone + Send + Sync + 'static,
        S::Error: Into<BoxError>,
        S::Future: Send + 'static,
    {
        let transport = BoxCloneSyncService::new(service.map_err(Into::into));
        self.write().insert(host.to_ascii_lowercase(), transport);
    }

    /// Stops serving `host` (later requests to it fail).
    pub fn remove(&self, host: &str) {
        self.write().remove(&host.to_ascii_lowercase());
    }

    /// The hosts served now, sorted.
    pub fn hosts(&self) -> Vec<String> {
        self.read().keys().cloned().collect()
    }

    /// A client reaching every host of this network (and nothing else).
    pub fn client(&self) -> HttpClient {
        self.client_over(None)
    }

    /// A client reaching this network's hosts in-process and every other URL through `fallback` (say, real
    /// sockets for a destination someone wrote as `127.0.0.1:PORT`), whose timeout and body limit it keeps.
    pub fn client_with_fallback(&self, fallback: HttpClient) -> HttpClient {
        self.client_over(Some(fallback))
    }

    fn client_over(&self, fallback: Option<HttpClient>) -> HttpClient {
        let net = self.clone();
        let other = fallback.as_ref().map(|f| f.transport.clone());
        let service = tower::service_fn(move |request: Request<Body>| {
            let found = match (net.transport_for(request.uri()), &other) {
                (Err(_), Some(other)) => Ok(other.clone()),
                (found, _) => found,
            };
            async move {
                match found {
                    Ok(transport) => transport.oneshot(request).await,
                    Err(error) => Err(error),
                }
            }
        });
        let transport = BoxCloneSyncService::new(service);
        match fallback {
            Some(fallback) => HttpClient {
                transport,
                ..fallback
            },
            None => HttpClient::from_transport(transport),
        }
    }

    /// The service of the URI's authority (`host:port`), else of its host alone.
    fn transport_for(&self, uri: &http::Uri) -> Result<Transport, BoxError> {
        let authority = uri.authority().map(|a| a.as_str().to_ascii_lowercase());
        let host = uri.host().map(str::to_ascii_lowercase);
        let hosts = self.read();
        authority
            .iter()
            .chain(host.iter())
            .find_map(|name| hosts.get(name).cloned())
            .ok_or_else(|| {
                let known: Vec<&String> = hosts.keys().collect();
                format!(
                    "no in-process server for host {:?} (served: {known:?})",
                    host.unwrap_or_default()
                )
                .into()
            })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Transport>> {
        self.hosts.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Transport>> {
        self.hosts.write().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::routing::{get, post};

    fn echo() -> Router {
        Router::new()
            .route("/hello", get(|| async { "hello" }))
            .route("/big", get(|| async { vec![7u8; 4096] }))
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                    "late"
                }),
            )
            .route(
                "/echo",
                post(|headers: HeaderMap, body: Bytes| async move {
                    let kind = headers[http::header::CONTENT_TYPE].clone();
                    ([(http::header::CONTENT_TYPE, kind)], body)
                }),
            )
    }

    #[tokio::test]
    async fn in_process_service_answers_get_and_post() {
        let client = HttpClient::from_service(echo());
        let hello = client.get("http://any.host/hello").await.unwrap();
        assert_eq!(
            (hello.status, hello.body.as_ref()),
            (StatusCode::OK, &b"hello"[..])
        );
        let echoed = client
            .post_json("http://any.host/echo", r#"{"a":1}"#)
            .await
            .unwrap();
        assert_eq!(
            echoed.headers[http::header::CONTENT_TYPE],
            "application/json"
        );
        assert_eq!(echoed.body.as_ref(), br#"{"a":1}"#);
        let missing = client.get("http://any.host/nope").await.unwrap();
        assert_eq!(missing.status, StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn bodies_over_the_limit_are_errors() {
        let client = HttpClient::from_service(echo()).with_max_body(1024);
        let error = client.get("http://any.host/big").await.unwrap_err();
        assert!(
            error.starts_with("GET http://any.host/big: reading body"),
            "{error}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn slow_answers_time_out() {
        let client = HttpClient::from_service(echo()).with_timeout(Duration::from_secs(2));
        let error = client.get("http://any.host/slow").await.unwrap_err();
        assert_eq!(error, "GET http://any.host/slow: timed out after 2s");
    }

    #[tokio::test]
    async fn routes_pick_by_authority_and_fall_back() {
        let named = Router::new().route("/who", get(|| async { "registry" }));
        let fallback = Router::new().route("/who", get(|| async { "fallback" }));
        let client = HttpClient::routed(
            vec![("registry.test:8080".into(), HttpClient::from_service(named))],
            HttpClient::from_service(fallback).with_timeout(Duration::from_secs(3)),
        );
        let body = |f: Fetched| String::from_utf8(f.body.to_vec()).unwrap();
        let routed = client.get("http://registry.test:8080/who").await.unwrap();
        assert_eq!(body(routed), "registry");
        let other_port = client.get("http://registry.test/who").await.unwrap();
        assert_eq!(body(other_port), "fallback");
        assert_eq!(client.timeout, Duration::from_secs(3));
    }

    #[tokio::test]
    async fn real_sockets_through_hyper() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let server = tokio::spawn(async move { axum::serve(listener, echo()).await });
        let fetched = HttpClient::hyper()
            .get(&format!("http://{address}/hello"))
            .await
            .unwrap();
        assert_eq!(fetched.body.as_ref(), b"hello");
        server.abort();
        let refused = HttpClient::hyper()
            .get("http://127.0.0.1:1/hello")
            .await
            .unwrap_err();
        assert!(
            refused.starts_with("GET http://127.0.0.1:1/hello: "),
            "{refused}"
        );
    }

    #[tokio::test]
    async fn in_process_net_routes_by_host_and_follows_restarts() {
        let net = InProcessNet::default();
        let client = net.client();
        net.serve(
            "boot.sim.invalid",
            Router::new().route("/who", get(|| async { "boot" })),
        );
        net.serve(
            "registry.sim.invalid",
            Router::new().route("/who", get(|| async { "registry" })),
        );
        let body = |f: Fetched| String::from_utf8(f.body.to_vec()).unwrap();
        assert_eq!(
            body(client.get("http://boot.sim.invalid/who").await.unwrap()),
            "boot"
        );
        assert_eq!(
            body(
                client
                    .get("http://REGISTRY.sim.invalid:80/who")
                    .await
                    .unwrap()
            ),
            "registry"
        );
        let unknown = client
            .get("http://nobody.sim.invalid/who")
            .await
            .unwrap_err();
        assert!(
            unknown.contains("no in-process server for host \"nobody.sim.invalid\""),
            "{unknown}"
        );
        assert!(unknown.contains("boot.sim.invalid"), "{unknown}");
        // A restarted server takes over its host; a stopped one is gone.
        net.serve(
            "boot.sim.invalid",
            Router::new().route("/who", get(|| async { "boot again" })),
        );
        assert_eq!(
            body(client.get("http://boot.sim.invalid/who").await.unwrap()),
            "boot again"
        );
        net.remove("boot.sim.invalid");
        assert!(client.get("http://boot.sim.invalid/who").await.is_err());
        assert_eq!(net.hosts(), vec!["registry.sim.invalid".to_string()]);
        let fallback = Router::new().route("/who", get(|| async { "fallback" }));
        let mixed = net.client_with_fallback(HttpClient::from_service(fallback));
        assert_eq!(
            body(mixed.get("http://registry.sim.invalid/who").await.unwrap()),
            "registry"
        );
        assert_eq!(
            body(mixed.get("http://127.0.0.1:9/who").await.unwrap()),
            "fallback"
        );
    }
}
