//! `x-kubernetes-validations` CEL rules, evaluated with the `cel` crate. `self` is the value at the schema node,
//! `oldSelf` the value at the same place in the stored object (list-map items correlated by key); transition
//! rules (those using `oldSelf`) only run on update when the old value exists, as upstream. A failed rule's
//! message comes from its `messageExpression` when that evaluates to a non-empty one-line string. Rules without
//! `oldSelf` are ratcheted: they are skipped for a value unchanged from the stored one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use serde_json::Value;

use crate::status::{Cause, push_key};
use std::fmt::Write as _;

type Compiled = Result<Arc<cel::Program>, String>;

/// Compiled rules, shared by all writes (CRD rules are few and repeat on every write).
fn compile(rule: &str) -> Compiled {
    static CACHE: OnceLock<Mutex<HashMap<String, Compiled>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(hit) = cache.lock().unwrap_or_else(|e| e.into_inner()).get(rule) {
        return hit.clone();
    }
    let compiled = cel::Program::compile(rule)
        .map(Arc::new)
        .map_err(|e| e.to_string());
    cache
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(rule.to_string(), compiled.clone());
    compiled
}

fn to_cel(v: &Value) -> cel::Value {
    match v {
        Value::Null => cel::Value::Null,
        Value::Bool(b) => cel::Value::Bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => cel::Value::Int(i),
            None => cel::Value::Float(n.as_f64().unwrap_or(0.0)),
        },
        Value::String(s) => cel::Value::String(Arc::new(s.clone())),
        Value::Array(a) => cel::Value::List(Arc::new(a.iter().map(to_cel).collect())),
        Value::Object(m) => {
            let map: HashMap<String, cel::Value> =
                m.iter().map(|(k, v)| (k.clone(), to_cel(v))).collect();
            cel::Value::from(map)
        }
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Object(_) => "object",
        Value::Array(_) => "array",
        Value::String(_) => "string",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::Bool(_) => "boolean",
        Value::Null => "null",
    }
}

/// `unchanged`: `new` equals the stored value, so a rule that does not read `oldSelf` is ratcheted
/// whatever it yields and is not evaluated at all (most writes change only a small part of an object).
fn run_rules(
    schema: &Value,
    new: &Value,
    old: Option<&Value>,
    unchanged: bool,
    path: &str,
    causes: &mut Vec<Cause>,
) {
    let Some(rules) = schema
        .get("x-kubernetes-validations")
        .and_then(Value::as_array)
    else {
        return;
    };
    for r in rules {
        let Some(rule) = r.get("rule").and_then(Value::as_str) else {
            continue;
        };
        if unchanged && !rule.contains("oldSelf") {
            continue;
        }
        let field = match r.get("fieldPath").and_then(Value::as_str) {
            Some(fp) => format!("{path}{fp}"),
            None => path.to_string(),
        };
        let program = match compile(rule) {
            Ok(p) => p,
            Err(e) => {
                causes.push(Cause::new(
                    "FieldValueInvalid",
                    &field,
                    format!("Invalid value: \"{rule}\": compilation failed: {e}"),
                ));
                continue;
            }
        };
        let transition = program.references().has_variable("oldSelf");
        if transition && old.is_none() {
            continue;
        }
        let mut ctx = cel::Context::default();
        ctx.add_variable_from_value("self", to_cel(new));
        if let Some(o) = old {
            ctx.add_variable_from_value("oldSelf", to_cel(o));
        }
        let message = || {
            r.get("messageExpression")
                .and_then(Value::as_str)
                .and_then(|expr| expression_message(expr, &ctx))
                .or_else(|| r.get("message").and_then(Value::as_str).map(String::from))
                .unwrap_or_else(|| format!("failed rule: {rule}"))
        };
        let reason = r
            .get("reason")
            .and_then(Value::as_str)
            .unwrap_or("FieldValueInvalid");
        let result = program.execute(&ctx);
        // Validation ratcheting: an unchanged value keeps passing the rules it passed when it was stored.
        if !matches!(result, Ok(cel::Value::Bool(true))) && !transition && old == Some(new) {
            continue;
        }
        match result {
            Ok(cel::Value::Bool(true)) => {}
            Ok(cel::Value::Bool(false)) => {
                let message = message();
                let text = match reason {
                    "FieldValueForbidden" => format!("Forbidden: {message}"),
                    "FieldValueRequired" => format!("Required value: {message}"),
                    "FieldValueDuplicate" => format!("Duplicate value: {message}"),
                    _ => format!("Invalid value: \"{}\": {message}", type_name(new)),
                };
                causes.push(Cause::new(reason, &field, text));
            }
            Ok(other) => causes.push(Cause::new(
                "FieldValueInvalid",
                &field,
                format!(
                    "Invalid value: \"{}\": rule did not evaluate to a bool: {other:?}",
                    type_name(new)
                ),
            )),
            Err(e) => causes.push(Cause::new(
                "FieldValueInvalid",
                &field,
                format!(
                    "Invalid value: \"{}\": rule evaluation error: {e}",
                    type_name(new)
                ),
            )),
        }
    }
}

/// The message a `messageExpression` gives, if it evaluates to a non-empty string without line breaks (else
/// the rule's `message` is used, as upstream does).
fn expression_message(expr: &str, ctx: &cel::Context) -> Option<String> {
    match compile(expr).ok()?.execute(ctx) {
        Ok(cel::Value::String(s)) if !s.trim().is_empty() && !s.contains(['\n', '\r']) => {
            Some(s.to_string())
        }
        _ => None,
    }
}

