//! `managedFields` bookkeeping and server-side apply: field ownership per manager, conflicts, force, and removal
//! of fields a manager stopped applying.

use serde_json::{Value, json};

use crate::fieldset::{
    FieldSet, lookup_element, merge_applied, metadata_merge_schema, remove_path, render_path,
};
use crate::objects::{meta, meta_mut};
use crate::status::{ApiError, ApiResult};

#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub manager: String,
    /// `Apply` or `Update`.
    pub operation: String,
    pub api_version: String,
    pub time: String,
    pub subresource: String,
    pub fields: FieldSet,
}

impl Entry {
    fn same_owner(&self, manager: &str, operation: &str, subresource: &str) -> bool {
        self.manager == manager && self.operation == operation && self.subresource == subresource
    }

    fn to_json(&self) -> Value {
        let mut e = json!({
            "manager": self.manager,
            "operation": self.operation,
            "apiVersion": self.api_version,
            "time": self.time,
            "fieldsType": "FieldsV1",
            "fieldsV1": self.fields.to_json(),
        });
        if !self.subresource.is_empty() {
            e["subresource"] = json!(self.subresource);
        }
        e
    }

    fn from_json(v: &Value) -> Option<Entry> {
        let text_or = |key: &str, default: &str| {
            let text = v.get(key).and_then(Value::as_str);
            text.unwrap_or(default).to_string()
        };
        Some(Entry {
            manager: v.get("manager")?.as_str()?.to_string(),
            operation: text_or("operation", "Update"),
            api_version: text_or("apiVersion", ""),
            time: text_or("time", ""),
            subresource: text_or("subresource", ""),
            fields: FieldSet::from_json(v.get("fieldsV1").unwrap_or(&Value::Null)),
        })
    }
}

pub fn read_entries(obj: &Value) -> Vec<Entry> {
    meta(obj)
        .and_then(|m| m.get("managedFields"))
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Entry::from_json).collect())
        .unwrap_or_default()
}

fn write_entries(obj: &mut Value, entries: &[Entry]) {
    let list: Vec<Value> = entries
        .iter()
        .filter(|e| !e.fields.is_empty())
        .map(Entry::to_json)
        .collect();
    let meta = meta_mut(obj);
    if list.is_empty() {
        meta.remove("managedFields");
    } else {
        meta.insert("managedFields".into(), Value::Array(list));
    }
}

/// Who writes, for managedFields.
pub struct Writer<'a> {
    pub manager: &'a str,
    pub api_version: &'a str,
    pub subresource: &'a str,
    pub time: &'a str,
}

/// Records an Update (create, update, non-apply patch): the writer takes ownership of the fields it changed;
/// fields that disappeared are dropped from every manager.
pub fn record_update(old: Option<&Value>, new: &mut Value, schema: Option<&Value>, w: &Writer) {
    let mut entries = old.map(read_entries).unwrap_or_default();
    let changed = FieldSet::diff_object(old, new, schema);
    // Whether any manager's fields changed (else only the writer's time and apiVersion do).
    let mut moved = false;
    for e in entries.iter_mut() {
        if !e.same_owner(w.manager, "Update", w.subresource) {
            moved |= e.fields.subtract(&changed);
        }
        moved |= e.fields.retain_existing(new);
    }
    match entries
        .iter_mut()
        .find(|e| e.same_owner(w.manager, "Update", w.subresource))
    {
        // As kube-apiserver: a write that changes no field leaves the writer's entry (and its time)
        // as it was, so the object stays byte-identical and a no-op keeps its resourceVersion.
        Some(e) if !changed.is_empty() => {
            moved |= e.fields.union(&changed);
            e.time = w.time.to_string();
            e.api_version = w.api_version.to_string();
        }
        Some(_) => {}
        None if !changed.is_empty() => {
            moved = true;
            entries.push(Entry {
                manager: w.manager.to_string(),
                operation: "Update".into(),
                api_version: w.api_version.to_string(),
                time: w.time.to_string(),
                subresource: w.subresource.to_string(),
                fields: changed,
            });
        }
        None => {}
    }
    if moved || !restamp_in_place(old, new, &entries, w) {
        write_entries(new, &entries);
    }
}

