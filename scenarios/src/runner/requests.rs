//! Counts the Kubernetes API requests each in-process component sends, by verb, from a layer on
//! that component's kube client tower stack; works the same against the embedded server and a
//! real cluster. A watch is one request however many events it carries.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context as _;
use serde::Serialize;

pub use crate::report::{ApiRequests, ComponentRequests};
use tower::util::MapRequestLayer;

/// Kubernetes API verbs as the API server's audit log and RBAC name them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verb {
    Get,
    List,
    Watch,
    Create,
    Update,
    Patch,
    Delete,
    DeleteCollection,
    /// Discovery (`/api`, `/apis`, `/version`) and anything else not naming a resource.
    Other,
}

impl Verb {
    const ALL: [Verb; 9] = [
        Verb::Get,
        Verb::List,
        Verb::Watch,
        Verb::Create,
        Verb::Update,
        Verb::Patch,
        Verb::Delete,
        Verb::DeleteCollection,
        Verb::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "get",
            Verb::List => "list",
            Verb::Watch => "watch",
            Verb::Create => "create",
            Verb::Update => "update",
            Verb::Patch => "patch",
            Verb::Delete => "delete",
            Verb::DeleteCollection => "deletecollection",
            Verb::Other => "other",
        }
    }

    /// The verb of a request, from its method, path and `watch` query parameter.
    pub fn of(method: &http::Method, uri: &http::Uri) -> Verb {
        let Some(collection) = names_collection(uri.path()) else {
            return Verb::Other;
        };
        let watching = uri.query().is_some_and(|q| {
            q.split('&')
                .any(|kv| kv == "watch=true" || kv == "watch=1" || kv == "watch")
        });
        match *method {
            http::Method::GET if watching => Verb::Watch,
            http::Method::GET if collection => Verb::List,
            http::Method::GET => Verb::Get,
            http::Method::POST => Verb::Create,
            http::Method::PUT => Verb::Update,
            http::Method::PATCH => Verb::Patch,
            http::Method::DELETE if collection => Verb::DeleteCollection,
            http::Method::DELETE => Verb::Delete,
            _ => Verb::Other,
        }
    }
}

/// The resource a path names, with its subresource (`servers`, `servers/status`, `secrets`);
/// `None` for discovery and other non-resource paths.
pub fn resource_of(path: &str) -> Option<String> {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let rest = match segments.as_slice() {
        ["api", _version, rest @ ..] => rest,
        ["apis", _group, _version, rest @ ..] => rest,
        _ => return None,
    };
    let rest = match rest {
        ["namespaces", _ns, inner @ ..]
            if !inner.is_empty() && inner[0] != "status" && inner[0] != "finalize" =>
        {
            inner
        }
        ["namespaces", _ns, sub] => return Some(format!("namespaces/{sub}")),
        other => other,
    };
    match rest {
        [] => None,
        [resource] | [resource, _] => Some((*resource).to_string()),
        [resource, _, sub, ..] => Some(format!("{resource}/{sub}")),
    }
}

/// `Some(true)` for a resource collection path, `Some(false)` for an object (or its
/// subresource), `None` for a path that names no resource.
fn names_collection(path: &str) -> Option<bool> {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let rest = match segments.as_slice() {
        ["api", _version, rest @ ..] => rest,
        ["apis", _group, _version, rest @ ..] => rest,
        _ => return None,
    };
    // `namespaces/NS/RESOURCE…` is namespaced; `namespaces`, `namespaces/NS` and its two
    // subresources are the Namespace kind itself.
    let rest = match rest {
        ["namespaces", _ns, "status" | "finalize"] => &rest[..2],
        ["namespaces", _ns, inner @ ..] if !inner.is_empty() => inner,
        other => other,
    };
    match rest.len() {
        0 => None,
        1 => Some(true),
        _ => Some(false),
    }
}

/// Requests of one component, per verb and per verb and resource.
#[derive(Default, Debug)]
pub struct Counter {
    by_verb: [AtomicU64; Verb::ALL.len()],
    by_resource: std::sync::Mutex<BTreeMap<(Verb, String), u64>>,
}

