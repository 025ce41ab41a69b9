//! Plays the workload timeline: creates, changes and deletes claims, parks servers, annotates and
//! deletes objects, each step waiting for its time and condition.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use metal_api::constants::OPERATION_ANNOTATION;
use metal_api::{BMC, Server, ServerClaim};
use serde_json::json;
use tokio::time::Instant;

use super::conditions;
use super::observe::{SCENARIO_LABEL, Sink};
use crate::evidence::{Event, HarnessEvent, Key};
use crate::invariants::Monitor;
use crate::spec::{Action, ObjectKind, Scenario, StartAfter, Step, WaitFor};

/// Claims created concurrently (a user's `kubectl apply` of many objects).
const CREATE_CONCURRENCY: usize = 32;
const DEFAULT_WAIT: Duration = Duration::from_secs(60);

pub struct Player {
    pub client: Client,
    pub sink: Sink,
    pub monitor: Arc<Mutex<Monitor>>,
    /// Resolves `${registry}` in image references.
    pub registry_host: Option<String>,
    pub scenario: Scenario,
}

impl Player {
    /// Runs every step; an error names the step that failed.
    pub async fn play(&self, deadline: Instant) -> anyhow::Result<()> {
        if self.scenario.workload.start_after == StartAfter::Discovery {
            let servers = self.scenario.fleet.server_names().len();
            conditions::wait(
                &self.monitor,
                deadline,
                "every Server discovered (Available)",
                |w| conditions::servers_in_state(w, "Available", servers),
            )
            .await?;
            self.sink.send(Event::Harness(HarnessEvent::StepDone {
                label: "discovery complete".into(),
            }));
        }
        let start = Instant::now();
        for (i, step) in self.scenario.workload.steps.iter().enumerate() {
            self.step(step, start, deadline)
                .await
                .with_context(|| format!("workload step {} ({})", i + 1, step.action.label()))?;
            self.sink.send(Event::Harness(HarnessEvent::StepDone {
                label: step.action.label(),
            }));
        }
        Ok(())
    }

    async fn step(&self, step: &Step, start: Instant, deadline: Instant) -> anyhow::Result<()> {
        if let Some(at) = step.at {
            tokio::time::sleep_until((start + at.0).min(deadline)).await;
        }
        if let Some(wait) = &step.wait_for {
            let until =
                (Instant::now() + step.timeout.map(|t| t.0).unwrap_or(DEFAULT_WAIT)).min(deadline);
            let ns = self.scenario.workload.namespace.clone();
            let what = format!("{wait:?}");
            let servers = self.scenario.fleet.server_names().len();
            conditions::wait(&self.monitor, until, &what, |w| match wait {
                WaitFor::ClaimsBound(names) => conditions::claims_bound(w, &keys(&ns, names)),
                WaitFor::ClaimsBooted(names) => conditions::claims_booted(w, &keys(&ns, names)),
                WaitFor::ServersInState(state) => conditions::servers_in_state(w, state, servers),
            })
            .await?;
        }
        self.act(&step.action).await
    }

    fn ns(&self, namespace: &Option<String>) -> String {
        namespace
            .clone()
            .unwrap_or_else(|| self.scenario.workload.namespace.clone())
    }

    fn image(&self, reference: &str) -> String {
        match &self.registry_host {
            Some(host) => reference.replace("${registry}", host),
            None => reference.to_string(),
        }
    }

    fn harness(&self, h: HarnessEvent) {
        self.sink.send(Event::Harness(h));
    }

    async fn act(&self, action: &Action) -> anyhow::Result<()> {
        match action {
            Action::CreateClaims { namespace, .. } => {
                let ns = self.ns(namespace);
                futures::stream::iter(action.claim_names())
                    .map(|name| self.create_claim(&ns, name, action))
                    .buffer_unordered(CREATE_CONCURRENCY)
                    .try_collect::<Vec<()>>()
                    .await?;
            }
            Action::DeleteClaims { namespace, .. } => {
                let ns = self.ns(namespace);
                let api = Api::<ServerClaim>::namespaced(self.client.clone(), &ns);
                for name in action.claim_names() {
                    self.harness(HarnessEvent::ClaimDeleted {
                        key: Key::new(&ns, &name),
                    });
                    ignore_not_found(
                        api.delete(&name, &DeleteParams::default())
                            .await
                            .map(|_| ()),
                    )?;
                }
            }
            Action::UpdateClaim {
                name,
                image,
                ignition,
                namespace,
            } => {
                let ns = self.ns(namespace);
                let mut spec = serde_json::Map::new();
                if let Some(image) = image {
                    spec.insert("image".into(), json!(self.image(image)));
                }
                if let Some(ignition) = ignition {
                    let secret = format!("{name}-ignition-{}", self.sink.now_ms());
                    self.create_secret(&ns, &secret, ignition).await?;
                    spec.insert("ignitionSecretRef".into(), json!({"name": secret}));
                }
                let api = Api::<ServerClaim>::namespaced(self.client.clone(), &ns);
                api.patch(
                    name,
                    &PatchParams::default(),
                    &Patch::Merge(json!({"spec": spec})),
                )
                .await
                .with_context(|| format!("patching claim {ns}/{name}"))?;
            }
            Action::SetClaimPower {
                name,
                power,
                namespace,
            } => {
                let api = Api::<ServerClaim>::namespaced(self.client.clone(), &self.ns(namespace));
                api.patch(
                    name,
                    &PatchParams::default(),
                    &Patch::Merge(json!({"spec": {"power": power.as_str()}})),
                )
                .await?;
            }
            Action::Park { server } => self.operation(server, "park").await?,
            Action::Unpark { server } => self.operation(server, "unpark").await?,
            Action::Annotate {
                kind,
                name,
                namespace,
                annotations,
            } => self.annotate(*kind, name, namespace, annotations).await?,
            Action::DeleteServer { server } => {
                self.harness(HarnessEvent::ServerDeleted {
                    server: server.clone(),
                });
                let api = Api::<Server>::all(self.client.clone());
                ignore_not_found(
                    api.delete(server, &DeleteParams::default())
                        .await
                        .map(|_| ()),
                )?;
            }
            Action::DeleteBmc { bmc } => {
                self.harness(HarnessEvent::BmcDeleted { bmc: bmc.clone() });
                let api = Api::<BMC>::all(self.client.clone());
                ignore_not_found(api.delete(bmc, &DeleteParams::default()).await.map(|_| ()))?;
            }
            Action::Wait => {}
            Action::Pause { duration } => tokio::time::sleep(duration.0).await,
        }
        Ok(())
    }

