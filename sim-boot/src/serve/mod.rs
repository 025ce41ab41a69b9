//! The boot server: per-machine iPXE scripts and ignition, HTTP-boot lookups, and the artifacts.
//! A machine is served only the record of the SBC its Server currently references.

pub mod script;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::{HeaderMap, Method, StatusCode, header};
use kube::Api;
use kube::runtime::reflector::{ObjectRef, Store};
use metal_api::{Server, ServerBootConfiguration};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::Semaphore;

use crate::bytes_response;
use crate::ignition;
use crate::misbehaviour::Misbehaviour;
use crate::records::{BootRecord, BootRecords, SbcKey};

/// Request counters, for tests and the benchmark.
#[derive(Debug, Default)]
pub struct ServeStats {
    pub scripts: AtomicU64,
    pub ignitions: AtomicU64,
    pub artifacts: AtomicU64,
    pub artifact_bytes: AtomicU64,
    pub not_found: AtomicU64,
}

/// How long a refusal waits for the API server to confirm it.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(5);

/// How many refusals are confirmed with the API server at once; more are answered from the caches, so
/// a flood of requests for unprepared machines cannot turn into a flood of API reads.
const CONCURRENT_CONFIRMATIONS: usize = 8;

#[derive(Clone)]
pub struct BootServer {
    records: BootRecords,
    servers: Store<Server>,
    sbcs: Store<ServerBootConfiguration>,
    /// Confirms a refusal from the caches before it is given (see [`BootServer::lookup`]).
    client: Option<kube::Client>,
    confirmations: Arc<Semaphore>,
    base_url: Arc<str>,
    stats: Arc<ServeStats>,
}

fn not_found(stats: &ServeStats, message: String) -> Response {
    stats.not_found.fetch_add(1, Ordering::Relaxed);
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        message + "\n",
    )
        .into_response()
}

impl BootServer {
    /// Serves `records` to the machines of `servers`; with a `client`, a refusal the caches give is
    /// checked against the API server first.
    pub fn new(
        records: BootRecords,
        servers: Store<Server>,
        sbcs: Store<ServerBootConfiguration>,
        client: Option<kube::Client>,
        base_url: &str,
    ) -> Self {
        let base_url = base_url.trim_end_matches('/').into();
        Self {
            records,
            servers,
            sbcs,
            client,
            confirmations: Arc::new(Semaphore::new(CONCURRENT_CONFIRMATIONS)),
            base_url,
            stats: Arc::default(),
        }
    }

