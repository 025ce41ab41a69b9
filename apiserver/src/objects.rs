//! Object metadata semantics shared by every write: names, uid, timestamps, generation, status stanza rules,
//! finalizers and deletion state; the request-to-stored conversion (Secret `stringData`).

use base64::Engine;
use serde_json::{Map, Value, json};

use crate::resources::ResourceInfo;
use crate::status::{ApiError, ApiResult, Cause};
use clock::{Entropy, format_k8s};

const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const DNS1123_LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";

fn is_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

pub fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns_label)
}

/// Causes for an invalid object name (namespaces must be DNS labels, everything else DNS subdomains).
pub fn name_causes(info: &ResourceInfo, name: &str) -> Vec<Cause> {
    let label = info.kind == "Namespace" && info.group.is_empty();
    let ok = if label {
        is_dns_label(name)
    } else {
        is_dns_subdomain(name)
    };
    if ok {
        return vec![];
    }
    let msg = if label {
        DNS1123_LABEL_MSG
    } else {
        DNS1123_SUBDOMAIN_MSG
    };
    vec![Cause::new(
        "FieldValueInvalid",
        "metadata.name",
        format!("Invalid value: \"{name}\": {msg}"),
    )]
}

pub fn label_value_ok(v: &str) -> bool {
    v.len() <= 63
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        && v.chars().next().is_none_or(|c| c.is_ascii_alphanumeric())
        && v.chars().last().is_none_or(|c| c.is_ascii_alphanumeric())
}

pub fn label_key_ok(k: &str) -> bool {
    let (prefix, name) = k
        .rsplit_once('/')
        .map(|(p, n)| (Some(p), n))
        .unwrap_or((None, k));
    prefix.is_none_or(is_dns_subdomain) && !name.is_empty() && label_value_ok(name)
}

/// Label and annotation checks the real server makes on every object.
pub fn metadata_causes(meta: &Map<String, Value>) -> Vec<Cause> {
    let mut causes = vec![];
    if let Some(labels) = meta.get("labels") {
        match labels.as_object() {
            Some(l) => {
                for (k, v) in l {
                    if !label_key_ok(k) {
                        causes.push(Cause::new("FieldValueInvalid", "metadata.labels", format!("Invalid value: \"{k}\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character")));
                    }
                    match v.as_str() {
                        Some(s) if label_value_ok(s) => {}
                        _ => causes.push(Cause::new("FieldValueInvalid", "metadata.labels", format!("Invalid value: {v}: a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"))),
                    }
                }
            }
            None if labels.is_null() => {}
            None => causes.push(Cause::new(
                "FieldValueInvalid",
                "metadata.labels",
                "Invalid value: must be a map of strings",
            )),
        }
    }
    if let Some(a) = meta.get("annotations")
        && !a.is_null()
        && !a
            .as_object()
            .is_some_and(|m| m.values().all(Value::is_string))
    {
        causes.push(Cause::new(
            "FieldValueInvalid",
            "metadata.annotations",
            "Invalid value: must be a map of strings",
        ));
    }
    causes
}

/// Five random characters from the alphabet apimachinery's name generator uses.
pub fn random_suffix(entropy: &Entropy) -> String {
    entropy.string_from(b"bcdfghjklmnpqrstvwxz2456789", 5)
}

pub fn meta(obj: &Value) -> Option<&Map<String, Value>> {
    obj.get("metadata")?.as_object()
}

pub fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = json!({});
    }
    obj["metadata"]
        .as_object_mut()
        .expect("metadata was just made an object")
}

pub fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    meta(obj)?.get(field)?.as_str()
}

pub fn name_of(obj: &Value) -> &str {
    meta_str(obj, "name").unwrap_or("")
}

pub fn finalizers(obj: &Value) -> Vec<String> {
    strings_at(obj, "/metadata/finalizers")
}

