//! The status-history recorder: one watch per test namespace, opened before the first SBC exists, that keeps
//! EVERY event of every SBC with its arrival time, so a Ready that flickers for one status write is caught.

use crate::fixtures::sbc_resource;
use crate::history::{ConditionSnapshot, EventKind, History, InputChange, Observation};
use futures::{StreamExt, TryStreamExt};
use kube::api::{Api, DynamicObject, ListParams, WatchEvent, WatchParams};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Shared, cheap to clone.
#[derive(Clone)]
pub struct Recorder {
    inner: Arc<Inner>,
}

struct Inner {
    epoch: Instant,
    /// The run's record of the backend's signs of life: any SBC status seen is one.
    activity: Arc<crate::target::Activity>,
    histories: Mutex<BTreeMap<String, History>>,
    namespace: String,
    /// Bumped on every recorded event; waiters re-evaluate on change.
    version: watch::Sender<u64>,
}

impl Recorder {
    /// Lists the namespace's SBCs and opens the watch before returning, so nothing created afterwards is missed.
    pub async fn start(
        client: kube::Client,
        namespace: &str,
        epoch: Instant,
        activity: Arc<crate::target::Activity>,
        cancel: CancellationToken,
    ) -> kube::Result<Recorder> {
        let api: Api<DynamicObject> = Api::namespaced_with(client, namespace, &sbc_resource());
        let recorder = Recorder {
            inner: Arc::new(Inner {
                epoch,
                activity,
                histories: Mutex::new(BTreeMap::new()),
                namespace: namespace.into(),
                version: watch::channel(0).0,
            }),
        };
        let rv = recorder.relist(&api, false).await?;
        let stream = api
            .watch(&WatchParams::default().timeout(290), &rv)
            .await?
            .boxed();
        let task = recorder.clone();
        tokio::spawn(async move { task.follow(api, stream, rv, cancel).await });
        Ok(recorder)
    }

    pub fn now(&self) -> Duration {
        Instant::now().saturating_duration_since(self.inner.epoch)
    }

    async fn relist(&self, api: &Api<DynamicObject>, gap: bool) -> kube::Result<String> {
        let list = api.list(&ListParams::default()).await?;
        let at = self.now();
        for obj in list.items {
            let name = obj.metadata.name.clone().unwrap_or_default();
            if gap {
                self.with_history(&name, |h| h.gaps.push(at));
            }
            self.observe(EventKind::Modified, &obj, at, true);
        }
        Ok(list.metadata.resource_version.unwrap_or_default())
    }

