//! Watch streams: newline-delimited watch events over a chunked response, from a resourceVersion (410 Gone past
//! the history window), with selectors, bookmarks, `sendInitialEvents`, `timeoutSeconds` and injected faults.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{StatusCode, header};
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::{Params, Target, field_labels};
use crate::faults::WatchSignal;
use crate::ops::State;
use crate::registry::ResourceInfo;
use crate::selectors::{FieldSelector, LabelSelector};
use crate::status::{ApiError, ApiResult};
use crate::store::{Event, EventType, ObjKey, WatchStart, encode_event};
use crate::stored::Meta;
use crate::table;

/// Default watch length when the client gives no timeoutSeconds (the real server picks 30-60 minutes).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1800);
const STREAM_BUFFER: usize = 1024;

struct Filter {
    info: Arc<ResourceInfo>,
    version: String,
    namespace: Option<String>,
    labels: LabelSelector,
    fields: FieldSelector,
    as_table: bool,
}

impl Filter {
    fn selects(&self, key: &ObjKey, meta: &Meta) -> bool {
        self.labels.matches(meta) && self.fields.matches(&key.namespace, &key.name, meta)
    }

    fn matches(&self, key: &ObjKey, meta: &Meta) -> bool {
        self.namespace
            .as_ref()
            .is_none_or(|ns| key.namespace == *ns)
            && self.selects(key, meta)
    }

    /// The event this watcher sees for a store event (selector transitions become ADDED/DELETED).
    fn translate(&self, e: &Event) -> Option<EventType> {
        if let Some(ns) = &self.namespace
            && e.key.namespace != *ns
        {
            return None;
        }
        let now = self.selects(&e.key, &e.object.meta);
        let before = e
            .prev
            .as_ref()
            .is_some_and(|p| self.selects(&e.key, &p.meta));
        match (e.kind, before, now) {
            (EventType::Modified, true, true) => Some(EventType::Modified),
            (EventType::Modified, false, true) => Some(EventType::Added),
            (EventType::Modified, true, false) => Some(EventType::Deleted),
            (EventType::Modified, false, false) => None,
            (_, _, true) => Some(e.kind),
            _ => None,
        }
    }

    fn encode(
        &self,
        kind: EventType,
        e: &Event,
        headers: &mut bool,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Bytes {
        if self.as_table {
            let t = table::table(
                &self.info,
                &self.version,
                &[&e.object.value()],
                json!({"resourceVersion": e.rv.to_string()}),
                *headers,
                now,
            );
            *headers = false;
            return encode_event(kind.as_str(), &t);
        }
        if self.version != self.info.versions[0] {
            let mut o = e.object.value();
            o["apiVersion"] = json!(self.info.api_version(&self.version));
            return encode_event(kind.as_str(), &o);
        }
        // The stored line, shared with every other watcher (copied only when a selector changes its type).
        e.object.line_as(kind.as_str())
    }

    fn bookmark(&self, rv: u64, initial_end: bool) -> Bytes {
        let mut meta = json!({"resourceVersion": rv.to_string()});
        if initial_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        encode_event(
            "BOOKMARK",
            &json!({"kind": self.info.kind, "apiVersion": self.info.api_version(&self.version), "metadata": meta}),
        )
    }
}

fn expired(message: String) -> Bytes {
    encode_event("ERROR", &ApiError::gone(message).to_status())
}

pub async fn serve(st: &Arc<State>, t: &Target, p: &Params, as_table: bool) -> ApiResult<Response> {
    let filter = Filter {
        info: t.info.clone(),
        version: t.version.clone(),
        namespace: if t.info.namespaced {
            t.namespace.clone()
        } else {
            None
        },
        labels: LabelSelector::parse(&p.label_selector)?,
        fields: FieldSelector::parse(&p.field_selector, field_labels(&t.info))?,
        as_table,
    };
    let start = match p.resource_version.as_deref() {
        _ if p.send_initial_events => WatchStart::Snapshot,
        None | Some("") | Some("0") => WatchStart::Snapshot,
        Some(rv) => WatchStart::After(
            rv.parse()
                .map_err(|_| ApiError::bad_request(format!("invalid resource version: {rv}")))?,
        ),
    };
    let from = match start {
        WatchStart::After(rv) => Some(rv),
        WatchStart::Snapshot => None,
    };
    let timeout = p
        .timeout_seconds
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_TIMEOUT);
    let (tx, rx) = mpsc::channel::<Bytes>(STREAM_BUFFER);
    match st.store.watch(&t.info.key, start) {
        Err(oldest) => {
            let msg = format!("too old resource version: {} ({oldest})", from.unwrap_or(0));
            let _ = tx.try_send(expired(msg));
        }
        Ok(sub) => {
            let ctx = StreamCtx {
                filter,
                bookmarks: p.allow_bookmarks,
                initial_end: p.send_initial_events,
                timeout,
                bookmark_interval: st.bookmark_interval,
            };
            let signals = st.faults.watch_signals();
            let clock = st.clock.clone();
            tokio::spawn(pump(ctx, sub, signals, tx, clock));
        }
    }
    let body = Body::from_stream(futures::StreamExt::map(
        ReceiverStream::new(rx),
        Ok::<_, std::convert::Infallible>,
    ));
    let ct = if as_table {
        "application/json;as=Table;v=v1;g=meta.k8s.io"
    } else {
        "application/json"
    };
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, ct),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response())
}

