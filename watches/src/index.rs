//! An index of a watch's objects (by what they refer to, say) kept in step with the watch's events,
//! relists included, so that a trigger of another kind maps through it without scanning a store.

use std::collections::HashSet;
use std::hash::Hash;
use std::marker::PhantomData;

use kube::runtime::watcher;

/// What an index keeps per object, and how an object enters and leaves it.
pub trait WatchIndex<K> {
    type Key: Eq + Hash + Clone;
    fn key_of(obj: &K) -> Self::Key;
    /// Indexes `obj`, replacing what was indexed under its key.
    fn set(&mut self, obj: &K);
    fn remove(&mut self, key: &Self::Key);
    /// Every key indexed now.
    fn keys(&self) -> Vec<Self::Key>;
}

/// A [`WatchIndex`] following one watch: applied objects are set, deleted ones removed, and what a
/// relist (`Init` … `InitDone`) did not show is removed once it completes.
pub struct Following<I: WatchIndex<K>, K> {
    index: I,
    relisted: Option<HashSet<I::Key>>,
    kind: PhantomData<fn(&K)>,
}

impl<I: WatchIndex<K> + Default, K> Default for Following<I, K> {
    fn default() -> Self {
        Self {
            index: I::default(),
            relisted: None,
            kind: PhantomData,
        }
    }
}

impl<I: WatchIndex<K>, K> Following<I, K> {
    /// Follows one event (call it after the store has the event, so the two agree).
    pub fn observe(&mut self, event: &watcher::Event<K>) {
        match event {
            watcher::Event::Init => self.relisted = Some(HashSet::new()),
            watcher::Event::InitApply(obj) => {
                if let Some(relisted) = self.relisted.as_mut() {
                    relisted.insert(I::key_of(obj));
                }
                self.index.set(obj);
            }
            watcher::Event::Apply(obj) => self.index.set(obj),
            watcher::Event::Delete(obj) => self.index.remove(&I::key_of(obj)),
            watcher::Event::InitDone => {
                if let Some(relisted) = self.relisted.take() {
                    for key in self.index.keys() {
                        if !relisted.contains(&key) {
                            self.index.remove(&key);
                        }
                    }
                }
            }
        }
    }

    pub fn index(&self) -> &I {
        &self.index
    }
}
