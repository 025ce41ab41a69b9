//! A small Redfish client: only the calls upstream metal-operator makes, over an [`HttpService`].
//! The request on the wire is `wire.rs`, authentication `session.rs`, retries `retry.rs`, the ETag
//! cache `etag.rs`; each of them is below this file and none imports it.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, header};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::error::{RedfishError, Result};
use super::etag::Etags;
use super::retry::{self, Idempotency};
use super::session::{Auth, AuthMode, Credentials};
use super::transport::HttpService;
use super::types::*;
use super::wire::{Wire, header_value};

const SERVICE_ROOT: &str = "/redfish/v1/";

/// Timeouts and retry bounds. Retries apply to 5xx and transport failures only.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    pub auth: AuthMode,
    pub request_timeout: Duration,
    /// Total attempts per request, including the first (≥ 1).
    pub max_attempts: u32,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// Draws the retry jitter; seed it to replay a run.
    pub jitter: clock::Entropy,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            auth: AuthMode::Basic,
            request_timeout: Duration::from_secs(10),
            max_attempts: 3,
            backoff_base: Duration::from_millis(200),
            backoff_max: Duration::from_secs(2),
            jitter: clock::Entropy::os(),
        }
    }
}

/// A connection to one BMC. Cheap to clone; clones share the session and the ETag cache.
#[derive(Clone)]
pub struct RedfishClient {
    inner: Arc<Inner>,
}

struct Inner {
    wire: Wire,
    auth: Auth,
    retries: retry::Policy,
    etags: Etags,
}

impl RedfishClient {
    /// `endpoint` is `scheme://host:port` (a trailing slash or path is ignored).
    pub fn new(
        http: HttpService,
        endpoint: &str,
        credentials: Credentials,
        options: ClientOptions,
    ) -> Result<Self> {
        Ok(Self {
            inner: Arc::new(Inner {
                wire: Wire::new(http, endpoint, options.request_timeout)?,
                auth: Auth::new(options.auth, credentials),
                retries: retry::Policy {
                    attempts: options.max_attempts,
                    backoff_base: options.backoff_base,
                    backoff_max: options.backoff_max,
                    jitter: options.jitter,
                },
                etags: Etags::default(),
            }),
        })
    }

    pub fn endpoint(&self) -> &str {
        self.inner.wire.base()
    }

    /// Connectivity check as upstream: the service root without credentials, then an
    /// authenticated read (opening a session first in session mode).
    pub async fn connect(&self) -> Result<ServiceRoot> {
        let response = self
            .send_with_retries(
                Method::GET,
                SERVICE_ROOT,
                None,
                false,
                None,
                Idempotency::Idempotent,
            )
            .await?;
        let root: ServiceRoot = decode(SERVICE_ROOT, response.body())?;
        if self.inner.auth.mode() == AuthMode::Session {
            self.inner.auth.open_session(&self.inner.wire).await?;
        }
        let systems = root
            .systems
            .clone()
            .map(|s| s.odata_id)
            .unwrap_or_else(|| "/redfish/v1/Systems".into());
        self.get::<Collection>(&systems).await?;
        Ok(root)
    }

    /// Ends the session, if any. Basic auth has nothing to end.
    pub async fn logout(&self) -> Result<()> {
        self.inner.auth.logout(&self.inner.wire).await
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        let response = self
            .request(Method::GET, path, None, Idempotency::Idempotent)
            .await?;
        self.inner.etags.remember(path, &response);
        decode(path, response.body())
    }

    async fn members<T: DeserializeOwned>(&self, collection: &str) -> Result<Vec<T>> {
        let collection: Collection = self.get(collection).await?;
        let mut out = Vec::with_capacity(collection.members.len());
        for member in collection.members {
            out.push(self.get(&member.odata_id).await?);
        }
        Ok(out)
    }

    /// All Systems of this BMC.
    pub async fn systems(&self) -> Result<Vec<ComputerSystem>> {
        self.members("/redfish/v1/Systems").await
    }

    pub async fn system(&self, uri: &str) -> Result<ComputerSystem> {
        self.get(uri).await
    }

    pub async fn processors(&self, system: &ComputerSystem) -> Result<Vec<Processor>> {
        match &system.processors {
            Some(link) => self.members(&link.odata_id).await,
            None => Ok(Vec::new()),
        }
    }

