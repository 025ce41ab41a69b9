//! `/healthz`, `/readyz` and Prometheus `/metrics` over HTTP.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use kube::runtime::reflector::Store;
use metal_api::Server;

use crate::metrics::Metrics;

/// Shared state of the probe and metrics endpoints.
#[derive(Clone)]
pub struct Probes {
    pub ready: Arc<AtomicBool>,
    pub metrics: Arc<Metrics>,
    pub servers: Option<Store<Server>>,
}

/// `/healthz` answers while the process runs; `/readyz` once caches are synced (and, with leader
/// election, this instance leads); `/metrics` in Prometheus text format.
pub fn router(probes: Probes) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(probes)
}

async fn readyz(State(probes): State<Probes>) -> impl IntoResponse {
    if probes.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready")
    }
}

async fn metrics(State(probes): State<Probes>) -> impl IntoResponse {
    if let Some(servers) = &probes.servers {
        let state = servers.state();
        probes.metrics.observe_servers(state.iter().map(|s| &**s));
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        probes.metrics.encode(),
    )
}
