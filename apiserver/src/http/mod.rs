//! The REST layer: routes, path parsing, query options, content negotiation and the verb handlers.

mod aggregated;
mod builtin_schemas;
mod discovery;
mod openapi;
mod read;
mod watch;
mod write;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Query, State as AxState};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode, Uri, header};
use serde_json::Value;

use crate::ops::State;
use crate::resources::ResourceInfo;
use crate::status::{ApiError, ApiResult, Cause};
use crate::stored::StoredObject;

use crate::limits::MAX_BODY_BYTES as BODY_LIMIT;

pub fn router(st: Arc<State>) -> Router {
    Router::new()
        .route("/version", get(discovery::version))
        .route("/healthz", get(ok))
        .route("/readyz", get(ok))
        .route("/livez", get(ok))
        .route("/api", get(discovery::core_versions))
        .route("/apis", get(discovery::group_list))
        .route("/openapi/v2", get(openapi::v2))
        .route("/openapi/v3", get(openapi::v3_index))
        .route("/openapi/v3/{*path}", get(openapi::v3_doc))
        .route("/api/{*rest}", any(dispatch))
        .route("/apis/{*rest}", any(dispatch))
        .fallback(|| async { ApiError::path_not_found() })
        .layer(DefaultBodyLimit::disable())
        .layer(axum::middleware::from_fn_with_state(
            st.clone(),
            refuse_while_stopping,
        ))
        .with_state(st)
}

/// Once the server stops, a request that still arrives on a kept-alive connection is not served by the stopped
/// store (its write would be lost to the restarted server): it is refused as the real apiserver does while
/// shutting down (429, Retry-After, and the connection closed so the client reconnects).
async fn refuse_while_stopping(
    AxState(st): AxState<Arc<State>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if !st.shutdown.is_begun() {
        return next.run(req).await;
    }
    let mut res = ApiError::new(
        429,
        "TooManyRequests",
        "The apiserver is shutting down, please try again later.",
    )
    .into_response();
    let headers = res.headers_mut();
    headers.insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
    headers.insert(
        header::CONNECTION,
        header::HeaderValue::from_static("close"),
    );
    res
}

async fn ok() -> &'static str {
    "ok"
}

/// Options from the query string.
#[derive(Debug, Default, Clone)]
pub struct Params {
    pub watch: bool,
    pub label_selector: String,
    pub field_selector: String,
    pub limit: Option<usize>,
    pub continue_token: Option<String>,
    pub resource_version: Option<String>,
    pub allow_bookmarks: bool,
    pub send_initial_events: bool,
    pub timeout_seconds: Option<u64>,
    pub field_manager: Option<String>,
    pub force: bool,
    pub dry_run: bool,
    pub field_validation: Option<String>,
    pub propagation_policy: Option<String>,
}