impl Counter {
    pub fn count(&self, verb: Verb) {
        self.by_verb[verb as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a request by verb and by the resource its path names.
    pub fn count_request(&self, method: &http::Method, uri: &http::Uri) {
        let verb = Verb::of(method, uri);
        self.count(verb);
        if let Some(resource) = resource_of(uri.path()) {
            let mut by_resource = self
                .by_resource
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            *by_resource.entry((verb, resource)).or_default() += 1;
        }
    }

    /// Counts by `verb resource` (`patch servers/status`).
    pub fn resource_snapshot(&self) -> BTreeMap<String, u64> {
        let by_resource = self
            .by_resource
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        by_resource
            .iter()
            .map(|((verb, resource), n)| (format!("{} {resource}", verb.as_str()), *n))
            .collect()
    }

    pub fn total(&self) -> u64 {
        self.by_verb.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }

    /// Non-zero counts by verb name.
    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        Verb::ALL
            .iter()
            .map(|v| (v.as_str().to_string(), self.get(*v)))
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    pub fn get(&self, verb: Verb) -> u64 {
        self.by_verb[verb as usize].load(Ordering::Relaxed)
    }
}

/// The components whose clients are counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Component {
    Operator,
    Backend,
    /// The runner itself: evidence watches, workload steps, labelling, BMC creation.
    Harness,
}

impl Component {
    pub fn as_str(self) -> &'static str {
        match self {
            Component::Operator => "operator",
            Component::Backend => "backend",
            Component::Harness => "harness",
        }
    }
}

/// One counter per component, shared with the clients that feed it.
#[derive(Clone, Default, Debug)]
pub struct ApiRequestCounters {
    operator: Arc<Counter>,
    backend: Arc<Counter>,
    harness: Arc<Counter>,
}

impl ApiRequestCounters {
    pub fn counter(&self, component: Component) -> &Arc<Counter> {
        match component {
            Component::Operator => &self.operator,
            Component::Backend => &self.backend,
            Component::Harness => &self.harness,
        }
    }

    /// A kube client for `component` over the API access the testbed hands out (the usual socket stack, or the
    /// embedded server's router), counting what it sends.
    pub fn client(
        &self,
        access: testbed::ApiAccess,
        component: Component,
    ) -> anyhow::Result<kube::Client> {
        let counter = self.counter(component).clone();
        let layer = MapRequestLayer::new(move |request: http::Request<kube::client::Body>| {
            counter.count_request(request.method(), request.uri());
            request
        });
        match access {
            testbed::ApiAccess::Config(config) => {
                let builder = kube::client::ClientBuilder::try_from(*config)
                    .with_context(|| format!("building the {} kube client", component.as_str()))?;
                Ok(builder.with_layer(&layer).build())
            }
            testbed::ApiAccess::Router(router) => Ok(kube::Client::new(
                tower::ServiceBuilder::new().layer(layer).service(router),
                testbed::api::DEFAULT_NAMESPACE,
            )),
        }
    }

