//! Watches for kube-runtime controllers that wake a reconcile only for what it reads, and recover fast.
//! Each watch has its own bounded backoff, drops events that leave an object's fingerprint unchanged,
//! and can feed a store the woken reconcile reads; `OwnWrites` lets it read its own writes before they arrive;
//! `OrderedStarts` starts reconciles in key order with a first-come-first-served limit (one seed, one run);
//! a [`Fanout`] hands one controller's watch to other controllers' triggers, never ahead of its store.
//!
//! Why per-watch backoff: `Controller::new`/`watches`/`owns` merge all of a controller's watches into one
//! stream behind one `DefaultBackoff` (800 ms doubling to 30 s, with jitter), reset only when an *object*
//! passes. When the API server expires every watch at once (410 Gone), the queued errors each double that
//! shared backoff — 0.8 + 1.6 + 3.2 + 6.4 s for a controller with four watches — while no watch of the
//! controller is polled; and a watch over an empty collection yields no object, so nothing resets it and
//! each further expiry waits longer. Here every watch backs off on its own ([`WatchBackoff`]), reset by any
//! successful list or event, and its errors are logged and end there, so the controller's shared backoff
//! never sleeps and the other watches keep delivering.
//!
//! Each watch can also carry a [`Fingerprint`]: the part of an object its controller reacts to. An event
//! that leaves the fingerprint unchanged (a controller's own status write, say) wakes nobody, which at
//! thousands of objects is most events; deletions always pass.
//!
//! Every watch runs on a task of its own ([`detached`]): kube-runtime polls all of a controller's
//! watch streams from the controller's one task, so reading and decoding thousands of watch events
//! (and feeding the stores) would otherwise share one core with the controller's scheduling.

mod fanout;
mod index;
mod own_writes;
mod starts;

pub use fanout::Fanout;
pub use index::{Following, WatchIndex};
pub use own_writes::OwnWrites;
pub use starts::OrderedStarts;

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::Duration;

use futures::{Stream, StreamExt as _, future};
use kube::api::Api;
use kube::api::ObjectMeta;
use kube::runtime::controller::Controller;
use kube::runtime::reflector;
use kube::runtime::utils::Backoff;
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Resource, core::PartialObjectMeta};
use serde::de::DeserializeOwned;

/// Exponential backoff from [`Self::MIN`], doubling up to [`Self::MAX`]; `reset` starts over.
///
/// Deliberately without jitter: one operator process relists a handful of collections, so there is
/// no herd to spread, and reactions stay reproducible.
#[derive(Clone, Debug)]
pub struct WatchBackoff {
    next: Duration,
}

impl WatchBackoff {
    /// Quick enough that a relist after a 410 is not noticed.
    pub const MIN: Duration = Duration::from_millis(50);
    /// A few seconds: an unreachable API server is retried often enough to resume promptly once it
    /// is back, rarely enough not to add to its load.
    pub const MAX: Duration = Duration::from_secs(5);
}

impl Default for WatchBackoff {
    fn default() -> Self {
        Self { next: Self::MIN }
    }
}

impl Iterator for WatchBackoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let delay = self.next;
        self.next = (delay * 2).min(Self::MAX);
        Some(delay)
    }
}

impl Backoff for WatchBackoff {
    fn reset(&mut self) {
        self.next = Self::MIN;
    }
}

/// `events` behind its own [`WatchBackoff`]; errors are logged here and not passed on.
///
/// The backoff sits on the raw watcher events, so a successful relist (`Init`) resets it even when
/// the collection is empty. The item type stays a `Result` for kube-runtime's stream adapters.
fn guarded<T, S>(kind: String, events: S) -> impl Stream<Item = Result<T, watcher::Error>>
where
    S: Stream<Item = Result<T, watcher::Error>>,
{
    events
        .backoff(WatchBackoff::default())
        .filter_map(move |event| {
            future::ready(match event {
                Ok(event) => Some(Ok(event)),
                // An expired watch (410 Gone) is routine: the watcher relists. Anything else is worth a warning.
                Err(watcher::Error::WatchError(status)) if status.code == 410 => {
                    tracing::debug!(kind = %kind, "watch expired; relisting");
                    None
                }
                Err(error) => {
                    tracing::warn!(kind = %kind, %error, "watch failed; retrying after backoff");
                    None
                }
            })
        })
}

/// What every watched kind here is: a static resource kube can list and watch, shared across tasks.
pub trait Watched:
    Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static
{
}

