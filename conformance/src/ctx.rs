//! The per-check context: its own namespace, a recorder watching it from before the first SBC, helpers that create
//! and change objects (noting every input change), and cleanup of exactly what the check created.

use crate::fixtures::{self, sbc_resource, sbc_spec, server_resource};
use crate::history::History;
use crate::progress::Progress;
use crate::recorder::Recorder;
use crate::target::Target;
use anyhow::Context as _;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Created {
    Namespace(String),
    Server(String),
    Secret(String, String),
    Sbc(String, String),
}

/// A Server the check created: its name and the SMBIOS UUID a machine boots with.
#[derive(Debug, Clone)]
pub struct ServerRef {
    pub name: String,
    pub uuid: String,
}

pub struct Ctx {
    pub target: Arc<Target>,
    pub check: &'static str,
    pub ns: String,
    pub recorder: Recorder,
    pub progress: Progress,
    pub cancel: CancellationToken,
    created: Mutex<Vec<Created>>,
    extra_recorders: Mutex<Vec<Recorder>>,
    /// When each SBC's create request was issued (run time), by `namespace/name`: "never Ready" windows start
    /// there, so a Ready written while the create was still in flight is not missed.
    create_issued: Mutex<std::collections::BTreeMap<String, Duration>>,
}

impl Ctx {
    /// Creates the check's namespace and starts recording SBCs in it.
    pub async fn new(
        target: Arc<Target>,
        check: &'static str,
        progress: Progress,
    ) -> anyhow::Result<Ctx> {
        let ns = namespace_name(&target.run_id, check);
        let ns_api: Api<Namespace> = Api::all(target.client.clone());
        let obj = serde_json::from_value(fixtures::namespace(&ns, &target.run_id, check))?;
        ns_api
            .create(&PostParams::default(), &obj)
            .await
            .with_context(|| format!("creating namespace {ns}"))?;
        let cancel = target.cancel.child_token();
        let ctx = Ctx {
            recorder: Recorder::start(
                target.client.clone(),
                &ns,
                target.epoch,
                target.activity.clone(),
                cancel.clone(),
            )
            .await
            .with_context(|| format!("watching ServerBootConfigurations in {ns}"))?,
            created: Mutex::new(vec![Created::Namespace(ns.clone())]),
            extra_recorders: Mutex::new(Vec::new()),
            create_issued: Mutex::new(Default::default()),
            target,
            check,
            ns,
            progress,
            cancel,
        };
        Ok(ctx)
    }

    fn track(&self, c: Created) {
        self.created
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(c);
    }

    fn sbcs(&self, ns: &str) -> Api<DynamicObject> {
        Api::namespaced_with(self.target.client.clone(), ns, &sbc_resource())
    }

    fn servers(&self) -> Api<DynamicObject> {
        Api::all_with(self.target.client.clone(), &server_resource())
    }

    fn secrets(&self, ns: &str) -> Api<Secret> {
        Api::namespaced(self.target.client.clone(), ns)
    }

    /// A second namespace for isolation checks, with its own recorder; removed with the check's objects.
    pub async fn extra_namespace(&self, suffix: &str) -> anyhow::Result<(String, Recorder)> {
        let ns = format!("{}-{suffix}", self.ns);
        let obj =
            serde_json::from_value(fixtures::namespace(&ns, &self.target.run_id, self.check))?;
        // Tracked before the create: a check cancelled mid-request must still clean up what reached the server.
        self.track(Created::Namespace(ns.clone()));
        Api::<Namespace>::all(self.target.client.clone())
            .create(&PostParams::default(), &obj)
            .await
            .with_context(|| format!("creating namespace {ns}"))?;
        let recorder = Recorder::start(
            self.target.client.clone(),
            &ns,
            self.target.epoch,
            self.target.activity.clone(),
            self.cancel.clone(),
        )
        .await?;
        self.extra_recorders
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(recorder.clone());
        Ok((ns, recorder))
    }

    /// A fresh Server with a random UUID; `boot_ref` names the SBC (in this namespace) it references.
    pub async fn server(&self, name: &str, boot_ref: Option<&str>) -> anyhow::Result<ServerRef> {
        self.server_referencing(name, boot_ref.map(|sbc| (self.ns.as_str(), sbc)))
            .await
    }

    /// A fresh Server with a random UUID referencing the SBC `(namespace, name)`, if given.
    pub async fn server_referencing(
        &self,
        name: &str,
        boot_ref: Option<(&str, &str)>,
    ) -> anyhow::Result<ServerRef> {
        let full = format!("{}-{}", self.ns, name);
        let uuid = uuid::Uuid::new_v4().to_string();
        let value = fixtures::server(&full, &uuid, boot_ref, &self.target.run_id, self.check);
        self.track(Created::Server(full.clone()));
        self.servers()
            .create(&PostParams::default(), &fixtures::to_dynamic(value)?)
            .await
            .with_context(|| format!("creating Server {full}"))?;
        Ok(ServerRef { name: full, uuid })
    }

