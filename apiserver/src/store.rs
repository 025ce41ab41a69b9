//! Versioned object store: one global monotonic resourceVersion, a bounded event history and watch fan-out.
//!
//! Objects are JSON values keyed by resource ("group/plural"), namespace and name. Writers read, compute the new
//! object outside the lock, then commit with a precondition (GuaranteedUpdate style), so the lock is held only for
//! map updates. Every commit is appended to the history ring and broadcast to watchers.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use bytes::Bytes;
use serde_json::Value;
use tokio::sync::{broadcast, oneshot};

use crate::persist::{LogFile, Persister, Record};

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

/// One committed change. `prev` lets selector-filtered watches turn a MODIFIED into ADDED/DELETED.
#[derive(Debug)]
pub struct Event {
    pub rv: u64,
    pub kind: EventType,
    pub key: ObjKey,
    pub object: Arc<Value>,
    pub prev: Option<Arc<Value>>,
    /// The watch-event line (`{"type":..,"object":..}\n`), encoded once and shared by all plain JSON watchers.
    encoded: OnceLock<Bytes>,
}

impl Event {
    pub fn new(
        rv: u64,
        kind: EventType,
        key: ObjKey,
        object: Arc<Value>,
        prev: Option<Arc<Value>>,
    ) -> Self {
        Event {
            rv,
            kind,
            key,
            object,
            prev,
            encoded: OnceLock::new(),
        }
    }

    pub fn encoded(&self) -> &Bytes {
        self.encoded
            .get_or_init(|| encode_event(self.kind.as_str(), &self.object))
    }
}

pub fn encode_event(kind: &str, object: &Value) -> Bytes {
    let mut buf = Vec::with_capacity(512);
    buf.extend_from_slice(b"{\"type\":\"");
    buf.extend_from_slice(kind.as_bytes());
    buf.extend_from_slice(b"\",\"object\":");
    // Serialising a Value into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut buf, object);
    buf.extend_from_slice(b"}\n");
    Bytes::from(buf)
}