impl Params {
    /// Parses the query as kube-apiserver converts it into its options types: malformed numbers are 400
    /// BadRequest, values outside an enumeration are 422 Invalid against the verb's options kind (CreateOptions,
    /// DeleteOptions, ListOptions, ... in meta.k8s.io), as apimachinery's `Validate*Options` answer.
    fn parse(uri: &Uri, method: &Method) -> ApiResult<Params> {
        let pairs: Query<Vec<(String, String)>> = Query::try_from_uri(uri)
            .map_err(|e| ApiError::bad_request(format!("invalid query: {e}")))?;
        let mut p = Params::default();
        let mut causes = Vec::new();
        let mut rv_match = None;
        for (k, v) in pairs.0 {
            match k.as_str() {
                "watch" => p.watch = query_bool(&v),
                "labelSelector" => p.label_selector = v,
                "fieldSelector" => p.field_selector = v,
                "limit" => {
                    let n: i64 = v
                        .parse()
                        .map_err(|_| ApiError::bad_request(format!("invalid limit: {v}")))?;
                    p.limit = (n > 0).then_some(n as usize);
                }
                "continue" if !v.is_empty() => p.continue_token = Some(v),
                "resourceVersion" => {
                    if !v.is_empty() && v.parse::<u64>().is_err() {
                        return Err(ApiError::bad_request(format!(
                            "resourceVersion: Invalid value: \"{v}\": must be a decimal resourceVersion"
                        )));
                    }
                    p.resource_version = Some(v)
                }
                "resourceVersionMatch" => rv_match = Some(v),
                "allowWatchBookmarks" => p.allow_bookmarks = query_bool(&v),
                "sendInitialEvents" => p.send_initial_events = query_bool(&v),
                "timeoutSeconds" => {
                    p.timeout_seconds = Some(v.parse().map_err(|_| {
                        ApiError::bad_request(format!("invalid timeoutSeconds: {v}"))
                    })?)
                }
                "gracePeriodSeconds" => {
                    v.parse::<i64>().map_err(|_| {
                        ApiError::bad_request(format!("invalid gracePeriodSeconds: {v}"))
                    })?;
                }
                "fieldManager" => {
                    causes.extend(crate::limits::field_manager_causes(&v));
                    p.field_manager = Some(v)
                }
                "force" => p.force = query_bool(&v),
                "dryRun" => {
                    if v == "All" {
                        p.dry_run = true;
                    } else {
                        causes.push(Cause::not_supported("dryRun", &v, &["All"]));
                    }
                }
                "fieldValidation" => {
                    if !["", "Ignore", "Warn", "Strict"].contains(&v.as_str()) {
                        let supported = ["Ignore", "Strict", "Warn"];
                        causes.push(Cause::not_supported("fieldValidation", &v, &supported));
                    }
                    p.field_validation = Some(v)
                }
                "propagationPolicy" => {
                    causes.extend(propagation_causes(&v));
                    p.propagation_policy = Some(v)
                }
                _ => {}
            }
        }
        if let Some(m) = rv_match.filter(|m| !m.is_empty()) {
            let rv = p.resource_version.as_deref().unwrap_or("");
            if p.watch && p.send_initial_events {
                // A streaming list: only NotOlderThan (validateWatchOptions).
                if m != "NotOlderThan" {
                    let supported = ["NotOlderThan"];
                    causes.push(Cause::not_supported("resourceVersionMatch", &m, &supported));
                }
            } else if p.watch {
                causes.push(Cause::new("FieldValueForbidden", "resourceVersionMatch", "Forbidden: resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided"));
            } else if rv.is_empty() {
                causes.push(Cause::new("FieldValueForbidden", "resourceVersionMatch", "Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided"));
            } else if m == "Exact" && rv == "0" {
                causes.push(Cause::new("FieldValueForbidden", "resourceVersionMatch", "Forbidden: resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\""));
            } else if m != "Exact" && m != "NotOlderThan" {
                let supported = ["Exact", "NotOlderThan"];
                causes.push(Cause::not_supported("resourceVersionMatch", &m, &supported));
            }
        }
        if !causes.is_empty() {
            let kind = match *method {
                Method::POST => "CreateOptions",
                Method::PUT => "UpdateOptions",
                Method::PATCH => "PatchOptions",
                Method::DELETE => "DeleteOptions",
                _ => "ListOptions",
            };
            return Err(ApiError::invalid("meta.k8s.io", kind, "", causes));
        }
        Ok(p)
    }
}

/// A boolean query parameter as apimachinery converts it (`Convert_Slice_string_To_bool`): only "false" (any
/// case) and "0" are false; every other value, the empty one included, is true.
fn query_bool(v: &str) -> bool {
    !(v == "0" || v.eq_ignore_ascii_case("false"))
}

/// DeleteOptions.propagationPolicy's values (apimachinery's ValidateDeleteOptions).
pub fn propagation_causes(v: &str) -> Vec<Cause> {
    if ["Orphan", "Background", "Foreground"].contains(&v) {
        return vec![];
    }
    let supported = ["Background", "Foreground", "Orphan"];
    vec![Cause::not_supported("propagationPolicy", v, &supported)]
}

/// A request for one resource (collection, object, or subresource).
pub struct Target {
    pub info: Arc<ResourceInfo>,
    pub version: String,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub sub: Option<String>,
}

enum Route {
    ResourceList { group: String, version: String },
    Group(String),
    Resource(Target),
}

fn parse_route(st: &State, path: &str) -> ApiResult<Route> {
    let segs: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let (group, version, rest): (&str, &str, &[&str]) = match segs.as_slice() {
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g] => return Ok(Route::Group(g.to_string())),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return Err(ApiError::path_not_found()),
    };
    if rest.is_empty() {
        return Ok(Route::ResourceList {
            group: group.into(),
            version: version.into(),
        });
    }
    let lookup = |plural: &str| {
        st.registry
            .lookup(group, version, plural)
            .ok_or_else(ApiError::path_not_found)
    };
    let target = |info: Arc<ResourceInfo>,
                  ns: Option<&str>,
                  name: Option<&&str>,
                  sub: Option<&&str>| Target {
        info,
        version: version.to_string(),
        namespace: ns.map(String::from),
        name: name.map(|n| n.to_string()),
        sub: sub.map(|s| s.to_string()),
    };
    let t = match rest {
        ["namespaces", ns, res, tail @ ..]
            if !(group.is_empty() && ["status", "finalize"].contains(res)) =>
        {
            let info = lookup(res)?;
            if !info.namespaced || tail.len() > 2 {
                return Err(ApiError::path_not_found());
            }
            target(info, Some(ns), tail.first(), tail.get(1))
        }
        [res, tail @ ..] => {
            let info = lookup(res)?;
            if tail.len() > 2 || (info.namespaced && !tail.is_empty()) {
                return Err(ApiError::path_not_found());
            }
            target(info, None, tail.first(), tail.get(1))
        }
        [] => unreachable!("rest is not empty"),
    };
    if let Some(sub) = &t.sub {
        let ok = (sub == "status" && t.info.has_status)
            || (sub == "finalize" && t.info.kind == "Namespace" && group.is_empty());
        if !ok {
            return Err(ApiError::path_not_found());
        }
    }
    Ok(Route::Resource(t))
}