struct StreamCtx {
    filter: Filter,
    bookmarks: bool,
    initial_end: bool,
    timeout: Duration,
    bookmark_interval: Duration,
}

async fn pump(
    ctx: StreamCtx,
    sub: crate::store::WatchSubscription,
    mut signals: tokio::sync::watch::Receiver<(u64, WatchSignal)>,
    tx: mpsc::Sender<Bytes>,
    clock: crate::clock::Clock,
) {
    let deadline = tokio::time::Instant::now() + ctx.timeout;
    let mut headers = true;
    // The highest resourceVersion this stream has passed (delivered or filtered): bookmarks never skip events.
    let sub_rv = sub.rv;
    let mut last_rv = sub_rv;
    for e in &sub.backlog {
        let kind = if e.prev.is_none() && e.kind == EventType::Added {
            ctx.filter
                .matches(&e.key, &e.object.meta)
                .then_some(EventType::Added)
        } else {
            ctx.filter.translate(e)
        };
        if let Some(kind) = kind
            && tx
                .send(ctx.filter.encode(kind, e, &mut headers, clock()))
                .await
                .is_err()
        {
            return;
        }
    }
    if ctx.initial_end && tx.send(ctx.filter.bookmark(last_rv, true)).await.is_err() {
        return;
    }
    let mut live = sub.live;
    signals.mark_unchanged();
    let mut tick = tokio::time::interval(ctx.bookmark_interval.max(Duration::from_millis(10)));
    tick.reset();
    loop {
        let (out, from_event) = tokio::select! {
            r = live.recv() => match r {
                Ok(e) => match on_event(&ctx.filter, &e, sub_rv, &mut last_rv, &mut headers, &clock) {
                    Some(b) => (b, true),
                    None => continue,
                },
                Err(RecvError::Lagged(n)) => {
                    let _ = tx.send(lagged(last_rv, n)).await;
                    return;
                }
                Err(RecvError::Closed) => return,
            },
            _ = tokio::time::sleep_until(deadline) => return,
            _ = tick.tick(), if ctx.bookmarks => (ctx.filter.bookmark(last_rv, false), false),
            changed = signals.changed() => {
                if changed.is_err() { return }
                let (_, signal) = *signals.borrow_and_update();
                if signal == WatchSignal::Expire {
                    let _ = tx.send(expired(format!("too old resource version: {last_rv} (injected)"))).await;
                }
                return;
            }
            _ = tx.closed() => return,
        };
        // Under load, events already queued go out in the same chunk: fewer wakeups and writes per watcher.
        let (out, lag) = if from_event {
            coalesce(
                out,
                &mut live,
                &ctx.filter,
                sub_rv,
                &mut last_rv,
                &mut headers,
                &clock,
            )
        } else {
            (out, None)
        };
        if tx.send(out).await.is_err() {
            return;
        }
        if let Some(n) = lag {
            let _ = tx.send(lagged(last_rv, n)).await;
            return;
        }
    }
}

/// This watcher fell too far behind the event stream: like etcd compaction, it is told to relist.
fn lagged(last_rv: u64, n: u64) -> Bytes {
    expired(format!(
        "too old resource version: {last_rv} (watcher lagged {n} events)"
    ))
}

/// The bytes a live event produces for this watcher, if any (and the resourceVersion it has passed).
fn on_event(
    filter: &Filter,
    e: &Event,
    sub_rv: u64,
    last_rv: &mut u64,
    headers: &mut bool,
    clock: &crate::clock::Clock,
) -> Option<Bytes> {
    // Events at or below the subscription point were in the backlog already.
    if e.rv <= sub_rv {
        return None;
    }
    *last_rv = (*last_rv).max(e.rv);
    if e.key.resource != filter.info.key {
        return None;
    }
    let kind = filter.translate(e)?;
    Some(filter.encode(kind, e, headers, clock()))
}

const COALESCE_LIMIT: usize = 256 * 1024;

#[allow(clippy::too_many_arguments)]
fn coalesce(
    first: Bytes,
    live: &mut tokio::sync::broadcast::Receiver<Arc<Event>>,
    filter: &Filter,
    sub_rv: u64,
    last_rv: &mut u64,
    headers: &mut bool,
    clock: &crate::clock::Clock,
) -> (Bytes, Option<u64>) {
    use tokio::sync::broadcast::error::TryRecvError;
    let mut buf: Option<bytes::BytesMut> = None;
    let mut lag = None;
    while buf.as_ref().map_or(first.len(), |b| b.len()) < COALESCE_LIMIT {
        match live.try_recv() {
            Ok(e) => {
                if let Some(b) = on_event(filter, &e, sub_rv, last_rv, headers, clock) {
                    buf.get_or_insert_with(|| bytes::BytesMut::from(&first[..]))
                        .extend_from_slice(&b);
                }
            }
            Err(TryRecvError::Lagged(n)) => {
                lag = Some(n);
                break;
            }
            Err(TryRecvError::Empty | TryRecvError::Closed) => break,
        }
    }
    (buf.map_or(first, bytes::BytesMut::freeze), lag)
}
