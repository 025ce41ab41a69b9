//! create, update, patch (merge, JSON, strategic, apply), delete and deletecollection handlers.

use std::sync::Arc;

use axum::response::Response;
use bytes::Bytes;
use http::StatusCode;
use serde_json::{Value, json};

use super::{
    Params, Target, decode_object, decode_yaml, field_labels, object_response, value_response,
};
use crate::managed::{self, Writer};
use crate::objects::Sub;
use crate::ops::{self, DeleteOpts, Record, State, WriteCtx};
use crate::patch;
use crate::selectors::{FieldSelector, LabelSelector};
use crate::status::{ApiError, ApiResult, Cause};

fn ctx(t: &Target, p: &Params, user_agent: &str) -> WriteCtx {
    // Like the real server, the default manager is the user agent's program name.
    let manager = p.field_manager.clone().unwrap_or_else(|| {
        let prog = user_agent.split('/').next().unwrap_or("").trim();
        if prog.is_empty() {
            "unknown".into()
        } else {
            // kube-apiserver cuts a user-agent-derived manager to the field manager limit.
            let mut end = prog.len().min(crate::limits::MAX_FIELD_MANAGER_LEN);
            while !prog.is_char_boundary(end) {
                end -= 1;
            }
            prog[..end].to_string()
        }
    });
    let sub = match t.sub.as_deref() {
        Some("status") => Sub::Status,
        Some("finalize") => Sub::Finalize,
        _ => Sub::Main,
    };
    WriteCtx {
        manager,
        version: t.version.clone(),
        sub,
        dry_run: p.dry_run,
        strict: p.field_validation.as_deref() == Some("Strict"),
    }
}

pub async fn create(
    st: &Arc<State>,
    t: &Target,
    p: &Params,
    ua: &str,
    ct: &str,
    body: &Bytes,
) -> ApiResult<Response> {
    let obj = decode_object(ct, body)?;
    let ctx = ctx(t, p, ua);
    let created = ops::create(
        st,
        &t.info,
        t.namespace.as_deref(),
        obj,
        &ctx,
        Record::Update,
    )
    .await?;
    Ok(object_response(
        &t.info,
        &t.version,
        &created,
        StatusCode::CREATED,
    ))
}

pub async fn replace(
    st: &Arc<State>,
    t: &Target,
    p: &Params,
    ua: &str,
    ct: &str,
    body: &Bytes,
) -> ApiResult<Response> {
    let obj = decode_object(ct, body)?;
    let ctx = ctx(t, p, ua);
    let name = t.name.clone().unwrap_or_default();
    let key = State::key(&t.info, t.namespace.as_deref(), &name);
    let want = ops::parse_rv(
        &t.info,
        &name,
        obj.pointer("/metadata/resourceVersion")
            .and_then(Value::as_str),
    )?;
    let updated = ops::update(
        st,
        &t.info,
        &key,
        want,
        &ctx,
        Record::Update,
        &|_cur: &Value| Ok(obj.clone()),
    )
    .await?;
    Ok(object_response(
        &t.info,
        &t.version,
        &updated,
        StatusCode::OK,
    ))
}

const PATCH_TYPES: &[&str] = &[
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/apply-patch+yaml",
    "application/strategic-merge-patch+json",
];