async fn dispatch(
    AxState(st): AxState<Arc<State>>,
    peer: Option<axum::Extension<crate::serve::Peer>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let peer = peer.map(|axum::Extension(p)| p.0.ip().to_string());
    match dispatch_inner(&st, method, &uri, &headers, body, peer).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn dispatch_inner(
    st: &Arc<State>,
    method: Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Body,
    peer: Option<String>,
) -> ApiResult<Response> {
    let route = parse_route(st, uri.path())?;
    let t = match route {
        Route::ResourceList { group, version } => {
            return discovery::resource_list(st, &group, &version);
        }
        Route::Group(g) => return discovery::group(st, &g),
        Route::Resource(t) => t,
    };
    let latency = st.faults.latency();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    if let Some(e) = st.faults.injected_error() {
        return Err(e);
    }
    let p = Params::parse(uri, &method)?;
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let table = accept.contains("as=Table");
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    match (&method, &t.name) {
        (&Method::GET, None) if p.watch => {
            let client = format!("{} {user_agent}", peer.as_deref().unwrap_or("in-process"));
            let slot = st.watches.take(client)?;
            watch::serve(st, &t, &p, table, slot).await
        }
        (&Method::GET, None) => read::list(st, &t, &p, table),
        (&Method::GET, Some(name)) => read::get(st, &t, name, table),
        (&Method::POST, None) => {
            let body = read_body(body).await?;
            write::create(st, &t, &p, user_agent, content_type, &body).await
        }
        (&Method::PUT, Some(_)) => {
            let body = read_body(body).await?;
            write::replace(st, &t, &p, user_agent, content_type, &body).await
        }
        (&Method::PATCH, Some(_)) => {
            let body = read_body(body).await?;
            write::patch(st, &t, &p, user_agent, content_type, &body).await
        }
        (&Method::DELETE, Some(_)) => {
            let body = read_body(body).await?;
            write::delete(st, &t, &p, &body).await
        }
        (&Method::DELETE, None) => {
            let body = read_body(body).await?;
            write::delete_collection(st, &t, &p, &body).await
        }
        (m, _) => Err(ApiError::method_not_allowed(&format!("{m}"))),
    }
}

async fn read_body(body: Body) -> ApiResult<Bytes> {
    axum::body::to_bytes(body, BODY_LIMIT).await.map_err(|e| {
        let too_large = std::error::Error::source(&e)
            .is_some_and(|s| s.to_string().contains("length limit"))
            || e.to_string().contains("length limit");
        if too_large {
            ApiError::too_large(BODY_LIMIT)
        } else {
            ApiError::bad_request(format!("reading the request body: {e}"))
        }
    })
}

/// Decodes a JSON or YAML object body.
pub fn decode_object(content_type: &str, body: &[u8]) -> ApiResult<Value> {
    let base = content_type.split(';').next().unwrap_or("").trim();
    let v: Value = match base {
        "application/json" | "" | "*/*" => serde_json::from_slice(body).map_err(|e| {
            ApiError::bad_request(format!(
                "the body of the request could not be decoded as JSON: {e}"
            ))
        })?,
        "application/yaml" | "application/apply-patch+yaml" => decode_yaml(body)?,
        "application/vnd.kubernetes.protobuf" => crate::protobuf::decode(body)?,
        other => {
            return Err(ApiError::unsupported_media_type(
                other,
                &["application/json", "application/yaml"],
            ));
        }
    };
    if !v.is_object() {
        return Err(ApiError::bad_request(
            "the body of the request must be an object",
        ));
    }
    Ok(v)
}

pub fn decode_yaml(body: &[u8]) -> ApiResult<Value> {
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        return Ok(v);
    }
    let text = std::str::from_utf8(body)
        .map_err(|_| ApiError::bad_request("the request body is not UTF-8"))?;
    serde_saphyr::from_str::<Value>(text)
        .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))
}

/// A stored object as served at `version` (objects are stored at the storage version, whose JSON is sent as is).
pub fn object_response(
    info: &ResourceInfo,
    version: &str,
    obj: &StoredObject,
    code: StatusCode,
) -> Response {
    if version == info.versions[0] {
        return json_response(code, obj.json());
    }
    let mut o = obj.value();
    o["apiVersion"] = Value::String(info.api_version(version));
    value_response(code, &o)
}

pub fn json_response(code: StatusCode, body: impl Into<Body>) -> Response {
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        body.into(),
    )
        .into_response()
}

pub fn value_response(code: StatusCode, v: &Value) -> Response {
    json_response(code, serde_json::to_vec(v).unwrap_or_default())
}

/// Field labels a resource supports in field selectors besides metadata.name/namespace.
pub fn field_labels(info: &ResourceInfo) -> &'static [&'static str] {
    crate::stored::field_labels_of(&info.key)
}