    pub fn records(&self) -> &BootRecords {
        &self.records
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    pub fn stats(&self) -> Arc<ServeStats> {
        self.stats.clone()
    }

    pub fn router(&self) -> Router {
        Router::new()
            .route("/ipxe", get(chain))
            .route("/ipxe/", get(chain))
            .route("/ipxe/{uuid}", get(ipxe))
            .route("/ignition/{uuid}", get(ignition_data))
            .route("/httpboot", get(httpboot_lookup))
            .route("/httpboot/{*path}", get(uki))
            .route("/image", get(image))
            .route("/healthz", get(|| async { "ok\n" }))
            .with_state(self.clone())
    }

    /// The record for the SBC that the Server with `uuid` currently references, or why there is none.
    /// The caches answer first. Their refusal is checked against the API server before it is given:
    /// the controller publishes a record from a watch of its own, and these can lag behind it, so a
    /// Server's new `bootConfigurationRef` not seen here yet would name its previous, deleted SBC.
    pub async fn lookup(&self, uuid: &str) -> Result<Arc<BootRecord>, String> {
        if self.records.misbehaviour() == Misbehaviour::ServeNewest {
            // The record published last for this machine wins, whichever SBC the Server references.
            return self
                .records
                .for_uuid(uuid)
                .pop()
                .ok_or_else(|| format!("no record for system UUID {uuid}"));
        }
        // The Servers named by records prepared for this UUID are found without a scan; only a
        // machine no record knows needs one (for an exact answer).
        let server = self
            .records
            .for_uuid(uuid)
            .iter()
            .filter_map(|record| self.servers.get(&ObjectRef::new(&record.server)))
            .find(|s| s.spec.system_uuid.eq_ignore_ascii_case(uuid))
            .or_else(|| {
                self.servers
                    .find(|s| s.spec.system_uuid.eq_ignore_ascii_case(uuid))
            })
            .ok_or_else(|| format!("no Server has system UUID {uuid}"))?;
        let cached = referenced(&server).and_then(|key| {
            let live = self
                .sbcs
                .get(&ObjectRef::new(&key.name).within(&key.namespace));
            self.checked(
                &key,
                live.as_ref().and_then(|s| s.metadata.uid.as_deref()),
                uuid,
            )
        });
        let refusal = match cached {
            Ok(record) => return Ok(record),
            Err(refusal) => refusal,
        };
        match self.confirmed(&server, uuid).await {
            Some(answer) => answer,
            None => Err(refusal),
        }
    }

    /// The lookup again from the API server's current Server and SBC; `None` without a client, when
    /// too many confirmations run, or when the API server does not answer in time.
    async fn confirmed(
        &self,
        server: &Server,
        uuid: &str,
    ) -> Option<Result<Arc<BootRecord>, String>> {
        let client = self.client.clone()?;
        let _permit = self.confirmations.try_acquire().ok()?;
        let name = server.metadata.name.as_deref()?;
        let servers = Api::<Server>::all(client.clone());
        let read = servers.get_opt(name);
        let Some(fresh) = tokio::time::timeout(CONFIRM_TIMEOUT, read)
            .await
            .ok()?
            .ok()?
        else {
            return Some(Err(format!("Server {name} no longer exists")));
        };
        if !fresh.spec.system_uuid.eq_ignore_ascii_case(uuid) {
            return Some(Err(format!("no Server has system UUID {uuid}")));
        }
        let key = match referenced(&fresh) {
            Ok(key) => key,
            Err(refusal) => return Some(Err(refusal)),
        };
        let sbcs = Api::<ServerBootConfiguration>::namespaced(client, &key.namespace);
        let read = sbcs.get_opt(&key.name);
        let sbc = tokio::time::timeout(CONFIRM_TIMEOUT, read)
            .await
            .ok()?
            .ok()?;
        Some(self.checked(
            &key,
            sbc.as_ref().and_then(|s| s.metadata.uid.as_deref()),
            uuid,
        ))
    }

    /// The record for `key` if the SBC still exists as the incarnation it was prepared for (`live_uid`)
    /// and it was prepared for this machine.
    fn checked(
        &self,
        key: &SbcKey,
        live_uid: Option<&str>,
        uuid: &str,
    ) -> Result<Arc<BootRecord>, String> {
        let record = self
            .records
            .get(key)
            .ok_or_else(|| format!("ServerBootConfiguration {key} is not prepared"))?;
        // A record outlives its SBC only until the next garbage collection; never serve it meanwhile.
        let keeps_deleted = self.records.misbehaviour() == Misbehaviour::ServeDeleted;
        if !keeps_deleted && live_uid != Some(record.uid.as_str()) {
            return Err(format!("ServerBootConfiguration {key} no longer exists"));
        }
        if !record.system_uuid.eq_ignore_ascii_case(uuid) {
            return Err(format!(
                "ServerBootConfiguration {key} was prepared for another machine"
            ));
        }
        Ok(record)
    }

    /// HTTP-boot lookup by MAC or IP against the Servers' NICs.
    async fn lookup_by_identity(&self, macs: &[String], ips: &[String]) -> Option<Arc<BootRecord>> {
        let server = self.servers.find(|s| {
            s.status.as_ref().is_some_and(|status| {
                status.network_interfaces.iter().any(|nic| {
                    macs.iter()
                        .any(|m| m.eq_ignore_ascii_case(&nic.mac_address))
                        || nic
                            .ips
                            .iter()
                            .chain(nic.ip.iter())
                            .any(|ip| ips.contains(ip))
                })
            })
        })?;
        self.lookup(&server.spec.system_uuid).await.ok()
    }
}

/// The SBC a Server references.
fn referenced(server: &Server) -> Result<SbcKey, String> {
    let reference = server.spec.boot_configuration_ref.as_ref().ok_or_else(|| {
        format!(
            "Server {} has no bootConfigurationRef",
            server.metadata.name.as_deref().unwrap_or_default()
        )
    })?;
    Ok(SbcKey::new(&reference.namespace, &reference.name))
}

/// `/ipxe` chain-loads the per-machine script; `/ipxe?uuid=…` (a DHCP answer carrying the UUID) is the
/// per-machine script itself.
async fn chain(State(server): State<BootServer>, Query(q): Query<IdentityQuery>) -> Response {
    match q.uuid {
        Some(uuid) => ipxe(State(server), Path(uuid)).await,
        None => script_response(script::chain_script(&server.base_url)),
    }
}

fn script_response(script: String) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        script,
    )
        .into_response()
}

