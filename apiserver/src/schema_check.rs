//! Value checks of the structural schema (types, enum, formats, bounds, patterns, list types, required, and the
//! `allOf`/`anyOf`/`oneOf`/`not` quantors) with validation ratcheting as kube-apiserver does it: on update, an
//! error in a value equal to the stored one (correlated by field name, list-map key or set value) is dropped,
//! except `required`, list-type duplicates and quantor errors, which are never ratcheted.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use serde_json::{Map, Value};

use crate::status::{Cause, child_path, push_key};
use std::fmt::Write as _;

/// Where the causes of one schema node go.
struct Sink<'a> {
    causes: &'a mut Vec<Cause>,
    value: &'a Value,
    old: Option<&'a Value>,
    /// Whether the value is unchanged from the stored one (ratchetable errors are then dropped); compared only
    /// once a node has an error, so valid writes never pay for it.
    unchanged: Option<bool>,
}

impl Sink<'_> {
    /// An error the real server ratchets (value validations).
    fn value(&mut self, cause: Cause) {
        let (old, v) = (self.old, self.value);
        if !*self.unchanged.get_or_insert_with(|| old == Some(v)) {
            self.causes.push(cause);
        }
    }

    /// An error that is never ratcheted.
    fn always(&mut self, cause: Cause) {
        self.causes.push(cause);
    }
}

/// A value not of the schema's type; `shown` is the value as the message shows it.
fn type_invalid(path: &str, shown: impl std::fmt::Display, want: &str, v: &Value) -> Cause {
    let actual = json_type(v);
    let message =
        format!("Invalid value: {shown}: {path} in body must be of type {want}: \"{actual}\"");
    Cause::new("FieldValueTypeInvalid", path, message)
}

/// The schema's bounds (`min…`, `max…` keywords) on how many items or properties a value has; `unit`
/// names them in the too-few message (apiextensions says "items" in the too-many one either way).
fn check_count(
    schema: &Value,
    (min_key, max_key): (&str, &str),
    len: usize,
    unit: &str,
    path: &str,
    sink: &mut Sink,
) {
    if let Some(max) = schema.get(max_key).and_then(Value::as_u64)
        && len as u64 > max
    {
        let message = format!("Too many: {len}: must have at most {max} items");
        sink.value(Cause::new("FieldValueTooMany", path, message));
    }
    if let Some(min) = schema.get(min_key).and_then(Value::as_u64)
        && (len as u64) < min
    {
        let message =
            format!("Invalid value: {len}: {path} in body should have at least {min} {unit}");
        sink.value(Cause::new("FieldValueInvalid", path, message));
    }
}

/// Validates `v` against `schema`; `old` is the correlated stored value on update (None on create).
pub fn check(
    schema: &Value,
    v: &Value,
    old: Option<&Value>,
    path: &mut String,
    causes: &mut Vec<Cause>,
    root: bool,
) {
    let mut sink = Sink {
        causes,
        value: v,
        old,
        unchanged: None,
    };
    check_node(schema, v, old, path, &mut sink, root);
}

