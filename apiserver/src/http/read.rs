//! get and list (with selectors, `limit`/`continue` paging, and Table output).

use axum::response::Response;
use base64::Engine;
use http::StatusCode;
use serde_json::{Value, json};

use super::{Params, Target, field_labels, json_response, object_response, value_response};
use crate::ops::State;
use crate::selectors::{FieldSelector, LabelSelector};
use crate::status::{ApiError, ApiResult};
use crate::table;

pub fn get(st: &State, t: &Target, name: &str, as_table: bool) -> ApiResult<Response> {
    let key = State::key(&t.info, t.namespace.as_deref(), name);
    let (_, obj) = st
        .store
        .get(&key)
        .ok_or_else(|| ApiError::not_found(&t.info.group, &t.info.plural, name))?;
    if as_table {
        let meta = json!({"resourceVersion": obj.pointer("/metadata/resourceVersion").cloned().unwrap_or(json!(""))});
        return Ok(value_response(
            StatusCode::OK,
            &table::table(&t.info, &t.version, &[&obj], meta, true, (st.clock)()),
        ));
    }
    Ok(object_response(&t.info, &t.version, &obj, StatusCode::OK))
}

fn encode_continue(rv: u64, last: &Value) -> String {
    let token = json!({"rv": rv, "ns": last.pointer("/metadata/namespace").cloned().unwrap_or(json!("")),
        "name": last.pointer("/metadata/name").cloned().unwrap_or(json!(""))});
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

pub fn list(st: &State, t: &Target, p: &Params, as_table: bool) -> ApiResult<Response> {
    let labels = LabelSelector::parse(&p.label_selector)?;
    let fields = FieldSelector::parse(&p.field_selector, field_labels(&t.info))?;
    let (list_rv_pin, after) = match &p.continue_token {
        Some(tok) => {
            let (rv, after) = decode_continue(tok)?;
            (Some(rv), Some(after))
        }
        None => (None, None),
    };
    let mut filter = |o: &Value| labels.matches(o) && fields.matches(o);
    let limit = p.limit.unwrap_or(usize::MAX);
    let ns = if t.info.namespaced {
        t.namespace.as_deref()
    } else {
        None
    };
    let (rv, items, more) = st
        .store
        .list(&t.info.key, ns, after.as_ref(), &mut filter, limit);
    // Pages of one list report the first page's resourceVersion, so the caller watches from there.
    let list_rv = list_rv_pin.unwrap_or(rv);
    let mut meta = json!({"resourceVersion": list_rv.to_string()});
    if more && let Some(last) = items.last() {
        meta["continue"] = json!(encode_continue(list_rv, last));
    }
    if as_table {
        let refs: Vec<&Value> = items.iter().map(|a| a.as_ref()).collect();
        return Ok(value_response(
            StatusCode::OK,
            &table::table(&t.info, &t.version, &refs, meta, true, (st.clock)()),
        ));
    }
    // Written by hand so that 10,000 stored objects are serialised without being cloned.
    let mut buf = Vec::with_capacity(256 + items.len() * 1024);
    buf.extend_from_slice(b"{\"kind\":");
    let _ = serde_json::to_writer(&mut buf, &t.info.list_kind);
    buf.extend_from_slice(b",\"apiVersion\":");
    let _ = serde_json::to_writer(&mut buf, &t.info.api_version(&t.version));
    buf.extend_from_slice(b",\"metadata\":");
    let _ = serde_json::to_writer(&mut buf, &meta);
    buf.extend_from_slice(b",\"items\":[");
    let relabel = t.version != t.info.versions[0];
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        if relabel {
            let mut o = (**item).clone();
            o["apiVersion"] = json!(t.info.api_version(&t.version));
            let _ = serde_json::to_writer(&mut buf, &o);
        } else {
            let _ = serde_json::to_writer(&mut buf, item.as_ref());
        }
    }
    buf.extend_from_slice(b"]}");
    Ok(json_response(StatusCode::OK, buf))
}
