//! Prometheus metrics: controller-runtime-style reconcile metrics and upstream's `metal_server_*`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use metal_api::Server;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::serverevents::EventCollector;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ControllerLabels {
    pub controller: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub controller: String,
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub controller: String,
    pub error: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    pub state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PowerLabels {
    pub power_state: String,
}

pub struct Metrics {
    pub registry: Registry,
    reconcile_total: Family<ResultLabels, Counter>,
    reconcile_errors: Family<ErrorLabels, Counter>,
    reconcile_time: Family<ControllerLabels, Histogram>,
    active_workers: Family<ControllerLabels, Gauge>,
    server_reconciliation_total: Family<ResultLabels, Counter>,
    server_state: Family<StateLabels, Gauge>,
    server_power_state: Family<PowerLabels, Gauge>,
    server_condition_status: Family<Vec<(String, String)>, Gauge>,
    /// Power-on requests sent to BMCs (On/ForceOn and boot-type resets), for the benchmark.
    pub power_on_requests: AtomicU64,
    /// Power-ons withheld because the boot configuration left Ready between the gate and the BMC.
    pub power_on_withheld: AtomicU64,
    /// What the Redfish event receiver has seen (`redfish_event_alert_total`, `redfish_monitor_reading`).
    pub server_events: Arc<EventCollector>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let reconcile_total = Family::<ResultLabels, Counter>::default();
        let reconcile_errors = Family::<ErrorLabels, Counter>::default();
        let reconcile_time = Family::<ControllerLabels, Histogram>::new_with_constructor(|| {
            Histogram::new([
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
            ])
        });
        let active_workers = Family::<ControllerLabels, Gauge>::default();
        let server_reconciliation_total = Family::<ResultLabels, Counter>::default();
        let server_state = Family::<StateLabels, Gauge>::default();
        let server_power_state = Family::<PowerLabels, Gauge>::default();
        let server_condition_status = Family::<Vec<(String, String)>, Gauge>::default();
        registry.register(
            "controller_runtime_reconcile",
            "Total number of reconciliations per controller",
            reconcile_total.clone(),
        );
        registry.register(
            "controller_runtime_reconcile_errors",
            "Total number of reconciliation errors per controller and error kind",
            reconcile_errors.clone(),
        );
        registry.register(
            "controller_runtime_reconcile_time_seconds",
            "Length of time per reconciliation per controller",
            reconcile_time.clone(),
        );
        registry.register(
            "controller_runtime_active_workers",
            "Number of currently used workers per controller",
            active_workers.clone(),
        );
        registry.register(
            "metal_server_reconciliation",
            "Server reconciliations by result",
            server_reconciliation_total.clone(),
        );
        registry.register(
            "metal_server_state",
            "Number of Servers per state",
            server_state.clone(),
        );
        registry.register(
            "metal_server_power_state",
            "Number of Servers per power state",
            server_power_state.clone(),
        );
        registry.register(
            "metal_server_condition_status",
            "Number of Servers per condition type and status",
            server_condition_status.clone(),
        );
        let server_events = Arc::new(EventCollector::default());
        registry.register_collector(Box::new(server_events.clone()));
        Self {
            registry,
            reconcile_total,
            reconcile_errors,
            reconcile_time,
            active_workers,
            server_reconciliation_total,
            server_state,
            server_power_state,
            server_condition_status,
            power_on_requests: AtomicU64::new(0),
            power_on_withheld: AtomicU64::new(0),
            server_events,
        }
    }

    /// Starts timing one reconcile; the returned guard records duration and active workers.
    pub fn reconcile_started(&self, controller: &str) -> ReconcileTimer<'_> {
        let labels = ControllerLabels {
            controller: controller.to_owned(),
        };
        self.active_workers.get_or_create(&labels).inc();
        ReconcileTimer {
            metrics: self,
            labels,
            start: tokio::time::Instant::now(),
        }
    }

    /// Counts a finished reconcile. `result` is `success`, `requeue_after` or `error`.
    pub fn reconcile_finished(&self, controller: &str, result: &str, error: Option<&str>) {
        let labels = ResultLabels {
            controller: controller.to_owned(),
            result: result.to_owned(),
        };
        self.reconcile_total.get_or_create(&labels).inc();
        if let Some(error) = error {
            let labels = ErrorLabels {
                controller: controller.to_owned(),
                error: error.to_owned(),
            };
            self.reconcile_errors.get_or_create(&labels).inc();
        }
        if controller == "server" {
            let labels = ResultLabels {
                controller: controller.to_owned(),
                result: result.to_owned(),
            };
            self.server_reconciliation_total
                .get_or_create(&labels)
                .inc();
        }
    }

    /// Total reconciles of one controller (all results).
    pub fn reconcile_count(&self, controller: &str) -> u64 {
        ["success", "requeue_after", "error"]
            .iter()
            .map(|result| {
                let labels = ResultLabels {
                    controller: controller.to_owned(),
                    result: (*result).to_owned(),
                };
                self.reconcile_total
                    .get(&labels)
                    .map(|c| c.get())
                    .unwrap_or(0)
            })
            .sum()
    }

    /// Recomputes the `metal_server_*` gauges from the current Servers (called at scrape time).
    pub fn observe_servers<'a>(&self, servers: impl Iterator<Item = &'a Server>) {
        self.server_state.clear();
        self.server_power_state.clear();
        self.server_condition_status.clear();
        // An unset state is counted under the empty label.
        let label = |value: Option<&str>| value.unwrap_or_default().to_owned();
        for server in servers {
            let state = label(server.state().map(|s| s.as_str()));
            self.server_state
                .get_or_create(&StateLabels { state })
                .inc();
            let power_state = label(server.power_state().map(|s| s.as_str()));
            self.server_power_state
                .get_or_create(&PowerLabels { power_state })
                .inc();
            let conditions = server.status.as_ref().map(|s| s.conditions.as_slice());
            for c in conditions.unwrap_or_default() {
                let labels = vec![
                    ("type".to_owned(), c.type_.clone()),
                    ("status".to_owned(), c.status.clone()),
                ];
                self.server_condition_status.get_or_create(&labels).inc();
            }
        }
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }

    pub fn power_on_requests(&self) -> u64 {
        self.power_on_requests.load(Ordering::Relaxed)
    }

    pub fn power_on_withheld(&self) -> u64 {
        self.power_on_withheld.load(Ordering::Relaxed)
    }
}

pub struct ReconcileTimer<'a> {
    metrics: &'a Metrics,
    labels: ControllerLabels,
    start: tokio::time::Instant,
}

impl Drop for ReconcileTimer<'_> {
    fn drop(&mut self) {
        self.metrics
            .active_workers
            .get_or_create(&self.labels)
            .dec();
        let elapsed = self.start.elapsed().as_secs_f64();
        self.metrics
            .reconcile_time
            .get_or_create(&self.labels)
            .observe(elapsed);
    }
}
