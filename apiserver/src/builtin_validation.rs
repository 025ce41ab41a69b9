//! Validation of the built-in kinds as kube-apiserver decodes and validates them: a field of the wrong JSON type is
//! a 400 (Go's decoder refuses it before validation runs), a value the kind's validation refuses is a 422 with one
//! cause per field (pkg/apis/core/validation: ValidateConfigMap, ValidateSecret, ValidateSecretUpdate, ...).

use base64::Engine;
use base64::engine::{GeneralPurpose, GeneralPurposeConfig};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::resources::ResourceInfo;
use crate::status::{ApiError, ApiResult, Cause};

/// `v1.MaxSecretSize` and `v1.MaxConfigMapSize`: the data of one Secret or ConfigMap, 1 MiB.
const MAX_DATA_BYTES: usize = 1024 * 1024;
/// apimachinery's `DNS1123SubdomainMaxLength`, the bound of a ConfigMap or Secret key.
const MAX_KEY_LEN: usize = 253;
/// Go's `base64.StdEncoding`: padded, and (not being `Strict`) lenient about the unused trailing bits.
const GO_STD_BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
);

/// Checks `obj` (and, on update, the stored `old`) of a built-in kind; custom resources are checked by their schema.
pub fn validate(info: &ResourceInfo, old: Option<&Value>, obj: &Value) -> ApiResult<()> {
    use k8s_openapi::api;
    let mut causes = Vec::new();
    match (info.group.as_str(), info.kind.as_str()) {
        ("", "ConfigMap") => config_map(old, obj, &mut causes)?,
        ("", "Secret") => secret(old, obj, &mut causes)?,
        ("", "Namespace") => typed::<api::core::v1::Namespace>(obj)?,
        ("", "Event") => typed::<api::core::v1::Event>(obj)?,
        ("events.k8s.io", "Event") => typed::<api::events::v1::Event>(obj)?,
        ("coordination.k8s.io", "Lease") => lease(obj, &mut causes)?,
        ("apiextensions.k8s.io", "CustomResourceDefinition") => crd_update(old, obj, &mut causes),
        ("", "ServiceAccount") => typed::<api::core::v1::ServiceAccount>(obj)?,
        ("", "Service") => typed::<api::core::v1::Service>(obj)?,
        ("", "Pod") => typed::<api::core::v1::Pod>(obj)?,
        ("apps", "Deployment") => typed::<api::apps::v1::Deployment>(obj)?,
        ("apps", "StatefulSet") => typed::<api::apps::v1::StatefulSet>(obj)?,
        ("apps", "DaemonSet") => typed::<api::apps::v1::DaemonSet>(obj)?,
        ("apps", "ReplicaSet") => typed::<api::apps::v1::ReplicaSet>(obj)?,
        ("batch", "Job") => typed::<api::batch::v1::Job>(obj)?,
        ("batch", "CronJob") => typed::<api::batch::v1::CronJob>(obj)?,
        ("rbac.authorization.k8s.io", "Role") => typed::<api::rbac::v1::Role>(obj)?,
        ("rbac.authorization.k8s.io", "ClusterRole") => typed::<api::rbac::v1::ClusterRole>(obj)?,
        ("rbac.authorization.k8s.io", "RoleBinding") => typed::<api::rbac::v1::RoleBinding>(obj)?,
        ("rbac.authorization.k8s.io", "ClusterRoleBinding") => {
            typed::<api::rbac::v1::ClusterRoleBinding>(obj)?
        }
        _ => {}
    }
    if causes.is_empty() {
        return Ok(());
    }
    let name = crate::objects::name_of(obj);
    Err(ApiError::invalid(&info.group, &info.kind, name, causes))
}

fn decode_error(msg: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(format!(
        "the body of the request could not be decoded: {msg}"
    ))
}

/// The object decodes as its Go type would: wrong JSON types are refused (a missing field is left to the
/// kind's validation, as Go's decoder leaves it). Reads the stored value in place; nothing is copied.
fn typed<T: DeserializeOwned>(obj: &Value) -> ApiResult<()> {
    match T::deserialize(obj) {
        Ok(_) => Ok(()),
        Err(e) if e.to_string().starts_with("missing field") => Ok(()),
        Err(e) => Err(decode_error(e)),
    }
}