    /// Storage controllers with drives and volumes, falling back to `SimpleStorage` as upstream.
    pub async fn storages(&self, system: &ComputerSystem) -> Result<Vec<StorageInventory>> {
        let mut out = Vec::new();
        if let Some(link) = &system.storage {
            for storage in self.members::<Storage>(&link.odata_id).await? {
                let mut drives = Vec::new();
                for drive in &storage.drives {
                    drives.push(self.get::<Drive>(&drive.odata_id).await?);
                }
                let volumes = match &storage.volumes {
                    Some(v) => self.members::<Volume>(&v.odata_id).await?,
                    None => Vec::new(),
                };
                out.push(StorageInventory {
                    name: storage.name,
                    status: storage.status,
                    drives,
                    volumes,
                });
            }
        }
        if out.is_empty()
            && let Some(link) = &system.simple_storage
        {
            for simple in self.members::<Value>(&link.odata_id).await? {
                let drives = simple["Devices"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|d| Drive {
                        name: d["Name"].as_str().map(Into::into),
                        capacity_bytes: d["CapacityBytes"].as_i64(),
                        manufacturer: d["Manufacturer"].as_str().map(Into::into),
                        model: d["Model"].as_str().map(Into::into),
                        status: serde_json::from_value(d["Status"].clone()).ok(),
                        ..Drive::default()
                    })
                    .collect();
                out.push(StorageInventory {
                    name: simple["Name"].as_str().map(Into::into),
                    status: serde_json::from_value(simple["Status"].clone()).ok(),
                    drives,
                    volumes: Vec::new(),
                });
            }
        }
        Ok(out)
    }

    pub async fn managers(&self) -> Result<Vec<Manager>> {
        self.members("/redfish/v1/Managers").await
    }

    /// The Manager with this UUID (case-insensitive), or the first one when `uuid` is empty.
    pub async fn manager(&self, uuid: Option<&str>) -> Result<Manager> {
        let managers = self.managers().await?;
        let wanted = uuid.filter(|u| !u.is_empty());
        managers
            .into_iter()
            .find(|m| match wanted {
                None => true,
                Some(w) => m.uuid.as_deref().is_some_and(|u| u.eq_ignore_ascii_case(w)),
            })
            .ok_or_else(|| RedfishError::Unsupported(format!("manager with UUID {wanted:?}")))
    }

    /// The Manager serving the host's graphical console, the smallest `@odata.id` when several do,
    /// or `None` (upstream's `DiscoverManager`, which names the BMC an Endpoint turns into).
    pub async fn console_manager(&self) -> Result<Option<Manager>> {
        let mut candidates: Vec<Manager> = self
            .managers()
            .await?
            .into_iter()
            .filter(Manager::has_graphical_console)
            .collect();
        candidates.sort_by(|a, b| a.odata_id.cmp(&b.odata_id));
        Ok(candidates.into_iter().next())
    }

    /// `ComputerSystem.Reset`, refused locally when the BMC lists allowable values without this one.
    pub async fn reset_system(&self, system: &ComputerSystem, reset: ResetType) -> Result<()> {
        check_allowed(system.allowed_reset_types(), reset)?;
        let target = system.reset_target();
        let etag = system
            .odata_etag
            .clone()
            .or_else(|| self.inner.etags.get(&system.odata_id));
        self.send_json(
            Method::POST,
            &target,
            json!({ "ResetType": reset.as_str() }),
            etag,
            Idempotency::Action,
        )
        .await
        .map(drop)
    }

    /// `Manager.Reset`, as gofish sends it: refused locally when the Manager advertises no reset
    /// action or lists allowable values without this one; without a `ResetType` parameter when it
    /// lists neither allowable values nor an `@Redfish.ActionInfo` (HPE iLO takes none).
    pub async fn reset_manager(&self, manager: &Manager, reset: ResetType) -> Result<()> {
        let Some(action) = manager.actions.as_ref().and_then(|a| a.reset.as_ref()) else {
            return Err(RedfishError::Unsupported(format!(
                "Manager.Reset (not advertised by {})",
                manager.odata_id
            )));
        };
        check_allowed(manager.allowed_reset_types(), reset)?;
        let body = if action.allowable_values.is_none() && action.action_info.is_none() {
            json!({})
        } else {
            json!({ "ResetType": reset.as_str() })
        };
        self.send_json(
            Method::POST,
            &manager.reset_target(),
            body,
            None,
            Idempotency::Action,
        )
        .await
        .map(drop)
    }