/// The strings of the array at JSON pointer `ptr` (other items skipped); empty when there is none.
pub fn strings_at(v: &Value, ptr: &str) -> Vec<String> {
    v.pointer(ptr)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

pub fn is_deleting(obj: &Value) -> bool {
    meta(obj).is_some_and(|m| m.get("deletionTimestamp").is_some_and(|t| !t.is_null()))
}

/// An object being deleted goes away once nothing holds it: metadata finalizers (and a Namespace's spec ones).
pub fn ready_to_remove(info: &ResourceInfo, obj: &Value) -> bool {
    if !is_deleting(obj) || !finalizers(obj).is_empty() {
        return false;
    }
    if info.kind == "Namespace" && info.group.is_empty() {
        return obj
            .pointer("/spec/finalizers")
            .and_then(Value::as_array)
            .is_none_or(|a| a.is_empty());
    }
    true
}

/// Everything of an object that counts as "spec" for the generation: all but metadata (and status, when the
/// status lives in a subresource).
fn spec_changed(info: &ResourceInfo, old: &Value, new: &Value) -> bool {
    let (Some(o), Some(n)) = (old.as_object(), new.as_object()) else {
        return old != new;
    };
    let skip = |k: &str| {
        k == "metadata" || k == "apiVersion" || k == "kind" || (info.has_status && k == "status")
    };
    let keys = o.keys().chain(n.keys()).filter(|k| !skip(k));
    for k in keys {
        if o.get(k) != n.get(k) {
            return true;
        }
    }
    false
}

/// Checks apiVersion/kind of a request body against the resource and fills them when absent.
pub fn check_type(info: &ResourceInfo, version: &str, obj: &mut Value) -> ApiResult<()> {
    if !obj.is_object() {
        return Err(ApiError::bad_request(
            "the body of the request is not a JSON object",
        ));
    }
    let want_av = info.api_version(version);
    match obj.get("apiVersion").and_then(Value::as_str) {
        None | Some("") => obj["apiVersion"] = json!(want_av),
        Some(av) if av == want_av => {}
        Some(av) if info.versions.iter().any(|v| info.api_version(v) == av) => {}
        Some(av) => {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({av}) does not match the expected API version ({want_av})"
            )));
        }
    }
    match obj.get("kind").and_then(Value::as_str) {
        // Custom resources go through the unstructured decoder, which ignores the endpoint's kind and refuses an
        // object without one (runtime.NewMissingKindErr); built-in kinds take the endpoint's kind as a default.
        None | Some("") if info.custom => {
            let text = serde_json::to_string(obj).unwrap_or_default();
            let shown: String = text.chars().take(256).collect();
            return Err(ApiError::bad_request(format!(
                "Object 'Kind' is missing in '{shown}'"
            )));
        }
        None | Some("") => obj["kind"] = json!(info.kind),
        Some(k) if k == info.kind => {}
        Some(k) => {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({k}) does not match the expected kind ({})",
                info.kind
            )));
        }
    }
    obj["apiVersion"] = json!(info.api_version(&info.versions[0]));
    Ok(())
}

/// Converts a request body into its stored form, as the versioned-to-internal conversion does: a core/v1 Secret's
/// write-only `stringData` is folded into `data` (base64, overriding keys of the same name) and never stored.
pub fn convert_in(info: &ResourceInfo, obj: &mut Value) -> ApiResult<()> {
    if !(info.group.is_empty() && info.kind == "Secret") {
        return Ok(());
    }
    let Some(o) = obj.as_object_mut() else {
        return Ok(());
    };
    let string_data = match o.remove("stringData") {
        None | Some(Value::Null) => return Ok(()),
        Some(Value::Object(m)) => m,
        Some(_) => {
            return Err(ApiError::bad_request(
                "Secret.stringData must be a map of strings",
            ));
        }
    };
    let data = o.entry("data").or_insert_with(|| json!({}));
    if data.is_null() {
        *data = json!({});
    }
    let Some(data) = data.as_object_mut() else {
        return Err(ApiError::bad_request(
            "Secret.data must be a map of base64 strings",
        ));
    };
    for (key, value) in string_data {
        let Value::String(text) = value else {
            return Err(ApiError::bad_request(format!(
                "Secret.stringData[{key}] must be a string"
            )));
        };
        let encoded = base64::engine::general_purpose::STANDARD.encode(text.as_bytes());
        data.insert(key, Value::String(encoded));
    }
    Ok(())
}

/// Fills server-owned metadata for a new object. `namespace` is the request path's namespace.
pub fn prepare_create(
    info: &ResourceInfo,
    namespace: Option<&str>,
    obj: &mut Value,
    now: &str,
    entropy: &Entropy,
) -> ApiResult<()> {
    let kind = info.kind.clone();
    let meta = meta_mut(obj);
    let name = meta
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if let Some(ns) = namespace {
        match meta.get("namespace").and_then(Value::as_str) {
            None | Some("") => {
                meta.insert("namespace".into(), json!(ns));
            }
            Some(body_ns) if body_ns == ns => {}
            Some(_) => {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
        }
    } else {
        meta.remove("namespace");
    }
    let name = if name.is_empty() {
        match meta.get("generateName").and_then(Value::as_str) {
            Some(prefix) if !prefix.is_empty() => format!("{prefix}{}", random_suffix(entropy)),
            _ => {
                return Err(ApiError::invalid(
                    &info.group,
                    &kind,
                    "",
                    vec![Cause::new(
                        "FieldValueRequired",
                        "metadata.name",
                        "Required value: name or generateName is required",
                    )],
                ));
            }
        }
    } else {
        name
    };
    meta.insert("name".into(), json!(name));
    let mut causes = name_causes(info, &name);
    causes.extend(metadata_causes(meta));
    if !causes.is_empty() {
        return Err(ApiError::invalid(&info.group, &kind, &name, causes));
    }
    meta.insert("uid".into(), json!(entropy.uuid_v4().to_string()));
    meta.insert("creationTimestamp".into(), json!(now));
    for server_owned in [
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "resourceVersion",
        "selfLink",
    ] {
        meta.remove(server_owned);
    }
    if info.tracks_generation() {
        meta.insert("generation".into(), json!(1));
    } else {
        meta.remove("generation");
    }
    if info.has_status
        && info.custom
        && let Some(o) = obj.as_object_mut()
    {
        o.remove("status");
    }
    if info.kind == "Namespace" && info.group.is_empty() {
        obj["spec"] = json!({"finalizers": ["kubernetes"]});
        obj["status"] = json!({"phase": "Active"});
    }
    Ok(())
}

/// Applies update rules to `new` given the stored `old`: immutable metadata is kept, status or spec is taken from
/// the right side for subresource writes, the generation is bumped on spec changes, and finalizers are checked.
/// Which part of an object a write addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sub {
    Main,
    Status,
    /// A Namespace's `finalize` subresource: only `spec.finalizers` changes.
    Finalize,
}