/// A map of strings (or absent/null), as Go decodes `map[string]string` / `map[string][]byte`.
fn string_map<'a>(obj: &'a Value, field: &str) -> ApiResult<Option<&'a Map<String, Value>>> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(m)) => {
            if let Some((k, v)) = m.iter().find(|(_, v)| !v.is_string()) {
                return Err(decode_error(format!(
                    "{field}[{k:?}]: expected a string, got {}",
                    json_type(v)
                )));
            }
            Ok(Some(m))
        }
        Some(v) => Err(decode_error(format!(
            "{field}: expected a map of strings, got {}",
            json_type(v)
        ))),
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn optional_bool(obj: &Value, field: &str) -> ApiResult<bool> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(v) => Err(decode_error(format!(
            "{field}: expected a boolean, got {}",
            json_type(v)
        ))),
    }
}

/// apimachinery's `IsConfigMapKey`: `[-._a-zA-Z0-9]+`, at most 253 bytes, not `.`, `..` or starting with `..`.
fn key_causes(field: &str, key: &str, causes: &mut Vec<Cause>) {
    let path = format!("{field}[{key}]");
    if key.len() > MAX_KEY_LEN {
        causes.push(Cause::new(
            "FieldValueInvalid",
            path.clone(),
            format!("Invalid value: {key:?}: must be no more than {MAX_KEY_LEN} characters"),
        ));
    }
    if key.is_empty()
        || !key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
    {
        causes.push(Cause::new(
            "FieldValueInvalid",
            path.clone(),
            format!(
                "Invalid value: {key:?}: a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"
            ),
        ));
    }
    if key == "." {
        causes.push(Cause::new(
            "FieldValueInvalid",
            path,
            format!("Invalid value: {key:?}: must not be '.'"),
        ));
    } else if key == ".." {
        causes.push(Cause::new(
            "FieldValueInvalid",
            path,
            format!("Invalid value: {key:?}: must not be '..'"),
        ));
    } else if key.starts_with("..") {
        causes.push(Cause::new(
            "FieldValueInvalid",
            path,
            format!("Invalid value: {key:?}: must not start with '..'"),
        ));
    }
}

/// The decoded length of base64 `s`, or the 400 Go's `[]byte` decoding answers.
fn base64_len(field: &str, key: &str, s: &str) -> ApiResult<usize> {
    // Decoding into a small reused buffer would need chunking at quantum boundaries; the estimate check plus
    // a decode into a stack buffer per 4 KiB keeps memory flat even for a 1 MiB value.
    let mut total = 0usize;
    let bytes = s.as_bytes();
    let mut buf = [0u8; 3 * 1024];
    let bad = |e: base64::DecodeSliceError| {
        decode_error(format!(
            "{field}[{key:?}]: illegal base64 data ({e}); values of {field} must be base64"
        ))
    };
    if !bytes.len().is_multiple_of(4) {
        return Err(decode_error(format!(
            "{field}[{key:?}]: illegal base64 data (length {} is not a multiple of 4); values of {field} must be base64",
            bytes.len()
        )));
    }
    for chunk in bytes.chunks(4 * 1024) {
        total += GO_STD_BASE64.decode_slice(chunk, &mut buf).map_err(bad)?;
    }
    Ok(total)
}

fn immutable_causes(old: Option<&Value>, obj: &Value, fields: &[&str], causes: &mut Vec<Cause>) {
    let Some(old) = old else { return };
    if old.get("immutable") != Some(&Value::Bool(true)) {
        return;
    }
    if obj.get("immutable") != Some(&Value::Bool(true)) {
        causes.push(Cause::new(
            "FieldValueForbidden",
            "immutable",
            "Forbidden: field is immutable when `immutable` is set",
        ));
    }
    for f in fields {
        let empty =
            |v: Option<&Value>| v.is_none_or(|v| v.is_null() || v == &Value::Object(Map::new()));
        let (a, b) = (old.get(*f), obj.get(*f));
        if a != b && !(empty(a) && empty(b)) {
            causes.push(Cause::new(
                "FieldValueForbidden",
                *f,
                "Forbidden: field is immutable when `immutable` is set",
            ));
        }
    }
}

