//! Publishes `events.k8s.io/v1` Events as kube-runtime's `Recorder` does (a repeat within six minutes becomes a
//! series on the first Event), but stamped from the run's [`Clock`].
//! Hand-written because kube-runtime 5's `Recorder` reads the wall clock for event times and names, which a
//! simulated run must not.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use clock::Clock;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, Patch, PatchParams, PostParams};
use tokio::sync::Mutex;

/// How long a published Event stays a series' head (kube-runtime's and client-go's figure).
pub const SERIES_WINDOW: Duration = Duration::from_secs(6 * 60);

/// What makes two events the same series: type, reason, action and the object they regard.
type SeriesKey = (String, String, String, String);

pub struct EventRecorder {
    client: kube::Client,
    controller: String,
    instance: Option<String>,
    clock: Clock,
    /// Added to the nanoseconds in new Events' names: on a paused clock many Events share an instant.
    created: AtomicU64,
    /// Recent Events by series, bounded by [`SERIES_WINDOW`] (older ones are dropped on every publish).
    recent: Mutex<BTreeMap<SeriesKey, Event>>,
}

impl EventRecorder {
    pub fn new(
        client: kube::Client,
        controller: &str,
        instance: Option<String>,
        clock: Clock,
    ) -> Self {
        Self {
            client,
            controller: controller.into(),
            instance,
            clock,
            created: AtomicU64::new(0),
            recent: Mutex::default(),
        }
    }

    /// Creates the Event, or when the same one was published within the window, counts it on that one.
    pub async fn publish(
        &self,
        regarding: &ObjectReference,
        type_: &str,
        reason: &str,
        action: &str,
        note: Option<String>,
    ) -> Result<(), kube::Error> {
        let now = self.clock.now();
        let key = (
            type_.to_string(),
            reason.to_string(),
            action.to_string(),
            format!("{regarding:?}"),
        );
        let mut recent = self.recent.lock().await;
        recent.retain(|_, e| {
            let last = e
                .series
                .as_ref()
                .map(|s| s.last_observed_time.0)
                .or(e.event_time.as_ref().map(|t| t.0));
            last.is_none_or(|t| clock::elapsed(t, now) < SERIES_WINDOW)
        });
        let namespace = regarding.namespace.as_deref().unwrap_or("default");
        let events = Api::<Event>::namespaced(self.client.clone(), namespace);
        let event = match recent.get(&key) {
            Some(head) => {
                let mut event = head.clone();
                event.series = Some(EventSeries {
                    count: head.series.as_ref().map_or(2, |s| s.count + 1),
                    last_observed_time: MicroTime(now),
                });
                let name = event.metadata.name.clone().unwrap_or_default();
                events
                    .patch(&name, &PatchParams::default(), &Patch::Merge(&event))
                    .await?;
                event
            }
            None => {
                let event = Event {
                    action: Some(action.into()),
                    reason: Some(reason.into()),
                    event_time: Some(MicroTime(now)),
                    regarding: Some(regarding.clone()),
                    note,
                    metadata: ObjectMeta {
                        namespace: Some(namespace.into()),
                        name: Some(format!(
                            "{}.{:x}",
                            regarding.name.as_deref().unwrap_or(&self.controller),
                            now.as_nanosecond()
                                + i128::from(self.created.fetch_add(1, Ordering::Relaxed))
                        )),
                        ..ObjectMeta::default()
                    },
                    reporting_controller: Some(self.controller.clone()),
                    reporting_instance: Some(
                        self.instance
                            .clone()
                            .unwrap_or_else(|| self.controller.clone()),
                    ),
                    type_: Some(type_.into()),
                    ..Event::default()
                };
                events.create(&PostParams::default(), &event).await?;
                event
            }
        };
        recent.insert(key, event);
        Ok(())
    }
}
