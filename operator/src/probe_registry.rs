//! The probe registry, as upstream: an in-memory map of what probes reported, keyed by system UUID
//! (`POST /register`, `GET /systems/{uuid}`, `DELETE /delete/{uuid}`), plus `POST /bootstate` which
//! marks the Server's current ServerBootConfiguration `BootStateReceived`. Also the operator's client.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use bytes::Bytes;
use http_body_util::Full;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::reflector::Store;
use metal_api::probe_registry::{BootstatePayload, RegistrationPayload, ServerData};
use metal_api::{Server, ServerBootConfiguration};
use serde_json::json;
use tower::ServiceExt as _;

use crate::conditions::{self, NewCondition};
use crate::keys;
use crate::redfish::HttpService;
use clock::Clock;

/// Shared state of the registry server.
#[derive(Clone)]
pub struct Registry {
    systems: Arc<RwLock<HashMap<String, ServerData>>>,
    client: kube::Client,
    servers: Store<Server>,
    clock: Clock,
}

impl Registry {
    pub fn new(client: kube::Client, servers: Store<Server>, clock: Clock) -> Self {
        Self {
            systems: Arc::default(),
            client,
            servers,
            clock,
        }
    }

    /// The HTTP API; wrong methods get 405 from the method router.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/register", post(register))
            .route("/systems/{uuid}", get(system))
            .route("/delete/{uuid}", delete(remove))
            .route("/bootstate", post(bootstate))
            .with_state(self.clone())
    }

    /// Number of stored registrations.
    pub fn len(&self) -> usize {
        self.systems.read().expect("registry lock").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn bad_request(message: String) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({ "error": message }))).into_response()
}

async fn register(State(registry): State<Registry>, body: Bytes) -> Response {
    let payload: RegistrationPayload = match serde_json::from_slice(&body) {
        Ok(p) => p,
        Err(e) => return bad_request(format!("invalid registration: {e}")),
    };
    if payload.system_uuid.is_empty() {
        return bad_request("systemUUID is required".into());
    }
    tracing::debug!(uuid = %payload.system_uuid, "probe registered");
    registry
        .systems
        .write()
        .expect("registry lock")
        .insert(payload.system_uuid, payload.data);
    StatusCode::CREATED.into_response()
}

async fn system(State(registry): State<Registry>, Path(uuid): Path<String>) -> Response {
    match registry.systems.read().expect("registry lock").get(&uuid) {
        Some(data) => Json(data.clone()).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn remove(State(registry): State<Registry>, Path(uuid): Path<String>) -> Response {
    match registry
        .systems
        .write()
        .expect("registry lock")
        .remove(&uuid)
    {
        Some(_) => StatusCode::OK.into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn bootstate(State(registry): State<Registry>, body: Bytes) -> Response {
    let payload: BootstatePayload = match serde_json::from_slice(&body) {
        Ok(p) => p,
        Err(e) => return bad_request(format!("invalid boot state: {e}")),
    };
    if !payload.booted {
        return StatusCode::OK.into_response();
    }
    let matching = registry.servers.state_filter(|s| {
        s.spec
            .system_uuid
            .eq_ignore_ascii_case(&payload.system_uuid)
    });
    let [server] = matching.as_slice() else {
        let message = format!(
            "expected one Server with systemUUID {}, found {}",
            payload.system_uuid,
            matching.len()
        );
        return (StatusCode::NOT_FOUND, Json(json!({ "error": message }))).into_response();
    };
    let Some(reference) = server.spec.boot_configuration_ref.clone() else {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({ "error": "server has no boot configuration" })),
        )
            .into_response();
    };
    match mark_boot_state_received(&registry, &reference.namespace, &reference.name).await {
        Ok(()) => StatusCode::OK.into_response(),
        Err(kube::Error::Api(status)) if status.code == 404 => {
            StatusCode::NOT_FOUND.into_response()
        }
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({ "error": e.to_string() })),
        )
            .into_response(),
    }
}

async fn mark_boot_state_received(
    registry: &Registry,
    namespace: &str,
    name: &str,
) -> Result<(), kube::Error> {
    let api = Api::<ServerBootConfiguration>::namespaced(registry.client.clone(), namespace);
    let sbc = api.get(name).await?;
    let mut conds = sbc.status.clone().unwrap_or_default().conditions;
    let changed = conditions::set(
        &mut conds,
        NewCondition {
            type_: keys::conditions::BOOT_STATE_RECEIVED,
            status: true,
            reason: keys::conditions::REASON_BOOT_STATE_RECEIVED,
            message: "Server successfully posted boot state".into(),
            observed_generation: sbc.metadata.generation,
        },
        registry.clock.now(),
    );
    if changed {
        let patch = json!({
            "metadata": { "resourceVersion": sbc.metadata.resource_version },
            "status": { "conditions": conds },
        });
        api.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
    }
    Ok(())
}

/// The operator's client of the registry, over the shared transport.
#[derive(Clone)]
pub struct RegistryClient {
    http: HttpService,
    base: String,
    timeout: std::time::Duration,
}

impl RegistryClient {
    pub fn new(http: HttpService, base: &str, timeout: std::time::Duration) -> Self {
        Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
            timeout,
        }
    }

    async fn call(
        &self,
        method: http::Method,
        path: &str,
    ) -> Result<http::Response<Bytes>, String> {
        let request = http::Request::builder()
            .method(method)
            .uri(format!("{}{}", self.base, path))
            .body(Full::new(Bytes::new()))
            .map_err(|e| e.to_string())?;
        match tokio::time::timeout(self.timeout, self.http.clone().oneshot(request)).await {
            Err(_) => Err(format!("registry did not answer within {:?}", self.timeout)),
            Ok(Err(e)) => Err(format!("registry unreachable: {e}")),
            Ok(Ok(response)) => Ok(response),
        }
    }

    /// `GET /systems/{uuid}`: `None` when the probe has not registered yet.
    pub async fn system(&self, uuid: &str) -> Result<Option<ServerData>, String> {
        let response = self
            .call(http::Method::GET, &format!("/systems/{uuid}"))
            .await?;
        match response.status() {
            http::StatusCode::NOT_FOUND => Ok(None),
            s if s.is_success() => serde_json::from_slice(response.body())
                .map(Some)
                .map_err(|e| format!("registry data for {uuid} unreadable: {e}")),
            s => Err(format!("registry answered {s} for {uuid}")),
        }
    }

    /// `DELETE /delete/{uuid}`; 404 counts as success.
    pub async fn delete(&self, uuid: &str) -> Result<(), String> {
        let response = self
            .call(http::Method::DELETE, &format!("/delete/{uuid}"))
            .await?;
        match response.status() {
            s if s.is_success() || s == http::StatusCode::NOT_FOUND => Ok(()),
            s => Err(format!("registry answered {s} deleting {uuid}")),
        }
    }
}