    async fn create_claim(&self, ns: &str, name: String, action: &Action) -> anyhow::Result<()> {
        let Action::CreateClaims {
            image,
            ignition,
            server_ref,
            server_selector,
            power,
            ..
        } = action
        else {
            return Ok(());
        };
        let mut spec = json!({"power": power.as_str(), "image": self.image(image)});
        if let Some(ignition) = ignition {
            let secret = format!("{name}-ignition");
            self.create_secret(ns, &secret, ignition).await?;
            spec["ignitionSecretRef"] = json!({"name": secret});
        }
        if let Some(server) = server_ref {
            spec["serverRef"] = json!({"name": server});
        }
        if !server_selector.is_empty() {
            spec["serverSelector"] = json!({"matchLabels": server_selector});
        }
        let claim: ServerClaim = serde_json::from_value(json!({
            "apiVersion": metal_api::API_VERSION, "kind": "ServerClaim",
            "metadata": {"name": name, "namespace": ns},
            "spec": spec,
        }))?;
        self.harness(HarnessEvent::ClaimCreated {
            key: Key::new(ns, &name),
        });
        Api::<ServerClaim>::namespaced(self.client.clone(), ns)
            .create(&PostParams::default(), &claim)
            .await
            .with_context(|| format!("creating claim {ns}/{name}"))?;
        Ok(())
    }

    async fn create_secret(&self, ns: &str, name: &str, ignition: &str) -> anyhow::Result<()> {
        let secret: Secret = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": name, "namespace": ns, "labels": {SCENARIO_LABEL: self.scenario.name}},
        }))?;
        let secret = Secret {
            data: Some(
                [(
                    metal_api::constants::IGNITION_KEY.to_string(),
                    ByteString(ignition.as_bytes().to_vec()),
                )]
                .into(),
            ),
            ..secret
        };
        Api::<Secret>::namespaced(self.client.clone(), ns)
            .create(&PostParams::default(), &secret)
            .await
            .with_context(|| format!("creating Secret {ns}/{name}"))?;
        Ok(())
    }

    async fn operation(&self, server: &str, op: &str) -> anyhow::Result<()> {
        let annotations = [(OPERATION_ANNOTATION.to_string(), Some(op.to_string()))].into();
        self.annotate(ObjectKind::Server, server, &None, &annotations)
            .await
    }

    async fn annotate(
        &self,
        kind: ObjectKind,
        name: &str,
        namespace: &Option<String>,
        annotations: &BTreeMap<String, Option<String>>,
    ) -> anyhow::Result<()> {
        let patch = Patch::Merge(json!({"metadata": {"annotations": annotations}}));
        let params = PatchParams::default();
        match kind {
            ObjectKind::Server => {
                if let Some(Some(op)) = annotations.get(OPERATION_ANNOTATION) {
                    self.harness(HarnessEvent::OperationRequested {
                        server: name.into(),
                        operation: op.clone(),
                    });
                }
                Api::<Server>::all(self.client.clone())
                    .patch(name, &params, &patch)
                    .await?;
            }
            ObjectKind::ServerClaim => {
                Api::<ServerClaim>::namespaced(self.client.clone(), &self.ns(namespace))
                    .patch(name, &params, &patch)
                    .await?;
            }
            ObjectKind::Bmc => {
                Api::<BMC>::all(self.client.clone())
                    .patch(name, &params, &patch)
                    .await?;
            }
        }
        Ok(())
    }
}

fn keys(ns: &str, names: &[String]) -> Vec<Key> {
    names.iter().map(|n| Key::new(ns, n)).collect()
}

fn ignore_not_found(r: Result<(), kube::Error>) -> anyhow::Result<()> {
    match r {
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        other => Ok(other?),
    }
}
