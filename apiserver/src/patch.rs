//! Patch engines: JSON patch (RFC 6902, via the json-patch crate), merge patch (RFC 7386), a strategic merge
//! patch for the built-in kinds, and the checks on a server-side apply configuration.

use serde_json::{Map, Value};

use crate::limits::{MAX_JSON_PATCH_COPY_BYTES, MAX_JSON_PATCH_OPS, json_len};
use crate::objects::Sub;
use crate::resources::ResourceInfo;
use crate::status::{ApiError, ApiResult};

/// Refuses a JSON patch with more operations than kube-apiserver accepts (413, as its patch handler answers).
pub fn check_json_patch_ops(ops: &json_patch::Patch) -> ApiResult<()> {
    if ops.len() > MAX_JSON_PATCH_OPS {
        return Err(ApiError::new(
            413,
            "RequestEntityTooLarge",
            format!(
                "Request entity too large: The allowed maximum operations in a JSON patch is {MAX_JSON_PATCH_OPS}, got {}",
                ops.len()
            ),
        ));
    }
    Ok(())
}

pub fn json_patch(
    _info: &ResourceInfo,
    current: &Value,
    ops: &json_patch::Patch,
) -> ApiResult<Value> {
    check_json_patch_ops(ops)?;
    let mut doc = current.clone();
    // `copy` is the one operation that grows a document beyond the patch's own bytes (a few dozen doublings reach
    // gigabytes), so what copies add is counted as evanphx/json-patch's AccumulatedCopySizeLimit does.
    let mut copied = 0usize;
    for op in ops.iter() {
        if let json_patch::PatchOperation::Copy(c) = op
            && let Some(from) = doc.pointer(c.from.as_str())
        {
            copied += json_len(from);
            if copied > MAX_JSON_PATCH_COPY_BYTES {
                return Err(ApiError::new(
                    422,
                    "Invalid",
                    format!(
                        "Unable to complete the copy, the accumulated size increase of copy is {copied}, exceeding the limit {MAX_JSON_PATCH_COPY_BYTES}"
                    ),
                ));
            }
        }
        // Like the Go implementation upstream uses, `test` for null succeeds on a missing path: kube-runtime's
        // finalizer helper sends exactly that before adding the first finalizer.
        if let json_patch::PatchOperation::Test(t) = op
            && t.value.is_null()
            && doc.pointer(t.path.as_str()).is_none()
        {
            continue;
        }
        json_patch::patch(&mut doc, std::slice::from_ref(op)).map_err(|e| {
            // A failed `test` and bad paths are 422, as upstream answers.
            ApiError::new(
                422,
                "Invalid",
                format!("the server rejected our request due to an error in our request: {e}"),
            )
        })?;
    }
    Ok(doc)
}

pub fn merge(current: &Value, patch: &Value) -> Value {
    let mut doc = current.clone();
    json_patch::merge(&mut doc, patch);
    doc
}

/// Strategic merge for built-in kinds: a merge patch that understands `$patch: delete/replace`,
/// `$deleteFromPrimitiveList/…`, and merges `metadata.finalizers` (as a set) and `metadata.ownerReferences`
/// (by uid) the way their patch strategies say.
pub fn strategic(current: &Value, patch: &Value) -> Value {
    let mut doc = current.clone();
    smp(&mut doc, patch, "");
    doc
}

fn smp(target: &mut Value, patch: &Value, path: &str) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    match p.get("$patch").and_then(Value::as_str) {
        Some("delete") => {
            *target = Value::Null;
            return;
        }
        Some("replace") => {
            let mut m = p.clone();
            m.remove("$patch");
            *target = Value::Object(m);
            return;
        }
        _ => {}
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let t = target.as_object_mut().expect("made an object above");
    for (k, v) in p {
        if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(list), Some(remove)) =
                (t.get_mut(field).and_then(Value::as_array_mut), v.as_array())
            {
                list.retain(|x| !remove.contains(x));
            }
            continue;
        }
        if k.starts_with('$') {
            continue;
        }
        let child_path = format!("{path}/{k}");
        match v {
            Value::Null => {
                t.remove(k);
            }
            Value::Array(items) if child_path == "/metadata/finalizers" => {
                let list = t.entry(k.clone()).or_insert_with(|| Value::Array(vec![]));
                if let Some(l) = list.as_array_mut() {
                    for item in items {
                        if !l.contains(item) {
                            l.push(item.clone());
                        }
                    }
                }
            }
            Value::Array(items) if child_path == "/metadata/ownerReferences" => {
                let list = t.entry(k.clone()).or_insert_with(|| Value::Array(vec![]));
                if let Some(l) = list.as_array_mut() {
                    for item in items {
                        match l.iter_mut().find(|x| x.get("uid") == item.get("uid")) {
                            Some(existing) => smp(existing, item, &child_path),
                            None => l.push(item.clone()),
                        }
                    }
                }
            }
            Value::Object(_) => {
                let entry = t.entry(k.clone()).or_insert(Value::Null);
                smp(entry, v, &child_path);
                if entry.is_null() {
                    t.remove(k);
                }
            }
            _ => {
                t.insert(k.clone(), v.clone());
            }
        }
    }
}

/// Checks an apply configuration (apiVersion/kind/name) and cuts it to the part the endpoint may change.
pub fn applied_config(
    info: &ResourceInfo,
    version: &str,
    name: &str,
    sub: Sub,
    mut cfg: Value,
) -> ApiResult<Value> {
    let Some(obj) = cfg.as_object_mut() else {
        return Err(ApiError::bad_request(
            "apply configuration must be an object",
        ));
    };
    let av = obj.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("");
    if av.is_empty() || kind.is_empty() {
        return Err(ApiError::bad_request(format!(
            "invalid object type: {av}, Kind={kind}"
        )));
    }
    if kind != info.kind || !info.versions.iter().any(|v| info.api_version(v) == av) {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({av}) and kind ({kind}) do not match the expected {} {}",
            info.api_version(version),
            info.kind
        )));
    }
    let meta = obj
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if meta.is_null() {
        *meta = Value::Object(Map::new());
    }
    if !meta.is_object() {
        return Err(ApiError::bad_request(format!(
            "the apply configuration's metadata must be an object, got {meta}"
        )));
    }
    match meta.get("name").and_then(Value::as_str) {
        Some(n) if n != name => {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({n}) does not match the name on the URL ({name})"
            )));
        }
        _ => meta["name"] = Value::String(name.to_string()),
    }
    match sub {
        Sub::Main if info.has_status => {
            obj.remove("status");
        }
        Sub::Status => {
            obj.retain(|k, _| matches!(k.as_str(), "apiVersion" | "kind" | "metadata" | "status"))
        }
        _ => {}
    }
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strategic_merges_finalizers_and_honours_directives() {
        let cur = json!({"metadata": {"finalizers": ["a"], "labels": {"x": "1", "y": "2"}}, "data": {"k": "v"}});
        let out = strategic(
            &cur,
            &json!({"metadata": {"finalizers": ["b"], "labels": {"y": null}}}),
        );
        assert_eq!(out["metadata"]["finalizers"], json!(["a", "b"]));
        assert_eq!(out["metadata"]["labels"], json!({"x": "1"}));
        let out = strategic(
            &out,
            &json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}}),
        );
        assert_eq!(out["metadata"]["finalizers"], json!(["b"]));
        let out = strategic(&out, &json!({"data": {"$patch": "replace", "n": "1"}}));
        assert_eq!(out["data"], json!({"n": "1"}));
    }
}
