//! The controllers' watches, each with its own fast, bounded backoff.
//!
//! `Controller::new`/`watches`/`owns` merge all of a controller's watches into one stream behind one
//! `DefaultBackoff` (800 ms doubling to 30 s, with jitter), reset only when an *object* passes. When the
//! API server expires every watch at once (410 Gone), the queued errors each double that shared
//! backoff — 0.8 + 1.6 + 3.2 + 6.4 s for the Server controller's four watches — while no watch of the
//! controller is polled; and a watch over an empty collection yields no object, so nothing resets it
//! and each further expiry waits longer. Here every watch backs off on its own ([`WatchBackoff`]),
//! reset by any successful list or event, and its errors are logged and end there, so the
//! controller's shared backoff never sleeps and the other watches keep delivering.

use std::time::Duration;

use futures::{Stream, StreamExt as _, future};
use kube::api::Api;
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

fn kind_of<K: Resource<DynamicType = ()>>() -> String {
    K::kind(&()).into_owned()
}

/// A controller for every `K` in `api`, its store (`Controller::store`) fed by that same watch.
pub fn controller<K>(api: Api<K>) -> Controller<K>
where
    K: Resource<DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let (reader, writer) = reflector::store();
    let objects = guarded(kind_of::<K>(), watcher(api, watcher::Config::default()))
        .reflect(writer)
        .applied_objects();
    // Errors never reach the controller's merged stream; its backoff is set anyway so that no path
    // falls back to the 30 s default.
    Controller::for_stream(objects, reader).trigger_backoff(WatchBackoff::default())
}

/// Objects of `api` as triggers for [`Controller::watches_stream`] (all applied and deleted objects,
/// as `Controller::watches` gives).
pub fn others<O>(api: Api<O>) -> impl Stream<Item = Result<O, watcher::Error>> + Send + 'static
where
    O: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    guarded(kind_of::<O>(), watcher(api, watcher::Config::default())).touched_objects()
}

/// Metadata of every `C` as owner triggers for [`Controller::owns_stream`] (as `Controller::owns`
/// gives: a metadata-only watch).
pub fn owned<C>(
    client: kube::Client,
) -> impl Stream<Item = Result<PartialObjectMeta<C>, watcher::Error>> + Send + 'static
where
    C: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    let api = Api::<PartialObjectMeta<C>>::all(client);
    guarded(kind_of::<C>(), watcher(api, watcher::Config::default())).touched_objects()
}

#[cfg(test)]
mod tests {
    use super::*;

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