fn flag(schema: &Value, key: &str) -> bool {
    schema.get(key).and_then(Value::as_bool).unwrap_or(false)
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

fn check_node(
    schema: &Value,
    v: &Value,
    old: Option<&Value>,
    path: &mut String,
    sink: &mut Sink,
    root: bool,
) {
    if v.is_null() && flag(schema, "nullable") {
        return;
    }
    check_quantors(schema, v, path, sink);
    let int_or_string = flag(schema, "x-kubernetes-int-or-string");
    if int_or_string {
        if !(v.is_string() || json_type(v) == "integer") {
            sink.value(type_invalid(path, render(v), "integer,string", v));
        }
        return;
    }
    if let Some(want) = schema.get("type").and_then(Value::as_str)
        && !type_ok(want, v)
    {
        let shown = format!("\"{}\"", json_type(v));
        sink.value(type_invalid(path, shown, want, v));
        return;
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(v)
    {
        let list: Vec<String> = allowed.iter().map(render).collect();
        sink.value(Cause::unsupported(&*path, render(v), &list.join(", ")));
    }
    match v {
        Value::String(s) => check_string(schema, s, path, sink),
        Value::Number(n) => check_number(schema, n.as_f64().unwrap_or(0.0), v, path, sink),
        Value::Array(items) => check_array(schema, items, old, path, sink),
        Value::Object(map) => check_object(schema, map, old, path, sink, root),
        _ => {}
    }
}

fn check_string(schema: &Value, s: &str, path: &str, sink: &mut Sink) {
    let len = s.chars().count() as u64;
    if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
        && len > max
    {
        sink.value(Cause::new(
            "FieldValueTooLong",
            path,
            format!("Too long: may not be more than {max} bytes"),
        ));
    }
    if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
        && len < min
    {
        sink.value(Cause::new(
            "FieldValueInvalid",
            path,
            format!("Invalid value: {s:?}: {path} in body should be at least {min} chars long"),
        ));
    }
    if let Some(p) = schema.get("pattern").and_then(Value::as_str)
        && pattern(p).is_some_and(|re| !re.is_match(s))
    {
        sink.value(Cause::new(
            "FieldValueInvalid",
            path,
            format!("Invalid value: {s:?}: {path} in body should match '{p}'"),
        ));
    }
    if let Some(f) = schema.get("format").and_then(Value::as_str)
        && !format_ok(f, s)
    {
        sink.value(Cause::new(
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

fn check_number(schema: &Value, n: f64, v: &Value, path: &str, sink: &mut Sink) {
    if let Some(min) = schema.get("minimum").and_then(Value::as_f64) {
        let excl = flag(schema, "exclusiveMinimum");
        if n < min || (excl && n == min) {
            let rel = if excl {
                "greater than"
            } else {
                "greater than or equal to"
            };
            sink.value(Cause::new(
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
            sink.value(Cause::new(
                "FieldValueInvalid",
                path,
                format!(
                    "Invalid value: {v}: {path} in body should be {rel} {}",
                    schema["maximum"]
                ),
            ));
        }
    }
    if let Some(m) = schema.get("multipleOf").and_then(Value::as_f64)
        && m > 0.0
        && (n / m).fract() != 0.0
    {
        sink.value(Cause::new(
            "FieldValueInvalid",
            path,
            format!(
                "Invalid value: {v}: {path} in body should be a multiple of {}",
                schema["multipleOf"]
            ),
        ));
    }
    let format = schema.get("format").and_then(Value::as_str);
    if format == Some("int32") && v.as_i64().is_some_and(|i| i32::try_from(i).is_err()) {
        sink.value(Cause::new(
            "FieldValueInvalid",
            path,
            format!("Invalid value: {v}: {path} in body must be of type int32: \"{v}\""),
        ));
    }
}

fn check_array(
    schema: &Value,
    items: &[Value],
    old: Option<&Value>,
    path: &mut String,
    sink: &mut Sink,
) {
    let bounds = ("minItems", "maxItems");
    check_count(schema, bounds, items.len(), "items", path, sink);
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
                sink.always(Cause::new(
                    "FieldValueDuplicate",
                    format!("{path}[{i}]"),
                    format!("Duplicate value: {id}"),
                ));
            }
            seen.push(id);
        }
        if let Some(s) = schema.get("items") {
            let old_item = correlated_item(list_type, &keys, item, old);
            let len = path.len();
            let _ = write!(path, "[{i}]");
            check(s, item, old_item, path, sink.causes, false);
            path.truncate(len);
        }
    }
}

fn check_object(
    schema: &Value,
    map: &Map<String, Value>,
    old: Option<&Value>,
    path: &mut String,
    sink: &mut Sink,
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
            sink.always(Cause::new(
                "FieldValueRequired",
                child_path(path, req),
                "Required value",
            ));
        }
    }
    let bounds = ("minProperties", "maxProperties");
    check_count(schema, bounds, map.len(), "properties", path, sink);
    let props = schema.get("properties").and_then(Value::as_object);
    let addl = schema.get("additionalProperties").filter(|a| a.is_object());
    for (k, v) in map {
        if root && matches!(k.as_str(), "metadata" | "apiVersion" | "kind") {
            continue;
        }
        if let Some(s) = props.and_then(|p| p.get(k)).or(addl) {
            let old_v = old.and_then(|o| o.get(k));
            let len = path.len();
            push_key(path, k);
            check(s, v, old_v, path, sink.causes, false);
            path.truncate(len);
        }
    }
}

/// The stored item an item of a list correlates with: list-map items by their keys, set items by value;
/// atomic list items correlate with nothing (as upstream).
fn correlated_item<'a>(
    list_type: Option<&str>,
    keys: &[&str],
    item: &Value,
    old: Option<&'a Value>,
) -> Option<&'a Value> {
    let old = old?.as_array()?;
    match list_type {
        Some("map") => old
            .iter()
            .find(|o| keys.iter().all(|k| o.get(*k) == item.get(*k))),
        Some("set") => old.iter().find(|o| *o == item),
        _ => None,
    }
}

/// Whether `v` passes `schema` (quantor branches are checked without ratcheting).
fn passes(schema: &Value, v: &Value, path: &mut String) -> bool {
    let mut causes = Vec::new();
    check(schema, v, None, path, &mut causes, false);
    causes.is_empty()
}

/// `allOf`, `anyOf`, `oneOf` and `not`: value validations only in structural schemas, never ratcheted.
fn check_quantors(schema: &Value, v: &Value, path: &str, sink: &mut Sink) {
    const QUANTORS: [&str; 4] = ["allOf", "anyOf", "oneOf", "not"];
    if !QUANTORS.iter().any(|q| schema.get(*q).is_some()) {
        return;
    }
    let mut buf = path.to_string();
    let branches = |key: &str| {
        schema
            .get(key)
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default()
    };
    let invalid = |what: &str| {
        Cause::new(
            "FieldValueInvalid",
            &*path,
            format!("Invalid value: {}: {path} in body {what}", invalid_value(v)),
        )
    };
    for sub in branches("allOf") {
        check(sub, v, None, &mut buf, sink.causes, false);
    }
    let any = branches("anyOf");
    if !any.is_empty() && !any.iter().any(|s| passes(s, v, &mut buf)) {
        sink.always(invalid("must validate at least one schema (anyOf)"));
    }
    let one = branches("oneOf");
    if !one.is_empty() && one.iter().filter(|s| passes(s, v, &mut buf)).count() != 1 {
        sink.always(invalid("must validate one and only one schema (oneOf)"));
    }
    if let Some(not) = schema.get("not")
        && passes(not, v, &mut buf)
    {
        sink.always(invalid("must not validate the schema (not)"));
    }
}

/// How the real server shows a value in an `Invalid value` message (compound values by their type).
fn invalid_value(v: &Value) -> String {
    match v {
        Value::Object(_) | Value::Array(_) => format!("\"{}\"", json_type(v)),
        other => render(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn causes(schema: &Value, v: &Value, old: Option<&Value>) -> Vec<Cause> {
        let mut out = Vec::new();
        check(schema, v, old, &mut String::new(), &mut out, true);
        out
    }

    fn fields(c: &[Cause]) -> Vec<(&str, &str)> {
        c.iter()
            .map(|c| (c.field.as_str(), c.message.as_str()))
            .collect()
    }

    #[test]
    fn quantors_validate_values() {
        let schema = json!({"type": "object", "properties": {"spec": {"type": "object",
            "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}, "n": {"type": "integer"}},
            "oneOf": [{"required": ["a"]}, {"required": ["b"]}],
            "anyOf": [{"properties": {"n": {"minimum": 10}}}, {"properties": {"n": {"maximum": 0}}}],
            "allOf": [{"properties": {"n": {"multipleOf": 1, "maximum": 100}}}],
            "not": {"required": ["forbidden"], "properties": {"forbidden": {}}}}}});
        assert!(causes(&schema, &json!({"spec": {"a": 1, "n": 20}}), None).is_empty());
        let both = causes(&schema, &json!({"spec": {"a": 1, "b": 2, "n": 20}}), None);
        assert_eq!(
            fields(&both),
            [(
                "spec",
                "Invalid value: \"object\": spec in body must validate one and only one schema (oneOf)"
            )]
        );
        let neither = causes(&schema, &json!({"spec": {"n": 20}}), None);
        assert_eq!(neither.len(), 1, "{neither:?}");
        let middle = causes(&schema, &json!({"spec": {"a": 1, "n": 5}}), None);
        assert_eq!(
            fields(&middle),
            [(
                "spec",
                "Invalid value: \"object\": spec in body must validate at least one schema (anyOf)"
            )]
        );
        let too_big = causes(&schema, &json!({"spec": {"a": 1, "n": 200}}), None);
        assert_eq!(
            too_big[0].field, "spec.n",
            "allOf branch errors: {too_big:?}"
        );
        let not = causes(
            &schema,
            &json!({"spec": {"a": 1, "n": 20, "forbidden": 1}}),
            None,
        );
        assert_eq!(
            fields(&not),
            [(
                "spec",
                "Invalid value: \"object\": spec in body must not validate the schema (not)"
            )]
        );
    }

    #[test]
    fn unchanged_invalid_values_are_ratcheted_but_required_and_quantors_are_not() {
        let schema = json!({"type": "object", "properties": {"spec": {"type": "object",
            "required": ["size"],
            "properties": {
                "name": {"type": "string", "maxLength": 3},
                "size": {"type": "integer"},
                "ports": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                    "items": {"type": "object", "properties": {"name": {"type": "string"},
                        "port": {"type": "integer", "maximum": 1000}}}},
                "tags": {"type": "array", "items": {"type": "string", "maxLength": 2}}},
            "not": {"required": ["bad"]}}}});
        let old = json!({"spec": {"name": "toolong", "size": 1, "ports": [{"name": "a", "port": 5000}],
            "tags": ["long"]}});
        // Only `size` changes: the stored violations in `name` and the list-map item stay acceptable.
        let mut new = old.clone();
        new["spec"]["size"] = json!(2);
        new["spec"]["tags"] = json!(["ok"]);
        assert!(causes(&schema, &new, Some(&old)).is_empty());
        // Changing an invalid value to another invalid value is not ratcheted.
        new["spec"]["name"] = json!("stilltoolong");
        assert_eq!(causes(&schema, &new, Some(&old))[0].field, "spec.name");
        // Items of an atomic list do not correlate, so an unchanged invalid item still fails once the list changes.
        let mut new = old.clone();
        new["spec"]["tags"] = json!(["long", "x"]);
        assert_eq!(causes(&schema, &new, Some(&old))[0].field, "spec.tags[0]");
        // Without the stored object (a create) nothing is ratcheted.
        assert_eq!(causes(&schema, &old, None).len(), 3);
        // `required` and quantor errors are reported even where nothing changed.
        let old = json!({"spec": {"bad": 1}});
        let c = causes(&schema, &old, Some(&old));
        let reasons: Vec<&str> = c.iter().map(|c| c.reason.as_str()).collect();
        assert_eq!(
            reasons,
            ["FieldValueInvalid", "FieldValueRequired"],
            "{c:?}"
        );
    }
}
