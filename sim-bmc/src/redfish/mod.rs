//! The Redfish HTTP layer of one BMC: protocol rules (auth, ETags, Allow, errors, faults) in front of
//! per-resource renderers and mutators. It is a plain async function, so it runs over sockets or in-process.

mod accounts;
mod collection;
mod inventory;
mod manager;
pub mod response;
mod root;
pub mod routes;
mod services;
mod system;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::Value;

use bytes::Bytes;

use crate::bmc::{Bmc, CachedPayload, Principal, Privilege};
use response::{Message, Resp, empty, error, etag_of};
use routes::Route;

/// Request bodies above this are refused with 413 (BMCs have small buffers too; no Redfish request
/// this service accepts comes near it).
pub const MAX_BODY: usize = 1 << 20;
/// Header sections larger than this (names + values) are refused with 431; hyper's own limit on the
/// wire (about 400 KiB, 100 headers) is above it, so a Redfish client sees our message, not hyper's.
pub const MAX_HEADER_BYTES: usize = 16 << 10;
/// More headers than this are refused with 431 too.
pub const MAX_HEADERS: usize = 64;

/// How a request arrived (set by the listener; absent in-process, which counts as secure).
#[derive(Debug, Clone, Copy)]
pub struct Transport {
    pub secure: bool,
}

/// What a resource handler gets besides the route.
pub struct Ctx<'a> {
    pub bmc: &'a Arc<Bmc>,
    pub principal: Option<Principal>,
    pub headers: &'a HeaderMap,
    pub body: Value,
}

/// Answers one Redfish request for `bmc`.
pub async fn handle(bmc: Arc<Bmc>, req: http::Request<Body>) -> Resp {
    let started = tokio::time::Instant::now();
    let method = req.method().clone();
    let resp = serve(&bmc, req).await;
    bmc.metrics.request(
        &method,
        resp.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    resp
}

/// An `axum::Router` serving one BMC (a tower `Service`, usable without sockets).
pub fn router(bmc: Arc<Bmc>) -> axum::Router {
    axum::Router::new().fallback(move |req: http::Request<Body>| handle(bmc.clone(), req))
}

async fn serve(bmc: &Arc<Bmc>, req: http::Request<Body>) -> Resp {
    let (parts, body) = req.into_parts();
    // Read the body before any early answer: an unread body makes the connection close under the client.
    let body = match read_body(body).await {
        Ok(bytes) => bytes,
        Err(resp) => return resp,
    };
    if let Some(resp) = check_header_size(&parts.headers) {
        return resp;
    }
    let path = parts.uri.path();
    let faults = bmc.faults.for_request(path);
    if let Some(resp) = apply_faults(bmc, &faults).await {
        return resp;
    }
    let Some(route) = routes::resolve(bmc, path) else {
        return error(
            StatusCode::NOT_FOUND,
            vec![Message::resource_missing_at_uri(path)],
        );
    };
    let method = parts.method.clone();
    if let Some(resp) = redirect_to_https(bmc, &parts, &route) {
        return resp;
    }
    if !route.allowed().contains(&method) {
        let mut resp = error(
            StatusCode::METHOD_NOT_ALLOWED,
            vec![Message::operation_not_allowed()],
        );
        resp.headers_mut()
            .insert(header::ALLOW, route.allow_header());
        return resp;
    }
    if let Some(resp) = check_protocol_headers(&parts.headers, parts.uri.query(), &method) {
        return resp;
    }
    let principal = if route.is_public(&method) {
        None
    } else {
        match authenticate(bmc, &parts.headers, faults.auth_failure) {
            Ok(p) => Some(p),
            Err(resp) => return resp,
        }
    };
    if let Some(p) = &principal
        && !permitted(p, &route, &method)
    {
        return error(
            StatusCode::FORBIDDEN,
            vec![Message::insufficient_privilege()],
        );
    }
    let body = match parse_json(&body, &method) {
        Ok(v) => v,
        Err(resp) => return resp,
    };
    let ctx = Ctx {
        bmc,
        principal,
        headers: &parts.headers,
        body,
    };
    let mut resp = dispatch(ctx, &route, &method).await;
    if !resp.headers().contains_key(header::ALLOW) {
        resp.headers_mut()
            .insert(header::ALLOW, route.allow_header());
    }
    resp
}

/// The whole body, at most `MAX_BODY`: a larger one is 413, one that cannot be read to its end
/// (truncated, bad chunking, a reset connection) is 400 MalformedJSON, as it cannot be parsed.
async fn read_body(body: Body) -> Result<Bytes, Resp> {
    match http_body_util::Limited::new(body, MAX_BODY).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(error(
            StatusCode::PAYLOAD_TOO_LARGE,
            vec![Message::body_too_large(MAX_BODY)],
        )),
        Err(_) => Err(error(
            StatusCode::BAD_REQUEST,
            vec![Message::malformed_json()],
        )),
    }
}

