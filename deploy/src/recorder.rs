//! A recording proxy: every request that reaches the wrapped API server is classified the way
//! kube-apiserver's request-info resolver does it (verb, group, resource, subresource, namespace, name),
//! so the calls a component really makes can be compared with the RBAC rules it ships with.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use http::{Method, Request, Uri};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tower::{Layer, Service};

/// One API request in RBAC terms.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ApiRequest {
    pub verb: String,
    pub group: String,
    pub version: String,
    pub resource: String,
    pub subresource: Option<String>,
    pub namespace: Option<String>,
    pub name: Option<String>,
}

impl ApiRequest {
    /// `verb group/resource[/subresource]`, the unit RBAC grants.
    pub fn permission(&self) -> String {
        let group = if self.group.is_empty() {
            "core"
        } else {
            &self.group
        };
        match &self.subresource {
            Some(sub) => format!("{} {group}/{}/{sub}", self.verb, self.resource),
            None => format!("{} {group}/{}", self.verb, self.resource),
        }
    }
}

/// What a request path means to RBAC.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Classified {
    Resource(ApiRequest),
    /// Discovery, `/version`, `/openapi/...`: granted to every authenticated user by `system:discovery`.
    NonResource(String),
}

/// Classifies a request as kube-apiserver's `RequestInfoFactory` does.
pub fn classify(method: &Method, uri: &Uri) -> Classified {
    let path = uri.path();
    let parts: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|p| !p.is_empty())
        .collect();
    let (group, version, mut rest) = match parts.as_slice() {
        ["api", version, rest @ ..] if !rest.is_empty() => {
            (String::new(), version.to_string(), rest.to_vec())
        }
        ["apis", group, version, rest @ ..] if !rest.is_empty() => {
            (group.to_string(), version.to_string(), rest.to_vec())
        }
        _ => return Classified::NonResource(path.to_string()),
    };
    let mut watch_path = false;
    if rest.first() == Some(&"watch") {
        watch_path = true;
        rest.remove(0);
    }
    let mut namespace = None;
    if rest.first() == Some(&"namespaces") && rest.len() > 1 {
        namespace = Some(rest[1].to_string());
        // `/namespaces/{ns}/status` and `/finalize` are subresources of the Namespace itself.
        if rest.len() > 2 && !matches!(rest[2], "status" | "finalize") {
            rest.drain(..2);
        }
    }
    let Some(resource) = rest.first() else {
        return Classified::NonResource(path.to_string());
    };
    let name = rest.get(1).map(|s| s.to_string());
    let subresource = rest.get(2).map(|s| s.to_string());
    let watch_param = uri
        .query()
        .unwrap_or_default()
        .split('&')
        .any(|kv| matches!(kv, "watch=true" | "watch=1" | "watch=True"));
    let verb = match *method {
        Method::GET | Method::HEAD if watch_path || watch_param => "watch",
        Method::GET | Method::HEAD if name.is_some() => "get",
        Method::GET | Method::HEAD => "list",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE if name.is_some() => "delete",
        Method::DELETE => "deletecollection",
        _ => "unknown",
    };
    Classified::Resource(ApiRequest {
        verb: verb.into(),
        group,
        version,
        resource: resource.to_string(),
        subresource,
        namespace,
        name,
    })
}

/// The requests seen so far (shared between the proxy and the test).
#[derive(Clone, Default)]
pub struct Recording {
    inner: Arc<Mutex<Seen>>,
}

#[derive(Default)]
struct Seen {
    resources: BTreeSet<ApiRequest>,
    non_resource: BTreeSet<String>,
}

impl Recording {
    pub fn record(&self, method: &Method, uri: &Uri) {
        let mut seen = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        match classify(method, uri) {
            Classified::Resource(req) => {
                seen.resources.insert(req);
            }
            Classified::NonResource(path) => {
                seen.non_resource.insert(path);
            }
        }
    }

    pub fn requests(&self) -> BTreeSet<ApiRequest> {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .resources
            .clone()
    }

    pub fn non_resource_paths(&self) -> BTreeSet<String> {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .non_resource
            .clone()
    }

    /// Distinct `verb group/resource[/sub]` strings.
    pub fn permissions(&self) -> BTreeSet<String> {
        self.requests().iter().map(ApiRequest::permission).collect()
    }
}

/// Tower layer that records each request before passing it on unchanged.
#[derive(Clone)]
pub struct RecordLayer {
    recording: Recording,
}

impl RecordLayer {
    pub fn new(recording: Recording) -> Self {
        Self { recording }
    }
}