    /// What the report shows: totals and verbs per component, and the system under test's
    /// (operator + in-process backend) requests per server.
    pub fn summary(&self, servers: usize) -> ApiRequests {
        let components = [Component::Operator, Component::Backend, Component::Harness];
        let by_component: BTreeMap<String, ComponentRequests> = components
            .iter()
            .map(|c| {
                let counter = self.counter(*c);
                (
                    c.as_str().to_string(),
                    ComponentRequests {
                        total: counter.total(),
                        by_verb: counter.snapshot(),
                        by_resource: counter.resource_snapshot(),
                    },
                )
            })
            .collect();
        let system = self.operator.total() + self.backend.total();
        ApiRequests {
            by_component,
            per_server: system as f64 / servers.max(1) as f64,
            servers,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verb(method: &str, uri: &str) -> Verb {
        Verb::of(&method.parse().unwrap(), &uri.parse().unwrap())
    }

    #[test]
    fn verbs_follow_kubernetes_naming() {
        let servers = "/apis/metal.ironcore.dev/v1alpha1/servers";
        assert_eq!(verb("GET", servers), Verb::List);
        assert_eq!(
            verb("GET", &format!("{servers}?watch=true&resourceVersion=5")),
            Verb::Watch
        );
        assert_eq!(verb("GET", &format!("{servers}/s-1")), Verb::Get);
        assert_eq!(verb("PATCH", &format!("{servers}/s-1/status")), Verb::Patch);
        assert_eq!(verb("PUT", &format!("{servers}/s-1")), Verb::Update);
        let claims = "/apis/metal.ironcore.dev/v1alpha1/namespaces/default/serverclaims";
        assert_eq!(verb("POST", claims), Verb::Create);
        assert_eq!(verb("DELETE", &format!("{claims}/c-0")), Verb::Delete);
        assert_eq!(verb("DELETE", claims), Verb::DeleteCollection);
        assert_eq!(
            verb("GET", "/api/v1/namespaces/default/secrets?labelSelector=a"),
            Verb::List
        );
        assert_eq!(verb("GET", "/api/v1/namespaces"), Verb::List);
        assert_eq!(verb("GET", "/api/v1/namespaces/default"), Verb::Get);
        assert_eq!(
            verb("PUT", "/api/v1/namespaces/default/finalize"),
            Verb::Update
        );
        assert_eq!(verb("GET", "/apis"), Verb::Other);
        assert_eq!(verb("GET", "/version"), Verb::Other);
    }

    #[test]
    fn resources_name_the_kind_and_subresource() {
        let servers = "/apis/metal.ironcore.dev/v1alpha1/servers";
        assert_eq!(resource_of(servers).as_deref(), Some("servers"));
        assert_eq!(
            resource_of(&format!("{servers}/s-1")).as_deref(),
            Some("servers")
        );
        assert_eq!(
            resource_of(&format!("{servers}/s-1/status")).as_deref(),
            Some("servers/status")
        );
        let sbc =
            "/apis/metal.ironcore.dev/v1alpha1/namespaces/ns/serverbootconfigurations/a/status";
        assert_eq!(
            resource_of(sbc).as_deref(),
            Some("serverbootconfigurations/status")
        );
        assert_eq!(
            resource_of("/api/v1/namespaces/default/secrets").as_deref(),
            Some("secrets")
        );
        assert_eq!(
            resource_of("/api/v1/namespaces").as_deref(),
            Some("namespaces")
        );
        assert_eq!(
            resource_of("/api/v1/namespaces/default").as_deref(),
            Some("namespaces")
        );
        assert_eq!(
            resource_of("/api/v1/namespaces/default/finalize").as_deref(),
            Some("namespaces/finalize")
        );
        assert_eq!(resource_of("/version"), None);
        let counter = Counter::default();
        counter.count_request(
            &http::Method::PATCH,
            &format!("{servers}/s-1/status").parse().unwrap(),
        );
        counter.count_request(
            &http::Method::PATCH,
            &format!("{servers}/s-2/status").parse().unwrap(),
        );
        assert_eq!(counter.resource_snapshot()["patch servers/status"], 2);
        assert_eq!(counter.get(Verb::Patch), 2);
    }

    #[test]
    fn summary_divides_the_system_under_test_by_servers() {
        let counters = ApiRequestCounters::default();
        for _ in 0..30 {
            counters.counter(Component::Operator).count(Verb::Patch);
        }
        counters.counter(Component::Backend).count(Verb::Watch);
        counters.counter(Component::Harness).count(Verb::Create);
        let s = counters.summary(10);
        assert_eq!(s.per_server, 3.1);
        assert_eq!(s.by_component["operator"].by_verb["patch"], 30);
        assert_eq!(s.by_component["harness"].total, 1);
        assert!(!s.by_component["backend"].by_verb.contains_key("get"));
    }
}