    /// Points an existing Server at another SBC of this namespace.
    pub async fn set_boot_ref(&self, server: &ServerRef, sbc: &str) -> anyhow::Result<()> {
        let patch = json!({"spec": {"bootConfigurationRef": {
            "apiVersion": format!("{}/{}", fixtures::GROUP, fixtures::VERSION),
            "kind": "ServerBootConfiguration", "namespace": self.ns, "name": sbc }}});
        self.servers()
            .patch(&server.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        Ok(())
    }

    /// Creates an ignition Secret in `ns` (default: the check's namespace); `ignition: None` omits the key.
    pub async fn secret_in(
        &self,
        ns: &str,
        name: &str,
        ignition: Option<&[u8]>,
    ) -> anyhow::Result<()> {
        let value = fixtures::ignition_secret(name, ignition, &self.target.run_id, self.check);
        let secret: Secret = serde_json::from_value(value)?;
        self.track(Created::Secret(ns.into(), name.into()));
        self.secrets(ns)
            .create(&PostParams::default(), &secret)
            .await
            .with_context(|| format!("creating Secret {ns}/{name}"))?;
        Ok(())
    }

    /// Creates a Secret with Butane YAML and `format: fcos` in the check's namespace.
    pub async fn butane_secret(&self, name: &str, butane: &[u8]) -> anyhow::Result<()> {
        let secret: Secret = serde_json::from_value(fixtures::butane_secret(
            name,
            butane,
            &self.target.run_id,
            self.check,
        ))?;
        self.track(Created::Secret(self.ns.clone(), name.into()));
        self.secrets(&self.ns)
            .create(&PostParams::default(), &secret)
            .await
            .with_context(|| format!("creating Secret {}/{name}", self.ns))?;
        Ok(())
    }

    pub async fn secret(&self, name: &str, ignition: Option<&[u8]>) -> anyhow::Result<()> {
        self.secret_in(&self.ns.clone(), name, ignition).await
    }

    /// Adds or replaces the `ignition` key of an existing Secret; `affects` are the SBCs that reference it.
    pub async fn set_secret_ignition(
        &self,
        name: &str,
        ignition: &[u8],
        affects: &[&str],
    ) -> anyhow::Result<()> {
        use base64::Engine as _;
        let patch = json!({"data": {fixtures::IGNITION_KEY: base64::engine::general_purpose::STANDARD.encode(ignition)}});
        for sbc in affects {
            self.recorder
                .note_input(sbc, format!("Secret {name} changed"));
        }
        self.secrets(&self.ns)
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        Ok(())
    }

    /// Creates an SBC in `ns` and notes what was written in that namespace's recorder.
    pub async fn sbc_in(
        &self,
        recorder: &Recorder,
        ns: &str,
        name: &str,
        spec: Value,
    ) -> anyhow::Result<()> {
        let value = fixtures::sbc(name, spec, &self.target.run_id, self.check);
        self.track(Created::Sbc(ns.into(), name.into()));
        let issued = self.now();
        self.create_issued
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(format!("{ns}/{name}"), issued);
        self.target.activity.sbc_created(issued);
        let created = self
            .sbcs(ns)
            .create(&PostParams::default(), &fixtures::to_dynamic(value)?)
            .await
            .with_context(|| format!("creating ServerBootConfiguration {ns}/{name}"))?;
        recorder.note_write(&created);
        Ok(())
    }

    pub async fn sbc(&self, name: &str, spec: Value) -> anyhow::Result<()> {
        self.sbc_in(&self.recorder, &self.ns, name, spec).await
    }

    /// Changes `spec.image`; returns the new generation.
    pub async fn set_image(&self, name: &str, image: &str) -> anyhow::Result<i64> {
        self.patch_spec(
            name,
            json!({"image": image}),
            &format!("spec.image set to {image}"),
        )
        .await
    }

    /// Merge-patches the SBC's spec, noting the input change; returns the new generation.
    pub async fn patch_spec(&self, name: &str, spec: Value, what: &str) -> anyhow::Result<i64> {
        self.recorder.note_input(name, what);
        let patch = json!({ "spec": spec });
        let updated = self
            .sbcs(&self.ns)
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .with_context(|| format!("patching {name}: {what}"))?;
        self.recorder.note_write(&updated);
        Ok(updated.metadata.generation.unwrap_or_default())
    }

    /// When the create of SBC `name` (in the check's namespace) was issued.
    pub fn create_issued_at(&self, name: &str) -> Option<Duration> {
        self.create_issued
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&format!("{}/{name}", self.ns))
            .copied()
    }

    pub async fn get_sbc(&self, name: &str) -> anyhow::Result<Option<DynamicObject>> {
        Ok(self.sbcs(&self.ns).get_opt(name).await?)
    }

