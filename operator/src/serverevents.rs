//! The Redfish event receiver (upstream's `serverevents`, started when `--event-url` is set): BMCs
//! push alerts to `POST /serverevents/alerts/<bmc>` and metric reports to
//! `POST /serverevents/metricsreport/<bmc>` (the destinations the BMC controller subscribes them
//! to). Alerts are counted in `redfish_event_alert_total`, readings exposed as
//! `redfish_monitor_reading` until they are ten minutes old — upstream's metric names and labels.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::routing::post;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric as _};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use serde::Deserialize;
use tokio::time::Instant;

/// Larger payloads are refused with 413 (as upstream: 1 MiB).
pub const MAX_BODY_BYTES: usize = 1 << 20;
/// Readings not refreshed for this long are no longer exposed (as upstream).
pub const READING_TTL: Duration = Duration::from_secs(600);

/// A Redfish `Event` payload; some vendors send `Alerts` instead of `Events`.
#[derive(Debug, Default, Deserialize)]
pub struct EventData {
    #[serde(rename = "Events", default)]
    pub events: Vec<Event>,
    #[serde(rename = "Alerts", default)]
    pub alerts: Vec<Event>,
}

impl EventData {
    fn records(&self) -> &[Event] {
        if self.events.is_empty() {
            &self.alerts
        } else {
            &self.events
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Event {
    pub event_id: String,
    pub message_id: String,
    /// Deprecated since Redfish 1.5; `MessageSeverity` wins when both are present.
    pub severity: String,
    pub message_severity: String,
    pub origin_of_condition: Option<OriginOfCondition>,
}

/// A link (`{"@odata.id": …}`) per the standard, or a plain string as some iDRACs send it.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum OriginOfCondition {
    Link {
        #[serde(rename = "@odata.id")]
        odata_id: String,
    },
    Plain(String),
}

impl Event {
    /// The last path segment of the origin (`…/Sensors/Fan1` → `Fan1`), else `system`.
    fn component(&self) -> String {
        let uri = match &self.origin_of_condition {
            Some(OriginOfCondition::Link { odata_id }) => odata_id.as_str(),
            Some(OriginOfCondition::Plain(uri)) => uri.as_str(),
            None => "",
        };
        uri.trim_end_matches('/')
            .rsplit('/')
            .next()
            .filter(|s| !s.is_empty())
            .unwrap_or("system")
            .to_owned()
    }
}

/// A Redfish `MetricReport` payload.
#[derive(Debug, Default, Deserialize)]
pub struct MetricReport {
    #[serde(rename = "MetricValues", default)]
    pub metric_values: Vec<MetricValue>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct MetricValue {
    #[serde(rename = "MetricId")]
    pub metric_id: String,
    pub metric_property: String,
    pub metric_value: String,
    pub units: String,
    pub metric_value_kind: String,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct AlertKey {
    hostname: String,
    severity: String,
    message_id: String,
    component: String,
}

#[derive(Clone, Debug)]
struct Reading {
    value: f64,
    kind: String,
    unit: String,
    received: Instant,
}

#[derive(Debug, Default)]
struct Counts {
    alerts: BTreeMap<AlertKey, u64>,
    /// Keyed by (hostname, metric id, metric property): BMCs reporting the same sensor id do not
    /// overwrite each other (upstream keys by id and property only).
    readings: HashMap<(String, String, String), Reading>,
}

/// What the receiver has seen; registered as a Prometheus collector.
#[derive(Debug, Default)]
pub struct EventCollector(Mutex<Counts>);

impl EventCollector {
    /// Counts the alerts of one payload; returns how many there were.
    pub fn record_events(&self, hostname: &str, data: &EventData) -> usize {
        let mut counts = self.lock();
        for event in data.records() {
            let severity = if event.message_severity.is_empty() {
                &event.severity
            } else {
                &event.message_severity
            };
            let message_id = if event.message_id.is_empty() {
                &event.event_id
            } else {
                &event.message_id
            };
            let key = AlertKey {
                hostname: hostname.to_owned(),
                severity: severity.clone(),
                message_id: message_id.clone(),
                component: event.component(),
            };
            *counts.alerts.entry(key).or_default() += 1;
        }
        data.records().len()
    }

    /// Stores the readings of one report (values that are not numbers are skipped, as upstream);
    /// returns how many were stored.
    pub fn record_report(&self, hostname: &str, report: &MetricReport) -> usize {
        let now = Instant::now();
        let mut counts = self.lock();
        let mut stored = 0;
        for metric in &report.metric_values {
            let Ok(value) = metric.metric_value.trim().parse::<f64>() else {
                continue;
            };
            let kind = match metric.metric_value_kind.as_str() {
                "" if metric.metric_id.to_lowercase().contains("temp") => "Temperature",
                "" => "Gauge",
                kind => kind,
            };
            let unit = if metric.units.is_empty() {
                "seconds"
            } else {
                &metric.units
            };
            let key = (
                hostname.to_owned(),
                metric.metric_id.clone(),
                metric.metric_property.clone(),
            );
            let reading = Reading {
                value,
                kind: kind.to_owned(),
                unit: unit.to_owned(),
                received: now,
            };
            counts.readings.insert(key, reading);
            stored += 1;
        }
        counts
            .readings
            .retain(|_, r| now.duration_since(r.received) <= READING_TTL);
        stored
    }

    /// Alerts counted for one BMC, all severities and components.
    pub fn alerts_for(&self, hostname: &str) -> u64 {
        let counts = self.lock();
        counts
            .alerts
            .iter()
            .filter(|(k, _)| k.hostname == hostname)
            .map(|(_, n)| n)
            .sum()
    }

    fn lock(&self) -> MutexGuard<'_, Counts> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Collector for EventCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let counts = self.lock();
        let mut alerts = encoder.encode_descriptor(
            "redfish_event_alert",
            "Total count of Redfish alerts/events received",
            None,
            MetricType::Counter,
        )?;
        for (key, count) in &counts.alerts {
            let labels = vec![
                ("hostname", key.hostname.as_str()),
                ("severity", key.severity.as_str()),
                ("message_id", key.message_id.as_str()),
                ("component", key.component.as_str()),
            ];
            ConstCounter::new(*count).encode(alerts.encode_family(&labels)?)?;
        }
        let mut readings = encoder.encode_descriptor(
            "redfish_monitor_reading",
            "Latest value pushed via Redfish MetricReport event",
            None,
            MetricType::Gauge,
        )?;
        let now = Instant::now();
        for ((hostname, metric_id, origin), reading) in &counts.readings {
            if now.duration_since(reading.received) > READING_TTL {
                continue;
            }
            let labels = vec![
                ("hostname", hostname.as_str()),
                ("metric_id", metric_id.as_str()),
                ("type", reading.kind.as_str()),
                ("unit", reading.unit.as_str()),
                ("origin_context", origin.as_str()),
            ];
            ConstGauge::new(reading.value).encode(readings.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

/// The receiver's routes. Anything but POST is 405; a body that is not the expected JSON is 400
/// with the parse error; more than [`MAX_BODY_BYTES`] is 413.
pub fn router(collector: Arc<EventCollector>) -> Router {
    Router::new()
        .route("/serverevents/alerts/{bmc}", post(receive::<EventData>))
        .route(
            "/serverevents/metricsreport/{bmc}",
            post(receive::<MetricReport>),
        )
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(collector)
}

/// A payload a BMC pushes, named in logs and in the 400 answer.
trait Pushed: serde::de::DeserializeOwned {
    const WHAT: &'static str;
    /// What a payload recording nothing lacks (logged, not refused).
    const LACKING: &'static str;
    /// Records the payload; how many readings or events it held.
    fn record(&self, collector: &EventCollector, bmc: &str) -> usize;
}

impl Pushed for EventData {
    const WHAT: &'static str = "event payload";
    const LACKING: &'static str = "Events or Alerts";
    fn record(&self, collector: &EventCollector, bmc: &str) -> usize {
        collector.record_events(bmc, self)
    }
}

impl Pushed for MetricReport {
    const WHAT: &'static str = "metric report";
    const LACKING: &'static str = "numeric MetricValues";
    fn record(&self, collector: &EventCollector, bmc: &str) -> usize {
        collector.record_report(bmc, self)
    }
}

async fn receive<T: Pushed>(
    State(collector): State<Arc<EventCollector>>,
    Path(bmc): Path<String>,
    body: Bytes,
) -> (StatusCode, String) {
    let what = T::WHAT;
    match serde_json::from_slice::<T>(&body) {
        Ok(payload) => {
            if payload.record(&collector, &bmc) == 0 {
                tracing::info!(%bmc, "{what} without {}", T::LACKING);
            }
            (StatusCode::OK, String::new())
        }
        Err(error) => {
            tracing::warn!(%bmc, %error, "undecodable {what}");
            (StatusCode::BAD_REQUEST, format!("invalid {what}: {error}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt as _;

    async fn post(router: &Router, path: &str, body: &str) -> StatusCode {
        let request = http::Request::post(path)
            .header("content-type", "application/json")
            .body(axum::body::Body::from(body.to_owned()))
            .unwrap();
        router.clone().oneshot(request).await.unwrap().status()
    }

    #[tokio::test]
    async fn alerts_and_readings_become_upstream_metrics() {
        let collector = Arc::new(EventCollector::default());
        let router = router(collector.clone());
        let alert = r#"{"Events": [
            {"EventId": "1", "MessageId": "Fan.1.Failed", "MessageSeverity": "Critical",
             "OriginOfCondition": {"@odata.id": "/redfish/v1/Chassis/1/Sensors/Fan1"}},
            {"EventId": "PSU0001", "Severity": "Warning", "OriginOfCondition": "/redfish/v1/Chassis/1/Power/"}
        ]}"#;
        assert_eq!(
            post(&router, "/serverevents/alerts/bmc-a", alert).await,
            StatusCode::OK
        );
        let vendor =
            r#"{"Alerts": [{"MessageId": "Fan.1.Failed", "MessageSeverity": "Critical"}]}"#;
        assert_eq!(
            post(&router, "/serverevents/alerts/bmc-a", vendor).await,
            StatusCode::OK
        );
        let report = r#"{"MetricValues": [
            {"MetricId": "CPU1Temp", "MetricProperty": "/redfish/v1/Chassis/1/Sensors/CPU1Temp", "MetricValue": "41.5"},
            {"MetricId": "Fan1", "MetricValue": "n/a"}
        ]}"#;
        assert_eq!(
            post(&router, "/serverevents/metricsreport/bmc-a", report).await,
            StatusCode::OK
        );
        assert_eq!(collector.alerts_for("bmc-a"), 3);
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register_collector(Box::new(collector));
        let text = encoded(&registry);
        assert!(text.contains(r#"redfish_event_alert_total{hostname="bmc-a",severity="Critical",message_id="Fan.1.Failed",component="Fan1"} 1"#), "{text}");
        assert!(text.contains(r#"component="system"} 1"#), "{text}");
        assert!(
            text.contains(r#"severity="Warning",message_id="PSU0001",component="Power"} 1"#),
            "{text}"
        );
        assert!(text.contains(r#"redfish_monitor_reading{hostname="bmc-a",metric_id="CPU1Temp",type="Temperature",unit="seconds",origin_context="/redfish/v1/Chassis/1/Sensors/CPU1Temp"} 41.5"#), "{text}");
        assert!(!text.contains("metric_id=\"Fan1\""), "{text}");
    }

    fn encoded(registry: &prometheus_client::registry::Registry) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, registry).unwrap();
        text
    }

    #[test]
    fn readings_expire_after_ten_minutes() {
        let collector = Arc::new(EventCollector::default());
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register_collector(Box::new(collector.clone()));
        let report: MetricReport = serde_json::from_str(
            r#"{"MetricValues": [{"MetricId": "Inlet", "MetricValue": "20"}]}"#,
        )
        .unwrap();
        collector.record_report("bmc-a", &report);
        assert!(encoded(&registry).contains("metric_id=\"Inlet\""));
        // Age the reading instead of waiting ten minutes.
        for reading in collector.lock().readings.values_mut() {
            reading.received = Instant::now()
                .checked_sub(READING_TTL + Duration::from_secs(1))
                .unwrap();
        }
        assert!(!encoded(&registry).contains("metric_id=\"Inlet\""));
    }

    #[tokio::test]
    async fn bad_requests_get_clear_statuses() {
        let router = router(Arc::default());
        assert_eq!(
            post(&router, "/serverevents/alerts/bmc-a", "not json").await,
            StatusCode::BAD_REQUEST
        );
        let huge = format!(
            r#"{{"Events": [], "Pad": "{}"}}"#,
            "x".repeat(MAX_BODY_BYTES)
        );
        assert_eq!(
            post(&router, "/serverevents/alerts/bmc-a", &huge).await,
            StatusCode::PAYLOAD_TOO_LARGE
        );
        let get = http::Request::get("/serverevents/alerts/bmc-a")
            .body(axum::body::Body::empty())
            .unwrap();
        assert_eq!(
            router.clone().oneshot(get).await.unwrap().status(),
            StatusCode::METHOD_NOT_ALLOWED
        );
    }
}
