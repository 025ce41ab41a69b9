//! An index of the ServerClaim watch for the claim controller's Server trigger, which runs for every
//! relevant Server event: which claims name a Server, and which claims wait for one. Looking these
//! up in the claim cache would be a scan of every claim per Server event (10,000 × 10,000 checks per
//! round of Server changes at 10,000 servers), all on the controller's one task.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::ResourceExt as _;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use metal_api::ServerClaim;
use watches::{Following, WatchIndex};

/// Namespace and name.
type ClaimKey = (String, String);

/// Where a waiting claim sits in the ring of waiting claims: a hash of its key, then the key.
type RingPosition = (u64, ClaimKey);

/// Claims indexed by the Server they name and by whether they wait for one. Cheap to clone (shared).
#[derive(Clone, Default)]
pub struct ClaimIndex(Arc<Mutex<Following<Inner, ServerClaim>>>);

#[derive(Default)]
struct Inner {
    /// What each claim was last indexed under.
    claims: BTreeMap<ClaimKey, Indexed>,
    /// Claims by the Server their `spec.serverRef` names.
    by_server: HashMap<String, BTreeSet<ClaimKey>>,
    /// Claims without `spec.serverRef` and not being deleted, each with its selector, ordered by a
    /// hash of their key so that Servers starting at different points wake different claims.
    waiting: BTreeMap<RingPosition, Option<LabelSelector>>,
}

struct Indexed {
    server: Option<String>,
    waiting: bool,
}

fn key_of(claim: &ServerClaim) -> ClaimKey {
    (claim.namespace().unwrap_or_default(), claim.name_any())
}

fn hash_of(value: impl Hash) -> u64 {
    let mut hasher = DefaultHasher::new();
    value.hash(&mut hasher);
    hasher.finish()
}

fn claim_ref((namespace, name): &ClaimKey) -> ObjectRef<ServerClaim> {
    ObjectRef::new(name).within(namespace)
}

impl WatchIndex<ServerClaim> for Inner {
    type Key = ClaimKey;

    fn key_of(claim: &ServerClaim) -> ClaimKey {
        key_of(claim)
    }

    fn keys(&self) -> Vec<ClaimKey> {
        self.claims.keys().cloned().collect()
    }

    fn set(&mut self, claim: &ServerClaim) {
        let key = key_of(claim);
        self.remove(&key);
        let server = claim.spec.server_ref.as_ref().map(|r| r.name.clone());
        let waiting = server.is_none() && claim.metadata.deletion_timestamp.is_none();
        if let Some(server) = &server {
            self.by_server
                .entry(server.clone())
                .or_default()
                .insert(key.clone());
        }
        if waiting {
            self.waiting.insert(
                (hash_of(&key), key.clone()),
                claim.spec.server_selector.clone(),
            );
        }
        self.claims.insert(key, Indexed { server, waiting });
    }

    fn remove(&mut self, key: &ClaimKey) {
        let Some(indexed) = self.claims.remove(key) else {
            return;
        };
        if let Some(server) = indexed.server
            && let Some(keys) = self.by_server.get_mut(&server)
        {
            keys.remove(key);
            if keys.is_empty() {
                self.by_server.remove(&server);
            }
        }
        if indexed.waiting {
            self.waiting.remove(&(hash_of(key), key.clone()));
        }
    }
}

impl ClaimIndex {
    /// Follows one event of the claim watch (call it after the claim store has the event).
    pub fn observe(&self, event: &watcher::Event<ServerClaim>) {
        self.lock().observe(event);
    }

    /// The claims whose `spec.serverRef` names `server`.
    pub fn naming_server(&self, server: &str) -> Vec<ObjectRef<ServerClaim>> {
        self.lock()
            .index()
            .by_server
            .get(server)
            .map(|keys| keys.iter().map(claim_ref).collect())
            .unwrap_or_default()
    }

    /// Up to `limit` waiting claims whose selector matches `labels`, going round the ring from a
    /// point chosen by `server` and looking at no more than `inspect` claims: a bounded share of
    /// the waiting claims per Server event; claims it does not reach resync.
    pub fn waiting_for(
        &self,
        server: &str,
        labels: &BTreeMap<String, String>,
        limit: usize,
        inspect: usize,
    ) -> Vec<ObjectRef<ServerClaim>> {
        let following = self.lock();
        let inner = following.index();
        let start: RingPosition = (hash_of(server), (String::new(), String::new()));
        inner
            .waiting
            .range(&start..)
            .chain(inner.waiting.range(..&start))
            .take(inspect)
            .filter(|(_, selector)| {
                selector
                    .as_ref()
                    .is_none_or(|s| crate::selector::matches(s, labels))
            })
            .take(limit)
            .map(|((_, key), _)| claim_ref(key))
            .collect()
    }