impl<K> Watched for K where
    K: Resource<DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static
{
}

/// How many items a [`detached`] watch may read ahead of its consumer: enough to keep decoding
/// while the controller is busy, small enough that a stalled consumer holds back the watch.
const DETACHED_BUFFER: usize = 256;

/// `stream` polled on a task of its own from the first poll on, its items handed over in order
/// through a bounded channel. The task ends with `stream` or as soon as the consumer is dropped.
/// Whatever `stream` does per item (decoding, a reflector's store, a fingerprint filter) happens
/// on that task, before the consumer sees the item.
pub fn detached<T, S>(stream: S) -> impl Stream<Item = T> + Send + 'static
where
    T: Send + 'static,
    S: Stream<Item = T> + Send + 'static,
{
    let start = async move {
        let (tx, rx) = tokio::sync::mpsc::channel(DETACHED_BUFFER);
        tokio::spawn(async move {
            let mut stream = std::pin::pin!(stream);
            loop {
                let item = tokio::select! {
                    biased;
                    _ = tx.closed() => break,
                    item = stream.next() => item,
                };
                let Some(item) = item else { break };
                if tx.send(item).await.is_err() {
                    break;
                }
            }
        });
        tokio_stream::wrappers::ReceiverStream::new(rx)
    };
    futures::stream::once(start).flatten()
}

/// The part of an object a controller or trigger reacts to, hashed with [`fingerprint`].
pub type Fingerprint<K> = fn(&K) -> u64;

/// Hashes `parts` (a tuple of what a [`Fingerprint`] looks at).
pub fn fingerprint(parts: impl Hash) -> u64 {
    let mut hasher = DefaultHasher::new();
    parts.hash(&mut hasher);
    hasher.finish()
}

/// What every object's own controller reacts to besides its spec: `metadata.generation`, labels,
/// annotations (operations, parking), finalizers and deletion. Status is the controller's own output.
pub fn metadata_fingerprint(meta: &ObjectMeta) -> u64 {
    fingerprint((
        meta.generation,
        &meta.labels,
        &meta.annotations,
        &meta.finalizers,
        meta.deletion_timestamp.as_ref().map(|t| t.0),
    ))
}

/// Drops the events that leave an object's fingerprint as it was. Keys are uids, so a recreated
/// object is new; a relist (`Init` … `InitDone`) forgets objects that are gone. What a relist shows is
/// kept apart until its `InitDone`: a relist cut short (a failed page) starts over with a new `Init`,
/// and the held objects it had passed are dropped after it, so they must pass again.
fn relevant<K, S>(
    events: S,
    fingerprint: Fingerprint<K>,
) -> impl Stream<Item = Result<watcher::Event<K>, watcher::Error>>
where
    K: Resource,
    S: Stream<Item = Result<watcher::Event<K>, watcher::Error>>,
{
    let key = |obj: &K| {
        let meta = obj.meta();
        meta.uid.clone().unwrap_or_else(|| {
            format!(
                "{}/{}",
                meta.namespace.as_deref().unwrap_or_default(),
                meta.name.as_deref().unwrap_or_default()
            )
        })
    };
    let mut seen: HashMap<String, u64> = HashMap::new();
    let mut relisted: Option<HashMap<String, u64>> = None;
    events.filter(move |event| {
        let pass = match event {
            Ok(watcher::Event::Init) => {
                relisted = Some(HashMap::new());
                true
            }
            Ok(watcher::Event::InitApply(obj)) => {
                let (k, print) = (key(obj), fingerprint(obj));
                let pass = seen.get(&k) != Some(&print);
                match relisted.as_mut() {
                    Some(relisted) => relisted.insert(k, print),
                    None => seen.insert(k, print),
                };
                pass
            }
            Ok(watcher::Event::Apply(obj)) => {
                let print = fingerprint(obj);
                seen.insert(key(obj), print) != Some(print)
            }
            Ok(watcher::Event::InitDone) => {
                if let Some(relisted) = relisted.take() {
                    seen = relisted;
                }
                true
            }
            Ok(watcher::Event::Delete(obj)) => {
                seen.remove(&key(obj));
                true
            }
            Err(_) => true,
        };
        future::ready(pass)
    })
}