pub async fn patch(
    st: &Arc<State>,
    t: &Target,
    p: &Params,
    ua: &str,
    ct: &str,
    body: &Bytes,
) -> ApiResult<Response> {
    let base = ct.split(';').next().unwrap_or("").trim().to_string();
    let mut ctx = ctx(t, p, ua);
    let name = t.name.clone().unwrap_or_default();
    let key = State::key(&t.info, t.namespace.as_deref(), &name);
    let info = &t.info;
    let bad_patch = |e: String| ApiError::bad_request(format!("error decoding patch: {e}"));
    let updated = match base.as_str() {
        "application/json-patch+json" => {
            let ops_: json_patch::Patch =
                serde_json::from_slice(body).map_err(|e| bad_patch(e.to_string()))?;
            patch::check_json_patch_ops(&ops_)?;
            ops::update(
                st,
                info,
                &key,
                None,
                &ctx,
                Record::Update,
                &|cur: &Value| patch::json_patch(info, cur, &ops_),
            )
            .await?
        }
        "application/merge-patch+json" | "application/strategic-merge-patch+json" => {
            let strategic = base == "application/strategic-merge-patch+json";
            if strategic && info.custom {
                return Err(ApiError::unsupported_media_type(&base, &PATCH_TYPES[..3]));
            }
            let doc: Value = serde_json::from_slice(body).map_err(|e| bad_patch(e.to_string()))?;
            let want = ops::parse_rv(
                info,
                &name,
                doc.pointer("/metadata/resourceVersion")
                    .and_then(Value::as_str),
            )?;
            ops::update(
                st,
                info,
                &key,
                want,
                &ctx,
                Record::Update,
                &|cur: &Value| {
                    Ok(if strategic {
                        patch::strategic(cur, &doc)
                    } else {
                        patch::merge(cur, &doc)
                    })
                },
            )
            .await?
        }
        "application/apply-patch+yaml" => {
            let manager = p.field_manager.clone().ok_or_else(|| {
                ApiError::bad_request("PATCH, application/apply-patch+yaml requests must have a fieldManager (the fieldManager query parameter is required)")
            })?;
            ctx.manager = manager;
            let applied =
                patch::applied_config(info, &t.version, &name, ctx.sub, decode_yaml(body)?)?;
            return apply(st, t, &ctx, p.force, applied).await;
        }
        other => return Err(ApiError::unsupported_media_type(other, PATCH_TYPES)),
    };
    Ok(object_response(info, &t.version, &updated, StatusCode::OK))
}

async fn apply(
    st: &Arc<State>,
    t: &Target,
    ctx: &WriteCtx,
    force: bool,
    applied: Value,
) -> ApiResult<Response> {
    let info = &t.info;
    let name = t.name.clone().unwrap_or_default();
    let key = State::key(info, t.namespace.as_deref(), &name);
    let schema = info.schema(&t.version).cloned();
    let now = st.now();
    let av = info.api_version(&t.version);
    let sub = if ctx.sub == Sub::Status { "status" } else { "" };
    let writer = Writer {
        manager: &ctx.manager,
        api_version: &av,
        subresource: sub,
        time: &now,
    };
    if st.store.get(&key).is_none() {
        if ctx.sub != Sub::Main {
            return Err(ApiError::not_found(&info.group, &info.plural, &name));
        }
        let obj = managed::apply(None, &applied, schema.as_ref(), &writer, force)?;
        match ops::create(
            st,
            info,
            t.namespace.as_deref(),
            obj,
            ctx,
            Record::AlreadyRecorded,
        )
        .await
        {
            Ok(created) => {
                return Ok(object_response(
                    info,
                    &t.version,
                    &created,
                    StatusCode::CREATED,
                ));
            }
            // Lost a race with another creator: apply onto what is there now.
            Err(e) if e.reason == "AlreadyExists" => {}
            Err(e) => return Err(e),
        }
    }
    let updated = ops::update(
        st,
        info,
        &key,
        None,
        ctx,
        Record::AlreadyRecorded,
        &|cur: &Value| managed::apply(Some(cur), &applied, schema.as_ref(), &writer, force),
    )
    .await?;
    Ok(object_response(info, &t.version, &updated, StatusCode::OK))
}

