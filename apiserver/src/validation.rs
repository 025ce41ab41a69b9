//! Custom resource validation against the structural schema, in the real server's order: prune unknown fields
//! (or reject them under `fieldValidation=Strict`), drop non-nullable nulls, apply defaults, validate types,
//! required, enum, format, bounds and patterns, then evaluate `x-kubernetes-validations` CEL rules (with
//! `oldSelf` on update). Every violation is one `causes` entry of a 422 Invalid.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use serde_json::{Map, Value};

use crate::cel_rules;
use crate::objects::name_of;
use crate::registry::ResourceInfo;
use crate::status::{ApiError, ApiResult, Cause};

/// Validates (and prunes/defaults) `new`; `old` is the stored object on update.
pub fn validate(
    info: &ResourceInfo,
    version: &str,
    old: Option<&Value>,
    new: &mut Value,
    strict: bool,
) -> ApiResult<()> {
    let Some(schema) = info
        .schema(version)
        .or_else(|| info.schema(&info.versions[0]))
    else {
        return Ok(());
    };
    let mut unknown = Vec::new();
    prune_and_default(schema, new, "", &mut unknown, true);
    if strict && !unknown.is_empty() {
        let list: Vec<String> = unknown
            .iter()
            .map(|p| format!("unknown field \"{p}\""))
            .collect();
        return Err(ApiError::bad_request(format!(
            "strict decoding error: {}",
            list.join(", ")
        )));
    }
    let mut causes = Vec::new();
    check(schema, new, "", &mut causes, true);
    if causes.is_empty() {
        cel_rules::evaluate(schema, new, old, "", &mut causes);
    }
    if causes.is_empty() {
        return Ok(());
    }
    Err(ApiError::invalid(
        &info.group,
        &info.kind,
        name_of(new),
        causes,
    ))
}

