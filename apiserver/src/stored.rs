//! The stored form of an object: its watch-event line (`{"type":..,"object":{..}}\n`), serialised once when it is
//! committed and shared by the store, every watcher, GET/LIST responses and the data log; beside it the few
//! metadata fields that selectors and controllers read, so that they never parse the JSON; and the keys and
//! change events the store, its data log and watchers pass these objects around in.
//!
//! The object is serialised with `metadata.resourceVersion` first, so the resourceVersion (known only inside the
//! store's commit) is stamped in by copying bytes instead of serialising under the store's lock.

use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use serde_json::{Map, Value};

/// A resource in the store: `"{group}/{plural}"`.
pub type ResKey = Arc<str>;

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjKey {
    pub resource: ResKey,
    pub namespace: String,
    pub name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One committed change. `prev` (the version it replaced) lets selector-filtered watches turn a MODIFIED into
/// ADDED/DELETED and lets paged lists see the state at their first page's resourceVersion.
#[derive(Debug)]
pub struct Event {
    pub rv: u64,
    pub kind: EventType,
    pub key: ObjKey,
    pub object: Arc<StoredObject>,
    pub prev: Option<Arc<StoredObject>>,
}

/// Field labels a resource ("group/plural") supports in field selectors besides metadata.name/namespace.
pub fn field_labels_of(resource: &str) -> &'static [&'static str] {
    match resource {
        "/events" => &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ],
        "events.k8s.io/events" => &[
            "regarding.kind",
            "regarding.namespace",
            "regarding.name",
            "regarding.uid",
            "regarding.apiVersion",
            "reason",
            "reportingController",
            "type",
        ],
        "/namespaces" => &["status.phase"],
        "/secrets" => &["type"],
        _ => &[],
    }
}

/// What selectors and controllers read of an object.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Meta {
    pub uid: Box<str>,
    pub labels: Box<[(Box<str>, Box<str>)]>,
    /// The uids of the object's ownerReferences.
    pub owners: Box<[Box<str>]>,
    pub deleting: bool,
    /// Values of the resource's field labels (besides metadata.name/namespace), for field selectors.
    pub fields: Box<[(&'static str, Box<str>)]>,
}

impl Meta {
    /// Extracts the metadata of `obj`, an object of `resource` ("group/plural").
    pub fn of(resource: &str, obj: &Value) -> Meta {
        let meta = obj.get("metadata").and_then(Value::as_object);
        let get = |k: &str| meta.and_then(|m| m.get(k));
        let labels = get("labels")
            .and_then(Value::as_object)
            .map(|l| {
                l.iter()
                    .filter_map(|(k, v)| Some((k.as_str().into(), v.as_str()?.into())))
                    .collect()
            })
            .unwrap_or_default();
        let owners = get("ownerReferences")
            .and_then(Value::as_array)
            .map(|refs| {
                refs.iter()
                    .filter_map(|r| r.get("uid")?.as_str().map(Into::into))
                    .collect()
            })
            .unwrap_or_default();
        let fields = field_labels_of(resource)
            .iter()
            .filter_map(|path| {
                let mut cur = obj;
                for part in path.split('.') {
                    cur = cur.get(part)?;
                }
                let text = match cur {
                    Value::Null => return None,
                    Value::String(s) => s.as_str().into(),
                    other => other.to_string().into(),
                };
                Some((*path, text))
            })
            .collect();
        Meta {
            uid: get("uid").and_then(Value::as_str).unwrap_or("").into(),
            labels,
            owners,
            deleting: get("deletionTimestamp").is_some_and(|t| !t.is_null()),
            fields,
        }
    }

    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| &**k == key)
            .map(|(_, v)| &**v)
    }

    pub fn field(&self, path: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(p, _)| *p == path)
            .map(|(_, v)| &**v)
    }
}

const TYPE_PREFIX: &[u8] = b"{\"type\":\"";
const OBJECT_PREFIX: &[u8] = b"\",\"object\":";
const RV_PREFIX: &[u8] = b"{\"metadata\":{\"resourceVersion\":\"";
const LINE_END: &[u8] = b"}\n";

