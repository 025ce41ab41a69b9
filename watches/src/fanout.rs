//! One controller's watch handed on, after its store has each event, as triggers of other controllers.
//!
//! Why: a trigger fed by a watch of its own can wake a reconcile before the store that reconcile
//! reads (fed by another watch of the same kind) has the event. The reconcile then decides on the
//! object as it was and waits for its next resync: a claim woken because a Server had just come free
//! found it still powering off in the Server store and stayed unbound for a minute. Here the owning
//! controller's watch publishes what its store has applied, and the other controllers subscribe to it
//! instead of watching the kind again, so their triggers never run ahead of that store.
//!
//! Not kube-runtime's shared streams (`reflector::store_shared`, `Writer::subscribe`): their subscribers
//! are not told of deletions, and a relist hands every object on again rather than what changed, which
//! the fingerprint filters here are for. One [`Fanout`] serves one publishing controller.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use futures::{Stream, StreamExt as _};
use kube::runtime::{WatchStreamExt as _, watcher};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::{DETACHED_BUFFER, Fingerprint, Watched, relevant, triggers_after_relist};

/// The subscribers of one controller's watch (see [`crate::controller_publishing`]). Cheap to clone
/// (shared).
pub struct Fanout<K> {
    subscribers: Arc<Mutex<Subscribers<K>>>,
}

struct Subscribers<K> {
    senders: Vec<mpsc::Sender<watcher::Event<K>>>,
    /// Set by the first event: a subscriber that comes later has missed the objects listed so far.
    publishing: bool,
}

impl<K> Clone for Fanout<K> {
    fn clone(&self) -> Self {
        Self {
            subscribers: self.subscribers.clone(),
        }
    }
}

impl<K> Default for Fanout<K> {
    fn default() -> Self {
        Self {
            subscribers: Arc::new(Mutex::new(Subscribers {
                senders: Vec::new(),
                publishing: false,
            })),
        }
    }
}