    /// Histories from the check's namespace and any extra namespaces.
    pub fn all_histories(&self) -> Vec<History> {
        let mut all = self.recorder.histories();
        for r in self
            .extra_recorders
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            all.extend(r.histories());
        }
        all
    }

    /// Requests deletion of an SBC (the caller waits for it to go).
    pub async fn delete_sbc(&self, name: &str) -> anyhow::Result<()> {
        self.recorder.note_input(name, "deleted");
        self.sbcs(&self.ns)
            .delete(name, &DeleteParams::default())
            .await?;
        Ok(())
    }

    /// Waits until the SBC is Ready at or after `since` (run time), or the deadline passes.
    pub async fn wait_ready_since(
        &self,
        name: &str,
        since: Duration,
        deadline: Duration,
    ) -> (History, bool) {
        self.progress
            .phase(&format!("{name}: waiting for Ready"), deadline);
        self.recorder
            .wait_for(name, deadline, |h| h.first_ready_since(since).is_some())
            .await
    }

    /// Waits until the backend claims Ready for `generation` (after a non-Ready at that generation, or by
    /// stamping it), within the time-to-Ready budget.
    pub async fn wait_ready_for_generation(&self, name: &str, generation: i64) -> (History, bool) {
        self.wait_for(
            name,
            "new spec: waiting for Ready",
            self.target.timeouts.time_to_ready,
            |h| h.claims_ready_for(generation),
        )
        .await
    }

    /// Creates SBC `name` for `server` with the valid image and `ignition_secret`, then waits (within the
    /// time-to-Ready budget) for Ready; returns when it was created, the history and whether it got Ready.
    pub async fn sbc_until_ready(
        &self,
        name: &str,
        server: &str,
        ignition_secret: Option<&str>,
    ) -> anyhow::Result<(Duration, History, bool)> {
        let t0 = self.now();
        self.sbc(
            name,
            sbc_spec(server, &self.target.images.valid, ignition_secret),
        )
        .await?;
        let (h, ready) = self
            .wait_ready_since(name, t0, self.target.timeouts.time_to_ready)
            .await;
        Ok((t0, h, ready))
    }

    /// Waits until `done` holds or the deadline passes; `what` goes to the progress line.
    pub async fn wait_for(
        &self,
        name: &str,
        what: &str,
        deadline: Duration,
        done: impl Fn(&History) -> bool,
    ) -> (History, bool) {
        self.progress.phase(&format!("{name}: {what}"), deadline);
        self.recorder.wait_for(name, deadline, done).await
    }

    /// Watches for `window` without waiting on anything: the observation window of a "never" rule.
    pub async fn observe(&self, what: &str, window: Duration) {
        self.progress.phase(what, window);
        tokio::select! {
            _ = tokio::time::sleep(window) => {}
            _ = self.cancel.cancelled() => {}
        }
    }

    pub fn now(&self) -> Duration {
        self.recorder.now()
    }

    /// Deletes exactly what this check created, newest first. Returns what could not be deleted.
    pub async fn cleanup(&self) -> Vec<String> {
        let created: Vec<Created> = self
            .created
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
            .rev()
            .collect();
        let mut problems = Vec::new();
        let dp = DeleteParams::background();
        for c in created {
            let result = match &c {
                Created::Sbc(ns, name) => self.sbcs(ns).delete(name, &dp).await.map(|_| ()),
                Created::Secret(ns, name) => self.secrets(ns).delete(name, &dp).await.map(|_| ()),
                Created::Server(name) => self.servers().delete(name, &dp).await.map(|_| ()),
                Created::Namespace(name) => Api::<Namespace>::all(self.target.client.clone())
                    .delete(name, &dp)
                    .await
                    .map(|_| ()),
            };
            match result {
                Ok(()) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => problems.push(format!("{c:?}: {e}")),
            }
        }
        problems.extend(self.sweep_labelled_servers().await);
        self.cancel.cancel();
        problems
    }

    /// Servers are cluster-scoped, so the namespace's deletion does not take them: a create that was in flight when
    /// the check was cancelled can land after the tracked delete. Sweep this check's labelled Servers once more.
    async fn sweep_labelled_servers(&self) -> Vec<String> {
        let selector = format!(
            "{}={},{}={}",
            fixtures::SUITE_LABEL,
            self.target.run_id,
            fixtures::CHECK_LABEL,
            self.check.replace('.', "-")
        );
        let listed = match self
            .servers()
            .list_metadata(&ListParams::default().labels(&selector))
            .await
        {
            Ok(list) => list,
            Err(e) => return vec![format!("listing leftover Servers ({selector}): {e}")],
        };
        let mut problems = Vec::new();
        for server in listed.items {
            let name = server.metadata.name.unwrap_or_default();
            match self
                .servers()
                .delete(&name, &DeleteParams::background())
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => problems.push(format!("Server {name}: {e}")),
            }
        }
        problems
    }
}

/// `cf-<run>-<check>` as a DNS label (≤ 63 characters).
pub fn namespace_name(run_id: &str, check: &str) -> String {
    let run: String = run_id
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(6)
        .collect();
    let mut name = format!("cf-{}-{}", run, check.replace('.', "-")).to_ascii_lowercase();
    name.truncate(63);
    name.trim_end_matches('-').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_names_are_dns_labels() {
        let n = namespace_name("3f2a9c1d-aaaa", "core.image-disallowed-registry");
        assert_eq!(n, "cf-3f2a9c-core-image-disallowed-registry");
        let long = namespace_name("r", &"x".repeat(100));
        assert!(long.len() <= 63);
    }
}