impl<S> Layer<S> for RecordLayer {
    type Service = Recorded<S>;

    fn layer(&self, inner: S) -> Recorded<S> {
        Recorded {
            inner,
            recording: self.recording.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Recorded<S> {
    inner: S,
    recording: Recording,
}

impl<S, B> Service<Request<B>> for Recorded<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        self.recording.record(req.method(), req.uri());
        self.inner.call(req)
    }
}

/// A recording proxy serving an API server's router on its own loopback listener.
pub struct RecordingProxy {
    pub addr: SocketAddr,
    pub recording: Recording,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl RecordingProxy {
    /// Serves `router` (e.g. `apiserver::Handle::router()`) behind a [`RecordLayer`] on 127.0.0.1.
    pub async fn start(router: axum::Router) -> std::io::Result<RecordingProxy> {
        let recording = Recording::default();
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let app = router.layer(RecordLayer::new(recording.clone()));
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
                let _ = stopped.await;
            });
            if let Err(error) = serve.await {
                tracing::error!(%error, "recording proxy stopped");
            }
        });
        Ok(RecordingProxy {
            addr,
            recording,
            stop: Some(stop),
            task,
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting; open watches are cut off with the task.
    pub fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: Method, uri: &str) -> ApiRequest {
        match classify(&method, &uri.parse().unwrap()) {
            Classified::Resource(r) => r,
            Classified::NonResource(p) => panic!("{uri} classified as non-resource {p}"),
        }
    }

    #[test]
    fn verbs_follow_method_name_and_watch() {
        let cases = [
            (
                Method::GET,
                "/apis/metal.ironcore.dev/v1alpha1/servers",
                "list",
            ),
            (
                Method::GET,
                "/apis/metal.ironcore.dev/v1alpha1/servers?watch=true&resourceVersion=5",
                "watch",
            ),
            (
                Method::GET,
                "/apis/metal.ironcore.dev/v1alpha1/watch/servers",
                "watch",
            ),
            (
                Method::GET,
                "/apis/metal.ironcore.dev/v1alpha1/servers/a",
                "get",
            ),
            (Method::POST, "/api/v1/namespaces/ns/secrets", "create"),
            (Method::PUT, "/api/v1/namespaces/ns/secrets/s", "update"),
            (Method::DELETE, "/api/v1/namespaces/ns/secrets/s", "delete"),
            (
                Method::DELETE,
                "/api/v1/namespaces/ns/secrets",
                "deletecollection",
            ),
        ];
        for (method, uri, verb) in cases {
            assert_eq!(req(method.clone(), uri).verb, verb, "{method} {uri}");
        }
    }

    #[test]
    fn namespaces_subresources_and_groups_are_split_out() {
        let r = req(
            Method::PATCH,
            "/apis/metal.ironcore.dev/v1alpha1/namespaces/ns/serverbootconfigurations/x/status",
        );
        assert_eq!(
            (r.group.as_str(), r.resource.as_str()),
            ("metal.ironcore.dev", "serverbootconfigurations")
        );
        assert_eq!(
            (
                r.namespace.as_deref(),
                r.name.as_deref(),
                r.subresource.as_deref()
            ),
            (Some("ns"), Some("x"), Some("status"))
        );
        assert_eq!(
            r.permission(),
            "patch metal.ironcore.dev/serverbootconfigurations/status"
        );
        let ns = req(Method::GET, "/api/v1/namespaces/kube-system");
        assert_eq!(
            (
                ns.resource.as_str(),
                ns.name.as_deref(),
                ns.namespace.as_deref()
            ),
            ("namespaces", Some("kube-system"), Some("kube-system"))
        );
        let fin = req(Method::PUT, "/api/v1/namespaces/x/finalize");
        assert_eq!(
            (fin.resource.as_str(), fin.subresource.as_deref()),
            ("namespaces", Some("finalize"))
        );
        let list_ns = req(Method::GET, "/api/v1/namespaces");
        assert_eq!(
            (
                list_ns.resource.as_str(),
                list_ns.verb.as_str(),
                list_ns.namespace
            ),
            ("namespaces", "list", None)
        );
    }

    #[test]
    fn discovery_is_non_resource() {
        for path in [
            "/api",
            "/apis",
            "/api/v1",
            "/apis/metal.ironcore.dev/v1alpha1",
            "/version",
            "/openapi/v3",
        ] {
            assert!(
                matches!(
                    classify(&Method::GET, &path.parse().unwrap()),
                    Classified::NonResource(_)
                ),
                "{path}"
            );
        }
    }
}
