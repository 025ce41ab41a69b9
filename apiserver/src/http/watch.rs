//! Watch streams: newline-delimited watch events over a chunked response, from a resourceVersion (410 Gone past
//! the history window), with selectors, bookmarks, `sendInitialEvents`, `timeoutSeconds` and injected faults.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::StreamExt;
use http::{StatusCode, header};
use serde_json::json;
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;

use super::{Params, Target, field_labels};
use crate::faults::WatchSignal;
use crate::ops::State;
use crate::resources::ResourceInfo;
use crate::selectors::{FieldSelector, LabelSelector};
use crate::status::{ApiError, ApiResult};
use crate::store::{WatchStart, encode_event};
use crate::stored::{Event, EventType, Meta, ObjKey};
use crate::table;

/// Default watch length when the client gives no timeoutSeconds (the real server picks 30-60 minutes).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1800);

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

pub async fn serve(
    st: &Arc<State>,
    t: &Target,
    p: &Params,
    as_table: bool,
    slot: crate::limits::WatchSlot,
) -> ApiResult<Response> {
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
    let stream = match st.store.watch(&t.info.key, start) {
        Err(oldest) => {
            let msg = format!("too old resource version: {} ({oldest})", from.unwrap_or(0));
            Pump::failed(expired(msg))
        }
        Ok(sub) => {
            let ctx = StreamCtx {
                filter,
                bookmarks: p.allow_bookmarks,
                initial_end: p.send_initial_events,
                timeout,
                bookmark_interval: st.bookmark_interval,
            };
            let ends = Ends {
                signals: st.faults.watch_signals(),
                stopping: Box::pin(st.shutdown.begun()),
            };
            Pump::new(ctx, sub, ends, st.clock)
        }
    };
    // The response body runs the watch itself (no task or channel in between): an event wakes only the
    // connection that writes it, and a client that goes away drops its watch.
    // The slot lives as long as the stream: a watch that ends, in any way, frees it.
    let body = Body::from_stream(futures::stream::unfold(stream, Pump::next_chunk).map(
        move |chunk| {
            let _held = &slot;
            chunk
        },
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

type Chunk = Result<Bytes, std::convert::Infallible>;

/// One watch stream's state, advanced by the response body.
struct Pump {
    live: Option<Live>,
    /// Events to send before the live ones (history or synthetic snapshot), from `next_backlog` on.
    backlog: Vec<Arc<Event>>,
    next_backlog: usize,
    /// A last chunk (an ERROR event) to send before ending.
    last: Option<Bytes>,
}

/// What ends a live watch from outside: injected faults, and the server stopping.
struct Ends {
    signals: tokio::sync::watch::Receiver<(u64, WatchSignal)>,
    /// Created with the watch and resolving even if shutdown began before that, so no watch outlives its server.
    stopping: Pin<Box<dyn Future<Output = ()> + Send>>,
}

struct Live {
    ctx: StreamCtx,
    events: broadcast::Receiver<Arc<Event>>,
    signals: tokio::sync::watch::Receiver<(u64, WatchSignal)>,
    stopping: Pin<Box<dyn Future<Output = ()> + Send>>,
    clock: clock::Clock,
    deadline: tokio::time::Instant,
    tick: tokio::time::Interval,
    headers: bool,
    /// Events at or below this were in the backlog.
    sub_rv: u64,
    /// The highest resourceVersion this stream has passed (delivered or filtered): bookmarks never skip events.
    last_rv: u64,
    initial_end_pending: bool,
}

impl Pump {
    fn failed(error: Bytes) -> Pump {
        Pump {
            live: None,
            backlog: Vec::new(),
            next_backlog: 0,
            last: Some(error),
        }
    }

    fn new(
        ctx: StreamCtx,
        sub: crate::store::WatchSubscription,
        ends: Ends,
        clock: clock::Clock,
    ) -> Pump {
        let Ends {
            mut signals,
            stopping,
        } = ends;
        // Faults injected before this watch opened were meant for the watches open then.
        signals.mark_unchanged();
        let mut tick = tokio::time::interval(ctx.bookmark_interval.max(Duration::from_millis(10)));
        tick.reset();
        Pump {
            live: Some(Live {
                deadline: tokio::time::Instant::now() + ctx.timeout,
                initial_end_pending: ctx.initial_end,
                ctx,
                events: sub.live,
                signals,
                stopping,
                clock,
                tick,
                headers: true,
                sub_rv: sub.rv,
                last_rv: sub.rv,
            }),
            backlog: sub.backlog,
            next_backlog: 0,
            last: None,
        }
    }

    /// The next chunk of the response (None ends it).
    async fn next_chunk(mut self) -> Option<(Chunk, Pump)> {
        let Some(live) = self.live.as_mut() else {
            return self.last.take().map(|b| (Ok(b), self));
        };
        if let Some(chunk) = live.backlog_chunk(&self.backlog, &mut self.next_backlog) {
            return Some((Ok(chunk), self));
        }
        match live.next_live().await {
            Next::Chunk(b) => Some((Ok(b), self)),
            Next::Last(b) => {
                self.live = None;
                Some((Ok(b), self))
            }
            Next::End => None,
        }
    }
}

enum Next {
    Chunk(Bytes),
    /// Send this, then end the stream.
    Last(Bytes),
    End,
}

impl Live {
    /// The next backlog events (coalesced up to a chunk), then the initial-events-end bookmark if asked for.
    fn backlog_chunk(&mut self, backlog: &[Arc<Event>], next: &mut usize) -> Option<Bytes> {
        let mut buf = bytes::BytesMut::new();
        while *next < backlog.len() && buf.len() < COALESCE_LIMIT {
            let e = &backlog[*next];
            *next += 1;
            let kind = if e.prev.is_none() && e.kind == EventType::Added {
                self.ctx
                    .filter
                    .matches(&e.key, &e.object.meta)
                    .then_some(EventType::Added)
            } else {
                self.ctx.filter.translate(e)
            };
            if let Some(kind) = kind {
                let b = self
                    .ctx
                    .filter
                    .encode(kind, e, &mut self.headers, self.clock.now_chrono());
                buf.extend_from_slice(&b);
            }
        }
        if *next >= backlog.len() && std::mem::take(&mut self.initial_end_pending) {
            buf.extend_from_slice(&self.ctx.filter.bookmark(self.last_rv, true));
        }
        (!buf.is_empty()).then(|| buf.freeze())
    }

    async fn next_live(&mut self) -> Next {
        loop {
            // Biased, so that one seed replays one way on the virtual clock: endings first (they are
            // rare and must not wait behind a busy stream), then events, bookmarks only when idle.
            tokio::select! {
                biased;
                _ = &mut self.stopping => return Next::End,
                changed = self.signals.changed() => {
                    if changed.is_err() {
                        return Next::End;
                    }
                    let (_, signal) = *self.signals.borrow_and_update();
                    return match signal {
                        WatchSignal::Expire => Next::Last(expired(format!(
                            "too old resource version: {} (injected)",
                            self.last_rv
                        ))),
                        _ => Next::End,
                    };
                }
                _ = tokio::time::sleep_until(self.deadline) => return Next::End,
                r = self.events.recv() => match r {
                    Ok(e) => {
                        let Some(first) = on_event(&self.ctx.filter, &e, self.sub_rv, &mut self.last_rv, &mut self.headers, &self.clock) else {
                            continue;
                        };
                        // Under load, events already queued go out in the same chunk: fewer writes per watcher.
                        let (out, lag) = coalesce(first, &mut self.events, &self.ctx.filter, self.sub_rv, &mut self.last_rv, &mut self.headers, &self.clock);
                        return match lag {
                            None => Next::Chunk(out),
                            Some(n) => {
                                let mut buf = bytes::BytesMut::from(&out[..]);
                                buf.extend_from_slice(&lagged(self.last_rv, n));
                                Next::Last(buf.freeze())
                            }
                        };
                    }
                    Err(RecvError::Lagged(n)) => return Next::Last(lagged(self.last_rv, n)),
                    Err(RecvError::Closed) => return Next::End,
                },
                _ = self.tick.tick(), if self.ctx.bookmarks => {
                    return Next::Chunk(self.ctx.filter.bookmark(self.last_rv, false));
                }
            }
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
    clock: &clock::Clock,
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
    Some(filter.encode(kind, e, headers, clock.now_chrono()))
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
    clock: &clock::Clock,
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