/// 431 with a Redfish message for header sections beyond `MAX_HEADER_BYTES` or `MAX_HEADERS`.
fn check_header_size(headers: &HeaderMap) -> Option<Resp> {
    let bytes: usize = headers
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len())
        .sum();
    if bytes <= MAX_HEADER_BYTES && headers.len() <= MAX_HEADERS {
        return None;
    }
    Some(error(
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        vec![Message::headers_too_large(MAX_HEADER_BYTES, MAX_HEADERS)],
    ))
}

/// Credentials (Basic, token, or a login) over plain HTTP are sent to HTTPS when the fleet says so.
fn redirect_to_https(bmc: &Bmc, parts: &http::request::Parts, route: &Route) -> Option<Resp> {
    let secure = parts.extensions.get::<Transport>().is_none_or(|t| t.secure);
    if secure || !bmc.https_only.load(std::sync::atomic::Ordering::Relaxed) {
        return None;
    }
    let h = &parts.headers;
    let carries_credentials = h.contains_key(header::AUTHORIZATION)
        || h.contains_key("X-Auth-Token")
        || (*route == Route::Sessions && parts.method == Method::POST);
    if !carries_credentials {
        return None;
    }
    let host = h.get(header::HOST)?.to_str().ok()?;
    let target = format!(
        "https://{host}{}",
        parts.uri.path_and_query().map_or("/", |p| p.as_str())
    );
    let mut resp = empty(StatusCode::PERMANENT_REDIRECT);
    resp.headers_mut()
        .insert(header::LOCATION, header_value(&target));
    Some(resp)
}

/// Injected faults and the BMC's own reboot, before anything else is looked at.
async fn apply_faults(bmc: &Bmc, faults: &crate::fault::RequestFaults) -> Option<Resp> {
    if faults.black_hole {
        futures::future::pending::<()>().await;
    }
    if !faults.latency.is_zero() {
        tokio::time::sleep(faults.latency).await;
    }
    if let Some(status) = faults.error_status {
        // Faults are validated on the way in (400–599); anything else is still never sent.
        let status = StatusCode::from_u16(status)
            .ok()
            .filter(|s| s.is_client_error() || s.is_server_error())
            .unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        return Some(error(
            status,
            vec![Message::service_temporarily_unavailable(5)],
        ));
    }
    if bmc.rebooting() {
        let mut resp = error(
            StatusCode::SERVICE_UNAVAILABLE,
            vec![Message::service_temporarily_unavailable(1)],
        );
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return Some(resp);
    }
    None
}

