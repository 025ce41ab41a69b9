//! Control and observation API on its own loopback port: BMCs, machines and their event logs, faults,
//! and Prometheus `/metrics`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use super::BmcInfo;
use crate::Error;
use crate::bmc::{Bmc, SystemEntry};
use crate::fault::FaultSpec;
use crate::metrics::Metrics;

#[derive(Clone)]
pub struct ControlState {
    pub bmcs: Vec<Arc<Bmc>>,
    pub infos: Arc<Vec<BmcInfo>>,
    pub metrics: Arc<Metrics>,
}

impl ControlState {
    fn bmc(&self, name: &str) -> Option<&Arc<Bmc>> {
        self.bmcs.iter().find(|b| b.identity.name == name)
    }

    fn system(&self, uuid: &str) -> Option<&SystemEntry> {
        self.bmcs
            .iter()
            .flat_map(|b| b.systems.iter())
            .find(|sys| sys.uuid == uuid)
    }
}

fn not_found(what: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({"error": format!("{what} not found")})),
    )
        .into_response()
}

pub fn router(state: ControlState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/metrics", get(metrics))
        .route(
            "/bmcs",
            get(|State(s): State<ControlState>| async move { Json(s.infos.as_ref().clone()) }),
        )
        .route(
            "/bmcs/{name}/faults",
            get(get_faults)
                .put(put_faults)
                .post(add_fault)
                .delete(clear_faults),
        )
        .route("/machines", get(machines))
        .route("/machines/{uuid}/events", get(events))
        .route("/machines/{uuid}/console", get(console))
        .with_state(state)
}

async fn metrics(State(s): State<ControlState>) -> Response {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.encode(),
    )
        .into_response()
}

async fn machines(State(s): State<ControlState>) -> Json<serde_json::Value> {
    let list: Vec<_> = s
        .bmcs
        .iter()
        .flat_map(|b| {
            b.systems.iter().map(move |sys| {
                json!({
                    "bmc": b.identity.name,
                    "systemId": sys.id,
                    "uuid": sys.uuid,
                    "macs": sys.macs,
                    "powerState": sys.machine.power_state(),
                    "runningOs": sys.machine.running_os(),
                    "installedOs": sys.machine.installed_os(),
                })
            })
        })
        .collect();
    Json(json!(list))
}

async fn events(State(s): State<ControlState>, Path(uuid): Path<String>) -> Response {
    match s.system(&uuid) {
        Some(sys) => Json(sys.machine.events()).into_response(),
        None => not_found("machine"),
    }
}

/// A real machine's captured serial console as text (404 for simulated machines, which have none).
async fn console(State(s): State<ControlState>, Path(uuid): Path<String>) -> Response {
    match s.system(&uuid).map(|sys| sys.machine.console()) {
        Some(Some(lines)) => (
            [(
                axum::http::header::CONTENT_TYPE,
                "text/plain; charset=utf-8",
            )],
            lines.join("\n"),
        )
            .into_response(),
        Some(None) => not_found("console (the machine's driver keeps none)"),
        None => not_found("machine"),
    }
}

async fn get_faults(State(s): State<ControlState>, Path(name): Path<String>) -> Response {
    match s.bmc(&name) {
        Some(b) => Json(b.faults.list()).into_response(),
        None => not_found("bmc"),
    }
}

/// A 400 with the reason, as every control API error reads: `{"error": "..."}`.
fn bad_request(message: String) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({ "error": message }))).into_response()
}

/// Parses a JSON body; serde's message names the field and position of what is wrong.
fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, Response> {
    serde_json::from_slice(body).map_err(|e| bad_request(format!("invalid fault: {e}")))
}

/// The named BMC and the fault body for it, or the answer saying which is missing or wrong.
fn bmc_and_body<T: serde::de::DeserializeOwned>(
    s: &ControlState,
    name: &str,
    body: &[u8],
) -> Result<(Arc<Bmc>, T), Response> {
    let bmc = s.bmc(name).ok_or_else(|| not_found("bmc"))?;
    Ok((bmc.clone(), parse_body(body)?))
}

async fn put_faults(
    State(s): State<ControlState>,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let (b, faults): (_, Vec<FaultSpec>) = match bmc_and_body(&s, &name, &body) {
        Ok(found) => found,
        Err(resp) => return resp,
    };
    match b.faults.try_set(faults) {
        Ok(()) => Json(b.faults.list()).into_response(),
        Err(e) => bad_request(e.to_string()),
    }
}

async fn add_fault(
    State(s): State<ControlState>,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let (b, fault): (_, FaultSpec) = match bmc_and_body(&s, &name, &body) {
        Ok(found) => found,
        Err(resp) => return resp,
    };
    match b.faults.try_add(fault) {
        Ok(()) => (StatusCode::CREATED, Json(b.faults.list())).into_response(),
        Err(e) => bad_request(e.to_string()),
    }
}

async fn clear_faults(State(s): State<ControlState>, Path(name): Path<String>) -> Response {
    match s.bmc(&name) {
        Some(b) => {
            b.faults.clear();
            StatusCode::NO_CONTENT.into_response()
        }
        None => not_found("bmc"),
    }
}

/// Binds the control API and serves it until shutdown.
pub async fn spawn(
    state: ControlState,
    addr: SocketAddr,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), Error> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Bind { addr, source })?;
    let bound = listener.local_addr()?;
    let app = router(state);
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = shutdown.changed().await;
            })
            .await;
    });
    Ok((bound, task))
}