/// Holds back the objects of a relist (`Init` … `InitApply` … `InitDone`) until its `InitDone` has
/// passed, then hands them on as `Apply`. Place it after the reflector that feeds the store a trigger is
/// read from: a reflector's store swaps in a relist only at `InitDone`, and kube-runtime skips a reconcile
/// whose object is not in the store (`ObjectNotFound`). An object created while a watch was down (410
/// Gone, a dropped connection, an API server restart) is only in the relist, so triggered at its
/// `InitApply` it would be looked up before the swap, skipped, and never reconciled until it next changes.
/// Holds at most one relist's passing objects.
fn triggers_after_relist<K, S>(
    events: S,
) -> impl Stream<Item = Result<watcher::Event<K>, watcher::Error>>
where
    S: Stream<Item = Result<watcher::Event<K>, watcher::Error>>,
{
    let mut relist: Option<Vec<K>> = None;
    events.flat_map(move |event| {
        let out: Vec<Result<watcher::Event<K>, watcher::Error>> = match event {
            Ok(watcher::Event::Init) => {
                relist = Some(Vec::new());
                vec![Ok(watcher::Event::Init)]
            }
            Ok(watcher::Event::InitApply(obj)) => match relist.as_mut() {
                Some(held) => {
                    held.push(obj);
                    Vec::new()
                }
                None => vec![Ok(watcher::Event::InitApply(obj))],
            },
            Ok(watcher::Event::InitDone) => std::iter::once(Ok(watcher::Event::InitDone))
                .chain(
                    relist
                        .take()
                        .unwrap_or_default()
                        .into_iter()
                        .map(|obj| Ok(watcher::Event::Apply(obj))),
                )
                .collect(),
            other => vec![other],
        };
        futures::stream::iter(out)
    })
}

/// Every event of a watch over `api` (relists included), behind its own [`WatchBackoff`], errors
/// logged and not passed on: for a reflector that is not a controller's trigger.
pub fn events<K>(
    api: Api<K>,
) -> impl Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send
where
    K: Watched,
{
    guarded(
        K::kind(&()).into_owned(),
        watcher(api, watcher::Config::default()),
    )
}

/// A controller for every `K` in `api`, its store (`Controller::store`) fed by that same watch.
pub fn controller<K>(api: Api<K>) -> Controller<K>
where
    K: Watched,
{
    built(api, None, |_| {}, None)
}

/// Like [`controller`], but reconciling only on events that change `on`'s fingerprint. The store
/// still sees every event; requeues and the other triggers are unaffected.
pub fn controller_on<K>(api: Api<K>, on: Fingerprint<K>) -> Controller<K>
where
    K: Watched,
{
    built(api, Some(on), |_| {}, None)
}

/// Like [`controller_on`], and `observe` sees every event of the watch right after the store has it:
/// to keep an index of the store (which triggers of other kinds map through) without a scan.
pub fn controller_on_observed<K>(
    api: Api<K>,
    on: Fingerprint<K>,
    observe: impl FnMut(&watcher::Event<K>) + Send + 'static,
) -> Controller<K>
where
    K: Watched,
{
    built(api, Some(on), observe, None)
}

/// Like [`controller`] (`on`: `None`) or [`controller_on`], and its watch's events go on to the
/// subscribers of `fanout` right after the store has them: other controllers that read this store
/// take their triggers of this kind from there (see [`Fanout`]).
pub fn controller_publishing<K>(
    api: Api<K>,
    on: Option<Fingerprint<K>>,
    fanout: &Fanout<K>,
) -> Controller<K>
where
    K: Watched,
{
    built(api, on, |_| {}, Some(fanout.clone()))
}

fn built<K>(
    api: Api<K>,
    on: Option<Fingerprint<K>>,
    observe: impl FnMut(&watcher::Event<K>) + Send + 'static,
    fanout: Option<Fanout<K>>,
) -> Controller<K>
where
    K: Watched,
{
    let (reader, writer) = reflector::store();
    let objects = detached(own_triggers(events(api), writer, on, observe, fanout));
    // Errors never reach the controller's merged stream; its backoff is set anyway so that no path
    // falls back to the 30 s default.
    Controller::for_stream(objects, reader).trigger_backoff(WatchBackoff::default())
}