/// What a commit expects to find.
#[derive(Debug, Clone, Copy)]
pub enum Precondition {
    /// Create: the key must be free.
    Absent,
    /// Update/delete: the stored object must still have this resourceVersion.
    Rv(u64),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommitError {
    Exists,
    NotFound,
    Stale,
}

pub enum Write {
    Put(Value),
    Delete,
}

/// A successful commit; `durable` resolves once the write is on disk (None when running in memory).
pub struct Committed {
    pub object: Arc<Value>,
    pub durable: Option<oneshot::Receiver<()>>,
}

impl Committed {
    /// Waits until the write is on disk; false if the log writer failed (the write is not durable).
    pub async fn wait_durable(&mut self) -> bool {
        match self.durable.take() {
            Some(rx) => rx.await.is_ok(),
            None => true,
        }
    }
}

/// Where a watch starts.
pub enum WatchStart {
    /// Synthetic ADDED events for the current state, then changes.
    Snapshot,
    /// Changes strictly after this resourceVersion.
    After(u64),
}

pub struct WatchSubscription {
    /// Events to send first (history or synthetic snapshot), in resourceVersion order.
    pub backlog: Vec<Arc<Event>>,
    /// The store's resourceVersion when the subscription was taken.
    pub rv: u64,
    pub live: broadcast::Receiver<Arc<Event>>,
}

/// How far (in events) a watcher may fall behind before it is told to relist. The ring keeps that many events
/// alive, so it is bounded separately from the (configurable) history.
const BROADCAST_CAPACITY: usize = 8 * 1024;

type Objects = BTreeMap<(String, String), (u64, Arc<Value>)>;

struct Inner {
    rv: u64,
    objects: HashMap<ResKey, Objects>,
    uids: HashMap<String, ObjKey>,
    history: VecDeque<Arc<Event>>,
    /// Watches from a resourceVersion below this cannot be served from history (410 Gone).
    oldest_rv: u64,
}

pub struct Store {
    inner: Mutex<Inner>,
    tx: broadcast::Sender<Arc<Event>>,
    history_cap: usize,
    persister: Option<Persister>,
}

/// The uid of an object, if it has one.
pub fn uid_of(obj: &Value) -> Option<&str> {
    obj.pointer("/metadata/uid").and_then(Value::as_str)
}

impl Store {
    pub fn new(history_cap: usize, log: Option<LogFile>) -> std::io::Result<Self> {
        let (tx, _) = broadcast::channel(BROADCAST_CAPACITY);
        let persister = log.map(|l| Persister::start(l, tx.clone())).transpose()?;
        Ok(Store {
            inner: Mutex::new(Inner {
                rv: 0,
                objects: HashMap::new(),
                uids: HashMap::new(),
                history: VecDeque::new(),
                oldest_rv: 0,
            }),
            tx,
            history_cap: history_cap.max(1),
            persister,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock would only have happened between plain map updates; keep serving.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Restores objects, the resourceVersion counter and the event history logged since `history_from` (used
    /// on restart from disk), so watches resume from any resourceVersion the history still covers.
    pub fn restore(
        &self,
        rv: u64,
        objects: Vec<(ObjKey, u64, Value)>,
        history: Vec<Arc<Event>>,
        history_from: u64,
    ) {
        let mut inner = self.lock();
        inner.rv = rv;
        let keep = history.len().min(self.history_cap);
        let dropped = history.len() - keep;
        // A watch from the last dropped event's resourceVersion is still served (every later event is kept).
        inner.oldest_rv = match dropped {
            0 => history_from,
            n => history[n - 1].rv,
        };
        inner.history = history.into_iter().skip(dropped).collect();
        for (key, obj_rv, obj) in objects {
            if let Some(uid) = uid_of(&obj) {
                inner.uids.insert(uid.to_string(), key.clone());
            }
            inner
                .objects
                .entry(key.resource.clone())
                .or_default()
                .insert((key.namespace, key.name), (obj_rv, Arc::new(obj)));
        }
    }

    pub fn current_rv(&self) -> u64 {
        self.lock().rv
    }

    pub fn get(&self, key: &ObjKey) -> Option<(u64, Arc<Value>)> {
        let inner = self.lock();
        inner
            .objects
            .get(&key.resource)?
            .get(&(key.namespace.clone(), key.name.clone()))
            .cloned()
    }

    /// Objects of one resource (optionally one namespace) whose (namespace, name) is after `after`, at most
    /// `limit` of them, with the store's resourceVersion. Keys are ordered by (namespace, name).
    pub fn list(
        &self,
        resource: &ResKey,
        namespace: Option<&str>,
        after: Option<&(String, String)>,
        filter: &mut dyn FnMut(&Value) -> bool,
        limit: usize,
    ) -> (u64, Vec<Arc<Value>>, bool) {
        let inner = self.lock();
        let mut out = Vec::new();
        let mut more = false;
        if let Some(objects) = inner.objects.get(resource) {
            let start = match (after, namespace) {
                (Some(a), _) => std::ops::Bound::Excluded(a.clone()),
                (None, Some(ns)) => std::ops::Bound::Included((ns.to_string(), String::new())),
                (None, None) => std::ops::Bound::Unbounded,
            };
            for ((ns, _), (_, obj)) in objects.range((start, std::ops::Bound::Unbounded)) {
                if let Some(want) = namespace
                    && ns != want
                {
                    break;
                }
                if !filter(obj) {
                    continue;
                }
                if out.len() == limit {
                    more = true;
                    break;
                }
                out.push(obj.clone());
            }
        }
        (inner.rv, out, more)
    }

    /// All keys of one resource in one namespace (or all namespaces).
    pub fn keys(&self, resource: &ResKey, namespace: Option<&str>) -> Vec<ObjKey> {
        let inner = self.lock();
        let Some(objects) = inner.objects.get(resource) else {
            return Vec::new();
        };
        objects
            .keys()
            .filter(|(ns, _)| namespace.is_none_or(|want| want == ns))
            .map(|(ns, name)| ObjKey {
                resource: resource.clone(),
                namespace: ns.clone(),
                name: name.clone(),
            })
            .collect()
    }

    /// Every stored object (for controllers' scans).
    pub fn all_objects(&self) -> Vec<(ObjKey, Arc<Value>)> {
        let inner = self.lock();
        let mut out = Vec::new();
        for (res, objects) in &inner.objects {
            for ((ns, name), (_, obj)) in objects {
                out.push((
                    ObjKey {
                        resource: res.clone(),
                        namespace: ns.clone(),
                        name: name.clone(),
                    },
                    obj.clone(),
                ));
            }
        }
        out
    }

    /// Commits a write if the precondition holds. The object's `metadata.resourceVersion` is set here.
    pub fn commit(
        &self,
        key: &ObjKey,
        pre: Precondition,
        write: Write,
    ) -> Result<Committed, CommitError> {
        let mut inner = self.lock();
        let slot = (key.namespace.clone(), key.name.clone());
        let current = inner
            .objects
            .get(&key.resource)
            .and_then(|o| o.get(&slot))
            .cloned();
        match (pre, &current) {
            (Precondition::Absent, Some(_)) => return Err(CommitError::Exists),
            (Precondition::Rv(_), None) => return Err(CommitError::NotFound),
            (Precondition::Rv(want), Some((have, _))) if *have != want => {
                return Err(CommitError::Stale);
            }
            _ => {}
        }
        let rv = inner.rv + 1;
        inner.rv = rv;
        let prev = current.map(|(_, o)| o);
        let (kind, object) = match write {
            Write::Put(mut obj) => {
                if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
                    meta.insert("resourceVersion".into(), Value::String(rv.to_string()));
                }
                let obj = Arc::new(obj);
                if let Some(uid) = uid_of(&obj) {
                    inner.uids.insert(uid.to_string(), key.clone());
                }
                inner
                    .objects
                    .entry(key.resource.clone())
                    .or_default()
                    .insert(slot, (rv, obj.clone()));
                (
                    if prev.is_some() {
                        EventType::Modified
                    } else {
                        EventType::Added
                    },
                    obj,
                )
            }
            Write::Delete => {
                let old = prev.clone().ok_or(CommitError::NotFound)?;
                if let Some(objects) = inner.objects.get_mut(&key.resource) {
                    objects.remove(&slot);
                }
                if let Some(uid) = uid_of(&old) {
                    inner.uids.remove(uid);
                }
                // The DELETED event carries the last state with the deletion's resourceVersion, as etcd3 does.
                let mut last = (*old).clone();
                if let Some(meta) = last.get_mut("metadata").and_then(Value::as_object_mut) {
                    meta.insert("resourceVersion".into(), Value::String(rv.to_string()));
                }
                (EventType::Deleted, Arc::new(last))
            }
        };
        let event = Arc::new(Event::new(rv, kind, key.clone(), object.clone(), prev));
        let durable = self.persister.as_ref().map(|p| {
            let record = match kind {
                EventType::Deleted => Record::delete(rv, key),
                _ => Record::put(rv, key, &object),
            };
            p.append(record.with_event(event.clone()))
        });
        inner.history.push_back(event.clone());
        while inner.history.len() > self.history_cap {
            if let Some(old) = inner.history.pop_front() {
                inner.oldest_rv = old.rv;
            }
        }
        if self.persister.is_none() {
            // No receivers is fine: nobody is watching. (With a log, the writer broadcasts once durable.)
            let _ = self.tx.send(event);
        }
        drop(inner);
        Ok(Committed { object, durable })
    }

    /// All future events of every resource.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.tx.subscribe()
    }

    /// Forgets the history so that every watch from an older resourceVersion gets 410 Gone.
    pub fn compact_history(&self) {
        let mut inner = self.lock();
        inner.history.clear();
        inner.oldest_rv = inner.rv;
    }

    /// Subscribes to changes of one resource. `Err(oldest)` when `start` is older than the history window.
    pub fn watch(&self, resource: &ResKey, start: WatchStart) -> Result<WatchSubscription, u64> {
        let inner = self.lock();
        let live = self.tx.subscribe();
        let backlog = match start {
            WatchStart::Snapshot => inner
                .objects
                .get(resource)
                .map(|objects| {
                    objects
                        .iter()
                        .map(|((ns, name), (rv, obj))| {
                            let key = ObjKey {
                                resource: resource.clone(),
                                namespace: ns.clone(),
                                name: name.clone(),
                            };
                            Arc::new(Event::new(*rv, EventType::Added, key, obj.clone(), None))
                        })
                        .collect()
                })
                .unwrap_or_default(),
            WatchStart::After(rv) => {
                if rv < inner.oldest_rv {
                    return Err(inner.oldest_rv);
                }
                // History is ordered by rv: binary-search the first event after `rv`.
                let first = inner.history.partition_point(|e| e.rv <= rv);
                inner
                    .history
                    .range(first..)
                    .filter(|e| &e.key.resource == resource)
                    .cloned()
                    .collect()
            }
        };
        Ok(WatchSubscription {
            backlog,
            rv: inner.rv,
            live,
        })
    }
}