fn config_map(old: Option<&Value>, obj: &Value, causes: &mut Vec<Cause>) -> ApiResult<()> {
    let data = string_map(obj, "data")?;
    let binary = string_map(obj, "binaryData")?;
    optional_bool(obj, "immutable")?;
    let mut total = 0usize;
    for (k, v) in data.into_iter().flatten() {
        key_causes("data", k, causes);
        total += v.as_str().map_or(0, str::len);
    }
    for (k, v) in binary.into_iter().flatten() {
        key_causes("binaryData", k, causes);
        total += base64_len("binaryData", k, v.as_str().unwrap_or(""))?;
        if data.is_some_and(|d| d.contains_key(k)) {
            causes.push(Cause::new(
                "FieldValueInvalid",
                format!("binaryData[{k}]"),
                format!("Invalid value: {k:?}: duplicate of key present in data"),
            ));
        }
    }
    if total > MAX_DATA_BYTES {
        causes.push(Cause::new(
            "FieldValueTooLong",
            "",
            format!("Too long: must have at most {MAX_DATA_BYTES} bytes"),
        ));
    }
    immutable_causes(old, obj, &["data", "binaryData"], causes);
    Ok(())
}

fn secret(old: Option<&Value>, obj: &Value, causes: &mut Vec<Cause>) -> ApiResult<()> {
    let data = string_map(obj, "data")?;
    optional_bool(obj, "immutable")?;
    let ty = match obj.get("type") {
        None | Some(Value::Null) => "Opaque",
        Some(Value::String(t)) => t.as_str(),
        Some(v) => {
            return Err(decode_error(format!(
                "type: expected a string, got {}",
                json_type(v)
            )));
        }
    };
    let mut total = 0usize;
    for (k, v) in data.into_iter().flatten() {
        key_causes("data", k, causes);
        total += base64_len("data", k, v.as_str().unwrap_or(""))?;
    }
    if total > MAX_DATA_BYTES {
        causes.push(Cause::new(
            "FieldValueTooLong",
            "data",
            format!("Too long: must have at most {MAX_DATA_BYTES} bytes"),
        ));
    }
    // The keys ValidateSecret requires per type.
    let required: &[&str] = match ty {
        "kubernetes.io/tls" => &["tls.crt", "tls.key"],
        "kubernetes.io/dockerconfigjson" => &[".dockerconfigjson"],
        "kubernetes.io/dockercfg" => &[".dockercfg"],
        "kubernetes.io/ssh-auth" => &["ssh-privatekey"],
        _ => &[],
    };
    for k in required {
        if !data.is_some_and(|d| d.contains_key(*k)) {
            causes.push(Cause::new(
                "FieldValueRequired",
                format!("data[{k}]"),
                "Required value",
            ));
        }
    }
    if let Some(old) = old {
        let old_ty = old.get("type").and_then(Value::as_str).unwrap_or("Opaque");
        if old_ty != ty {
            causes.push(Cause::new(
                "FieldValueInvalid",
                "type",
                format!("Invalid value: {ty:?}: field is immutable"),
            ));
        }
    }
    immutable_causes(old, obj, &["data"], causes);
    Ok(())
}

/// A Lease decodes as coordination/v1 Lease and its durations are not negative (ValidateLeaseSpec).
fn lease(obj: &Value, causes: &mut Vec<Cause>) -> ApiResult<()> {
    typed::<k8s_openapi::api::coordination::v1::Lease>(obj)?;
    for (field, min) in [("leaseDurationSeconds", 1), ("leaseTransitions", 0)] {
        if let Some(n) = obj
            .pointer(&format!("/spec/{field}"))
            .and_then(Value::as_i64)
            && n < min
        {
            let bound = if min == 1 {
                "must be greater than 0"
            } else {
                "must be greater than or equal to 0"
            };
            causes.push(Cause::new(
                "FieldValueInvalid",
                format!("spec.{field}"),
                format!("Invalid value: {n}: {bound}"),
            ));
        }
    }
    Ok(())
}

