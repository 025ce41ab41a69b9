//! Built-in controllers beside the API layer, as kube-controller-manager runs them on a real cluster: garbage
//! collection by ownerReferences (background, foreground, orphan) and namespace deletion; plus the CRD cleanup
//! that apiextensions does when a CRD is deleted.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

use crate::crd;
use crate::objects::{Sub, finalizers};
use crate::ops::{self, DeleteOpts, State};
use crate::stored::{EventType, Meta, ObjKey};

const SWEEP_DEBOUNCE: Duration = Duration::from_millis(20);
/// Sweeps triggered by events start at least this many times the previous sweep's duration apart.
const SWEEP_SPACING: u32 = 4;
/// A full sweep also runs this often, to catch anything a lagging event subscription missed.
const RESYNC: Duration = Duration::from_secs(2);
const POLL: Duration = Duration::from_millis(50);
/// A CRD whose instances are held by finalizers nobody removes is given up on after this long.
const CRD_CLEANUP_LIMIT: Duration = Duration::from_secs(3600);

/// Deletes all instances of a CRD being deleted, then releases the CRD's cleanup finalizer.
pub fn crd_cleanup(st: Arc<State>, crd_name: String) -> futures::future::BoxFuture<'static, ()> {
    Box::pin(crd_cleanup_loop(st, crd_name))
}

async fn crd_cleanup_loop(st: Arc<State>, crd_name: String) {
    let Some(crd_info) = st
        .registry
        .get("apiextensions.k8s.io", "customresourcedefinitions")
    else {
        return;
    };
    let crd_key = State::key(&crd_info, None, &crd_name);
    let deadline = tokio::time::Instant::now() + CRD_CLEANUP_LIMIT;
    while tokio::time::Instant::now() < deadline {
        let Some((_, crd_obj)) = st.store.get(&crd_key) else {
            return;
        };
        if !crd_obj.meta.deleting {
            return;
        }
        let served = crd::resource_info(&crd_obj.value());
        let Some(info) = st.registry.get(&served.group, &served.plural) else {
            break;
        };
        let keys = st.store.keys(&info.key, None);
        if keys.is_empty() {
            break;
        }
        for key in keys {
            if st.store.get(&key).is_some_and(|(_, o)| !o.meta.deleting) {
                let _ = ops::delete(&st, &info, &key, &DeleteOpts::default()).await;
            }
        }
        tokio::time::sleep(POLL).await;
    }
    remove_finalizer(&st, &crd_key, crd::CLEANUP_FINALIZER).await;
}

async fn remove_finalizer(st: &Arc<State>, key: &ObjKey, finalizer: &str) {
    update_internally(st, key, &|next: &mut Value| {
        let kept: Vec<String> = finalizers(next)
            .into_iter()
            .filter(|f| f != finalizer)
            .collect();
        next["metadata"]["finalizers"] = json!(kept);
    })
    .await;
}

/// Edits the metadata of the object at `key` as the API server itself; a failure is left to the next sweep.
async fn update_internally(
    st: &Arc<State>,
    key: &ObjKey,
    edit: &(dyn Fn(&mut Value) + Send + Sync),
) {
    let Some(info) = st.registry.by_key(&key.resource) else {
        return;
    };
    let _ = ops::edit_internally(st, &info, key, Sub::Main, edit).await;
}

/// Runs garbage collection and namespace deletion until the store's event stream closes.
pub async fn run(st: Arc<State>) {
    let mut events = Some(st.store.subscribe());
    let mut last_sweep = Duration::ZERO;
    loop {
        // Wait for an event that can make work (or the resync period), then let a burst settle.
        let wake = async {
            match events.as_mut() {
                Some(rx) => loop {
                    match rx.recv().await {
                        Ok(e)
                            if relevant(
                                e.kind,
                                &e.object.meta,
                                e.prev.as_deref().map(|p| &p.meta),
                            ) =>
                        {
                            return true;
                        }
                        Ok(_) => continue,
                        Err(RecvError::Lagged(_)) => return true,
                        Err(RecvError::Closed) => return false,
                    }
                },
                None => std::future::pending().await,
            }
        };
        match tokio::time::timeout(RESYNC, wake).await {
            Ok(false) => return,
            // A sweep reads every owned object, so under a write storm sweeps are spaced by a multiple of the last
            // sweep's cost: the collector then takes a bounded share of the CPU however large the store grows.
            Ok(true) => tokio::time::sleep(SWEEP_DEBOUNCE.max(last_sweep * SWEEP_SPACING)).await,
            Err(_) => {}
        }
        if let Some(rx) = events.as_mut() {
            while rx.try_recv().is_ok() {}
        }
        let started = tokio::time::Instant::now();
        sweep(&st).await;
        last_sweep = started.elapsed();
    }
}