    fn lock(&self) -> MutexGuard<'_, Following<Inner, ServerClaim>> {
        // Every update leaves the maps consistent before it can panic: keep using them.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::LocalObjectReference;
    use metal_api::ServerClaimSpec;

    fn claim(name: &str, server: Option<&str>, selector: Option<(&str, &str)>) -> ServerClaim {
        let spec: ServerClaimSpec =
            serde_json::from_value(serde_json::json!({ "power": "On", "image": "img" }))
                .expect("a valid spec");
        let mut claim = ServerClaim::new(name, spec);
        claim.metadata.namespace = Some("default".into());
        claim.spec.server_ref = server.map(|s| LocalObjectReference { name: s.into() });
        claim.spec.server_selector = selector.map(|(k, v)| LabelSelector {
            match_labels: Some([(k.to_string(), v.to_string())].into()),
            ..Default::default()
        });
        claim
    }

    fn names(refs: Vec<ObjectRef<ServerClaim>>) -> BTreeSet<String> {
        refs.into_iter().map(|r| r.name).collect()
    }

    #[test]
    fn follows_binding_deletion_and_relists() {
        use watcher::Event::{Apply, Delete, Init, InitApply, InitDone};
        let index = ClaimIndex::default();
        index.observe(&Apply(claim("a", None, None)));
        index.observe(&Apply(claim("b", None, Some(("rack", "1")))));
        index.observe(&Apply(claim("c", Some("s-1"), None)));
        let labels_1 = [("rack".to_string(), "1".to_string())].into();
        let none = BTreeMap::new();

        assert_eq!(names(index.naming_server("s-1")), ["c".to_string()].into());
        assert_eq!(
            names(index.waiting_for("s-9", &labels_1, 10, 100)),
            ["a".to_string(), "b".to_string()].into()
        );
        // `b` selects rack 1 only.
        assert_eq!(
            names(index.waiting_for("s-9", &none, 10, 100)),
            ["a".to_string()].into()
        );

        // `a` binds: it names s-2 and waits no more.
        index.observe(&Apply(claim("a", Some("s-2"), None)));
        assert_eq!(names(index.naming_server("s-2")), ["a".to_string()].into());
        assert!(index.waiting_for("s-9", &none, 10, 100).is_empty());

        // A deleted claim leaves every index; so does one missing from a relist.
        index.observe(&Delete(claim("c", Some("s-1"), None)));
        assert!(index.naming_server("s-1").is_empty());
        index.observe(&Init);
        index.observe(&InitApply(claim("a", Some("s-2"), None)));
        index.observe(&InitDone);
        assert!(index.waiting_for("s-9", &labels_1, 10, 100).is_empty());
        assert_eq!(names(index.naming_server("s-2")), ["a".to_string()].into());
    }

    #[test]
    fn wakes_a_bounded_share_and_different_servers_reach_different_claims() {
        let index = ClaimIndex::default();
        for i in 0..1000 {
            index.observe(&watcher::Event::Apply(claim(&format!("c-{i}"), None, None)));
        }
        let none = BTreeMap::new();
        let woken: Vec<_> = (0..8)
            .map(|s| names(index.waiting_for(&format!("s-{s}"), &none, 4, 100)))
            .collect();
        assert!(woken.iter().all(|w| w.len() == 4));
        let all: BTreeSet<_> = woken.iter().flatten().collect();
        assert!(
            all.len() > 4,
            "every Server woke the same claims: {woken:?}"
        );
    }

    #[test]
    fn looks_at_no_more_than_it_is_told() {
        let index = ClaimIndex::default();
        for i in 0..1000 {
            let c = claim(&format!("c-{i}"), None, Some(("rack", "1")));
            index.observe(&watcher::Event::Apply(c));
        }
        index.observe(&watcher::Event::Apply(claim(
            "picky",
            None,
            Some(("rack", "7")),
        )));
        let rack_7 = [("rack".to_string(), "7".to_string())].into();
        // Round the whole ring, the one fitting claim is found; looking at one claim, at most one
        // can be woken, and almost always it does not fit.
        assert_eq!(
            names(index.waiting_for("s-0", &rack_7, 4, 2000)),
            ["picky".to_string()].into()
        );
        let glimpses = (0..64)
            .filter(|s| {
                !index
                    .waiting_for(&format!("s-{s}"), &rack_7, 4, 1)
                    .is_empty()
            })
            .count();
        assert!(
            glimpses < 8,
            "{glimpses} of 64 one-claim looks found the one claim in 1,001"
        );
    }
}