/// A controller's own triggers from its watch's `events`: each event goes into the store first, then
/// to `observe` and `fanout`'s subscribers, then (if it changes `on`'s fingerprint) to the controller.
fn own_triggers<K, S>(
    events: S,
    writer: reflector::store::Writer<K>,
    on: Option<Fingerprint<K>>,
    mut observe: impl FnMut(&watcher::Event<K>) + Send + 'static,
    fanout: Option<Fanout<K>>,
) -> impl Stream<Item = Result<K, watcher::Error>> + Send + 'static
where
    K: Watched,
    S: Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
{
    let events = events.reflect(writer).then(move |event| {
        if let Ok(event) = &event {
            observe(event);
        }
        let fanout = fanout.clone();
        async move {
            if let (Some(fanout), Ok(event)) = (fanout, &event) {
                fanout.publish(event).await;
            }
            event
        }
    });
    let events = match on {
        Some(on) => relevant(events, on).left_stream(),
        None => events.right_stream(),
    };
    triggers_after_relist(events).applied_objects()
}

/// Objects of `api` as triggers for [`Controller::watches_stream`] (all applied and deleted objects,
/// as `Controller::watches` gives).
pub fn others<O>(api: Api<O>) -> impl Stream<Item = Result<O, watcher::Error>> + Send + 'static
where
    O: Watched,
{
    detached(events(api).touched_objects())
}

/// Like [`others`], but only the events that change `on`'s fingerprint (and every deletion).
pub fn others_on<O>(
    api: Api<O>,
    on: Fingerprint<O>,
) -> impl Stream<Item = Result<O, watcher::Error>> + Send + 'static
where
    O: Watched,
{
    let events = events(api);
    detached(relevant(events, on).touched_objects())
}

/// Like [`others_on`], plus a store fed by the same watch. A reconcile that such a trigger wakes
/// and that reads the trigger's object from this store sees that event or a newer one; a store
/// of another watch of the same kind may not have it yet (a missed wake-up).
pub fn others_on_reflected<O>(
    api: Api<O>,
    on: Fingerprint<O>,
) -> (
    impl Stream<Item = Result<O, watcher::Error>> + Send + 'static,
    reflector::Store<O>,
)
where
    O: Watched,
{
    let (reader, writer) = reflector::store();
    let events = events(api).reflect(writer);
    (
        detached(triggers_after_relist(relevant(events, on)).touched_objects()),
        reader,
    )
}