fn header_value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// OData-Version and query options this service does not implement.
fn check_protocol_headers(
    headers: &HeaderMap,
    query: Option<&str>,
    method: &Method,
) -> Option<Resp> {
    if let Some(v) = headers.get("OData-Version")
        && v.as_bytes() != b"4.0"
    {
        return Some(error(
            StatusCode::PRECONDITION_FAILED,
            vec![Message::header_invalid("OData-Version")],
        ));
    }
    if let Some(q) = query {
        let unsupported = q.split('&').any(|kv| {
            let key = kv.split('=').next().unwrap_or("");
            key.starts_with('$') || key == "only" || key == "excerpt" || key.starts_with("%24")
        });
        if unsupported {
            return Some(error(
                StatusCode::NOT_IMPLEMENTED,
                vec![Message::query_not_supported()],
            ));
        }
    }
    if matches!(*method, Method::POST | Method::PATCH)
        && let Some(ct) = headers.get(header::CONTENT_TYPE)
        && !ct
            .to_str()
            .unwrap_or("")
            .to_ascii_lowercase()
            .starts_with("application/json")
    {
        return Some(error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            vec![Message::unsupported_media_type()],
        ));
    }
    None
}

fn unauthorized() -> Resp {
    let mut resp = error(StatusCode::UNAUTHORIZED, vec![Message::no_valid_session()]);
    resp.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"RedfishService\", charset=\"UTF-8\""),
    );
    resp
}

/// Session token first, then Basic; 401 with `WWW-Authenticate` otherwise.
fn authenticate(bmc: &Bmc, headers: &HeaderMap, injected_failure: bool) -> Result<Principal, Resp> {
    if injected_failure {
        return Err(unauthorized());
    }
    if let Some(token) = headers.get("X-Auth-Token").and_then(|v| v.to_str().ok()) {
        return bmc.sessions.authenticate(token).ok_or_else(unauthorized);
    }
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Basic ")
                .or_else(|| v.strip_prefix("basic "))
        });
    match basic {
        Some(credentials) => bmc
            .accounts
            .verify_basic(credentials)
            .ok_or_else(unauthorized),
        None => Err(unauthorized()),
    }
}

/// Redfish privilege mapping, simplified to the predefined roles.
fn permitted(p: &Principal, route: &Route, method: &Method) -> bool {
    use Route as R;
    if matches!(*method, Method::GET | Method::HEAD) {
        return p.role.has(Privilege::Login);
    }
    let needed = match route {
        R::Session(id) if p.session_id.as_deref() == Some(id.as_str()) => Privilege::ConfigureSelf,
        R::Account(_) if *method == Method::PATCH => return true, // own password; checked in the handler
        R::Accounts | R::Account(_) | R::Role(_) => Privilege::ConfigureUsers,
        R::Manager
        | R::ManagerReset
        | R::SessionService
        | R::Session(_)
        | R::AccountService
        | R::EventService
        | R::Subscriptions
        | R::Subscription(_)
        | R::SubmitTestEvent
        | R::UpdateService
        | R::SimpleUpdate => Privilege::ConfigureManager,
        _ => Privilege::ConfigureComponents,
    };
    p.role.has(needed)
}

fn parse_json(bytes: &[u8], method: &Method) -> Result<Value, Resp> {
    if !matches!(*method, Method::POST | Method::PATCH) {
        return Ok(Value::Null);
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Object(Default::default()));
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(v @ Value::Object(_)) => Ok(v),
        _ => Err(error(
            StatusCode::BAD_REQUEST,
            vec![Message::malformed_json()],
        )),
    }
}