pub fn child_path(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn flag(schema: &Value, key: &str) -> bool {
    schema.get(key).and_then(Value::as_bool).unwrap_or(false)
}

/// `additionalProperties` as a schema (a map), if it is one.
fn additional(schema: &Value) -> Option<&Value> {
    schema.get("additionalProperties").filter(|a| a.is_object())
}

/// Whether this object level keeps apiVersion/kind/metadata without a schema for them.
fn keeps_type_meta(schema: &Value, root: bool) -> bool {
    root || flag(schema, "x-kubernetes-embedded-resource")
}

fn prune_and_default(
    schema: &Value,
    value: &mut Value,
    path: &str,
    unknown: &mut Vec<String>,
    root: bool,
) {
    match value {
        Value::Object(map) => {
            let props = schema.get("properties").and_then(Value::as_object);
            let addl = additional(schema);
            let preserve = flag(schema, "x-kubernetes-preserve-unknown-fields")
                || schema.get("additionalProperties") == Some(&Value::Bool(true));
            let type_meta = keeps_type_meta(schema, root);
            if props.is_some() || addl.is_none() {
                map.retain(|k, _| {
                    let known = props.is_some_and(|p| p.contains_key(k))
                        || (type_meta && matches!(k.as_str(), "apiVersion" | "kind" | "metadata"));
                    if !known && !preserve && addl.is_none() {
                        unknown.push(child_path(path, k));
                        return false;
                    }
                    true
                });
            }
            if let Some(props) = props {
                for (k, s) in props {
                    let nullable = flag(s, "nullable");
                    if map.get(k).is_some_and(Value::is_null) && !nullable {
                        map.remove(k);
                    }
                    if !map.contains_key(k)
                        && let Some(d) = s.get("default")
                    {
                        map.insert(k.clone(), d.clone());
                    }
                }
            }
            for (k, v) in map.iter_mut() {
                if root && k == "metadata" {
                    continue;
                }
                let s = props.and_then(|p| p.get(k)).or(addl);
                if let Some(s) = s {
                    prune_and_default(s, v, &child_path(path, k), unknown, false);
                }
            }
        }
        Value::Array(items) => {
            if let Some(s) = schema.get("items") {
                for (i, item) in items.iter_mut().enumerate() {
                    prune_and_default(s, item, &format!("{path}[{i}]"), unknown, false);
                }
            }
        }
        _ => {}
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn type_ok(want: &str, v: &Value) -> bool {
    match want {
        "integer" => json_type(v) == "integer",
        "number" => v.is_number(),
        other => json_type(v) == other,
    }
}

fn render(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}

fn check(schema: &Value, v: &Value, path: &str, causes: &mut Vec<Cause>, root: bool) {
    if v.is_null() && flag(schema, "nullable") {
        return;
    }
    let int_or_string = flag(schema, "x-kubernetes-int-or-string");
    if int_or_string {
        if !(v.is_string() || json_type(v) == "integer") {
            causes.push(Cause::new(
                "FieldValueTypeInvalid",
                path,
                format!(
                    "Invalid value: {}: {path} in body must be of type integer,string: \"{}\"",
                    render(v),
                    json_type(v)
                ),
            ));
        }
        return;
    }
    if let Some(want) = schema.get("type").and_then(Value::as_str)
        && !type_ok(want, v)
    {
        causes.push(Cause::new(
            "FieldValueTypeInvalid",
            path,
            format!(
                "Invalid value: \"{}\": {path} in body must be of type {want}: \"{}\"",
                json_type(v),
                json_type(v)
            ),
        ));
        return;
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(v)
    {
        let list: Vec<String> = allowed.iter().map(render).collect();
        causes.push(Cause::new(
            "FieldValueNotSupported",
            path,
            format!(
                "Unsupported value: {}: supported values: {}",
                render(v),
                list.join(", ")
            ),
        ));
    }
    match v {
        Value::String(s) => check_string(schema, s, path, causes),
        Value::Number(n) => check_number(schema, n.as_f64().unwrap_or(0.0), v, path, causes),
        Value::Array(items) => check_array(schema, items, path, causes),
        Value::Object(map) => check_object(schema, map, path, causes, root),
        _ => {}
    }
}

fn check_string(schema: &Value, s: &str, path: &str, causes: &mut Vec<Cause>) {
    let len = s.chars().count() as u64;
    if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
        && len > max
    {
        causes.push(Cause::new(
            "FieldValueTooLong",
            path,
            format!("Too long: may not be more than {max} bytes"),
        ));
    }
    if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
        && len < min
    {
        causes.push(Cause::new(
            "FieldValueInvalid",
            path,
            format!("Invalid value: {s:?}: {path} in body should be at least {min} chars long"),
        ));
    }
    if let Some(p) = schema.get("pattern").and_then(Value::as_str)
        && pattern(p).is_some_and(|re| !re.is_match(s))
    {
        causes.push(Cause::new(
            "FieldValueInvalid",
            path,
            format!("Invalid value: {s:?}: {path} in body should match '{p}'"),
        ));
    }
    if let Some(f) = schema.get("format").and_then(Value::as_str)
        && !format_ok(f, s)
    {
        causes.push(Cause::new(
            "FieldValueInvalid",
            path,
            format!("Invalid value: {s:?}: {path} in body must be of type {f}: {s:?}"),
        ));
    }
}

/// Compiled schema patterns, shared by all writes (an invalid pattern checks nothing, as it cannot match).
fn pattern(p: &str) -> Option<regex::Regex> {
    static CACHE: OnceLock<Mutex<HashMap<String, Option<regex::Regex>>>> = OnceLock::new();
    let mut cache = CACHE
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    cache
        .entry(p.to_string())
        .or_insert_with(|| regex::Regex::new(p).ok())
        .clone()
}

/// The formats Kubernetes checks; unknown formats are accepted, as upstream does.
fn format_ok(format: &str, s: &str) -> bool {
    use base64::Engine;
    match format {
        "date-time" | "datetime" => chrono::DateTime::parse_from_rfc3339(s).is_ok(),
        "date" => chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok(),
        "byte" => base64::engine::general_purpose::STANDARD.decode(s).is_ok(),
        "uuid" => uuid::Uuid::parse_str(s).is_ok(),
        "ipv4" => s.parse::<std::net::Ipv4Addr>().is_ok(),
        "ipv6" => s.parse::<std::net::Ipv6Addr>().is_ok(),
        "cidr" => s.split_once('/').is_some_and(|(ip, bits)| {
            ip.parse::<std::net::IpAddr>().is_ok() && bits.parse::<u8>().is_ok()
        }),
        "mac" => {
            let parts: Vec<&str> = s.split([':', '-']).collect();
            parts.len() == 6
                && parts
                    .iter()
                    .all(|p| p.len() == 2 && u8::from_str_radix(p, 16).is_ok())
        }
        "hostname" => crate::objects::is_dns_subdomain(s),
        _ => true,
    }
}

fn check_number(schema: &Value, n: f64, v: &Value, path: &str, causes: &mut Vec<Cause>) {
    if let Some(min) = schema.get("minimum").and_then(Value::as_f64) {
        let excl = flag(schema, "exclusiveMinimum");
        if n < min || (excl && n == min) {
            let rel = if excl {
                "greater than"
            } else {
                "greater than or equal to"
            };
            causes.push(Cause::new(
                "FieldValueInvalid",
                path,
                format!(
                    "Invalid value: {v}: {path} in body should be {rel} {}",
                    schema["minimum"]
                ),
            ));
        }
    }
    if let Some(max) = schema.get("maximum").and_then(Value::as_f64) {
        let excl = flag(schema, "exclusiveMaximum");
        if n > max || (excl && n == max) {
            let rel = if excl {
                "less than"
            } else {
                "less than or equal to"
            };
            causes.push(Cause::new(
                "FieldValueInvalid",
                path,
                format!(
                    "Invalid value: {v}: {path} in body should be {rel} {}",
                    schema["maximum"]
                ),
            ));
        }
    }
    let format = schema.get("format").and_then(Value::as_str);
    if format == Some("int32") && v.as_i64().is_some_and(|i| i32::try_from(i).is_err()) {
        causes.push(Cause::new(
            "FieldValueInvalid",
            path,
            format!("Invalid value: {v}: {path} in body must be of type int32: \"{v}\""),
        ));
    }
}

fn check_array(schema: &Value, items: &[Value], path: &str, causes: &mut Vec<Cause>) {
    if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
        && items.len() as u64 > max
    {
        causes.push(Cause::new(
            "FieldValueTooMany",
            path,
            format!("Too many: {}: must have at most {max} items", items.len()),
        ));
    }
    if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
        && (items.len() as u64) < min
    {
        causes.push(Cause::new(
            "FieldValueInvalid",
            path,
            format!(
                "Invalid value: {}: {path} in body should have at least {min} items",
                items.len()
            ),
        ));
    }
    let list_type = schema.get("x-kubernetes-list-type").and_then(Value::as_str);
    let keys: Vec<&str> = schema
        .get("x-kubernetes-list-map-keys")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut seen: Vec<Value> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let identity = match list_type {
            Some("set") => Some(item.clone()),
            Some("map") => Some(Value::Object(
                keys.iter()
                    .filter_map(|k| item.get(*k).map(|v| (k.to_string(), v.clone())))
                    .collect::<Map<_, _>>(),
            )),
            _ => None,
        };
        if let Some(id) = identity {
            if seen.contains(&id) {
                causes.push(Cause::new(
                    "FieldValueDuplicate",
                    format!("{path}[{i}]"),
                    format!("Duplicate value: {id}"),
                ));
            }
            seen.push(id);
        }
        if let Some(s) = schema.get("items") {
            check(s, item, &format!("{path}[{i}]"), causes, false);
        }
    }
}

fn check_object(
    schema: &Value,
    map: &Map<String, Value>,
    path: &str,
    causes: &mut Vec<Cause>,
    root: bool,
) {
    for req in schema
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        if !map.contains_key(req) {
            causes.push(Cause::new(
                "FieldValueRequired",
                child_path(path, req),
                "Required value",
            ));
        }
    }
    if let Some(max) = schema.get("maxProperties").and_then(Value::as_u64)
        && map.len() as u64 > max
    {
        causes.push(Cause::new(
            "FieldValueTooMany",
            path,
            format!("Too many: {}: must have at most {max} items", map.len()),
        ));
    }
    if let Some(min) = schema.get("minProperties").and_then(Value::as_u64)
        && (map.len() as u64) < min
    {
        causes.push(Cause::new(
            "FieldValueInvalid",
            path,
            format!(
                "Invalid value: {}: {path} in body should have at least {min} properties",
                map.len()
            ),
        ));
    }
    let props = schema.get("properties").and_then(Value::as_object);
    let addl = additional(schema);
    for (k, v) in map {
        if root && matches!(k.as_str(), "metadata" | "apiVersion" | "kind") {
            continue;
        }
        if let Some(s) = props.and_then(|p| p.get(k)).or(addl) {
            check(s, v, &child_path(path, k), causes, false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({"type": "object", "properties": {"spec": {"type": "object", "required": ["size"], "properties": {
            "size": {"type": "integer", "minimum": 1, "maximum": 10},
            "color": {"type": "string", "enum": ["red", "blue"], "default": "red"},
            "name": {"type": "string", "maxLength": 3, "pattern": "^[a-z]+$"},
            "when": {"type": "string", "format": "date-time"},
            "tags": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
            "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}}})
    }

    fn run(obj: &mut Value) -> (Vec<String>, Vec<Cause>) {
        let mut unknown = vec![];
        prune_and_default(&schema(), obj, "", &mut unknown, true);
        let mut causes = vec![];
        check(&schema(), obj, "", &mut causes, true);
        (unknown, causes)
    }

    #[test]
    fn prunes_defaults_and_keeps_preserved_fields() {
        let mut obj = json!({"apiVersion": "x/v1", "kind": "K", "metadata": {"name": "a"},
            "spec": {"size": 2, "extra": 1, "free": {"any": {"thing": 1}}}, "junk": true});
        let (unknown, causes) = run(&mut obj);
        assert_eq!(unknown, vec!["junk".to_string(), "spec.extra".to_string()]);
        assert!(causes.is_empty(), "{causes:?}");
        assert_eq!(obj["spec"]["color"], "red");
        assert_eq!(obj["spec"]["free"]["any"]["thing"], 1);
        assert!(obj.get("junk").is_none());
    }

    #[test]
    fn one_cause_per_violated_field() {
        let mut obj = json!({"spec": {"size": 11, "color": "green", "name": "ABCD", "when": "yesterday", "tags": ["a", "a"]}});
        let (_, causes) = run(&mut obj);
        let fields: Vec<&str> = causes.iter().map(|c| c.field.as_str()).collect();
        assert!(
            fields.contains(&"spec.size")
                && fields.contains(&"spec.color")
                && fields.contains(&"spec.when"),
            "{causes:?}"
        );
        assert!(fields.contains(&"spec.tags[1]"));
        assert_eq!(
            causes.iter().filter(|c| c.field == "spec.name").count(),
            2,
            "too long and pattern"
        );
        let mut missing = json!({"spec": {"size": "big"}});
        let (_, causes) = run(&mut missing);
        assert_eq!(causes[0].reason, "FieldValueTypeInvalid");
        let mut missing = json!({"spec": {}});
        let (_, causes) = run(&mut missing);
        assert_eq!(
            (causes[0].field.as_str(), causes[0].reason.as_str()),
            ("spec.size", "FieldValueRequired")
        );
    }
}
