//! Label selectors (`=`, `==`, `!=`, `in`, `notin`, `key`, `!key`) and field selectors, matched against an
//! object's stored metadata (never its JSON).

use crate::status::ApiError;
use crate::stored::Meta;

#[derive(Debug, Clone, PartialEq)]
enum Requirement {
    Eq(String, String),
    NotEq(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

/// A parsed label selector; the empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LabelSelector(Vec<Requirement>);

/// Splits on commas that are not inside parentheses nor escaped (`\,` in a field selector value).
fn split_top_level(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if std::mem::take(&mut escaped) {
            continue;
        }
        match c {
            '\\' => escaped = true,
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
        .into_iter()
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect()
}

fn parse_set(key: &str, rest: &str, raw: &str) -> Result<(String, Vec<String>), ApiError> {
    let inner = rest
        .trim()
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "unable to parse requirement: {raw}: expected (values)"
            ))
        })?;
    let values: Vec<String> = inner.split(',').map(|v| v.trim().to_string()).collect();
    // apimachinery's labels parser: "for 'in', 'notin' operators, values set can't be empty".
    if values.iter().all(String::is_empty) {
        return Err(ApiError::bad_request(format!(
            "unable to parse requirement: {raw}: for 'in', 'notin' operators, values set can't be empty"
        )));
    }
    Ok((key.trim().to_string(), values))
}

/// A label selector's key must be a qualified name and its values label values, as apimachinery's
/// `labels.NewRequirement` checks (an invalid one is a 400, never a selector that silently matches nothing).
fn check_requirement(raw: &str, key: &str, values: &[String]) -> Result<(), ApiError> {
    if !crate::objects::label_key_ok(key) {
        return Err(ApiError::bad_request(format!(
            "unable to parse requirement: key: Invalid value: {key:?}: name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (in {raw:?})"
        )));
    }
    for v in values {
        if !crate::objects::label_value_ok(v) {
            return Err(ApiError::bad_request(format!(
                "unable to parse requirement: values[0][{key}]: Invalid value: {v:?}: a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
            )));
        }
    }
    Ok(())
}

impl LabelSelector {
    pub fn parse(s: &str) -> Result<Self, ApiError> {
        let mut reqs = Vec::new();
        for raw in split_top_level(s) {
            let single = |k: &str, v: &str| (k.trim().to_string(), vec![v.trim().to_string()]);
            let (req, key, values) = if let Some(key) = raw.strip_prefix('!') {
                let k = key.trim().to_string();
                (Requirement::NotExists(k.clone()), k, vec![])
            } else if let Some((k, v)) = raw.split_once("!=") {
                let (k, vs) = single(k, v);
                (Requirement::NotEq(k.clone(), vs[0].clone()), k, vs)
            } else if let Some((k, v)) = raw.split_once("==") {
                let (k, vs) = single(k, v);
                (Requirement::Eq(k.clone(), vs[0].clone()), k, vs)
            } else if let Some((k, v)) = raw.split_once('=') {
                let (k, vs) = single(k, v);
                (Requirement::Eq(k.clone(), vs[0].clone()), k, vs)
            } else if let Some((k, rest)) = raw.split_once(" notin ") {
                let (k, vals) = parse_set(k, rest, raw)?;
                (Requirement::NotIn(k.clone(), vals.clone()), k, vals)
            } else if let Some((k, rest)) = raw.split_once(" in ") {
                let (k, vals) = parse_set(k, rest, raw)?;
                (Requirement::In(k.clone(), vals.clone()), k, vals)
            } else {
                let k = raw.trim().to_string();
                (Requirement::Exists(k.clone()), k, vec![])
            };
            check_requirement(raw, &key, &values)?;
            reqs.push(req);
        }
        Ok(LabelSelector(reqs))
    }

    pub fn matches(&self, meta: &Meta) -> bool {
        let get = |k: &str| meta.label(k);
        self.0.iter().all(|r| match r {
            Requirement::Eq(k, v) => get(k) == Some(v.as_str()),
            Requirement::NotEq(k, v) => get(k) != Some(v.as_str()),
            Requirement::In(k, vs) => get(k).is_some_and(|l| vs.iter().any(|v| v == l)),
            Requirement::NotIn(k, vs) => get(k).is_none_or(|l| !vs.iter().any(|v| v == l)),
            Requirement::Exists(k) => get(k).is_some(),
            Requirement::NotExists(k) => get(k).is_none(),
        })
    }
}

/// A parsed field selector: `path=value`, `path==value`, `path!=value`, comma-separated.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FieldSelector(Vec<(String, bool, String)>);

