//! Which SBCs name a Server or an ignition Secret, kept from the SBC watch's events, so that a Server
//! or Secret event finds its SBCs without a scan of every SBC (at 10,000 Servers a scan per event
//! is most of the controller's CPU).

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use metal_api::ServerBootConfiguration;
use watches::{Following, WatchIndex};

use crate::records::SbcKey;

/// The Server and the Secret (`namespace`, `name`) an SBC names.
#[derive(Clone, PartialEq, Eq)]
struct Names {
    server: String,
    secret: Option<(String, String)>,
}

#[derive(Default)]
struct Inner {
    names: HashMap<SbcKey, Names>,
    // Sets are ordered so the reconciles they trigger are queued in one order each run.
    by_server: HashMap<String, BTreeSet<SbcKey>>,
    by_secret: HashMap<(String, String), BTreeSet<SbcKey>>,
}

/// The index; clones share it. It holds what the SBC store held when it saw the same event, so
/// mapping through it is mapping through the store.
#[derive(Clone, Default)]
pub struct Referrers {
    inner: Arc<Mutex<Following<Inner, ServerBootConfiguration>>>,
}

fn key_of(sbc: &ServerBootConfiguration) -> SbcKey {
    SbcKey::of(&sbc.metadata)
}

fn sbc_ref(key: &SbcKey) -> ObjectRef<ServerBootConfiguration> {
    ObjectRef::new(&key.name).within(&key.namespace)
}

impl WatchIndex<ServerBootConfiguration> for Inner {
    type Key = SbcKey;

    fn key_of(sbc: &ServerBootConfiguration) -> SbcKey {
        key_of(sbc)
    }

    fn keys(&self) -> Vec<SbcKey> {
        self.names.keys().cloned().collect()
    }

    fn set(&mut self, sbc: &ServerBootConfiguration) {
        let key = key_of(sbc);
        let names = Names {
            server: sbc.spec.server_ref.name.clone(),
            secret: sbc
                .spec
                .ignition_secret_ref
                .as_ref()
                .map(|r| (key.namespace.clone(), r.name.clone())),
        };
        if self.names.get(&key) == Some(&names) {
            return;
        }
        self.remove(&key);
        self.by_server
            .entry(names.server.clone())
            .or_default()
            .insert(key.clone());
        if let Some(secret) = &names.secret {
            self.by_secret
                .entry(secret.clone())
                .or_default()
                .insert(key.clone());
        }
        self.names.insert(key, names);
    }

    fn remove(&mut self, key: &SbcKey) {
        let Some(names) = self.names.remove(key) else {
            return;
        };
        if let Some(keys) = self.by_server.get_mut(&names.server) {
            keys.remove(key);
            if keys.is_empty() {
                self.by_server.remove(&names.server);
            }
        }
        if let Some(secret) = names.secret
            && let Some(keys) = self.by_secret.get_mut(&secret)
        {
            keys.remove(key);
            if keys.is_empty() {
                self.by_secret.remove(&secret);
            }
        }
    }
}

impl Referrers {
    /// Follows one event of the SBC watch.
    pub fn observe(&self, event: &watcher::Event<ServerBootConfiguration>) {
        self.lock().observe(event);
    }

    /// The SBCs whose `spec.serverRef` names `server`.
    pub fn naming_server(&self, server: &str) -> Vec<ObjectRef<ServerBootConfiguration>> {
        let following = self.lock();
        following
            .index()
            .by_server
            .get(server)
            .map(|keys| keys.iter().map(sbc_ref).collect())
            .unwrap_or_default()
    }

    /// The SBCs in `namespace` whose `spec.ignitionSecretRef` names `secret`.
    pub fn naming_secret(
        &self,
        namespace: &str,
        secret: &str,
    ) -> Vec<ObjectRef<ServerBootConfiguration>> {
        let following = self.lock();
        following
            .index()
            .by_secret
            .get(&(namespace.to_owned(), secret.to_owned()))
            .map(|keys| keys.iter().map(sbc_ref).collect())
            .unwrap_or_default()
    }

    fn lock(&self) -> MutexGuard<'_, Following<Inner, ServerBootConfiguration>> {
        // Each update leaves the maps consistent; a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::LocalObjectReference;
    use metal_api::ServerBootConfigurationSpec;
    use watcher::Event::{Apply, Delete, Init, InitApply, InitDone};

    fn sbc(ns: &str, name: &str, server: &str, secret: Option<&str>) -> ServerBootConfiguration {
        let mut sbc = ServerBootConfiguration::new(
            name,
            ServerBootConfigurationSpec {
                server_ref: LocalObjectReference {
                    name: server.into(),
                },
                image: None,
                ignition_secret_ref: secret.map(|s| LocalObjectReference { name: s.into() }),
            },
        );
        sbc.metadata.namespace = Some(ns.into());
        sbc
    }

    fn names(refs: Vec<ObjectRef<ServerBootConfiguration>>) -> Vec<String> {
        let mut names: Vec<String> = refs
            .into_iter()
            .map(|r| format!("{}/{}", r.namespace.unwrap_or_default(), r.name))
            .collect();
        names.sort();
        names
    }

    #[test]
    fn follows_references_as_they_change_and_go() {
        let index = Referrers::default();
        index.observe(&Apply(sbc("a", "one", "s1", Some("ign"))));
        index.observe(&Apply(sbc("b", "one", "s1", Some("ign"))));
        index.observe(&Apply(sbc("a", "two", "s2", None)));
        assert_eq!(names(index.naming_server("s1")), ["a/one", "b/one"]);
        assert_eq!(names(index.naming_secret("a", "ign")), ["a/one"]);
        assert!(index.naming_secret("c", "ign").is_empty());
        // `a/one` moves to another Server and drops its Secret; `b/one` is deleted.
        index.observe(&Apply(sbc("a", "one", "s2", None)));
        index.observe(&Delete(sbc("b", "one", "s1", Some("ign"))));
        assert!(index.naming_server("s1").is_empty());
        assert_eq!(names(index.naming_server("s2")), ["a/one", "a/two"]);
        assert!(index.naming_secret("a", "ign").is_empty());
    }

    #[test]
    fn a_relist_drops_what_was_deleted_meanwhile() {
        let index = Referrers::default();
        index.observe(&Apply(sbc("a", "one", "s1", Some("ign"))));
        index.observe(&Apply(sbc("a", "two", "s1", Some("ign"))));
        for event in [
            Init,
            InitApply(sbc("a", "two", "s1", Some("ign"))),
            InitDone,
        ] {
            index.observe(&event);
        }
        assert_eq!(names(index.naming_server("s1")), ["a/two"]);
        assert_eq!(names(index.naming_secret("a", "ign")), ["a/two"]);
    }
}