pub fn prepare_update(
    info: &ResourceInfo,
    old: &Value,
    new: &mut Value,
    sub: Sub,
) -> ApiResult<()> {
    let name = name_of(old).to_string();
    match meta_str(new, "name") {
        Some(n) if n == name => {}
        None | Some("") => {
            meta_mut(new).insert("name".into(), json!(name));
        }
        Some(_) => {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({}) does not match the name on the URL ({name})",
                meta_str(new, "name").unwrap_or("")
            )));
        }
    }
    scope_to_subresource(info, old, new, sub);
    let no_meta = Map::new();
    let old_meta = meta(old).unwrap_or(&no_meta);
    let mut causes = metadata_causes(meta_mut(new));
    let new_meta = meta_mut(new);
    for immutable in [
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "namespace",
        "generation",
    ] {
        match old_meta.get(immutable) {
            Some(v) => new_meta.insert(immutable.into(), v.clone()),
            None => new_meta.remove(immutable),
        };
    }
    new_meta.remove("selfLink");
    if old_meta.contains_key("deletionTimestamp") {
        let before = finalizers(old);
        let added: Vec<String> = finalizers(new)
            .into_iter()
            .filter(|f| !before.contains(f))
            .collect();
        if !added.is_empty() {
            causes.push(Cause::new(
                "FieldValueForbidden",
                "metadata.finalizers",
                format!("Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers {added:?}"),
            ));
        }
    }
    if !causes.is_empty() {
        return Err(ApiError::invalid(&info.group, &info.kind, &name, causes));
    }
    if info.tracks_generation() && spec_changed(info, old, new) {
        let generation = old_meta
            .get("generation")
            .and_then(Value::as_i64)
            .unwrap_or(1);
        meta_mut(new).insert("generation".into(), json!(generation + 1));
    }
    Ok(())
}

/// Keeps a write to the part its endpoint may change: status writes change only the status, main-resource
/// writes never the status (when it is a subresource), finalize writes only a Namespace's spec.finalizers.
fn scope_to_subresource(info: &ResourceInfo, old: &Value, new: &mut Value, sub: Sub) {
    let take = |from: &Value, field: &str, into: &mut Value| match from.get(field) {
        Some(v) => into[field] = v.clone(),
        None => {
            if let Some(o) = into.as_object_mut() {
                o.remove(field);
            }
        }
    };
    match sub {
        Sub::Finalize => {
            let spec_finalizers = new
                .pointer("/spec/finalizers")
                .cloned()
                .unwrap_or(json!([]));
            *new = old.clone();
            new["spec"]["finalizers"] = spec_finalizers;
        }
        Sub::Status => {
            let mut merged = old.clone();
            take(new, "status", &mut merged);
            // Server-side apply of status has already recorded its field ownership.
            if let Some(mf) = new.pointer("/metadata/managedFields").cloned() {
                meta_mut(&mut merged).insert("managedFields".into(), mf);
            }
            *new = merged;
        }
        Sub::Main if info.has_status => {
            take(old, "status", new);
            if info.kind == "Namespace" && info.group.is_empty() {
                new["spec"] = old.get("spec").cloned().unwrap_or(json!({}));
            }
        }
        Sub::Main => {}
    }
}

/// Marks an object as being deleted (deletionTimestamp, grace period 0, a Namespace's Terminating phase).
pub fn mark_deleting(info: &ResourceInfo, obj: &mut Value, now: chrono::DateTime<chrono::Utc>) {
    let meta = meta_mut(obj);
    meta.insert("deletionTimestamp".into(), json!(format_k8s(now)));
    meta.insert("deletionGracePeriodSeconds".into(), json!(0));
    if info.kind == "Namespace" && info.group.is_empty() {
        obj["status"] = json!({"phase": "Terminating"});
    }
}