/// The common update (a manager writing fields it already owns) changes only its entry's time and apiVersion:
/// when `new` still carries the stored managedFields, those two strings are replaced in place instead of
/// rebuilding the list. False when the entries changed otherwise (the caller rewrites them).
fn restamp_in_place(old: Option<&Value>, new: &mut Value, after: &[Entry], w: &Writer) -> bool {
    let stored = old.and_then(|o| o.pointer("/metadata/managedFields"));
    if after.iter().any(|e| e.fields.is_empty())
        || stored.is_none()
        || new.pointer("/metadata/managedFields") != stored
    {
        return false;
    }
    let Some(list) = new
        .pointer_mut("/metadata/managedFields")
        .and_then(Value::as_array_mut)
    else {
        return false;
    };
    if list.len() != after.len() {
        return false;
    }
    for (json, entry) in list.iter_mut().zip(after) {
        if entry.same_owner(w.manager, "Update", w.subresource) {
            json["time"] = Value::String(entry.time.clone());
            json["apiVersion"] = Value::String(entry.api_version.clone());
        }
    }
    true
}

/// Server-side apply of `applied` onto `current` (None: the object does not exist yet). Returns the merged object
/// with updated managedFields; 409 Conflict lists fields other managers own with a different value, unless `force`.
pub fn apply(
    current: Option<&Value>,
    applied: &Value,
    schema: Option<&Value>,
    w: &Writer,
    force: bool,
) -> ApiResult<Value> {
    let applied_set = FieldSet::of_object(applied, schema);
    let mut entries = current.map(read_entries).unwrap_or_default();
    let mut conflicts: Vec<(String, String, String)> = Vec::new();
    if let Some(cur) = current {
        for e in entries.iter_mut() {
            if e.same_owner(w.manager, "Apply", w.subresource) {
                continue;
            }
            let overlap = e.fields.intersect(&applied_set);
            let mut differing = FieldSet::default();
            for path in overlap.paths() {
                if value_at(cur, &path) != value_at(applied, &path) {
                    conflicts.push((e.manager.clone(), e.api_version.clone(), render_path(&path)));
                    add_path(&mut differing, &path);
                }
            }
            if force {
                e.fields.subtract(&differing);
            }
        }
    }
    if !conflicts.is_empty() && !force {
        return Err(conflict_error(&conflicts));
    }
    let mut obj = current.cloned().unwrap_or_else(|| json!({}));
    let previous = entries
        .iter()
        .find(|e| e.same_owner(w.manager, "Apply", w.subresource))
        .map(|e| e.fields.clone());
    if let Some(mut stale) = previous {
        stale.subtract(&applied_set);
        for e in entries
            .iter()
            .filter(|e| !e.same_owner(w.manager, "Apply", w.subresource))
        {
            stale.subtract(&e.fields);
        }
        for path in stale.paths() {
            remove_path(&mut obj, &path);
        }
    }
    merge_object(&mut obj, applied, schema);
    entries.retain(|e| !e.same_owner(w.manager, "Apply", w.subresource));
    entries.push(Entry {
        manager: w.manager.to_string(),
        operation: "Apply".into(),
        api_version: w.api_version.to_string(),
        time: w.time.to_string(),
        subresource: w.subresource.to_string(),
        fields: applied_set,
    });
    for e in entries.iter_mut() {
        e.fields.retain_existing(&obj);
    }
    write_entries(&mut obj, &entries);
    Ok(obj)
}

fn merge_object(obj: &mut Value, applied: &Value, schema: Option<&Value>) {
    let Some(a) = applied.as_object() else { return };
    if !obj.is_object() {
        *obj = json!({});
    }
    let meta_schema = metadata_merge_schema();
    for (k, v) in a {
        if k == "metadata" {
            let target = meta_mut(obj);
            if let Some(m) = v.as_object() {
                for (mk, mv) in m {
                    if mk == "managedFields" || mk == "resourceVersion" {
                        continue;
                    }
                    let s = crate::fieldset::child_schema(Some(meta_schema), mk);
                    match target.get_mut(mk) {
                        Some(existing) if !mv.is_null() => merge_applied(existing, mv, s),
                        _ => {
                            target.insert(mk.clone(), mv.clone());
                        }
                    }
                }
            }
            continue;
        }
        let s = crate::fieldset::child_schema(schema, k);
        let o = obj.as_object_mut().expect("made an object above");
        match o.get_mut(k) {
            Some(existing) if !v.is_null() && k != "apiVersion" && k != "kind" => {
                merge_applied(existing, v, s)
            }
            _ => {
                o.insert(k.clone(), v.clone());
            }
        }
    }
}

