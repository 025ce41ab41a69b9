//! Shared test fixtures: a running server and a small CRD (`Widget`) with status and printer columns.
//!
//! Opt-in real cluster: with `METAL_HARNESS_KUBECONFIG=/path/to/kubeconfig`, the tests written against
//! [`TestApi`] (the ones that make sense on any API server) run against that cluster instead, each in a fresh
//! namespace that is deleted at the end; tests that need the embedded server's own features (fault injection,
//! restarts, the in-process router) keep using [`start`]. Use a disposable cluster: CRDs are applied to it.
#![allow(dead_code)]

use std::time::Duration;

use apiserver::{Handle, Options, Server};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResource;
use kube::CustomResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::config::Kubeconfig;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[kube(
    group = "test.metal.dev",
    version = "v1",
    kind = "Widget",
    namespaced,
    status = "WidgetStatus"
)]
#[kube(shortname = "wd", category = "metal")]
#[kube(printcolumn = r#"{"name":"Size","type":"integer","jsonPath":".spec.size"}"#)]
#[kube(printcolumn = r#"{"name":"State","type":"string","jsonPath":".status.state"}"#)]
pub struct WidgetSpec {
    pub size: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub color: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
pub struct WidgetStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// Names a kubeconfig: when set, [`TestApi`] tests run against that cluster instead of an embedded server.
pub const REAL_CLUSTER_ENV: &str = "METAL_HARNESS_KUBECONFIG";

/// An API server for a test: the embedded one, or the real cluster named by [`REAL_CLUSTER_ENV`].
pub struct TestApi {
    embedded: Option<Handle>,
    client: kube::Client,
    namespace: String,
}

impl TestApi {
    pub async fn start() -> TestApi {
        let Ok(path) = std::env::var(REAL_CLUSTER_ENV) else {
            let h = start().await;
            return TestApi {
                client: h.client(),
                embedded: Some(h),
                namespace: "default".into(),
            };
        };
        let kubeconfig = Kubeconfig::read_from(&path)
            .unwrap_or_else(|e| panic!("{REAL_CLUSTER_ENV}={path}: {e}"));
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .unwrap_or_else(|e| panic!("{REAL_CLUSTER_ENV}={path}: {e}"));
        let client = kube::Client::try_from(config).expect("client for the real cluster");
        let namespace = format!(
            "mh-test-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        let ns: Namespace =
            serde_json::from_value(serde_json::json!({"metadata": {"name": namespace}}))
                .expect("namespace object");
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .expect("test namespace on the real cluster");
        TestApi {
            embedded: None,
            client,
            namespace,
        }
    }

    pub async fn with_widgets() -> TestApi {
        let api = TestApi::start().await;
        api.install_crds(&[Widget::crd()]).await;
        api
    }

    pub fn client(&self) -> kube::Client {
        self.client.clone()
    }

    /// The namespace the test works in ("default" on the embedded server).
    pub fn ns(&self) -> &str {
        &self.namespace
    }

    /// The embedded server, None on a real cluster.
    pub fn embedded(&self) -> Option<&Handle> {
        self.embedded.as_ref()
    }

    /// Creates or updates CRDs and waits until they are Established.
    pub async fn install_crds(&self, crds: &[CustomResourceDefinition]) {
        if let Some(h) = &self.embedded {
            h.install_crds(crds).await.expect("CRDs install");
            return;
        }
        let api: Api<CustomResourceDefinition> = Api::all(self.client.clone());
        for crd in crds {
            let name = crd.metadata.name.clone().expect("CRD name");
            api.patch(
                &name,
                &PatchParams::apply("metal-harness-tests").force(),
                &Patch::Apply(crd),
            )
            .await
            .unwrap_or_else(|e| panic!("applying CRD {name}: {e}"));
            eventually(30, &format!("CRD {name} Established"), || {
                let api = api.clone();
                let name = name.clone();
                async move {
                    let crd = api.get(&name).await.ok()?;
                    let conditions = crd.status?.conditions?;
                    conditions
                        .iter()
                        .any(|c| c.type_ == "Established" && c.status == "True")
                        .then_some(())
                }
            })
            .await;
        }
    }

    /// Stops the embedded server, or deletes the test's namespace on a real cluster.
    pub async fn shutdown(self) {
        match self.embedded {
            Some(h) => h.shutdown().await,
            None => {
                let _ = Api::<Namespace>::all(self.client)
                    .delete(&self.namespace, &DeleteParams::background())
                    .await;
            }
        }
    }
}

pub async fn start() -> Handle {
    Server::start(Options::default())
        .await
        .expect("server starts")
}

pub async fn start_with_widgets() -> Handle {
    let h = start().await;
    h.install_crds(&[Widget::crd()])
        .await
        .expect("CRD installs");
    h
}

pub fn widget(name: &str, size: i64) -> Widget {
    Widget::new(name, WidgetSpec { size, color: None })
}

/// Polls `check` until it returns Some, failing after `secs` seconds.
pub async fn eventually<T, F, Fut>(secs: u64, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Spawns `command` (the apiserver binary, perhaps behind a wrapper) with stdout piped and waits (30 s at most)
/// for the line announcing its URL; returns the child (killed on drop) and the URL.
pub async fn spawn_announcing(
    mut command: tokio::process::Command,
) -> (tokio::process::Child, String) {
    let mut child = command
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = stdout_lines(&mut child);
    let line = next_line(&mut lines).await;
    let url = line.rsplit(' ').next().unwrap().to_string();
    (child, url)
}

/// The lines of a child's piped stdout.
pub fn stdout_lines(
    child: &mut tokio::process::Child,
) -> tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>> {
    use tokio::io::AsyncBufReadExt;
    tokio::io::BufReader::new(child.stdout.take().unwrap()).lines()
}

/// The next line within 30 s (panics on timeout or end of output).
pub async fn next_line<R: tokio::io::AsyncBufRead + Unpin>(
    lines: &mut tokio::io::Lines<R>,
) -> String {
    tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap()
}

/// A request with a body and its content type, for sending straight to the router.
pub fn request(
    method: http::Method,
    uri: &str,
    content_type: &str,
    body: Vec<u8>,
) -> http::Request<axum::body::Body> {
    http::Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", content_type)
        .body(axum::body::Body::from(body))
        .unwrap()
}
