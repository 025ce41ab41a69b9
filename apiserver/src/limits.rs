//! The bounds hostile or careless input meets, each with the limit and answer kube-apiserver gives, so that no
//! single request can grow the server past a fixed ceiling (see the README's "Limits" section).

use std::time::Duration;

use serde_json::Value;

use crate::status::{ApiError, ApiResult, Cause};

/// Request bodies of writes: kube-apiserver's `MaxRequestBodyBytes` default (3 MiB), answered 413.
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;
/// A stored object: etcd's default `--max-request-bytes` (1.5 MiB); kube-apiserver answers 413
/// RequestEntityTooLarge when etcd refuses the write. Counted on the object as stored, after every write path.
pub const MAX_OBJECT_BYTES: usize = 3 * 1024 * 1024 / 2;
/// kube-apiserver's `maxJSONPatchOperations` (endpoints/handlers/patch.go), answered 413.
pub const MAX_JSON_PATCH_OPS: usize = 10_000;
/// kube-apiserver's `JSONPatchMaxCopyBytes` default (3 MiB): what `copy` operations may add in one patch, 422.
pub const MAX_JSON_PATCH_COPY_BYTES: usize = 3 * 1024 * 1024;
/// Nesting of a stored object. serde_json refuses to parse deeper than 128, so anything stored must stay below it
/// or the data log, watchers and clients could not read it back; request bodies deeper than that are a 400.
pub const MAX_DEPTH: usize = 100;
/// `metadata.managedFields[].manager` and `?fieldManager=`: apimachinery's `FieldManagerMaxLength` (128).
pub const MAX_FIELD_MANAGER_LEN: usize = 128;
/// Go's `http.Server.ReadHeaderTimeout` as kube-apiserver sets it (32 s, secure_serving.go).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(32);
/// kube-apiserver's `IdleTimeout` (90 s, matching http.DefaultTransport's keep-alive): a kept-alive connection may
/// wait this long for its next request. hyper has one timer for an idle connection and a request head, so a head
/// after the first byte is bounded by the longer of this and the header timeout.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// Request head size: kube-apiserver's `MaxHeaderBytes` is 1 MiB; hyper's buffer bound plays that role (431).
pub const MAX_HEADER_BYTES: usize = 1024 * 1024;
/// Concurrent watches one client (peer address and User-Agent) may hold; more are refused 429 TooManyRequests
/// (kube-apiserver's max-requests-inflight / priority-and-fairness answer).
pub const MAX_WATCHES_PER_CLIENT: usize = 2_000;

/// A field manager's problems (apimachinery's ValidateFieldManager: at most 128 bytes, printable characters).
pub fn field_manager_causes(m: &str) -> Vec<Cause> {
    let mut causes = Vec::new();
    if m.len() > MAX_FIELD_MANAGER_LEN {
        causes.push(Cause::new(
            "FieldValueTooLong",
            "fieldManager",
            format!("Too long: may not be more than {MAX_FIELD_MANAGER_LEN} bytes"),
        ));
    }
    if m.chars().any(char::is_control) {
        causes.push(Cause::new(
            "FieldValueInvalid",
            "fieldManager",
            format!("Invalid value: {m:?}: must only contain printable characters"),
        ));
    }
    causes
}

/// The size of `v` serialised as JSON, without building the bytes.
pub fn json_len(v: &Value) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0 += b.len();
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut c = Count(0);
    // Writing into a counter cannot fail.
    let _ = serde_json::to_writer(&mut c, v);
    c.0
}

/// Whether `v` nests more than `limit` containers deep (a scalar is 0); the walk stops one level past `limit`, so
/// hostile depth cannot overflow the stack, and it allocates nothing.
pub fn depth_exceeds(v: &Value, limit: usize) -> bool {
    let deeper = |c: &Value| depth_exceeds(c, limit - 1);
    match v {
        Value::Object(m) => limit == 0 || m.values().any(deeper),
        Value::Array(a) => limit == 0 || a.iter().any(deeper),
        _ => false,
    }
}

/// The 413 kube-apiserver gives when etcd refuses an object over its request limit.
pub fn object_too_large(len: usize) -> ApiError {
    ApiError::new(
        413,
        "RequestEntityTooLarge",
        format!(
            "Request entity too large: the object would be {len} bytes when stored, the limit is {MAX_OBJECT_BYTES} (etcdserver: request is too large)"
        ),
    )
}

/// Refuses an object that would be stored too large or too deep; `len` is its serialised size.
pub fn check_stored(v: &Value, len: usize) -> ApiResult<()> {
    if len > MAX_OBJECT_BYTES {
        return Err(object_too_large(len));
    }
    if depth_exceeds(v, MAX_DEPTH) {
        return Err(ApiError::new(
            422,
            "Invalid",
            format!("the object nests deeper than {MAX_DEPTH} levels"),
        ));
    }
    Ok(())
}

/// Open watches per client (peer IP and User-Agent), bounded so that no client can hold the server's memory and
/// tasks with watches: one over the bound is refused 429 TooManyRequests with Retry-After, as kube-apiserver's
/// inflight limits answer. A slot is freed when its watch ends (client gone, timeout, server stopping).
pub struct WatchSlots {
    max: usize,
    open: std::sync::Mutex<std::collections::HashMap<String, usize>>,
}

/// One open watch's slot.
pub struct WatchSlot {
    slots: std::sync::Arc<WatchSlots>,
    client: String,
}

impl WatchSlots {
    pub fn new(max: usize) -> Self {
        WatchSlots {
            max,
            open: Default::default(),
        }
    }

    pub fn take(self: &std::sync::Arc<Self>, client: String) -> ApiResult<WatchSlot> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let n = open.entry(client.clone()).or_insert(0);
        if *n >= self.max {
            return Err(ApiError::new(
                429,
                "TooManyRequests",
                format!(
                    "Too many requests: this client already has {} open watches (the limit per client is {})",
                    *n, self.max
                ),
            ));
        }
        *n += 1;
        Ok(WatchSlot {
            slots: self.clone(),
            client,
        })
    }
}

impl Drop for WatchSlot {
    fn drop(&mut self) {
        let mut open = self.slots.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = open.get_mut(&self.client) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.client);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn length_and_depth() {
        let v = json!({"a": [1, {"b": "c"}]});
        assert_eq!(json_len(&v), v.to_string().len());
        assert!(!depth_exceeds(&v, 3));
        assert!(depth_exceeds(&v, 2));
        assert!(!depth_exceeds(&json!(1), 0));
    }
}
