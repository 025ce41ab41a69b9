//! get and list (with selectors, `limit`/`continue` paging, and Table output).

use std::sync::Arc;

use axum::response::Response;
use base64::Engine;
use http::StatusCode;
use serde_json::{Value, json};

use super::{Params, Target, field_labels, json_response, object_response, value_response};
use crate::objects;
use crate::ops::State;
use crate::selectors::{FieldSelector, LabelSelector};
use crate::status::{ApiError, ApiResult};
use crate::store::ListQuery;
use crate::stored::StoredObject;
use crate::table;

pub fn get(st: &State, t: &Target, name: &str, as_table: bool) -> ApiResult<Response> {
    let key = State::key(&t.info, t.namespace.as_deref(), name);
    let (rv, obj) = st
        .store
        .get(&key)
        .ok_or_else(|| ApiError::not_found(&t.info.group, &t.info.plural, name))?;
    if as_table {
        let meta = json!({"resourceVersion": rv.to_string()});
        return Ok(value_response(
            StatusCode::OK,
            &table::table(
                &t.info,
                &t.version,
                &[&obj.value()],
                meta,
                true,
                st.clock.now_chrono(),
            ),
        ));
    }
    Ok(object_response(&t.info, &t.version, &obj, StatusCode::OK))
}

fn encode_continue(rv: u64, (ns, name): &(String, String)) -> String {
    let token = json!({"rv": rv, "ns": ns, "name": name});
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(token.to_string())
}

fn decode_continue(token: &str) -> ApiResult<(u64, (String, String))> {
    let bad = || {
        ApiError::bad_request(
            "continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)",
        )
    };
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    let rv = v["rv"].as_u64().ok_or_else(bad)?;
    Ok((
        rv,
        (
            v["ns"].as_str().unwrap_or("").to_string(),
            v["name"].as_str().unwrap_or("").to_string(),
        ),
    ))
}

/// The continue token of a compacted snapshot is refused with 410 Expired, as the real server does; its
/// message says how to carry on.
fn continue_expired(rv: u64, oldest: u64) -> ApiError {
    ApiError::gone(format!(
        "The provided continue parameter is too old to display a consistent list result. You can start a new \
         list without the continue parameter. (resourceVersion {rv} is older than the oldest kept, {oldest})"
    ))
}

/// Lists a resource. Every page of a `limit`/`continue` list shows the state at the first page's
/// resourceVersion (rebuilt from the history), or 410 Expired once the history no longer covers it.
pub fn list(st: &State, t: &Target, p: &Params, as_table: bool) -> ApiResult<Response> {
    let labels = LabelSelector::parse(&p.label_selector)?;
    let fields = FieldSelector::parse(&p.field_selector, field_labels(&t.info))?;
    let (at, after) = match &p.continue_token {
        Some(tok) => {
            let (rv, after) = decode_continue(tok)?;
            (Some(rv), Some(after))
        }
        None => (None, None),
    };
    let mut filter = |ns: &str, name: &str, o: &StoredObject| {
        labels.matches(&o.meta) && fields.matches(ns, name, &o.meta)
    };
    let ns = if t.info.namespaced {
        t.namespace.as_deref()
    } else {
        None
    };
    let query = ListQuery {
        resource: &t.info.key,
        namespace: ns,
        after: after.as_ref(),
        filter: &mut filter,
        limit: p.limit.unwrap_or(usize::MAX),
    };
    let page = st
        .store
        .list(query, at)
        .map_err(|c| continue_expired(at.unwrap_or(0), c.oldest))?;
    let mut meta = json!({"resourceVersion": page.rv.to_string()});
    if page.more
        && let Some(last) = page.items.last()
    {
        let v = last.value();
        let slot = (
            objects::meta_str(&v, "namespace").unwrap_or("").to_string(),
            objects::name_of(&v).to_string(),
        );
        meta["continue"] = json!(encode_continue(page.rv, &slot));
    }
    if as_table {
        let values: Vec<Value> = page.items.iter().map(|o| o.value()).collect();
        let refs: Vec<&Value> = values.iter().collect();
        return Ok(value_response(
            StatusCode::OK,
            &table::table(
                &t.info,
                &t.version,
                &refs,
                meta,
                true,
                st.clock.now_chrono(),
            ),
        ));
    }
    Ok(json_response(
        StatusCode::OK,
        list_body(t, &meta, &page.items),
    ))
}

/// The list JSON, with the items' stored JSON copied in (never re-serialised).
fn list_body(t: &Target, meta: &Value, items: &[Arc<StoredObject>]) -> Vec<u8> {
    let relabel = t.version != t.info.versions[0];
    let size: usize = items.iter().map(|o| o.json_bytes().len() + 1).sum();
    let mut buf = Vec::with_capacity(256 + size);
    buf.extend_from_slice(b"{\"kind\":");
    let _ = serde_json::to_writer(&mut buf, &t.info.list_kind);
    buf.extend_from_slice(b",\"apiVersion\":");
    let _ = serde_json::to_writer(&mut buf, &t.info.api_version(&t.version));
    buf.extend_from_slice(b",\"metadata\":");
    let _ = serde_json::to_writer(&mut buf, meta);
    buf.extend_from_slice(b",\"items\":[");
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        if relabel {
            let mut o = item.value();
            o["apiVersion"] = json!(t.info.api_version(&t.version));
            let _ = serde_json::to_writer(&mut buf, &o);
        } else {
            buf.extend_from_slice(item.json_bytes());
        }
    }
    buf.extend_from_slice(b"]}");
    buf
}