/// Evaluates every rule in the schema tree against `new` (and `old` for transition rules).
pub fn evaluate(
    schema: &Value,
    new: &Value,
    old: Option<&Value>,
    path: &mut String,
    causes: &mut Vec<Cause>,
) {
    evaluate_tree(schema, new, old, false, path, causes);
}

/// `known_unchanged`: an ancestor equals its stored value, so this value does too (compared once
/// per changed level, not again at every depth).
fn evaluate_tree(
    schema: &Value,
    new: &Value,
    old: Option<&Value>,
    known_unchanged: bool,
    path: &mut String,
    causes: &mut Vec<Cause>,
) {
    let unchanged = known_unchanged || old == Some(new);
    run_rules(schema, new, old, unchanged, path, causes);
    match new {
        Value::Object(map) => {
            let props = schema.get("properties").and_then(Value::as_object);
            let addl = schema.get("additionalProperties").filter(|a| a.is_object());
            for (k, v) in map {
                if path.is_empty() && k == "metadata" {
                    continue;
                }
                if let Some(s) = props.and_then(|p| p.get(k)).or(addl) {
                    let len = path.len();
                    push_key(path, k);
                    evaluate_tree(s, v, old.and_then(|o| o.get(k)), unchanged, path, causes);
                    path.truncate(len);
                }
            }
        }
        Value::Array(items) => {
            let Some(item_schema) = schema.get("items") else {
                return;
            };
            let keys: Vec<&str> = schema
                .get("x-kubernetes-list-map-keys")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let is_map =
                schema.get("x-kubernetes-list-type").and_then(Value::as_str) == Some("map");
            for (i, item) in items.iter().enumerate() {
                // Only list-map items correlate with an old item (by their keys), as upstream.
                let old_item = if is_map {
                    old.and_then(Value::as_array).and_then(|o| {
                        o.iter()
                            .find(|x| keys.iter().all(|k| x.get(*k) == item.get(*k)))
                    })
                } else {
                    None
                };
                let len = path.len();
                let _ = write!(path, "[{i}]");
                // Items of an atomic list have no old counterpart, so nothing is ratcheted there.
                evaluate_tree(
                    item_schema,
                    item,
                    old_item,
                    unchanged && is_map,
                    path,
                    causes,
                );
                path.truncate(len);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn immutability_and_has_rules() {
        let schema = json!({"type": "object", "properties": {"spec": {"type": "object",
            "x-kubernetes-validations": [{"rule": "has(self.a) != has(self.b)", "message": "exactly one of a or b"}],
            "properties": {"a": {"type": "string", "x-kubernetes-validations": [{"rule": "self == oldSelf", "message": "a is immutable"}]},
                           "b": {"type": "integer"}}}}});
        let mut causes = vec![];
        evaluate(
            &schema,
            &json!({"spec": {"a": "x"}}),
            None,
            &mut String::new(),
            &mut causes,
        );
        assert!(causes.is_empty(), "{causes:?}");
        evaluate(
            &schema,
            &json!({"spec": {"a": "x", "b": 1}}),
            None,
            &mut String::new(),
            &mut causes,
        );
        assert_eq!(causes.len(), 1);
        assert_eq!(causes[0].field, "spec");
        assert_eq!(
            causes[0].message,
            "Invalid value: \"object\": exactly one of a or b"
        );
        causes.clear();
        evaluate(
            &schema,
            &json!({"spec": {"a": "y"}}),
            Some(&json!({"spec": {"a": "x"}})),
            &mut String::new(),
            &mut causes,
        );
        assert_eq!(causes.len(), 1, "{causes:?}");
        assert_eq!(causes[0].field, "spec.a");
    }

    #[test]
    fn message_expressions_and_ratcheting() {
        let schema = json!({"type": "object", "properties": {"spec": {"type": "object",
            "properties": {"size": {"type": "integer", "x-kubernetes-validations": [
                {"rule": "self <= 10", "message": "static", "messageExpression": "'size ' + string(self) + ' exceeds 10'"},
                {"rule": "self != 7", "message": "seven is unlucky", "messageExpression": "''"},
                {"rule": "self != 8", "messageExpression": "1 + 1"}]}}}}});
        let run = |new: Value, old: Option<Value>| {
            let mut causes = vec![];
            evaluate(&schema, &new, old.as_ref(), &mut String::new(), &mut causes);
            causes.into_iter().map(|c| c.message).collect::<Vec<_>>()
        };
        assert_eq!(
            run(json!({"spec": {"size": 11}}), None),
            ["Invalid value: \"integer\": size 11 exceeds 10"]
        );
        // An empty or non-string messageExpression result falls back to the message (or the default one).
        assert_eq!(
            run(json!({"spec": {"size": 7}}), None),
            ["Invalid value: \"integer\": seven is unlucky"]
        );
        assert_eq!(
            run(json!({"spec": {"size": 8}}), None),
            ["Invalid value: \"integer\": failed rule: self != 8"]
        );
        // Ratcheting: an unchanged violation passes on update; a changed one does not.
        let stored = json!({"spec": {"size": 11}});
        assert!(run(json!({"spec": {"size": 11}}), Some(stored.clone())).is_empty());
        assert_eq!(run(json!({"spec": {"size": 12}}), Some(stored)).len(), 1);
    }
}