async fn ipxe(State(server): State<BootServer>, Path(uuid): Path<String>) -> Response {
    let record = match server.lookup(&uuid).await {
        Ok(record) => record,
        Err(message) => return not_found(&server.stats, message),
    };
    match script::ipxe_script(&server.base_url, &record) {
        Ok(text) => {
            server.stats.scripts.fetch_add(1, Ordering::Relaxed);
            script_response(text)
        }
        Err(message) => not_found(&server.stats, message),
    }
}

async fn ignition_data(State(server): State<BootServer>, Path(uuid): Path<String>) -> Response {
    let record = match server.lookup(&uuid).await {
        Ok(record) => record,
        Err(message) => return not_found(&server.stats, message),
    };
    let Some(data) = &record.ignition else {
        return not_found(
            &server.stats,
            format!("ServerBootConfiguration {} has no ignition", record.sbc),
        );
    };
    server.stats.ignitions.fetch_add(1, Ordering::Relaxed);
    let digest = ignition::hash(data);
    bytes_response::serve(
        &Method::GET,
        &HeaderMap::new(),
        data,
        "application/vnd.coreos.ignition+json",
        &digest,
    )
}

#[derive(Deserialize)]
struct IdentityQuery {
    uuid: Option<String>,
    mac: Option<String>,
}

/// boot-operator's `/httpboot`: `{ClientIPs, UKIURL, SystemUUID}` for the caller, identified by system UUID,
/// MAC (`?mac=`) or `X-Forwarded-For`.
async fn httpboot_lookup(
    State(server): State<BootServer>,
    headers: HeaderMap,
    Query(q): Query<IdentityQuery>,
) -> Response {
    let ips: Vec<String> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|ip| ip.trim().to_string()))
        .filter(|ip| !ip.is_empty())
        .collect();
    let macs: Vec<String> = q
        .mac
        .iter()
        .flat_map(|m| m.split(',').map(str::to_string))
        .collect();
    let record = match &q.uuid {
        Some(uuid) => server.lookup(uuid).await,
        None => server
            .lookup_by_identity(&macs, &ips)
            .await
            .ok_or_else(|| "no Server matches the client identity".to_string()),
    };
    let record = match record {
        Ok(record) => record,
        Err(message) => return not_found(&server.stats, message),
    };
    let Some(uki) = &record.uki else {
        return not_found(
            &server.stats,
            format!("image {} has no UKI layer", record.image.canonical()),
        );
    };
    let body = json!({
        "ClientIPs": ips,
        "UKIURL": script::uki_url(&server.base_url, &record, uki),
        "SystemUUID": record.system_uuid,
    });
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn serve_artifact(
    server: &BootServer,
    method: &Method,
    headers: &HeaderMap,
    digest: &str,
    content_type: &str,
) -> Response {
    let Some(bytes) = server.records.artifact(digest) else {
        return not_found(&server.stats, format!("artifact {digest} is not served"));
    };
    server.stats.artifacts.fetch_add(1, Ordering::Relaxed);
    if method == Method::GET {
        server
            .stats
            .artifact_bytes
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
    }
    bytes_response::serve(method, headers, &bytes, content_type, digest)
}

async fn uki(
    State(server): State<BootServer>,
    method: Method,
    headers: HeaderMap,
    Path(path): Path<String>,
) -> Response {
    // `/httpboot/{uuid}/boot.efi`: a per-machine boot URI that serves the machine's UKI directly.
    if let Some(uuid) = path.strip_suffix("/boot.efi").filter(|u| !u.contains('/')) {
        let record = match server.lookup(uuid).await {
            Ok(record) => record,
            Err(message) => return not_found(&server.stats, message),
        };
        let Some(layer) = &record.uki else {
            return not_found(
                &server.stats,
                format!("image {} has no UKI layer", record.image.canonical()),
            );
        };
        return serve_artifact(&server, &method, &headers, &layer.digest, "application/efi");
    }
    let digest = path
        .rsplit('/')
        .next()
        .and_then(boot_image::digest::digest_of_uki_file);
    match digest {
        Some(digest) => serve_artifact(&server, &method, &headers, &digest, "application/efi"),
        None => not_found(
            &server.stats,
            format!("{path} is not an HTTP-boot artifact path"),
        ),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ImageQuery {
    layer_digest: Option<String>,
}

async fn image(
    State(server): State<BootServer>,
    method: Method,
    headers: HeaderMap,
    Query(q): Query<ImageQuery>,
) -> Response {
    match q.layer_digest {
        Some(digest) => serve_artifact(
            &server,
            &method,
            &headers,
            &digest,
            "application/octet-stream",
        ),
        None => (StatusCode::BAD_REQUEST, "layerDigest is required\n").into_response(),
    }
}