fn delete_opts(p: &Params, body: &Bytes) -> ApiResult<DeleteOpts> {
    let mut opts = DeleteOpts {
        propagation: p.propagation_policy.clone(),
        dry_run: p.dry_run,
        ..Default::default()
    };
    if !body.iter().all(u8::is_ascii_whitespace) {
        let v: Value = serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("invalid DeleteOptions: {e}")))?;
        let mut causes = Vec::new();
        match v.get("propagationPolicy") {
            None | Some(Value::Null) => {}
            Some(Value::String(pp)) => {
                causes.extend(super::propagation_causes(pp));
                opts.propagation = Some(pp.to_string());
            }
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "invalid DeleteOptions: propagationPolicy must be a string, got {other}"
                )));
            }
        }
        match v.get("gracePeriodSeconds") {
            None | Some(Value::Null) => {}
            Some(g) if g.is_i64() => {}
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "invalid DeleteOptions: gracePeriodSeconds must be an integer, got {other}"
                )));
            }
        }
        match v.get("dryRun") {
            None | Some(Value::Null) => {}
            Some(Value::Array(a)) => {
                for x in a {
                    if x == "All" {
                        opts.dry_run = true;
                    } else {
                        causes.push(Cause::unsupported("dryRun", x, "\"All\""));
                    }
                }
            }
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "invalid DeleteOptions: dryRun must be a list of strings, got {other}"
                )));
            }
        }
        if v.get("orphanDependents").is_some_and(|o| !o.is_null()) && opts.propagation.is_some() {
            causes.push(Cause::new(
                "FieldValueInvalid",
                "propagationPolicy",
                "Invalid value: orphanDependents and deletionPropagation cannot be both set",
            ));
        }
        if !causes.is_empty() {
            return Err(ApiError::invalid(
                "meta.k8s.io",
                "DeleteOptions",
                "",
                causes,
            ));
        }
        if v.get("orphanDependents") == Some(&json!(true)) {
            opts.propagation = Some("Orphan".into());
        }
        opts.uid = v
            .pointer("/preconditions/uid")
            .and_then(Value::as_str)
            .map(String::from);
        opts.rv = v
            .pointer("/preconditions/resourceVersion")
            .and_then(Value::as_str)
            .map(String::from);
    }
    Ok(opts)
}

fn success_status(t: &Target, name: &str, uid: &str) -> Value {
    let mut details = json!({"name": name, "kind": t.info.plural, "uid": uid});
    if !t.info.group.is_empty() {
        details["group"] = json!(t.info.group);
    }
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details})
}

pub async fn delete(st: &Arc<State>, t: &Target, p: &Params, body: &Bytes) -> ApiResult<Response> {
    if t.sub.is_some() {
        return Err(ApiError::method_not_allowed("delete"));
    }
    let opts = delete_opts(p, body)?;
    let name = t.name.clone().unwrap_or_default();
    let key = State::key(&t.info, t.namespace.as_deref(), &name);
    let (obj, removed) = ops::delete(st, &t.info, &key, &opts).await?;
    if !removed {
        // Deletion is pending on finalizers: 202 with the object, as the real server answers.
        return Ok(object_response(
            &t.info,
            &t.version,
            &obj,
            StatusCode::ACCEPTED,
        ));
    }
    if t.info.custom || t.info.kind == "Namespace" {
        return Ok(object_response(&t.info, &t.version, &obj, StatusCode::OK));
    }
    Ok(value_response(
        StatusCode::OK,
        &success_status(t, &name, &obj.meta.uid),
    ))
}

pub async fn delete_collection(
    st: &Arc<State>,
    t: &Target,
    p: &Params,
    body: &Bytes,
) -> ApiResult<Response> {
    let opts = delete_opts(p, body)?;
    let labels = LabelSelector::parse(&p.label_selector)?;
    let fields = FieldSelector::parse(&p.field_selector, field_labels(&t.info))?;
    let ns = if t.info.namespaced {
        t.namespace.as_deref()
    } else {
        None
    };
    let mut deleted = Vec::new();
    for key in st.store.keys(&t.info.key, ns) {
        let Some((_, obj)) = st.store.get(&key) else {
            continue;
        };
        if !labels.matches(&obj.meta) || !fields.matches(&key.namespace, &key.name, &obj.meta) {
            continue;
        }
        match ops::delete(st, &t.info, &key, &opts).await {
            Ok((obj, _)) => deleted.push(obj.value()),
            Err(e) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    let list = json!({
        "kind": t.info.list_kind,
        "apiVersion": t.info.api_version(&t.version),
        "metadata": {"resourceVersion": st.store.current_rv().to_string()},
        "items": deleted,
    });
    Ok(value_response(StatusCode::OK, &list))
}