impl<K: Watched> Fanout<K> {
    /// Every object the watch applies or deletes, as triggers for [`kube::runtime::Controller::watches_stream`],
    /// each handed on once the publishing controller's store has it (a relist's objects after its
    /// `InitDone`). Subscribe before the publishing controller runs, and poll what this returns: the
    /// watch waits while a subscriber is a full buffer behind; a dropped subscription is forgotten.
    pub fn subscribe(&self) -> impl Stream<Item = Result<K, watcher::Error>> + Send + 'static {
        triggers_after_relist(self.events()).touched_objects()
    }

    /// Like [`Self::subscribe`], but only the events that change `on`'s fingerprint (and every deletion).
    pub fn subscribe_on(
        &self,
        on: Fingerprint<K>,
    ) -> impl Stream<Item = Result<K, watcher::Error>> + Send + 'static {
        triggers_after_relist(relevant(self.events(), on)).touched_objects()
    }

    fn events(
        &self,
    ) -> impl Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static {
        let (tx, rx) = mpsc::channel(DETACHED_BUFFER);
        let mut subscribers = self.lock();
        debug_assert!(
            !subscribers.publishing,
            "subscribed to a {} watch that is already running: its listed objects were missed",
            K::kind(&())
        );
        subscribers.senders.push(tx);
        ReceiverStream::new(rx).map(Ok)
    }

    /// Hands `event` to every subscriber, in subscription order.
    pub(crate) async fn publish(&self, event: &watcher::Event<K>) {
        let senders = {
            let mut subscribers = self.lock();
            subscribers.publishing = true;
            subscribers.senders.clone()
        };
        let mut dropped = false;
        for sender in &senders {
            dropped |= sender.send(event.clone()).await.is_err();
        }
        if dropped {
            self.lock().senders.retain(|sender| !sender.is_closed());
        }
    }

    fn lock(&self) -> MutexGuard<'_, Subscribers<K>> {
        self.subscribers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use futures::StreamExt as _;
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::runtime::{reflector, watcher};

    use super::Fanout;
    use crate::tests::map;
    use crate::{DETACHED_BUFFER, Fingerprint, fingerprint, own_triggers};

    #[test]
    fn a_subscriber_is_woken_only_once_the_publishing_store_has_the_event() {
        use futures::FutureExt as _;
        use watcher::Event::{Apply, Delete, Init, InitApply, InitDone};
        let (reader, writer) = reflector::store::<ConfigMap>();
        let fanout = Fanout::default();
        let on: Fingerprint<ConfigMap> = |m| fingerprint(&m.data);
        let mut all = fanout.subscribe().boxed();
        let mut changes = fanout.subscribe_on(on).boxed();
        let (source, events) = futures::channel::mpsc::unbounded();
        let mut own = Box::pin(own_triggers(
            events.map(Ok),
            writer,
            Some(on),
            |_| {},
            Some(fanout.clone()),
        ));
        // After each event has gone through the publishing watch: what each subscriber was handed,
        // and whether the store had that object, as it was handed over, at that moment.
        let mut seen = Vec::new();
        for event in [
            Init,
            InitApply(map("a", "1", "x")),
            InitDone,
            Apply(map("a", "1", "y")), // a label: only `all` passes it
            Apply(map("b", "1", "x")),
            // A relist after a watch gap: `c` was created meanwhile and exists only in the relist.
            Init,
            InitApply(map("a", "2", "y")),
            InitApply(map("c", "1", "x")),
            InitDone,
            Delete(map("b", "1", "x")),
        ] {
            source.unbounded_send(event).unwrap();
            while own.next().now_or_never().flatten().is_some() {}
            for (name, subscriber) in [("all", &mut all), ("changes", &mut changes)] {
                while let Some(Some(obj)) = subscriber.next().now_or_never() {
                    let obj = obj.expect("no errors");
                    let stored = reader.get(&reflector::ObjectRef::from_obj(&obj));
                    let deleted = stored.is_none() && obj.metadata.uid.as_deref() == Some("b");
                    let current = stored.is_some_and(|s| {
                        s.data == obj.data && s.metadata.labels == obj.metadata.labels
                    });
                    seen.push(format!(
                        "{name}:{}={}{}",
                        obj.metadata.uid.unwrap(),
                        obj.data.unwrap()["k"],
                        if current || deleted {
                            ""
                        } else {
                            " (not in the store yet)"
                        }
                    ));
                }
            }
        }
        assert_eq!(
            seen,
            [
                "all:a=1",
                "changes:a=1",
                "all:a=1",
                "all:b=1",
                "changes:b=1",
                "all:a=2",
                "all:c=1",
                "changes:a=2",
                "changes:c=1",
                "all:b=1",
                "changes:b=1",
            ]
        );
        // A dropped subscription is forgotten; the others go on.
        drop(all);
        source.unbounded_send(Apply(map("d", "1", "x"))).unwrap();
        while own.next().now_or_never().flatten().is_some() {}
        assert_eq!(fanout.lock().senders.len(), 1);
        assert!(changes.next().now_or_never().flatten().is_some());
    }

    #[test]
    fn the_store_has_an_event_before_any_subscriber_is_handed_it() {
        use futures::FutureExt as _;
        use watcher::Event::Apply;
        let (reader, writer) = reflector::store::<ConfigMap>();
        let fanout = Fanout::default();
        let mut first = fanout.subscribe().boxed();
        // Never polled: once its buffer is full, publishing waits on it, after handing `first` the event.
        let _full = fanout.subscribe();
        let (source, events) = futures::channel::mpsc::unbounded();
        let mut own = Box::pin(own_triggers(
            events.map(Ok),
            writer,
            None,
            |_| {},
            Some(fanout.clone()),
        ));
        for i in 0..DETACHED_BUFFER {
            source
                .unbounded_send(Apply(map(&format!("x{i}"), "1", "x")))
                .unwrap();
            assert!(own.next().now_or_never().is_some(), "buffer not full yet");
            assert!(first.next().now_or_never().is_some());
        }
        source.unbounded_send(Apply(map("z", "1", "x"))).unwrap();
        assert!(
            own.next().now_or_never().is_none(),
            "publishing waits on the full subscriber"
        );
        let handed = first
            .next()
            .now_or_never()
            .flatten()
            .expect("handed before the wait")
            .unwrap();
        assert!(
            reader
                .get(&reflector::ObjectRef::from_obj(&handed))
                .is_some(),
            "handed to a subscriber before the store had it"
        );
    }
}
