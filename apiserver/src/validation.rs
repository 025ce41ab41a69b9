//! Custom resource validation against the structural schema, in the real server's order: prune unknown fields
//! (or reject them under `fieldValidation=Strict`), drop non-nullable nulls, apply defaults, validate values
//! (`schema_check`, with ratcheting on update), then evaluate `x-kubernetes-validations` CEL rules (with
//! `oldSelf` on update). Every violation is one `causes` entry of a 422 Invalid.

use std::fmt::Write as _;

use serde_json::Value;

use crate::cel_rules;
use crate::objects::name_of;
use crate::resources::ResourceInfo;
use crate::schema_check::check;
use crate::status::{ApiError, ApiResult, child_path, push_key};

/// Validates (and prunes/defaults) `new`; `old` is the stored object on update.
pub fn validate(
    info: &ResourceInfo,
    version: &str,
    old: Option<&Value>,
    new: &mut Value,
    strict: bool,
) -> ApiResult<()> {
    if !info.custom {
        crate::builtin_validation::validate(info, old, new)?;
    }
    let Some(schema) = info
        .schema(version)
        .or_else(|| info.schema(&info.versions[0]))
    else {
        return Ok(());
    };
    let mut unknown = Vec::new();
    prune_and_default(schema, new, &mut String::new(), &mut unknown, true);
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
    check(schema, new, old, &mut String::new(), &mut causes, true);
    if causes.is_empty() {
        cel_rules::evaluate(schema, new, old, &mut String::new(), &mut causes);
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
    path: &mut String,
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
                    let len = path.len();
                    push_key(path, k);
                    prune_and_default(s, v, path, unknown, false);
                    path.truncate(len);
                }
            }
        }
        Value::Array(items) => {
            if let Some(s) = schema.get("items") {
                for (i, item) in items.iter_mut().enumerate() {
                    let len = path.len();
                    let _ = write!(path, "[{i}]");
                    prune_and_default(s, item, path, unknown, false);
                    path.truncate(len);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::Cause;
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
        prune_and_default(&schema(), obj, &mut String::new(), &mut unknown, true);
        let mut causes = vec![];
        check(&schema(), obj, None, &mut String::new(), &mut causes, true);
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
