//! A small HTTP client over a tower `Service`: real sockets through hyper, or any in-process service
//! (an axum `Router`), so a whole fleet can boot without sockets. Used for every download and the probe.

use std::time::Duration;

use axum::body::Body;
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
    /// Plain HTTP over real sockets.
    pub fn hyper() -> Self {
        let client = Client::builder(TokioExecutor::new()).build_http::<Body>();
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
            timeout: Duration::from_secs(10),
            max_body: 1 << 30,
        }
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// GETs `url` and reads the whole body, bounded by the timeout and the body limit.
    pub async fn get(&self, url: &str) -> Result<Fetched, String> {
        let request = Request::get(url)
            .body(Body::empty())
            .map_err(|e| format!("invalid URL {url:?}: {e}"))?;
        self.send(request).await
    }

    pub async fn send(&self, request: Request<Body>) -> Result<Fetched, String> {
        let url = request.uri().to_string();
        let exchange = async {
            let response = self
                .transport
                .clone()
                .oneshot(request)
                .await
                .map_err(|e| format!("{url}: {e}"))?;
            let (parts, body) = response.into_parts();
            let body = Limited::new(body, self.max_body)
                .collect()
                .await
                .map_err(|e| format!("{url}: reading body: {e}"))?
                .to_bytes();
            Ok(Fetched {
                status: parts.status,
                headers: parts.headers,
                body,
            })
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| format!("{url}: timed out after {:?}", self.timeout))?
    }
}

impl HttpClient {
    /// POSTs a JSON body.
    pub async fn post_json(&self, url: &str, body: &serde_json::Value) -> Result<Fetched, String> {
        let request = Request::post(url)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .map_err(|e| format!("invalid URL {url:?}: {e}"))?;
        self.send(request).await
    }
}

impl HttpClient {
    /// Requests to the listed hosts (`host` or `host:port`) go to in-process services; all others to
    /// `fallback`. Lets an in-process fleet reach in-process servers (e.g. the operator's registry).
    pub fn routed(routes: Vec<(String, axum::Router)>, fallback: HttpClient) -> Self {
        let routes = std::sync::Arc::new(routes);
        let fallback_transport = fallback.transport.clone();
        let service = tower::service_fn(move |request: Request<Body>| {
            let authority = request
                .uri()
                .authority()
                .map(|a| a.as_str().to_string())
                .unwrap_or_default();
            let routed = routes
                .iter()
                .find(|(host, _)| *host == authority)
                .map(|(_, router)| router.clone());
            let fallback = fallback_transport.clone();
            async move {
                match routed {
                    Some(router) => router
                        .oneshot(request)
                        .await
                        .map_err(|e| Box::new(e) as BoxError),
                    None => fallback.oneshot(request).await,
                }
            }
        });
        Self {
            transport: BoxCloneSyncService::new(service),
            timeout: fallback.timeout,
            max_body: fallback.max_body,
        }
    }
}