impl FieldSelector {
    /// `allowed` lists the field labels the resource supports besides `metadata.name` and `metadata.namespace`.
    pub fn parse(s: &str, allowed: &[&str]) -> Result<Self, ApiError> {
        let mut reqs = Vec::new();
        for raw in split_top_level(s) {
            let (field, eq, value) = if let Some((k, v)) = raw.split_once("!=") {
                (k, false, v)
            } else if let Some((k, v)) = raw.split_once("==") {
                (k, true, v)
            } else if let Some((k, v)) = raw.split_once('=') {
                (k, true, v)
            } else {
                return Err(ApiError::bad_request(format!(
                    "invalid selector: '{raw}'; can't understand '{raw}'"
                )));
            };
            let field = field.trim();
            if !(field == "metadata.name"
                || field == "metadata.namespace"
                || allowed.contains(&field))
            {
                return Err(ApiError::bad_request(format!(
                    "field label not supported: {field}"
                )));
            }
            reqs.push((field.to_string(), eq, unescape_field_value(value.trim())?));
        }
        Ok(FieldSelector(reqs))
    }

    /// Whether the object `namespace/name` with metadata `meta` matches (absent fields match "").
    pub fn matches(&self, namespace: &str, name: &str, meta: &Meta) -> bool {
        self.0.iter().all(|(field, eq, want)| {
            let have = match field.as_str() {
                "metadata.name" => name,
                "metadata.namespace" => namespace,
                other => meta.field(other).unwrap_or(""),
            };
            (have == want) == *eq
        })
    }
}

/// A field selector value as apimachinery's `fields.UnescapeValue` reads it: `\\`, `\,` and `\=` are escapes,
/// any other escape and an unescaped `,` or `=` are errors (400).
fn unescape_field_value(v: &str) -> Result<String, ApiError> {
    let mut out = String::with_capacity(v.len());
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(e @ ('\\' | ',' | '=')) => out.push(e),
                _ => {
                    return Err(ApiError::bad_request(format!(
                        "invalid field selector: invalid escape sequence in {v:?}"
                    )));
                }
            },
            ',' | '=' => {
                return Err(ApiError::bad_request(format!(
                    "invalid field selector: unescaped {c:?} in {v:?}"
                )));
            }
            c => out.push(c),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stored::field_labels_of;
    use serde_json::json;

    #[test]
    fn label_selector_operators() {
        let obj = Meta::of(
            "/configmaps",
            &json!({"metadata": {"labels": {"app": "web", "tier": "front"}}}),
        );
        let yes = [
            "app=web",
            "app==web",
            "tier!=back",
            "app in (web, db)",
            "tier notin (back)",
            "app",
            "!missing",
            "app=web,tier",
        ];
        for s in yes {
            assert!(
                LabelSelector::parse(s).unwrap().matches(&obj),
                "{s} should match"
            );
        }
        let no = [
            "app=db",
            "app!=web",
            "app in (db)",
            "app notin (web)",
            "missing",
            "!app",
            "app=web,missing",
        ];
        for s in no {
            assert!(
                !LabelSelector::parse(s).unwrap().matches(&obj),
                "{s} should not match"
            );
        }
        for bad in [
            "a b c=d",
            "app=we b",
            "app=a=b",
            "a/b/c",
            "app in ()",
            "app in (x",
            "-app",
            "app=web)",
        ] {
            assert!(LabelSelector::parse(bad).is_err(), "{bad} must be refused");
        }
    }

    #[test]
    fn field_selector_on_name_and_unknown_label() {
        let meta = Meta::default();
        let matches = |s: &str| {
            FieldSelector::parse(s, &[])
                .unwrap()
                .matches("ns", "a", &meta)
        };
        assert!(matches("metadata.name=a"));
        assert!(!matches("metadata.name!=a"));
        assert!(matches("metadata.namespace==ns"));
        let event = Meta::of("/events", &json!({"reason": "Booted"}));
        let reason =
            FieldSelector::parse("reason=Booted,type!=Warning", field_labels_of("/events"))
                .unwrap();
        assert!(reason.matches("ns", "e", &event));
        assert_eq!(FieldSelector::parse("spec.x=1", &[]).unwrap_err().code, 400);
        assert!(matches(r"metadata.name!=a\,b"));
        let escaped = Meta::default();
        assert!(
            FieldSelector::parse(r"metadata.name=a\,b\=c", &[])
                .unwrap()
                .matches("ns", "a,b=c", &escaped)
        );
        for bad in ["metadata.name=a=b", r"metadata.name=a\x"] {
            assert_eq!(
                FieldSelector::parse(bad, &[]).unwrap_err().code,
                400,
                "{bad}"
            );
        }
    }
}
