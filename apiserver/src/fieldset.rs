//! Field sets in the `FieldsV1` format of `managedFields` (`f:name`, `k:{..}`, `v:..`, `.`), built from objects
//! guided by the structural schema's list types (`x-kubernetes-list-type`, `x-kubernetes-list-map-keys`).

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde_json::{Map, Value, json};

/// A tree of owned fields. `own` marks the node itself as owned (a leaf, or a list-map element's `.`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FieldSet {
    pub own: bool,
    pub children: BTreeMap<String, FieldSet>,
}

/// Metadata fields that managedFields track; the rest (name, uid, resourceVersion, ...) are server-owned.
const TRACKED_METADATA: &[&str] = &["labels", "annotations", "finalizers", "ownerReferences"];

fn metadata_schema() -> &'static Value {
    static SCHEMA: OnceLock<Value> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        json!({"type": "object", "properties": {
            "finalizers": {"type": "array", "x-kubernetes-list-type": "set"},
            "ownerReferences": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["uid"]},
        }})
    })
}

/// How a list is merged and tracked.
enum ListType {
    Atomic,
    Set,
    Map(Vec<String>),
}

fn list_type(schema: Option<&Value>) -> ListType {
    let Some(s) = schema else {
        return ListType::Atomic;
    };
    match s.get("x-kubernetes-list-type").and_then(Value::as_str) {
        Some("set") => ListType::Set,
        Some("map") => ListType::Map(
            s.get("x-kubernetes-list-map-keys")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|k| k.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default(),
        ),
        _ => ListType::Atomic,
    }
}

pub fn child_schema<'a>(schema: Option<&'a Value>, key: &str) -> Option<&'a Value> {
    let s = schema?;
    s.get("properties")
        .and_then(|p| p.get(key))
        .or_else(|| s.get("additionalProperties").filter(|a| a.is_object()))
}

pub fn item_schema(schema: Option<&Value>) -> Option<&Value> {
    schema?.get("items")
}

fn is_atomic_map(schema: Option<&Value>) -> bool {
    schema
        .and_then(|s| s.get("x-kubernetes-map-type"))
        .and_then(Value::as_str)
        == Some("atomic")
}

/// The `k:{...}` path element of a list-map item.
fn map_key(item: &Value, keys: &[String]) -> String {
    let mut m = Map::new();
    for k in keys {
        if let Some(v) = item.get(k) {
            m.insert(k.clone(), v.clone());
        }
    }
    format!("k:{}", Value::Object(m))
}

fn set_key(item: &Value) -> String {
    format!("v:{item}")
}

fn leaf() -> FieldSet {
    FieldSet {
        own: true,
        children: BTreeMap::new(),
    }
}

impl FieldSet {
    pub fn is_empty(&self) -> bool {
        !self.own && self.children.is_empty()
    }

    /// Every field of an object (top level: all but apiVersion/kind; metadata: only the tracked fields).
    pub fn of_object(obj: &Value, schema: Option<&Value>) -> FieldSet {
        Self::diff_object(None, obj, schema)
    }

    /// Fields of `new` that are absent from or different in `old`.
    pub fn diff_object(old: Option<&Value>, new: &Value, schema: Option<&Value>) -> FieldSet {
        let mut set = FieldSet::default();
        let Some(map) = new.as_object() else {
            return set;
        };
        let meta_schema = metadata_schema();
        for (k, v) in map {
            if k == "apiVersion" || k == "kind" {
                continue;
            }
            let old_v = old.and_then(|o| o.get(k));
            let child = if k == "metadata" {
                let mut meta = FieldSet::default();
                for tracked in TRACKED_METADATA {
                    if let Some(tv) = v.get(*tracked) {
                        let sub = diff(
                            old_v.and_then(|o| o.get(*tracked)),
                            tv,
                            child_schema(Some(meta_schema), tracked),
                        );
                        if !sub.is_empty() {
                            meta.children.insert(format!("f:{tracked}"), sub);
                        }
                    }
                }
                meta
            } else {
                diff(old_v, v, child_schema(schema, k))
            };
            if !child.is_empty() {
                set.children.insert(format!("f:{k}"), child);
            }
        }
        set
    }

    /// Adds every owned node of `other`; true if that added any.
    pub fn union(&mut self, other: &FieldSet) -> bool {
        let mut added = other.own && !self.own;
        self.own |= other.own;
        for (k, v) in &other.children {
            match self.children.get_mut(k) {
                Some(mine) => added |= mine.union(v),
                None => {
                    self.children.insert(k.clone(), v.clone());
                    added = true;
                }
            }
        }
        added
    }

    /// Removes every owned node of `other` from `self`; true if that removed any.
    pub fn subtract(&mut self, other: &FieldSet) -> bool {
        let mut removed = other.own && self.own;
        if other.own {
            self.own = false;
        }
        for (k, v) in &other.children {
            if let Some(mine) = self.children.get_mut(k) {
                removed |= mine.subtract(v);
                if mine.is_empty() {
                    self.children.remove(k);
                }
            }
        }
        removed
    }