/// What a CustomResourceDefinition may not change once created (apiextensions' validation:
/// `ValidateImmutableField` on `spec.group`, `spec.scope`, `spec.names.plural` and `spec.names.kind`).
fn crd_update(old: Option<&Value>, obj: &Value, causes: &mut Vec<Cause>) {
    let Some(old) = old else { return };
    for (pointer, field) in [
        ("/spec/group", "spec.group"),
        ("/spec/scope", "spec.scope"),
        ("/spec/names/plural", "spec.names.plural"),
        ("/spec/names/kind", "spec.names.kind"),
    ] {
        let (before, after) = (old.pointer(pointer), obj.pointer(pointer));
        if before != after {
            let shown = after.map(Value::to_string).unwrap_or_else(|| "null".into());
            causes.push(Cause::new(
                "FieldValueInvalid",
                field,
                format!("Invalid value: {shown}: field is immutable"),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_crd_keeps_its_group_scope_and_names() {
        let crd = info("apiextensions.k8s.io", "CustomResourceDefinition");
        let v1 = json!({"spec": {"group": "a.io", "scope": "Namespaced",
            "names": {"plural": "xs", "kind": "X"}, "versions": []}});
        let mut more_versions = v1.clone();
        more_versions["spec"]["versions"] = json!([{"name": "v2"}]);
        assert!(validate(&crd, Some(&v1), &more_versions).is_ok());
        let mut cluster = v1.clone();
        cluster["spec"]["scope"] = json!("Cluster");
        let err = validate(&crd, Some(&v1), &cluster).unwrap_err();
        assert_eq!(err.code, 422);
        let mut renamed = v1.clone();
        renamed["spec"]["group"] = json!("b.io");
        renamed["spec"]["names"]["kind"] = json!("Y");
        assert_eq!(validate(&crd, Some(&v1), &renamed).unwrap_err().code, 422);
        assert!(validate(&crd, None, &cluster).is_ok());
    }

    fn info(group: &str, kind: &str) -> ResourceInfo {
        crate::resources::builtins()
            .into_iter()
            .find(|i| i.group == group && i.kind == kind)
            .expect("a built-in kind")
    }

    #[test]
    fn config_maps_and_secrets() {
        let cm = info("", "ConfigMap");
        let ok = json!({"metadata": {"name": "a"}, "data": {"k.y-_1": "v"}, "binaryData": {"b": "AAE="}});
        assert!(validate(&cm, None, &ok).is_ok());
        let code = |i: &ResourceInfo, v: Value| validate(i, None, &v).unwrap_err().code;
        assert_eq!(code(&cm, json!({"data": {"k": 1}})), 400);
        assert_eq!(code(&cm, json!({"data": ["k"]})), 400);
        assert_eq!(code(&cm, json!({"data": {"bad key": "v"}})), 422);
        assert_eq!(code(&cm, json!({"data": {"..k": "v"}})), 422);
        assert_eq!(code(&cm, json!({"binaryData": {"k": "not base64!"}})), 400);
        assert_eq!(
            code(
                &cm,
                json!({"data": {"k": "v"}, "binaryData": {"k": "AA=="}})
            ),
            422
        );
        let s = info("", "Secret");
        assert_eq!(code(&s, json!({"data": {"k": "plain text"}})), 400);
        assert_eq!(
            code(&s, json!({"type": "kubernetes.io/tls", "data": {}})),
            422
        );
        let frozen = json!({"immutable": true, "data": {"k": "dg=="}});
        let changed = json!({"immutable": true, "data": {"k": "dw=="}});
        assert_eq!(validate(&s, Some(&frozen), &changed).unwrap_err().code, 422);
        assert!(validate(&s, Some(&frozen), &frozen).is_ok());
    }
}
