//! Test fixtures: an embedded API server with the metal CRDs, sim-boot running against it, and helpers
//! that create objects the way metal-operator does.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use metal_api::{Server, ServerBootConfiguration};
use sim_boot::oci::names;
use sim_boot::{BackendHandle, BackendOptions, Misbehaviour};
use testbed::objects;

pub const NS: &str = "default";

pub struct Env {
    pub api: apiserver::Handle,
    pub client: Client,
    pub backend: BackendHandle,
}

pub fn options(mode: Misbehaviour) -> BackendOptions {
    testbed::objects::quick_sim_boot(mode, Duration::from_secs(2))
}

pub async fn env(mode: Misbehaviour) -> Env {
    env_with(options(mode)).await
}

pub async fn env_with(options: BackendOptions) -> Env {
    env_with_resolver(options, sim_boot::ResolverKind::OciClient).await
}

pub async fn env_with_resolver(options: BackendOptions, resolver: sim_boot::ResolverKind) -> Env {
    let mut bed = testbed::Testbed::builder()
        .backend(testbed::Backend::InProcess(testbed::SimBoot {
            resolver,
            ..options.into()
        }))
        .start()
        .await
        .expect("API server and backend start");
    Env {
        api: bed.api.take_handle().expect("embedded API server"),
        client: bed.client.clone(),
        backend: bed.take_sim_boot().expect("in-process sim-boot"),
    }
}

impl Env {
    pub fn sbcs(&self) -> Api<ServerBootConfiguration> {
        Api::namespaced(self.client.clone(), NS)
    }

    pub async fn server(&self, name: &str, uuid: &str) -> Server {
        objects::create_server(&self.client, name, uuid)
            .await
            .expect("Server created")
    }

    /// Points `Server.spec.bootConfigurationRef` at `NS/sbc`, as metal-operator does after creating the SBC.
    pub async fn reference(&self, server: &str, sbc: &str) {
        objects::reference_sbc(&self.client, server, NS, sbc)
            .await
            .expect("Server patched");
    }

    pub async fn secret(&self, name: &str, data: &[(&str, &str)]) {
        objects::apply_secret(&self.client, NS, name, data)
            .await
            .expect("Secret applied");
    }

    pub async fn butane_secret(&self, name: &str, user: &str) {
        let butane = objects::butane_with_user(user);
        self.secret(name, &[("ignition", &butane), ("format", "fcos")])
            .await;
    }

    pub async fn sbc(
        &self,
        name: &str,
        server: &str,
        image: &str,
        secret: Option<&str>,
    ) -> ServerBootConfiguration {
        objects::create_sbc(&self.client, NS, name, server, image, secret)
            .await
            .expect("SBC created")
    }

    /// Merge-patches the status of Server `server` (what discovery would have written).
    pub async fn merge_server_status(&self, server: &str, patch: serde_json::Value) {
        let params = kube::api::PatchParams::default();
        Api::<Server>::all(self.client.clone())
            .patch_status(server, &params, &kube::api::Patch::Merge(&patch))
            .await
            .expect("Server status patched");
    }

    /// A Server and an SBC `name` for the standard OS image (no ignition) that the Server does not reference
    /// yet; returns the SBC once the backend says so (`ArtifactsServed` reason `NotReferencedByServer`).
    pub async fn unreferenced_machine(&self, name: &str, uuid: &str) -> ServerBootConfiguration {
        self.server(name, uuid).await;
        let image = self.backend.image(names::OS_V1);
        self.sbc(name, name, &image, None).await;
        self.wait(name, Duration::from_secs(20), |s| {
            condition(s, "ArtifactsServed").is_some_and(|c| c.reason == "NotReferencedByServer")
        })
        .await
    }

    pub async fn set_image(&self, name: &str, image: &str) {
        objects::set_sbc_image(&self.client, NS, name, image)
            .await
            .expect("SBC patched");
    }

    /// Polls GET `path` until it answers `status`; panics with `what` after `timeout`.
    pub async fn wait_for_status(&self, path: &str, status: u16, timeout: Duration, what: &str) {
        let deadline = tokio::time::Instant::now() + timeout;
        while self.get(path).await.status != status {
            assert!(tokio::time::Instant::now() < deadline, "{what}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Polls until `check` accepts the SBC, or panics with the last state after `timeout`.
    pub async fn wait(
        &self,
        name: &str,
        timeout: Duration,
        check: impl Fn(&ServerBootConfiguration) -> bool,
    ) -> ServerBootConfiguration {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let sbc = self.sbcs().get(name).await.expect("SBC readable");
            if check(&sbc) {
                return sbc;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting on {name}: {:#?}",
                sbc.status
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn wait_state(&self, name: &str, state: &str) -> ServerBootConfiguration {
        self.wait(name, Duration::from_secs(30), |s| {
            state_of(s) == state && fresh(s)
        })
        .await
    }

    /// A full boot setup of the standard OS image: Server, ignition Secret, SBC, reference; returns the SBC
    /// once Ready.
    pub async fn ready_machine(&self, name: &str, uuid: &str) -> ServerBootConfiguration {
        self.server(name, uuid).await;
        self.butane_secret(name, "core").await;
        let image = self.backend.image(names::OS_V1);
        self.sbc(name, name, &image, Some(name)).await;
        self.reference(name, name).await;
        self.wait_state(name, "Ready").await
    }

    pub async fn get(&self, path: &str) -> http_client::Fetched {
        http_client::HttpClient::hyper()
            .get(&format!("{}{path}", self.backend.url()))
            .await
            .expect("boot server answers")
    }
}

pub fn state_of(sbc: &ServerBootConfiguration) -> String {
    sbc.status
        .as_ref()
        .and_then(|s| s.state.as_ref())
        .map(|s| s.as_str().to_string())
        .unwrap_or_default()
}

pub fn condition<'a>(
    sbc: &'a ServerBootConfiguration,
    type_: &str,
) -> Option<&'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    sbc.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
}

/// Whether every sim-boot condition was written for the current generation.
pub fn fresh(sbc: &ServerBootConfiguration) -> bool {
    let generation = sbc.metadata.generation;
    let owned = [
        "ServerResolved",
        "ImageResolved",
        "IgnitionReady",
        "ArtifactsServed",
    ];
    let conditions = sbc
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    owned.iter().all(|t| {
        conditions
            .iter()
            .any(|c| c.type_ == *t && c.observed_generation == generation)
    })
}

/// Every (generation, state, min observedGeneration) an SBC goes through, as seen by a watch.
#[derive(Clone, Default)]
pub struct History(Arc<Mutex<Vec<(i64, String, i64)>>>);

impl History {
    pub fn record(client: &Client) -> Self {
        let history = History::default();
        let sink = history.clone();
        let api: Api<ServerBootConfiguration> = Api::namespaced(client.clone(), NS);
        tokio::spawn(async move {
            let mut stream = watcher(api, watcher::Config::default())
                .applied_objects()
                .boxed();
            while let Some(Ok(sbc)) = stream.next().await {
                let observed = sbc
                    .status
                    .as_ref()
                    .and_then(|s| {
                        s.conditions
                            .iter()
                            .filter_map(|c| c.observed_generation)
                            .min()
                    })
                    .unwrap_or(-1);
                let entry = (
                    sbc.metadata.generation.unwrap_or(0),
                    state_of(&sbc),
                    observed,
                );
                let mut entries = sink.0.lock().unwrap();
                if entries.last() != Some(&entry) {
                    entries.push(entry);
                }
            }
        });
        history
    }

    pub fn entries(&self) -> Vec<(i64, String, i64)> {
        self.0.lock().unwrap().clone()
    }
}