async fn dispatch(ctx: Ctx<'_>, route: &Route, method: &Method) -> Resp {
    match *method {
        Method::GET | Method::HEAD => {
            let head = *method == Method::HEAD;
            get(&ctx, route, head)
        }
        Method::PATCH => {
            // The check and the write are one step (no await in between), serialised per BMC.
            let _write = ctx.bmc.lock_writes();
            if let Some(resp) = check_if_match(&ctx, route) {
                return resp;
            }
            match route {
                R::System(_) | R::BiosSettings(_) | R::Chassis(_) => system::patch(&ctx, route),
                R::EventService | R::Subscription(_) => services::patch(&ctx, route),
                _ => accounts::patch(&ctx, route),
            }
        }
        Method::POST => {
            // Actions change what ETags are computed from too (a reset changes PowerState).
            let _write = ctx.bmc.lock_writes();
            match route {
                R::SystemReset(i) => system::reset(&ctx, *i),
                R::ManagerReset => manager::reset(&ctx),
                R::Sessions | R::Accounts => accounts::post(&ctx, route),
                _ => services::post(&ctx, route),
            }
        }
        Method::DELETE => {
            let _write = ctx.bmc.lock_writes();
            if let Some(resp) = check_if_match(&ctx, route) {
                return resp;
            }
            match route {
                R::Session(_) | R::Account(_) => accounts::delete(&ctx, route),
                _ => services::delete(&ctx, route),
            }
        }
        _ => error(
            StatusCode::METHOD_NOT_ALLOWED,
            vec![Message::operation_not_allowed()],
        ),
    }
}

use Route as R;

/// Renders a resource (None when a dynamic member does not exist).
fn render(bmc: &Arc<Bmc>, route: &Route) -> Option<Value> {
    match route {
        R::Versions | R::Root | R::OData => root::render(bmc, route),
        R::Systems
        | R::System(_)
        | R::ResetActionInfo(_)
        | R::Processors(_)
        | R::Processor(..)
        | R::Memory(_)
        | R::Dimm(..)
        | R::Storages(_)
        | R::Storage(_)
        | R::Drive(..)
        | R::Volumes(_)
        | R::Volume(_)
        | R::SimpleStorages(_)
        | R::SimpleStorage(_)
        | R::EthernetInterfaces(_)
        | R::EthernetInterface(..)
        | R::Bios(_)
        | R::BiosSettings(_)
        | R::BootOptions(_)
        | R::BootOption(..) => system::render(bmc, route),
        R::Managers
        | R::Manager
        | R::ManagerNetworkProtocol
        | R::ManagerEthernetInterfaces
        | R::ManagerEthernetInterface
        | R::ChassisCollection
        | R::Chassis(_) => manager::render(bmc, route),
        R::SessionService
        | R::Sessions
        | R::Session(_)
        | R::AccountService
        | R::Accounts
        | R::Account(_)
        | R::Roles
        | R::Role(_) => accounts::render(bmc, route),
        _ => services::render(bmc, route),
    }
}

/// The current ETag of a resource, as a GET would report it.
fn current_etag(bmc: &Arc<Bmc>, route: &Route, churn: bool) -> Option<String> {
    render(bmc, route).map(|v| etag_of(&v, bmc.etag_salt(churn)))
}

fn check_if_match(ctx: &Ctx<'_>, route: &Route) -> Option<Resp> {
    let wanted = ctx.headers.get(header::IF_MATCH)?.to_str().ok()?.trim();
    if wanted == "*" {
        return None;
    }
    let churn = ctx.bmc.faults.for_request("").etag_churn;
    let current = current_etag(ctx.bmc, route, churn)?;
    let strip = |s: &str| s.trim_start_matches("W/").trim_matches('"').to_string();
    if wanted
        .split(',')
        .any(|w| strip(w.trim()) == strip(&current))
    {
        None
    } else {
        Some(error(
            StatusCode::PRECONDITION_FAILED,
            vec![Message::precondition_failed()],
        ))
    }
}