/// Whether an event can give the collector work: a deletion (dependents may now be orphans), an object being
/// deleted, or an object whose owners are new or changed (an owner may not exist). Status and spec updates of
/// owned objects, by far the most frequent writes, change nothing the collector looks at.
fn relevant(kind: EventType, meta: &Meta, prev: Option<&Meta>) -> bool {
    match kind {
        EventType::Deleted => true,
        EventType::Added => meta.deleting || !meta.owners.is_empty(),
        EventType::Modified => {
            meta.deleting || prev.is_none_or(|p| p.owners != meta.owners || p.deleting)
        }
    }
}

async fn sweep(st: &Arc<State>) {
    let view = st.store.gc_view();
    let mut dependents: HashMap<&str, Vec<ObjKey>> = HashMap::new();
    for (key, obj) in &view.objects {
        for owner in &obj.meta.owners {
            dependents.entry(owner).or_default().push(key.clone());
        }
    }
    for (key, obj) in &view.objects {
        let meta = &obj.meta;
        let orphaned =
            !meta.owners.is_empty() && meta.owners.iter().all(|o| !view.live_owners.contains(o));
        if orphaned && !meta.deleting {
            delete_key(st, key, None).await;
        }
        if !meta.deleting {
            continue;
        }
        let uid = meta.uid.to_string();
        let deps = dependents.get(&*uid).cloned().unwrap_or_default();
        let held = finalizers(&obj.value());
        if held.iter().any(|f| f == "orphan") {
            for dep in &deps {
                drop_owner_ref(st, dep, &uid).await;
            }
            remove_finalizer(st, key, "orphan").await;
        } else if held.iter().any(|f| f == "foregroundDeletion") {
            if deps.is_empty() {
                remove_finalizer(st, key, "foregroundDeletion").await;
            } else {
                for dep in &deps {
                    delete_key(st, dep, Some("Foreground")).await;
                }
            }
        }
        if key.resource.as_ref() == "/namespaces" {
            finish_namespace(st, &key.name).await;
        }
    }
}

async fn delete_key(st: &Arc<State>, key: &ObjKey, propagation: Option<&str>) {
    let Some(info) = st.registry.by_key(&key.resource) else {
        return;
    };
    if st.store.get(key).is_some_and(|(_, o)| o.meta.deleting) {
        return;
    }
    let opts = DeleteOpts {
        propagation: propagation.map(String::from),
        ..Default::default()
    };
    let _ = ops::delete(st, &info, key, &opts).await;
}

async fn drop_owner_ref(st: &Arc<State>, key: &ObjKey, owner_uid: &str) {
    update_internally(st, key, &|next: &mut Value| {
        if let Some(refs) = next
            .pointer_mut("/metadata/ownerReferences")
            .and_then(Value::as_array_mut)
        {
            refs.retain(|r| r.get("uid").and_then(Value::as_str) != Some(owner_uid));
        }
    })
    .await;
}

/// Deletes everything in a terminating namespace; once it is empty, releases the `kubernetes` finalizer.
async fn finish_namespace(st: &Arc<State>, ns: &str) {
    let mut remaining = 0;
    for info in st.registry.all().into_iter().filter(|i| i.namespaced) {
        for key in st.store.keys(&info.key, Some(ns)) {
            remaining += 1;
            delete_key(st, &key, None).await;
        }
    }
    if remaining > 0 {
        return;
    }
    let Some(info) = st.registry.get("", "namespaces") else {
        return;
    };
    let key = State::key(&info, None, ns);
    let clear = |next: &mut Value| next["spec"]["finalizers"] = json!([]);
    let _ = ops::edit_internally(st, &info, &key, Sub::Finalize, &clear).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(owners: &[&str], deleting: bool) -> Meta {
        let refs: Vec<Value> = owners
            .iter()
            .map(|uid| json!({"apiVersion": "v1", "kind": "ConfigMap", "name": "o", "uid": uid}))
            .collect();
        let mut obj = json!({"metadata": {"name": "x", "uid": "u1", "ownerReferences": refs}});
        if deleting {
            obj["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        }
        Meta::of("/configmaps", &obj)
    }

    #[test]
    fn only_events_that_can_orphan_or_finish_a_deletion_wake_the_collector() {
        let owned = meta(&["a"], false);
        // Status/spec writes of an owned object: owners unchanged, nothing for the collector.
        assert!(!relevant(
            EventType::Modified,
            &owned,
            Some(&meta(&["a"], false))
        ));
        assert!(relevant(
            EventType::Modified,
            &owned,
            Some(&meta(&["b"], false))
        ));
        assert!(relevant(EventType::Modified, &owned, None));
        assert!(relevant(
            EventType::Modified,
            &meta(&[], true),
            Some(&meta(&[], false))
        ));
        assert!(relevant(EventType::Added, &owned, None));
        assert!(!relevant(EventType::Added, &meta(&[], false), None));
        assert!(relevant(EventType::Deleted, &meta(&[], false), None));
    }
}