    async fn follow(
        self,
        api: Api<DynamicObject>,
        mut stream: futures::stream::BoxStream<'static, kube::Result<WatchEvent<DynamicObject>>>,
        mut rv: String,
        cancel: CancellationToken,
    ) {
        loop {
            let event = tokio::select! {
                _ = cancel.cancelled() => return,
                e = stream.try_next() => e,
            };
            let restart_gap = match event {
                Ok(Some(WatchEvent::Added(o))) => self.event(EventKind::Added, &o, &mut rv),
                Ok(Some(WatchEvent::Modified(o))) => self.event(EventKind::Modified, &o, &mut rv),
                Ok(Some(WatchEvent::Deleted(o))) => self.event(EventKind::Deleted, &o, &mut rv),
                Ok(Some(WatchEvent::Bookmark(b))) => {
                    rv = b.metadata.resource_version;
                    None
                }
                Ok(Some(WatchEvent::Error(e))) => Some(e.code == 410),
                Ok(None) => Some(false),
                Err(_) => Some(true),
            };
            let Some(gap) = restart_gap else { continue };
            // Reconnect with a bounded backoff; a 410 or transport error forces a re-list, marked as a gap.
            let mut backoff = Duration::from_millis(50);
            stream = loop {
                if cancel.is_cancelled() {
                    return;
                }
                if gap {
                    match self.relist(&api, true).await {
                        Ok(new_rv) => rv = new_rv,
                        Err(_) => {
                            tokio::time::sleep(backoff).await;
                            backoff = (backoff * 2).min(Duration::from_secs(1));
                            continue;
                        }
                    }
                }
                match api.watch(&WatchParams::default().timeout(290), &rv).await {
                    Ok(s) => break s.boxed(),
                    Err(_) => {
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(1));
                        // The resourceVersion may have expired meanwhile: re-list on the next attempt.
                        if let Ok(new_rv) = self.relist(&api, true).await {
                            rv = new_rv;
                        }
                    }
                }
            };
        }
    }

    fn event(&self, kind: EventKind, obj: &DynamicObject, rv: &mut String) -> Option<bool> {
        if let Some(v) = &obj.metadata.resource_version {
            rv.clone_from(v);
        }
        self.observe(kind, obj, self.now(), false);
        None
    }

    fn observe(&self, kind: EventKind, obj: &DynamicObject, at: Duration, from_list: bool) {
        let observation = observation(kind, obj, at);
        if observation.state.is_some() || !observation.conditions.is_empty() {
            self.inner.activity.status_written(at);
        }
        let name = obj.metadata.name.clone().unwrap_or_default();
        self.with_history(&name, |h| {
            // A re-list repeats objects we already saw; keep only real changes.
            if from_list
                && h.last()
                    .is_some_and(|l| l.resource_version == observation.resource_version)
            {
                return;
            }
            h.observations.push(observation);
        });
    }

    fn with_history(&self, name: &str, f: impl FnOnce(&mut History)) {
        {
            let mut map = self
                .inner
                .histories
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            let h = map
                .entry(name.to_string())
                .or_insert_with(|| History::new(&self.inner.namespace, name));
            f(h);
        }
        self.inner.version.send_modify(|v| *v += 1);
    }

    /// Notes what the harness wrote, so spec/metadata writes by anyone else are detectable (SBC-CORE-002).
    pub fn note_write(&self, obj: &DynamicObject) {
        let name = obj.metadata.name.clone().unwrap_or_default();
        let generation = obj.metadata.generation.unwrap_or_default();
        let spec = obj.data.get("spec").cloned().unwrap_or(Value::Null);
        let labels = obj.metadata.labels.clone().unwrap_or_default();
        let annotations = obj.metadata.annotations.clone().unwrap_or_default();
        self.with_history(&name, |h| {
            h.written_specs.insert(generation, spec);
            h.written_labels = labels;
            h.written_annotations = annotations;
        });
    }

    /// Records an input change (spec edit, Secret or Server change, restart) that may move the SBC out of Ready.
    pub fn note_input(&self, sbc: &str, what: impl Into<String>) {
        let at = self.now();
        let what = what.into();
        self.with_history(sbc, |h| h.inputs.push(InputChange { at, what }));
    }

    /// Records an input change for every SBC seen so far (backend or API server restart).
    pub fn note_input_all(&self, what: &str) {
        let at = self.now();
        let mut map = self
            .inner
            .histories
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        for h in map.values_mut() {
            h.inputs.push(InputChange {
                at,
                what: what.into(),
            });
        }
    }

    pub fn history(&self, name: &str) -> History {
        let map = self
            .inner
            .histories
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        map.get(name)
            .cloned()
            .unwrap_or_else(|| History::new(&self.inner.namespace, name))
    }

    pub fn histories(&self) -> Vec<History> {
        let map = self
            .inner
            .histories
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        map.values().cloned().collect()
    }

    /// Waits until `done` holds for the SBC's history or `deadline` (relative to now) passes.
    /// Returns the history either way, and whether the condition was met.
    pub async fn wait_for(
        &self,
        name: &str,
        deadline: Duration,
        done: impl Fn(&History) -> bool,
    ) -> (History, bool) {
        let mut changes = self.inner.version.subscribe();
        let until = Instant::now() + deadline;
        loop {
            let h = self.history(name);
            if done(&h) {
                return (h, true);
            }
            tokio::select! {
                _ = tokio::time::sleep_until(until) => {
                    let h = self.history(name);
                    let met = done(&h);
                    return (h, met);
                }
                r = changes.changed() => if r.is_err() { return (self.history(name), false) },
            }
        }
    }
}

/// Reduces a watch object to what the oracles read.
pub fn observation(kind: EventKind, obj: &DynamicObject, at: Duration) -> Observation {
    let status = obj.data.get("status");
    let state = status
        .and_then(|s| s.get("state"))
        .and_then(Value::as_str)
        .map(String::from);
    let conditions = status
        .and_then(|s| s.get("conditions"))
        .and_then(Value::as_array)
        .map(|cs| cs.iter().map(condition).collect())
        .unwrap_or_default();
    Observation {
        at,
        kind,
        resource_version: obj.metadata.resource_version.clone().unwrap_or_default(),
        generation: obj.metadata.generation.unwrap_or_default(),
        state: state.filter(|s| !s.is_empty()),
        conditions,
        spec: obj.data.get("spec").cloned().unwrap_or(Value::Null),
        labels: obj.metadata.labels.clone().unwrap_or_default(),
        annotations: obj.metadata.annotations.clone().unwrap_or_default(),
        deleting: obj.metadata.deletion_timestamp.is_some(),
    }
}

fn condition(c: &Value) -> ConditionSnapshot {
    let text = |k: &str| {
        c.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    ConditionSnapshot {
        type_: text("type"),
        status: text("status"),
        reason: text("reason"),
        message: text("message"),
        observed_generation: c.get("observedGeneration").and_then(Value::as_i64),
    }
}
