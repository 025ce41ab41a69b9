//! Versioned object store: one global monotonic resourceVersion, a bounded event history and watch fan-out.
//!
//! Objects are kept in their stored form (`StoredObject`: the serialised watch line plus selector metadata),
//! keyed by resource ("group/plural"), namespace and name. Writers read, compute and serialise the new object
//! outside the lock, then commit with a precondition (GuaranteedUpdate style); the lock is held only to stamp the
//! resourceVersion and update the maps. Every commit is appended to the history ring and broadcast to watchers;
//! events share the stored bytes, so a version of an object costs its bytes once however many hold it.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use serde_json::Value;
use tokio::sync::{broadcast, oneshot};

use crate::persist::{LogFile, Persister, Record};
use crate::stored::{Event, EventType, ObjKey, Prepared, ResKey, StoredObject};

/// A watch event line for a value that is not a stored object (bookmarks, errors, tables).
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
    Put(Prepared),
    Delete,
}

/// A successful commit; `durable` resolves once the write is on disk (None when running in memory).
pub struct Committed {
    pub object: Arc<StoredObject>,
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

/// One page of a list.
pub struct Page {
    /// The resourceVersion the page shows.
    pub rv: u64,
    pub items: Vec<Arc<StoredObject>>,
    /// More matching objects follow the last item.
    pub more: bool,
}

/// A list asked for a resourceVersion older than the history window (410 Gone).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compacted {
    pub oldest: u64,
}

/// See [`Store::gc_view`].
pub struct GcView {
    pub objects: Vec<(ObjKey, Arc<StoredObject>)>,
    pub live_owners: HashSet<Box<str>>,
}

/// How far (in events) a watcher may fall behind before it is told to relist. The ring keeps that many events
/// alive, so it is bounded separately from the (configurable) history.
const BROADCAST_CAPACITY: usize = 8 * 1024;

type Slot = (String, String);

struct Inner {
    rv: u64,
    /// Ordered so the garbage collector (and anything else walking every resource) sees one order each run.
    objects: BTreeMap<ResKey, Objects>,
    history: VecDeque<Arc<Event>>,
    /// Watches (and paged lists) from a resourceVersion below this cannot be served from history (410 Gone).
    oldest_rv: u64,
}

pub struct Store {
    inner: Mutex<Inner>,
    tx: broadcast::Sender<Arc<Event>>,
    history_cap: usize,
    persister: Option<Persister>,
}

/// What a list reads: a resource, optionally one namespace, the keys after a continue point, a filter.
pub struct ListQuery<'a> {
    pub resource: &'a ResKey,
    pub namespace: Option<&'a str>,
    pub after: Option<&'a Slot>,
    /// Called with (namespace, name, object).
    pub filter: &'a mut dyn FnMut(&str, &str, &StoredObject) -> bool,
    pub limit: usize,
}