    /// Owned paths present in both sets.
    pub fn intersect(&self, other: &FieldSet) -> FieldSet {
        let mut out = FieldSet {
            own: self.own && other.own,
            children: BTreeMap::new(),
        };
        for (k, v) in &self.children {
            if let Some(o) = other.children.get(k) {
                let i = v.intersect(o);
                if !i.is_empty() {
                    out.children.insert(k.clone(), i);
                }
            }
        }
        out
    }

    /// All owned paths, each as its list of path elements.
    pub fn paths(&self) -> Vec<Vec<String>> {
        let mut out = Vec::new();
        self.collect_paths(&mut Vec::new(), &mut out);
        out
    }

    fn collect_paths(&self, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
        if self.own {
            out.push(prefix.clone());
        }
        for (k, v) in &self.children {
            prefix.push(k.clone());
            v.collect_paths(prefix, out);
            prefix.pop();
        }
    }

    /// Keeps only paths that still exist in `obj`; true if any was dropped.
    pub fn retain_existing(&mut self, obj: &Value) -> bool {
        let mut dropped = false;
        self.children
            .retain(|k, child| match lookup_element(obj, k) {
                Some(v) => {
                    dropped |= child.retain_existing(v);
                    let keep = !child.is_empty();
                    dropped |= !keep;
                    keep
                }
                None => {
                    dropped = true;
                    false
                }
            });
        dropped
    }

    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        if self.own && !self.children.is_empty() {
            m.insert(".".into(), json!({}));
        }
        for (k, v) in &self.children {
            m.insert(k.clone(), v.to_json());
        }
        Value::Object(m)
    }

    pub fn from_json(v: &Value) -> FieldSet {
        let mut set = FieldSet::default();
        let Some(m) = v.as_object() else { return set };
        if m.is_empty() {
            set.own = true;
        }
        for (k, child) in m {
            if k == "." {
                set.own = true;
            } else {
                set.children.insert(k.clone(), FieldSet::from_json(child));
            }
        }
        set
    }
}

/// Field set of `new` relative to `old` for one value.
fn diff(old: Option<&Value>, new: &Value, schema: Option<&Value>) -> FieldSet {
    if old == Some(new) {
        return FieldSet::default();
    }
    match new {
        Value::Object(map) if !map.is_empty() && !is_atomic_map(schema) => {
            let mut set = FieldSet::default();
            for (k, v) in map {
                let sub = diff(old.and_then(|o| o.get(k)), v, child_schema(schema, k));
                if !sub.is_empty() {
                    set.children.insert(format!("f:{k}"), sub);
                }
            }
            if set.is_empty() && old.is_none() {
                leaf()
            } else {
                set
            }
        }
        Value::Array(items) => match list_type(schema) {
            ListType::Atomic => leaf(),
            ListType::Set => {
                let mut set = FieldSet::default();
                let old_items = old.and_then(Value::as_array);
                for item in items {
                    if !old_items.is_some_and(|o| o.contains(item)) {
                        set.children.insert(set_key(item), leaf());
                    }
                }
                if set.is_empty() && old.is_none() {
                    leaf()
                } else {
                    set
                }
            }
            ListType::Map(keys) => {
                let mut set = FieldSet::default();
                let item_s = item_schema(schema);
                let old_items = old.and_then(Value::as_array);
                for item in items {
                    let key = map_key(item, &keys);
                    let old_item =
                        old_items.and_then(|o| o.iter().find(|i| map_key(i, &keys) == key));
                    let mut sub = diff(old_item, item, item_s);
                    if old_item.is_none() {
                        sub.own = true;
                    }
                    if !sub.is_empty() {
                        set.children.insert(key, sub);
                    }
                }
                if set.is_empty() && old.is_none() {
                    leaf()
                } else {
                    set
                }
            }
        },
        _ => leaf(),
    }
}

/// Resolves one path element (`f:x`, `k:{..}`, `v:..`) inside a value.
pub fn lookup_element<'a>(v: &'a Value, element: &str) -> Option<&'a Value> {
    if let Some(field) = element.strip_prefix("f:") {
        return v.get(field);
    }
    let items = v.as_array()?;
    if let Some(k) = element.strip_prefix("k:") {
        let want: Map<String, Value> = serde_json::from_str(k).ok()?;
        return items
            .iter()
            .find(|i| want.iter().all(|(wk, wv)| i.get(wk) == Some(wv)));
    }
    if let Some(s) = element.strip_prefix("v:") {
        let want: Value = serde_json::from_str(s).ok()?;
        return items.iter().find(|i| **i == want);
    }
    None
}