    /// PXE-once boot override; `BootSourceOverrideMode: UEFI` only when the BMC reports a mode that is
    /// not UEFI already (Supermicro: whenever a mode is reported), as upstream.
    pub async fn set_pxe_once(&self, system: &ComputerSystem) -> Result<()> {
        let mut boot =
            json!({ "BootSourceOverrideEnabled": "Once", "BootSourceOverrideTarget": "Pxe" });
        let mode = system
            .boot
            .as_ref()
            .and_then(|b| b.boot_source_override_mode.as_deref());
        let supermicro = system
            .manufacturer
            .as_deref()
            .is_some_and(|m| m.eq_ignore_ascii_case("Supermicro"));
        if let Some(mode) = mode
            && (supermicro || mode != "UEFI")
        {
            boot["BootSourceOverrideMode"] = json!("UEFI");
        }
        self.patch_boot(system, boot).await
    }

    pub async fn set_boot_order(&self, system: &ComputerSystem, order: &[String]) -> Result<()> {
        let boot = json!({
            "BootSourceOverrideEnabled": "Continuous",
            "BootSourceOverrideTarget": "None",
            "BootOrder": order,
        });
        self.patch_boot(system, boot).await
    }

    /// PATCHes `Boot` on the System; when the System refuses and names a `@Redfish.Settings`
    /// object (Lenovo SE450, Nokia, Dell iDRAC10 keep Boot read-only there), PATCHes that object
    /// instead with `If-Match` of its current ETag, as gofish's `SetBoot` does.
    async fn patch_boot(&self, system: &ComputerSystem, boot: Value) -> Result<()> {
        let body = json!({ "Boot": boot });
        let direct = match self.patch_system(system, body.clone()).await {
            Err(e) if refused(&e) => e,
            other => return other,
        };
        let Some(target) = system.settings_target() else {
            return Err(direct);
        };
        tracing::debug!(system = %system.odata_id, target, error = %direct, "Boot PATCH refused; using the @Redfish.Settings object");
        let settings: Value = self.get(target).await?;
        let etag = self
            .inner
            .etags
            .get(target)
            .or_else(|| settings["@odata.etag"].as_str().map(str::to_owned));
        self.send_json(Method::PATCH, target, body, etag, Idempotency::Idempotent)
            .await
            .map(drop)
    }

    pub async fn set_indicator_led(&self, system: &ComputerSystem, led: &str) -> Result<()> {
        if !LED_VALUES.contains(&led) {
            return Err(RedfishError::Unsupported(format!("IndicatorLED {led}")));
        }
        self.patch_system(system, json!({ "IndicatorLED": led }))
            .await
    }

    /// PATCH with `If-Match` when an ETag is known; a 412 refreshes the ETag and tries once more.
    async fn patch_system(&self, system: &ComputerSystem, body: Value) -> Result<()> {
        let path = system.odata_id.clone();
        let etag = system
            .odata_etag
            .clone()
            .or_else(|| self.inner.etags.get(&path));
        let patch = |etag| {
            self.send_json(
                Method::PATCH,
                &path,
                body.clone(),
                etag,
                Idempotency::Idempotent,
            )
        };
        match patch(etag).await {
            Err(RedfishError::Rejected { status: 412, .. }) => {
                let fresh: ComputerSystem = self.get(&path).await?;
                let etag = fresh.odata_etag.or_else(|| self.inner.etags.get(&path));
                let retry = patch(etag).await;
                match retry {
                    // Some BMCs mint a new ETag on every read, so no If-Match can ever match; the
                    // operator is the only writer of these properties, so a last try goes without.
                    Err(RedfishError::Rejected { status: 412, .. }) => {
                        tracing::debug!(path, "ETag keeps changing; patching without If-Match");
                        patch(None).await.map(drop)
                    }
                    other => other.map(drop),
                }
            }
            other => other.map(drop),
        }
    }