impl Store {
    pub fn new(
        history_cap: usize,
        log: Option<LogFile>,
        paused_clock: bool,
    ) -> std::io::Result<Self> {
        let (tx, _) = broadcast::channel(BROADCAST_CAPACITY);
        // On a paused clock a write is on disk before the commit returns (see `Persister::Inline`).
        let persister = log
            .map(|l| Persister::start(l, tx.clone(), paused_clock))
            .transpose()?;
        Ok(Store {
            inner: Mutex::new(Inner {
                rv: 0,
                objects: BTreeMap::new(),
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
        objects: Vec<(ObjKey, u64, Arc<StoredObject>)>,
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
            inner
                .objects
                .entry(key.resource.clone())
                .or_default()
                .insert(&key.namespace, &key.name, (obj_rv, obj));
        }
    }

    pub fn current_rv(&self) -> u64 {
        self.lock().rv
    }

    pub fn get(&self, key: &ObjKey) -> Option<(u64, Arc<StoredObject>)> {
        let inner = self.lock();
        inner
            .objects
            .get(&key.resource)?
            .get(&key.namespace, &key.name)
            .cloned()
    }

    /// Up to `limit` matching objects whose (namespace, name) is after `after`, ordered by (namespace, name),
    /// as of resourceVersion `at` (the current state when None). A past state is rebuilt from the history: the
    /// first event after `at` of each key carries the key's state at `at` as its `prev`.
    pub fn list(&self, q: ListQuery<'_>, at: Option<u64>) -> Result<Page, Compacted> {
        let inner = self.lock();
        let rv = at.unwrap_or(inner.rv);
        let empty = Objects::default();
        let objects = inner.objects.get(q.resource).unwrap_or(&empty);
        let after = q.after.map(|(ns, name)| (ns.as_str(), name.as_str()));
        let in_range = |slot: &(&str, &str)| {
            after.is_none_or(|a| *slot > a) && q.namespace.is_none_or(|ns| slot.0 == ns)
        };
        // Keys changed since `rv`, with their state at `rv` (None: absent then).
        let mut past: BTreeMap<(&str, &str), Option<&Arc<StoredObject>>> = BTreeMap::new();
        if rv < inner.rv {
            if rv < inner.oldest_rv {
                return Err(Compacted {
                    oldest: inner.oldest_rv,
                });
            }
            let first = inner.history.partition_point(|e| e.rv <= rv);
            for e in inner.history.range(first..) {
                let slot = (e.key.namespace.as_str(), e.key.name.as_str());
                if e.key.resource == *q.resource && in_range(&slot) {
                    past.entry(slot).or_insert(e.prev.as_ref());
                }
            }
        }
        let current = objects
            .range(after, q.namespace)
            .filter(|(slot, _)| !past.contains_key(slot))
            .map(|(slot, (_, obj))| (slot, obj));
        let then = past.iter().filter_map(|(slot, obj)| Some((*slot, (*obj)?)));
        let mut items = Vec::new();
        let mut more = false;
        for ((ns, name), obj) in merge_sorted(current, then) {
            if !(q.filter)(ns, name, obj) {
                continue;
            }
            if items.len() == q.limit {
                more = true;
                break;
            }
            items.push(obj.clone());
        }
        Ok(Page { rv, items, more })
    }

    /// All keys of one resource in one namespace (or all namespaces).
    pub fn keys(&self, resource: &ResKey, namespace: Option<&str>) -> Vec<ObjKey> {
        let inner = self.lock();
        let Some(objects) = inner.objects.get(resource) else {
            return Vec::new();
        };
        objects
            .range(None, namespace)
            .map(|((ns, name), _)| ObjKey {
                resource: resource.clone(),
                namespace: ns.to_string(),
                name: name.to_string(),
            })
            .collect()
    }

    /// What the garbage collector looks at: the objects that have owners or are being deleted, and which of
    /// their owners exist. Everything else is skipped without copying a key.
    pub fn gc_view(&self) -> GcView {
        let inner = self.lock();
        let mut objects = Vec::new();
        let mut wanted: HashSet<&str> = HashSet::new();
        for (res, by_name) in &inner.objects {
            for ((ns, name), (_, obj)) in by_name.range(None, None) {
                if obj.meta.deleting || !obj.meta.owners.is_empty() {
                    wanted.extend(obj.meta.owners.iter().map(|o| &**o));
                    let key = ObjKey {
                        resource: res.clone(),
                        namespace: ns.to_string(),
                        name: name.to_string(),
                    };
                    objects.push((key, obj.clone()));
                }
            }
        }
        let mut live_owners = HashSet::new();
        if !wanted.is_empty() {
            for by_name in inner.objects.values() {
                for (_, (_, obj)) in by_name.range(None, None) {
                    if wanted.contains(&*obj.meta.uid) {
                        live_owners.insert(obj.meta.uid.clone());
                    }
                }
            }
        }
        GcView {
            objects,
            live_owners,
        }
    }

    /// Commits a write if the precondition holds, stamping the object with the new resourceVersion.
    pub fn commit(
        &self,
        key: &ObjKey,
        pre: Precondition,
        write: Write,
    ) -> Result<Committed, CommitError> {
        let mut inner = self.lock();
        let prev = inner
            .objects
            .get(&key.resource)
            .and_then(|o| o.get(&key.namespace, &key.name))
            .cloned();
        match (pre, &prev) {
            (Precondition::Absent, Some(_)) => return Err(CommitError::Exists),
            (Precondition::Rv(_), None) => return Err(CommitError::NotFound),
            (Precondition::Rv(want), Some((have, _))) if *have != want => {
                return Err(CommitError::Stale);
            }
            _ => {}
        }
        let rv = inner.rv + 1;
        let prev = prev.map(|(_, o)| o);
        let (kind, object) = match write {
            Write::Put(prepared) => {
                let kind = if prev.is_some() {
                    EventType::Modified
                } else {
                    EventType::Added
                };
                let obj = Arc::new(prepared.stamp(kind.as_str(), rv));
                inner
                    .objects
                    .entry(key.resource.clone())
                    .or_default()
                    .insert(&key.namespace, &key.name, (rv, obj.clone()));
                (kind, obj)
            }
            Write::Delete => {
                let old = prev.as_ref().ok_or(CommitError::NotFound)?;
                let last = Arc::new(old.restamp(EventType::Deleted.as_str(), rv));
                if let Some(objects) = inner.objects.get_mut(&key.resource) {
                    objects.remove(&key.namespace, &key.name);
                }
                (EventType::Deleted, last)
            }
        };
        inner.rv = rv;
        let event = Arc::new(Event {
            rv,
            kind,
            key: key.clone(),
            object: object.clone(),
            prev,
        });
        let durable = self
            .persister
            .as_ref()
            .map(|p| p.append(Record::new(event.clone())));
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
                        .range(None, None)
                        .map(|((ns, name), (rv, obj))| {
                            let key = ObjKey {
                                resource: resource.clone(),
                                namespace: ns.to_string(),
                                name: name.to_string(),
                            };
                            Arc::new(Event {
                                rv: *rv,
                                kind: EventType::Added,
                                key,
                                object: obj.clone(),
                                prev: None,
                            })
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

type Entry = (u64, Arc<StoredObject>);

/// One resource's objects by namespace, then name: point lookups by `&str` (no key allocation, no namespace
/// compare per step) and iteration in (namespace, name) order for lists and continue tokens.
#[derive(Default)]
struct Objects(BTreeMap<String, BTreeMap<String, Entry>>);

impl Objects {
    fn get(&self, ns: &str, name: &str) -> Option<&Entry> {
        self.0.get(ns)?.get(name)
    }

    fn insert(&mut self, ns: &str, name: &str, entry: Entry) {
        let names = match self.0.get_mut(ns) {
            Some(names) => names,
            None => self.0.entry(ns.to_string()).or_default(),
        };
        match names.get_mut(name) {
            Some(slot) => *slot = entry,
            None => {
                names.insert(name.to_string(), entry);
            }
        }
    }

    fn remove(&mut self, ns: &str, name: &str) {
        if let Some(names) = self.0.get_mut(ns) {
            names.remove(name);
            if names.is_empty() {
                self.0.remove(ns);
            }
        }
    }

    /// Entries after `after` (exclusive) and in `namespace` (all when None), in (namespace, name) order.
    fn range<'a>(
        &'a self,
        after: Option<(&'a str, &'a str)>,
        namespace: Option<&'a str>,
    ) -> impl Iterator<Item = ((&'a str, &'a str), &'a Entry)> + 'a {
        use std::cmp::Ordering;
        use std::ops::Bound::{Excluded, Included, Unbounded};
        let first_ns = match namespace.or(after.map(|a| a.0)) {
            Some(ns) => Included(ns),
            None => Unbounded,
        };
        self.0
            .range::<str, _>((first_ns, Unbounded))
            .take_while(move |(ns, _)| namespace.is_none_or(|want| want == ns.as_str()))
            .flat_map(move |(ns, names)| {
                let lower = match after.map(|(a_ns, a_name)| (ns.as_str().cmp(a_ns), a_name)) {
                    Some((Ordering::Less, _)) => None,
                    Some((Ordering::Equal, a_name)) => Some(Excluded(a_name)),
                    _ => Some(Unbounded),
                };
                lower.into_iter().flat_map(move |lower| {
                    names
                        .range::<str, _>((lower, Unbounded))
                        .map(move |(name, e)| ((ns.as_str(), name.as_str()), e))
                })
            })
    }
}

type SlotRef<'a> = (&'a str, &'a str);

/// Merges two iterators sorted by slot (with disjoint slots) into one sorted sequence.
fn merge_sorted<'a, A, B>(a: A, b: B) -> impl Iterator<Item = (SlotRef<'a>, &'a Arc<StoredObject>)>
where
    A: Iterator<Item = (SlotRef<'a>, &'a Arc<StoredObject>)>,
    B: Iterator<Item = (SlotRef<'a>, &'a Arc<StoredObject>)>,
{
    let (mut a, mut b) = (a.peekable(), b.peekable());
    std::iter::from_fn(move || match (a.peek(), b.peek()) {
        (Some(x), Some(y)) if y.0 < x.0 => b.next(),
        (Some(_), _) => a.next(),
        (None, _) => b.next(),
    })
}