/// Removes the value at `path` from `obj` (no-op if absent).
pub fn remove_path(obj: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut cur = obj;
    for element in parents {
        let next = match element_index(cur, element) {
            Some(Slot::Field(f)) => cur.get_mut(&f),
            Some(Slot::Index(i)) => cur.get_mut(i),
            None => None,
        };
        match next {
            Some(n) => cur = n,
            None => return,
        }
    }
    match element_index(cur, last) {
        Some(Slot::Field(f)) => {
            if let Some(m) = cur.as_object_mut() {
                m.remove(&f);
            }
        }
        Some(Slot::Index(i)) => {
            if let Some(a) = cur.as_array_mut() {
                a.remove(i);
            }
        }
        None => {}
    }
}

enum Slot {
    Field(String),
    Index(usize),
}

fn element_index(v: &Value, element: &str) -> Option<Slot> {
    if let Some(field) = element.strip_prefix("f:") {
        return v.get(field).map(|_| Slot::Field(field.to_string()));
    }
    let target = lookup_element(v, element)? as *const Value;
    v.as_array()?
        .iter()
        .position(|i| std::ptr::eq(i, target))
        .map(Slot::Index)
}

/// Renders a path as the real server prints it in conflict messages: `.spec.foo[name="a"].bar`.
pub fn render_path(path: &[String]) -> String {
    let mut out = String::new();
    for element in path {
        if let Some(f) = element.strip_prefix("f:") {
            out.push('.');
            out.push_str(f);
        } else if let Some(k) = element.strip_prefix("k:") {
            let keys: Map<String, Value> = serde_json::from_str(k).unwrap_or_default();
            let parts: Vec<String> = keys.iter().map(|(k, v)| format!("{k}={v}")).collect();
            out.push_str(&format!("[{}]", parts.join(",")));
        } else if let Some(v) = element.strip_prefix("v:") {
            out.push_str(&format!("[={v}]"));
        }
    }
    out
}

/// Merges an applied configuration into an object: maps recursively, list-maps by key, sets by value, the rest
/// (scalars, atomic lists) replaced.
pub fn merge_applied(target: &mut Value, applied: &Value, schema: Option<&Value>) {
    match (target, applied) {
        (Value::Object(t), Value::Object(a)) if !is_atomic_map(schema) => {
            for (k, v) in a {
                let s = child_schema(schema, k);
                match t.get_mut(k) {
                    Some(existing) if !v.is_null() => merge_applied(existing, v, s),
                    _ => {
                        t.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (Value::Array(t), Value::Array(a)) => match list_type(schema) {
            ListType::Atomic => *t = a.clone(),
            ListType::Set => {
                for item in a {
                    if !t.contains(item) {
                        t.push(item.clone());
                    }
                }
            }
            ListType::Map(keys) => {
                let item_s = item_schema(schema);
                for item in a {
                    let key = map_key(item, &keys);
                    match t.iter_mut().find(|i| map_key(i, &keys) == key) {
                        Some(existing) => merge_applied(existing, item, item_s),
                        None => t.push(item.clone()),
                    }
                }
            }
        },
        (t, a) => *t = a.clone(),
    }
}

/// `metadata` fields merged by apply use the built-in metadata list types.
pub fn metadata_merge_schema() -> &'static Value {
    metadata_schema()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fieldsv1_round_trip_and_list_map_keys() {
        let schema = json!({"properties": {"spec": {"properties": {"items": {
            "type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
            "items": {"properties": {"name": {"type": "string"}, "v": {"type": "string"}}}}}}}});
        let obj = json!({"apiVersion": "x/v1", "kind": "K", "metadata": {"name": "a", "labels": {"l": "1"}},
            "spec": {"items": [{"name": "a", "v": "1"}], "n": 1}});
        let set = FieldSet::of_object(&obj, Some(&schema));
        let j = set.to_json();
        assert_eq!(j["f:metadata"], json!({"f:labels": {"f:l": {}}}));
        assert_eq!(
            j["f:spec"]["f:items"]["k:{\"name\":\"a\"}"],
            json!({".": {}, "f:name": {}, "f:v": {}})
        );
        assert_eq!(FieldSet::from_json(&j), set);
        let paths = set.paths();
        assert!(paths.contains(&vec!["f:spec".into(), "f:n".into()]));
        assert_eq!(
            render_path(&["f:spec".into(), "k:{\"name\":\"a\"}".into(), "f:v".into()]),
            ".spec.items[name=\"a\"].v".replace(".items", "")
        );
    }

    #[test]
    fn diff_only_reports_changes_and_remove_path_works() {
        let old = json!({"spec": {"a": 1, "b": 2}});
        let new = json!({"spec": {"a": 1, "b": 3, "c": 4}});
        let set = FieldSet::diff_object(Some(&old), &new, None);
        assert_eq!(set.to_json(), json!({"f:spec": {"f:b": {}, "f:c": {}}}));
        let mut obj = new.clone();
        remove_path(&mut obj, &["f:spec".into(), "f:b".into()]);
        assert_eq!(obj, json!({"spec": {"a": 1, "c": 4}}));
    }
}