/// A committed object (or one answered without being stored, as dry runs are).
#[derive(Debug)]
pub struct StoredObject {
    line: Bytes,
    /// Offset of the object's JSON in `line`.
    start: u32,
    /// Offset of what follows the resourceVersion (0 for objects not serialised by `Prepared`).
    tail: u32,
    pub meta: Meta,
}

impl StoredObject {
    /// The object's JSON (shares the line's memory).
    pub fn json(&self) -> Bytes {
        self.line
            .slice(self.start as usize..self.line.len() - LINE_END.len())
    }

    pub fn json_bytes(&self) -> &[u8] {
        &self.line[self.start as usize..self.line.len() - LINE_END.len()]
    }

    /// The object as a JSON value (stored JSON was serialised from a value, so it always parses).
    pub fn value(&self) -> Value {
        serde_json::from_slice(self.json_bytes()).unwrap_or(Value::Null)
    }

    /// The watch-event line of type `kind`: shared when the stored line has that type, else copied.
    pub fn line_as(&self, kind: &str) -> Bytes {
        let stored_kind = &self.line[TYPE_PREFIX.len()..self.start as usize - OBJECT_PREFIX.len()];
        if stored_kind == kind.as_bytes() {
            return self.line.clone();
        }
        let mut out = BytesMut::with_capacity(self.line.len() + 16);
        put_line_head(&mut out, kind);
        out.put_slice(&self.line[self.start as usize..]);
        out.freeze()
    }

    /// A copy stamped with another resourceVersion and event type (a DELETED event carries the last state with
    /// the deletion's resourceVersion, as etcd3 does).
    pub fn restamp(&self, kind: &str, rv: u64) -> StoredObject {
        let tail = &self.line[self.tail as usize..self.line.len() - LINE_END.len()];
        stamp(kind, rv, tail, self.meta.clone())
    }

    /// An object answered without being committed (dry run): serialised as it is.
    pub fn detached(resource: &str, obj: &Value) -> StoredObject {
        let mut out = BytesMut::with_capacity(1024);
        put_line_head(&mut out, "ADDED");
        let start = out.len() as u32;
        let mut w = out.writer();
        // Serialising a Value into memory cannot fail.
        let _ = serde_json::to_writer(&mut w, obj);
        let mut out = w.into_inner();
        out.put_slice(LINE_END);
        StoredObject {
            line: out.freeze(),
            start,
            tail: 0,
            meta: Meta::of(resource, obj),
        }
    }
}

fn put_line_head(out: &mut BytesMut, kind: &str) {
    out.put_slice(TYPE_PREFIX);
    out.put_slice(kind.as_bytes());
    out.put_slice(OBJECT_PREFIX);
}

fn stamp(kind: &str, rv: u64, tail: &[u8], meta: Meta) -> StoredObject {
    let mut out = BytesMut::with_capacity(
        TYPE_PREFIX.len()
            + kind.len()
            + OBJECT_PREFIX.len()
            + RV_PREFIX.len()
            + 21
            + tail.len()
            + 2,
    );
    put_line_head(&mut out, kind);
    let start = out.len() as u32;
    out.put_slice(RV_PREFIX);
    out.put_slice(rv.to_string().as_bytes());
    out.put_u8(b'"');
    let tail_at = out.len() as u32;
    out.put_slice(tail);
    out.put_slice(LINE_END);
    StoredObject {
        line: out.freeze(),
        start,
        tail: tail_at,
        meta,
    }
}

/// An object serialised without its resourceVersion, to be stamped with one at commit.
#[derive(Debug)]
pub struct Prepared {
    /// Everything after `"resourceVersion":"N"`: the other metadata fields, then the other top-level fields.
    tail: Vec<u8>,
    meta: Meta,
}