fn value_at<'a>(obj: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut cur = obj;
    for element in path {
        cur = lookup_element(cur, element)?;
    }
    Some(cur)
}

fn add_path(set: &mut FieldSet, path: &[String]) {
    let mut cur = set;
    for element in path {
        cur = cur.children.entry(element.clone()).or_default();
    }
    cur.own = true;
}

fn conflict_error(conflicts: &[(String, String, String)]) -> ApiError {
    let n = conflicts.len();
    let lines: Vec<String> = conflicts
        .iter()
        .map(|(m, v, f)| format!("- conflict with \"{m}\" using {v}: {f}"))
        .collect();
    let message = if n == 1 {
        let (m, v, f) = &conflicts[0];
        format!("Apply failed with 1 conflict: conflict with \"{m}\" using {v}: {f}")
    } else {
        format!("Apply failed with {n} conflicts: {}", lines.join("\n"))
    };
    let causes: Vec<Value> = conflicts
        .iter()
        .map(|(m, v, f)| json!({"reason": "FieldManagerConflict", "message": format!("conflict with \"{m}\" using {v}"), "field": f}))
        .collect();
    ApiError {
        details: Some(json!({"causes": causes})),
        ..ApiError::new(409, "Conflict", message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w<'a>(manager: &'a str) -> Writer<'a> {
        Writer {
            manager,
            api_version: "v1",
            subresource: "",
            time: "2026-01-01T00:00:00Z",
        }
    }

    #[test]
    fn apply_owns_removes_and_conflicts() {
        let first = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"x": "1", "y": "2"}});
        let obj = apply(None, &first, None, &w("one"), false).unwrap();
        assert_eq!(obj["data"], json!({"x": "1", "y": "2"}));
        // The same manager drops y: it is removed.
        let second = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"x": "1"}});
        let obj = apply(Some(&obj), &second, None, &w("one"), false).unwrap();
        assert_eq!(obj["data"], json!({"x": "1"}));
        // Another manager sets x to a different value: conflict; with force it wins and owns x.
        let other = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"x": "9"}});
        let err = apply(Some(&obj), &other, None, &w("two"), false).unwrap_err();
        assert_eq!(err.code, 409);
        assert!(
            err.message.contains("conflict with \"one\""),
            "{}",
            err.message
        );
        let obj = apply(Some(&obj), &other, None, &w("two"), true).unwrap();
        assert_eq!(obj["data"]["x"], "9");
        let entries = read_entries(&obj);
        assert_eq!(entries.len(), 1, "{entries:?}");
        assert_eq!(entries[0].manager, "two");
        // Same value from another manager is shared ownership, not a conflict.
        let same = apply(Some(&obj), &other, None, &w("three"), false).unwrap();
        assert_eq!(read_entries(&same).len(), 2);
    }

    #[test]
    fn updates_move_ownership_and_restamp_the_writer() {
        let at = |time: &'static str, manager: &'static str| Writer { time, ..w(manager) };
        let created = json!({"metadata": {"name": "a"}, "data": {"x": "1"}});
        let mut obj = created.clone();
        record_update(None, &mut obj, None, &at("t1", "one"));
        // The same manager changes a field it owns: only its time changes.
        let mut next = obj.clone();
        next["data"]["x"] = json!("2");
        record_update(Some(&obj), &mut next, None, &at("t2", "one"));
        let entries = read_entries(&next);
        assert_eq!(entries.len(), 1);
        assert_eq!(
            (entries[0].time.as_str(), &entries[0].fields),
            ("t2", &read_entries(&obj)[0].fields)
        );
        // The same manager writes the same values a second later: nothing changes, not its time.
        let mut again = next.clone();
        record_update(Some(&next), &mut again, None, &at("t2b", "one"));
        assert_eq!(again, next, "a no-op write restamped managedFields");
        // Another manager changes x and adds y: x moves to it, y is its own.
        let mut third = next.clone();
        third["data"] = json!({"x": "3", "y": "4"});
        record_update(Some(&next), &mut third, None, &at("t3", "two"));
        let entries = read_entries(&third);
        let managers: Vec<&str> = entries.iter().map(|e| e.manager.as_str()).collect();
        assert_eq!(managers, ["two"], "one lost its only field: {entries:?}");
        assert_eq!(
            entries[0].fields.to_json(),
            json!({"f:data": {"f:x": {}, "f:y": {}}})
        );
    }
}
