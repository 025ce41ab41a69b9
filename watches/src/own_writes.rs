//! Read-your-own-writes for reconcilers: the object a controller last wrote, until its watch cache
//! shows that write.
//!
//! A reconcile that a requeue starts right after the previous one wrote can see the cached object
//! from *before* that write. Its guarded write (resourceVersion precondition) then fails with a
//! conflict and the whole reconcile — BMC requests included — is repeated. Remembering what was
//! written, and which resourceVersions it supersedes, lets the next reconcile start from it.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use kube::Resource;

struct Written<K> {
    /// resourceVersions known to be older than `object` (the ones our writes started from).
    superseded: HashSet<String>,
    object: Arc<K>,
}

/// Objects this process wrote, keyed by name, each with the versions it supersedes.
pub struct OwnWrites<K> {
    written: Mutex<HashMap<String, Written<K>>>,
}

impl<K> Default for OwnWrites<K> {
    fn default() -> Self {
        Self {
            written: Mutex::new(HashMap::new()),
        }
    }
}

fn version<K: Resource>(obj: &K) -> Option<&str> {
    obj.meta().resource_version.as_deref()
}

fn key<K: Resource>(obj: &K) -> String {
    let meta = obj.meta();
    match &meta.namespace {
        Some(ns) => format!("{ns}/{}", meta.name.as_deref().unwrap_or_default()),
        None => meta.name.clone().unwrap_or_default(),
    }
}

impl<K: Resource> OwnWrites<K> {
    /// Records that a write starting from resourceVersion `from` produced `written`.
    pub fn record(&self, from: Option<&str>, written: Arc<K>) {
        let mut map = self.lock();
        let entry = map.entry(key(&*written)).or_insert_with(|| Written {
            superseded: HashSet::new(),
            object: written.clone(),
        });
        if let Some(from) = from {
            entry.superseded.insert(from.to_owned());
        }
        if let Some(previous) = version(&*entry.object)
            && Some(previous) != version(&*written)
        {
            entry.superseded.insert(previous.to_owned());
        }
        entry.object = written;
    }

    /// The object to reconcile: our last write when the cache still shows a version it superseded,
    /// otherwise the cached object (which has caught up, or moved on through someone else's write).
    pub fn freshest(&self, cached: Arc<K>) -> Arc<K> {
        let mut map = self.lock();
        let k = key(&*cached);
        let Some(entry) = map.get(&k) else {
            return cached;
        };
        match version(&*cached) {
            Some(v) if entry.superseded.contains(v) => entry.object.clone(),
            _ => {
                map.remove(&k);
                cached
            }
        }
    }

    /// Forgets an object (deleted).
    pub fn forget(&self, obj: &K) {
        self.lock().remove(&key(obj));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Written<K>>> {
        // Entries are replaced whole; a poisoned map is still consistent.
        self.written
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;

    /// Any kind will do; a ConfigMap needs no CRD types.
    fn server(rv: &str) -> Arc<ConfigMap> {
        let mut s = ConfigMap::default();
        s.metadata.name = Some("s-1".into());
        s.metadata.resource_version = Some(rv.into());
        Arc::new(s)
    }

    #[test]
    fn a_stale_cache_yields_our_latest_write() {
        let writes = OwnWrites::default();
        writes.record(Some("1"), server("2"));
        writes.record(Some("2"), server("3"));
        for stale in ["1", "2"] {
            let got = writes.freshest(server(stale));
            assert_eq!(version(&*got), Some("3"), "cache at {stale}");
        }
    }

    #[test]
    fn a_cache_that_caught_up_or_moved_on_wins_and_the_entry_goes() {
        let writes = OwnWrites::default();
        writes.record(Some("1"), server("2"));
        assert_eq!(version(&*writes.freshest(server("2"))), Some("2"));
        // Entry gone: even an old version is now taken as it is.
        assert_eq!(version(&*writes.freshest(server("1"))), Some("1"));

        writes.record(Some("4"), server("5"));
        assert_eq!(
            version(&*writes.freshest(server("7"))),
            Some("7"),
            "someone else wrote after us"
        );
        writes.record(Some("8"), server("9"));
        writes.forget(&*server("9"));
        assert_eq!(version(&*writes.freshest(server("8"))), Some("8"));
    }
}
