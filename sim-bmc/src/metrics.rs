//! Prometheus metrics of the fleet (served by the control API at `/metrics`).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::machine::MachineEventKind;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub method: &'static str,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EventLabels {
    pub kind: &'static str,
}

/// Counters shared by every BMC of a fleet (labels stay low-cardinality: no per-BMC labels).
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    request_seconds: Histogram,
    machine_events: Family<EventLabels, Counter>,
    pub bmcs: Gauge,
    pub systems: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("simbmc");
        let requests = Family::<RequestLabels, Counter>::default();
        let request_seconds = Histogram::new(exponential_buckets(0.0001, 4.0, 10));
        let machine_events = Family::<EventLabels, Counter>::default();
        let bmcs = Gauge::default();
        let systems = Gauge::default();
        registry.register(
            "redfish_requests",
            "Redfish requests answered",
            requests.clone(),
        );
        registry.register(
            "redfish_request_seconds",
            "Redfish request handling time",
            request_seconds.clone(),
        );
        registry.register(
            "machine_events",
            "Simulated machine events by kind",
            machine_events.clone(),
        );
        registry.register("bmcs", "Simulated BMCs in the fleet", bmcs.clone());
        registry.register("systems", "Simulated systems in the fleet", systems.clone());
        Self {
            registry,
            requests,
            request_seconds,
            machine_events,
            bmcs,
            systems,
        }
    }

    pub fn request(&self, method: &http::Method, status: u16, seconds: f64) {
        let method = match *method {
            http::Method::GET => "GET",
            http::Method::HEAD => "HEAD",
            http::Method::POST => "POST",
            http::Method::PATCH => "PATCH",
            http::Method::DELETE => "DELETE",
            http::Method::PUT => "PUT",
            _ => "OTHER",
        };
        self.requests
            .get_or_create(&RequestLabels { method, status })
            .inc();
        self.request_seconds.observe(seconds);
    }

    pub fn machine_event(&self, kind: &MachineEventKind) {
        let kind = match kind {
            MachineEventKind::ResetRequested { .. } => "reset_requested",
            MachineEventKind::PowerStateChanged { .. } => "power_state_changed",
            MachineEventKind::BootOverrideChanged { .. } => "boot_override_changed",
            MachineEventKind::BootOrderChanged { .. } => "boot_order_changed",
            MachineEventKind::BootAttempt { .. } => "boot_attempt",
            MachineEventKind::BootSucceeded { .. } => "boot_succeeded",
            MachineEventKind::BootFailed { .. } => "boot_failed",
            MachineEventKind::NoBootDevice => "no_boot_device",
            MachineEventKind::OsStopped { .. } => "os_stopped",
            MachineEventKind::GracefulShutdownIgnored => "graceful_shutdown_ignored",
            MachineEventKind::NmiReceived => "nmi_received",
            MachineEventKind::BiosSettingsApplied { .. } => "bios_settings_applied",
            MachineEventKind::IndicatorChanged { .. } => "indicator_changed",
            MachineEventKind::Console { .. } => "console",
        };
        self.machine_events
            .get_or_create(&EventLabels { kind })
            .inc();
    }

    /// Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