fn get(ctx: &Ctx<'_>, route: &Route, head: bool) -> Resp {
    let bmc = ctx.bmc;
    if *route == R::Metadata {
        return root::metadata(bmc, head);
    }
    if let R::TaskMonitor(id) = route {
        return services::task_monitor(bmc, id);
    }
    let churn = bmc.faults.for_request("").etag_churn;
    let Some(payload) = payload(bmc, route, churn) else {
        return error(
            StatusCode::NOT_FOUND,
            vec![Message::resource_not_found("Resource", &route_label(route))],
        );
    };
    let with_etag = !matches!(route, R::Versions | R::OData);
    if with_etag
        && ctx
            .headers
            .get(header::IF_NONE_MATCH)
            .is_some_and(|v| v.as_bytes() == payload.etag.as_bytes())
    {
        let mut resp = empty(StatusCode::NOT_MODIFIED);
        resp.headers_mut()
            .insert(header::ETAG, header_value(&payload.etag));
        return resp;
    }
    let mut resp = response::json_bytes(
        StatusCode::OK,
        if head { Bytes::new() } else { payload.body },
    );
    let h = resp.headers_mut();
    if with_etag {
        h.insert(header::ETAG, header_value(&payload.etag));
    }
    if let Some(link) = payload.link {
        h.insert(header::LINK, header_value(&link));
    }
    resp
}

/// Renders a GET payload, or reuses the System payload rendered from the same state (the hot path of
/// every client that polls PowerState).
fn payload(bmc: &Arc<Bmc>, route: &Route, churn: bool) -> Option<CachedPayload> {
    let cacheable = match route {
        R::System(i) if !churn => Some(&bmc.systems[*i]),
        _ => None,
    };
    // The key is read before rendering: a change during rendering leaves a stale key that never matches again.
    let key = cacheable.map(|s| {
        let manager = bmc
            .manager_version
            .load(std::sync::atomic::Ordering::Relaxed);
        (s.machine.version(), bmc.faults.generation(), manager)
    });
    if let (Some(s), Some(key)) = (cacheable, key) {
        let cache = s.payload_cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(hit) = cache.as_ref().filter(|c| c.key == key) {
            return Some(hit.clone());
        }
    }
    let value = render(bmc, route)?;
    // Serialize once: the ETag covers the payload without `@odata.etag`, which is then spliced in first
    // (where serde_json's sorted keys would put it anyway).
    let bytes = serde_json::to_vec(&value).unwrap_or_default();
    let etag = response::etag_of_bytes(&bytes, bmc.etag_salt(churn));
    let body = if matches!(route, R::Versions | R::OData) {
        bytes
    } else {
        splice_etag(bytes, &etag)
    };
    let payload = CachedPayload {
        key: key.unwrap_or_default(),
        body: Bytes::from(body),
        etag,
        link: value
            .get("@odata.type")
            .and_then(Value::as_str)
            .map(schema_link),
    };
    if let Some(s) = cacheable {
        *s.payload_cache.lock().unwrap_or_else(|e| e.into_inner()) = Some(payload.clone());
    }
    Some(payload)
}

/// Inserts `"@odata.etag"` as the first member of a serialized JSON object.
fn splice_etag(bytes: Vec<u8>, etag: &str) -> Vec<u8> {
    if bytes.first() != Some(&b'{') {
        return bytes;
    }
    let member = serde_json::to_vec(&serde_json::json!({"@odata.etag": etag})).unwrap_or_default();
    let mut out = Vec::with_capacity(bytes.len() + member.len() + 1);
    out.extend_from_slice(&member[..member.len() - 1]);
    if bytes.len() > 2 {
        out.push(b',');
    }
    out.extend_from_slice(&bytes[1..]);
    out
}

/// `Link: <…schema…>; rel=describedby` from `#Namespace.vX_Y_Z.Type`.
fn schema_link(odata_type: &str) -> String {
    let t = odata_type.trim_start_matches('#');
    let ns = t.rsplit_once('.').map_or(t, |(ns, _)| ns);
    format!("<http://redfish.dmtf.org/schemas/v1/{ns}.json>; rel=describedby")
}

fn route_label(route: &Route) -> String {
    match route {
        R::Session(id)
        | R::Account(id)
        | R::Role(id)
        | R::Task(id)
        | R::TaskMonitor(id)
        | R::Subscription(id)
        | R::Firmware(id) => id.clone(),
        other => format!("{other:?}"),
    }
}

/// Simulated latency for long operations (firmware updates).
pub(crate) const UPDATE_DURATION: Duration = Duration::from_secs(2);
