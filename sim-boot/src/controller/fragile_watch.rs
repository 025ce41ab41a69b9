//! The `watch-gives-up` bug: a hand-rolled list-then-watch whose end (an error, an error event, a closed
//! stream) stops the controller for good, where kube-runtime's watcher would relist and back off.

use std::fmt::Debug;

use futures::StreamExt;
use kube::api::{ListParams, WatchEvent, WatchParams};
use kube::{Api, Resource};
use serde::de::DeserializeOwned;

/// Completes when the list-then-watch of `api` breaks: the moment the imitated controller stops.
pub async fn until_broken<K>(api: Api<K>)
where
    K: Resource + Clone + Debug + DeserializeOwned + Send + 'static,
{
    let version = match api.list_metadata(&ListParams::default().limit(1)).await {
        Ok(list) => list.metadata.resource_version.unwrap_or_default(),
        Err(error) => {
            tracing::warn!(%error, "watch-gives-up: the initial list failed; stopping");
            return;
        }
    };
    let events = match api.watch_metadata(&WatchParams::default(), &version).await {
        Ok(events) => events,
        Err(error) => {
            tracing::warn!(%error, "watch-gives-up: the watch failed; stopping");
            return;
        }
    };
    let mut events = std::pin::pin!(events);
    while let Some(Ok(
        WatchEvent::Added(_)
        | WatchEvent::Modified(_)
        | WatchEvent::Deleted(_)
        | WatchEvent::Bookmark(_),
    )) = events.next().await
    {}
    tracing::warn!("watch-gives-up: the watch broke; the controller stops for good");
}