/// Metadata of every `C` as owner triggers for [`Controller::owns_stream`] (as `Controller::owns`
/// gives: a metadata-only watch), for events that change its generation, finalizers or deletion.
pub fn owned<C>(
    client: kube::Client,
) -> impl Stream<Item = Result<PartialObjectMeta<C>, watcher::Error>> + Send + 'static
where
    C: Watched,
{
    let api = Api::<PartialObjectMeta<C>>::all(client);
    let events = events(api);
    let children = relevant(events, |child: &PartialObjectMeta<C>| {
        let meta = &child.metadata;
        fingerprint((
            meta.generation,
            meta.owner_references
                .iter()
                .flatten()
                .map(|o| o.uid.as_str())
                .collect::<Vec<_>>(),
            &meta.finalizers,
            meta.deletion_timestamp.as_ref().map(|t| t.0),
        ))
    });
    detached(children.touched_objects())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;

    pub(crate) fn map(uid: &str, value: &str, label: &str) -> ConfigMap {
        let mut map = ConfigMap::default();
        map.metadata.name = Some(format!("m-{uid}"));
        map.metadata.uid = Some(uid.into());
        map.metadata.labels = Some([("l".to_string(), label.to_string())].into());
        map.data = Some([("k".to_string(), value.to_string())].into());
        map
    }

    /// Names and values of the objects `events` lets through, fingerprinted on `data` only.
    fn passed(events: Vec<watcher::Event<ConfigMap>>) -> Vec<String> {
        let on: Fingerprint<ConfigMap> = |m| fingerprint(&m.data);
        let stream = relevant(futures::stream::iter(events.into_iter().map(Ok)), on);
        futures::executor::block_on(stream.touched_objects().collect::<Vec<_>>())
            .into_iter()
            .map(|m| {
                let m = m.expect("no errors");
                format!("{}={}", m.metadata.uid.unwrap(), m.data.unwrap()["k"])
            })
            .collect()
    }

    #[test]
    fn only_fingerprint_changes_and_deletions_pass() {
        use watcher::Event::{Apply, Delete};
        let got = passed(vec![
            Apply(map("a", "1", "x")),
            Apply(map("a", "1", "y")), // a label: not in the fingerprint
            Apply(map("a", "2", "y")),
            Apply(map("b", "2", "x")), // another object with the same fingerprint
            Delete(map("a", "2", "y")),
            Apply(map("a", "2", "y")), // recreated after its deletion: new again
        ]);
        assert_eq!(got, ["a=1", "a=2", "b=2", "a=2", "a=2"]);
    }

    #[test]
    fn a_relist_passes_changes_and_forgets_vanished_objects() {
        use watcher::Event::{Apply, Init, InitApply, InitDone};
        let got = passed(vec![
            Apply(map("a", "1", "x")),
            Apply(map("b", "1", "x")),
            // Relist after an expiry: `a` unchanged, `b` changed meanwhile, `c` new; nothing else.
            Init,
            InitApply(map("a", "1", "x")),
            InitApply(map("b", "2", "x")),
            InitApply(map("c", "1", "x")),
            InitDone,
            // Relist without `a`: it is forgotten, so its reappearance passes.
            Init,
            InitApply(map("b", "2", "x")),
            InitDone,
            Apply(map("a", "1", "x")),
        ]);
        assert_eq!(got, ["a=1", "b=1", "b=2", "c=1", "a=1"]);
    }

    #[test]
    fn a_relist_cut_short_passes_its_changes_again_in_the_next() {
        use watcher::Event::{Apply, Init, InitApply, InitDone};
        let got = passed(vec![
            Apply(map("a", "1", "x")),
            // A relist whose second page fails: the watcher starts over with a new `Init`, and what
            // was held of the first attempt is never triggered.
            Init,
            InitApply(map("a", "2", "x")),
            Init,
            InitApply(map("a", "2", "x")),
            InitDone,
        ]);
        assert_eq!(got, ["a=1", "a=2", "a=2"]);
    }

    #[test]
    fn a_relist_triggers_its_objects_only_after_the_store_has_them() {
        use watcher::Event::{Apply, Init, InitApply, InitDone};
        let (reader, writer) = reflector::store::<ConfigMap>();
        let events = futures::stream::iter(
            vec![
                Init,
                InitApply(map("a", "1", "x")),
                InitDone,
                Apply(map("b", "1", "x")),
                // A relist after a watch gap: `c` was created meanwhile and exists only in the relist.
                Init,
                InitApply(map("a", "1", "x")),
                InitApply(map("c", "1", "x")),
                InitDone,
            ]
            .into_iter()
            .map(Ok),
        );
        let triggers = triggers_after_relist(events.reflect(writer)).applied_objects();
        // What a reconcile woken by each trigger finds in the store at that moment.
        let found: Vec<(String, bool)> = futures::executor::block_on(
            triggers
                .map(|obj| {
                    let obj = obj.expect("no errors");
                    let name = obj.metadata.name.clone().unwrap();
                    let in_store = reader
                        .get(&kube::runtime::reflector::ObjectRef::from_obj(&obj))
                        .is_some();
                    (name, in_store)
                })
                .collect::<Vec<_>>(),
        );
        assert_eq!(
            found,
            [
                ("m-a".to_string(), true),
                ("m-b".to_string(), true),
                ("m-a".to_string(), true),
                ("m-c".to_string(), true),
            ]
        );
    }

    #[tokio::test]
    async fn a_detached_stream_keeps_order_and_stops_when_dropped() {
        let got: Vec<u32> = detached(futures::stream::iter(0..1000)).collect().await;
        assert_eq!(got, (0..1000).collect::<Vec<_>>());

        // An endless stream whose producer notices it is no longer polled once the consumer goes.
        let (alive_tx, mut alive_rx) = tokio::sync::mpsc::channel::<()>(1);
        let endless = futures::stream::repeat_with(move || alive_tx.clone());
        let mut stream = Box::pin(detached(endless));
        assert!(stream.next().await.is_some());
        drop(stream);
        // Every clone of the sender lives in the producer task or its buffer; once the task ends
        // and the buffer is dropped, the channel closes. A deadline keeps a failure from hanging.
        let closed = tokio::time::timeout(Duration::from_secs(10), alive_rx.recv()).await;
        assert!(
            matches!(closed, Ok(None)),
            "the producer task outlived its consumer"
        );
    }

    #[test]
    fn backoff_starts_fast_doubles_is_capped_and_resets() {
        let mut backoff = WatchBackoff::default();
        let delays: Vec<Duration> = backoff.by_ref().take(10).collect();
        assert_eq!(delays[0], WatchBackoff::MIN);
        assert_eq!(delays[1], WatchBackoff::MIN * 2);
        assert!(delays.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(*delays.last().unwrap(), WatchBackoff::MAX);
        backoff.reset();
        assert_eq!(backoff.next(), Some(WatchBackoff::MIN));
    }
}