    /// Creates an event subscription and returns its URI; an existing one with the same
    /// destination and context is reused (upstream's `ResourceAlreadyExists` handling).
    pub async fn subscribe_events(
        &self,
        destination: &str,
        format: &str,
        context: &str,
        hpe: bool,
    ) -> Result<String> {
        let service: EventService = self.get("/redfish/v1/EventService").await?;
        if service.service_enabled == Some(false) {
            return Err(RedfishError::Unsupported("EventService (disabled)".into()));
        }
        let collection = service
            .subscriptions
            .map(|s| s.odata_id)
            .unwrap_or_else(|| "/redfish/v1/EventService/Subscriptions".into());
        for existing in self.members::<EventDestination>(&collection).await? {
            if existing.destination.as_deref() == Some(destination)
                && existing.context.as_deref() == Some(context)
            {
                return Ok(existing.odata_id);
            }
        }
        let mut body = json!({
            "Destination": destination,
            "EventFormatType": format,
            "Protocol": "Redfish",
            "Context": context,
        });
        if !hpe {
            body["DeliveryRetryPolicy"] = json!("TerminateAfterRetries");
        }
        let response = self
            .send_json(Method::POST, &collection, body, None, Idempotency::Action)
            .await?;
        response
            .headers()
            .get(header::LOCATION)
            .and_then(|l| l.to_str().ok())
            .map(|l| self.inner.wire.relative(l))
            .ok_or_else(|| RedfishError::Decode {
                path: collection,
                message: "subscription without Location".into(),
            })
    }

    pub async fn delete_subscription(&self, uri: &str) -> Result<()> {
        match self
            .request(Method::DELETE, uri, None, Idempotency::Idempotent)
            .await
        {
            Err(RedfishError::Rejected { status: 404, .. }) => Ok(()),
            other => other.map(drop),
        }
    }

    /// A JSON body, with `If-Match` when an ETag is given.
    async fn send_json(
        &self,
        method: Method,
        path: &str,
        body: Value,
        if_match: Option<String>,
        idempotency: Idempotency,
    ) -> Result<http::Response<Bytes>> {
        let bytes = Bytes::from(serde_json::to_vec(&body).expect("JSON values serialize"));
        self.send_with_retries(method, path, Some(bytes), true, if_match, idempotency)
            .await
    }

    async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
        idempotency: Idempotency,
    ) -> Result<http::Response<Bytes>> {
        self.send_with_retries(method, path, body, true, None, idempotency)
            .await
    }

    /// Tries the request as the retry policy allows; `authenticated` adds the credentials.
    async fn send_with_retries(
        &self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
        authenticated: bool,
        if_match: Option<String>,
        idempotency: Idempotency,
    ) -> Result<http::Response<Bytes>> {
        let Inner { wire, auth, .. } = &*self.inner;
        let (body, if_match) = (&body, if_match.as_deref());
        let attempt = || {
            let method = method.clone();
            async move {
                let mut req = wire.request(method, path, body.clone())?;
                if let Some(etag) = if_match {
                    req.headers_mut()
                        .insert(header::IF_MATCH, header_value(etag)?);
                }
                if authenticated {
                    auth.send(wire, req, path).await
                } else {
                    wire.send(req).await
                }
            }
        };
        self.inner.retries.run(idempotency, attempt).await
    }
}

/// The BMC answered and said no (a 4xx, or a 5xx other than 503 "busy").
fn refused(error: &RedfishError) -> bool {
    match error {
        RedfishError::Rejected { .. } => true,
        RedfishError::Server { status, .. } => *status != 503,
        _ => false,
    }
}

fn check_allowed(allowed: Option<&[String]>, reset: ResetType) -> Result<()> {
    match allowed {
        Some(values) if !values.iter().any(|v| v == reset.as_str()) => {
            Err(RedfishError::Unsupported(format!(
                "ResetType {reset} (allowed: {})",
                values.join(", ")
            )))
        }
        _ => Ok(()),
    }
}

fn decode<T: DeserializeOwned>(path: &str, body: &[u8]) -> Result<T> {
    serde_json::from_slice(body).map_err(|e| RedfishError::Decode {
        path: path.to_owned(),
        message: e.to_string(),
    })
}