impl Prepared {
    /// Serialises `obj`, an object of `resource` ("group/plural").
    pub fn new(resource: &str, obj: &Value) -> Prepared {
        let empty = Map::new();
        let top = obj.as_object().unwrap_or(&empty);
        let metadata = top
            .get("metadata")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        let mut tail = Vec::with_capacity(1024);
        for (k, v) in metadata.iter().filter(|(k, _)| *k != "resourceVersion") {
            put_member(&mut tail, k, v);
        }
        tail.push(b'}');
        for (k, v) in top.iter().filter(|(k, _)| *k != "metadata") {
            put_member(&mut tail, k, v);
        }
        tail.push(b'}');
        Prepared {
            tail,
            meta: Meta::of(resource, obj),
        }
    }

    /// The stored JSON's size (the resourceVersion stamped at commit adds a few bytes).
    pub fn stored_len(&self) -> usize {
        self.tail.len() + 32
    }

    /// Whether this is exactly `stored` (apart from the resourceVersion): the write would change nothing.
    pub fn serialises(&self, stored: &StoredObject) -> bool {
        stored.tail != 0
            && stored.line[stored.tail as usize..stored.line.len() - LINE_END.len()]
                == self.tail[..]
    }

    /// The stored object for a commit at `rv` of event type `kind`.
    pub fn stamp(self, kind: &str, rv: u64) -> StoredObject {
        stamp(kind, rv, &self.tail, self.meta)
    }
}

fn put_member(out: &mut Vec<u8>, key: &str, value: &Value) {
    out.push(b',');
    // Serialising strings and values into memory cannot fail.
    let _ = serde_json::to_writer(&mut *out, key);
    out.push(b':');
    let _ = serde_json::to_writer(&mut *out, value);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn stamped_objects_round_trip_with_their_resource_version() {
        let obj = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "a\"b", "namespace": "ns", "resourceVersion": "7", "labels": {"app": "web"},
                "uid": "u1", "ownerReferences": [{"uid": "o1"}]},
            "data": {"k": "v"}});
        let stored = Prepared::new("/configmaps", &obj).stamp("MODIFIED", 42);
        let mut want = obj.clone();
        want["metadata"]["resourceVersion"] = json!("42");
        assert_eq!(stored.value(), want);
        let line: Value = serde_json::from_slice(&stored.line_as("MODIFIED")).unwrap();
        assert_eq!(line, json!({"type": "MODIFIED", "object": want}));
        let added: Value = serde_json::from_slice(&stored.line_as("ADDED")).unwrap();
        assert_eq!(added["type"], "ADDED");
        assert_eq!(added["object"], want);
        assert!(Prepared::new("/configmaps", &obj).serialises(&stored));
        let mut other = obj.clone();
        other["data"]["k"] = json!("w");
        assert!(!Prepared::new("/configmaps", &other).serialises(&stored));
        let deleted = stored.restamp("DELETED", 43);
        assert_eq!(deleted.value()["metadata"]["resourceVersion"], "43");
        assert_eq!(deleted.value()["data"], json!({"k": "v"}));
        assert_eq!(stored.meta.label("app"), Some("web"));
        assert_eq!(&*stored.meta.uid, "u1");
        assert_eq!(&stored.meta.owners[..], &["o1".into()]);
        assert!(!stored.meta.deleting);
    }

    #[test]
    fn objects_without_metadata_and_detached_objects_serialise() {
        let stored = Prepared::new("g/things", &json!({"spec": {}})).stamp("ADDED", 1);
        assert_eq!(
            stored.value(),
            json!({"metadata": {"resourceVersion": "1"}, "spec": {}})
        );
        let dry = StoredObject::detached("g/things", &json!({"metadata": {"name": "x"}}));
        assert_eq!(dry.value(), json!({"metadata": {"name": "x"}}));
    }

    #[test]
    fn field_label_values_are_extracted_for_events() {
        let ev = json!({"metadata": {"name": "e"}, "involvedObject": {"kind": "Server", "name": "s"},
            "reason": "Booted", "type": "Normal"});
        let meta = Meta::of("/events", &ev);
        assert_eq!(meta.field("involvedObject.kind"), Some("Server"));
        assert_eq!(meta.field("reason"), Some("Booted"));
        assert_eq!(meta.field("involvedObject.uid"), None);
        assert!(Meta::of("g/servers", &ev).fields.is_empty());
    }
}
