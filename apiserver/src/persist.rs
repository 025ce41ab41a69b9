//! Opt-in durability: an append-only JSON-lines log with group-commit fsync, compacted into a snapshot at a start
//! once its events outnumber a watch history; the events since the last compaction are replayed into the history.
//!
//! A write is acknowledged to the client only after its record has been fsynced. A torn last line (a crash in
//! the middle of a write) belongs to a write that was never acknowledged and is dropped when loading.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, mpsc};

use serde_json::Value;
use tokio::sync::oneshot;

use tokio::sync::broadcast;

use crate::store::{Event, EventType, ObjKey};
use crate::stored::{Prepared, StoredObject};

const LOG_FILE: &str = "objects.log";
/// How many queued records one fsync covers at most.
const GROUP_COMMIT_MAX: usize = 4096;
/// How many logged events a start keeps uncompacted (replayed into the watch history of the next start).
const COMPACT_AFTER_EVENTS: usize = 10_000;

/// One logged write: the committed event, broadcast to watchers once durable, so no watcher ever sees a write
/// a crash could lose.
pub struct Record {
    event: Arc<Event>,
}

impl Record {
    pub fn new(event: Arc<Event>) -> Self {
        Record { event }
    }

    fn encode(&self, out: &mut Vec<u8>) {
        let e = &self.event;
        let object = match e.kind {
            EventType::Deleted => None,
            _ => Some(e.object.json_bytes()),
        };
        encode_line(out, e.rv, &e.key, object);
    }
}

/// `{"rv":..,"r":..,"ns":..,"n":..,"o":..}` (`o` null for a deletion or the compaction marker); the object's
/// stored JSON is copied in, never re-serialised.
fn encode_line(out: &mut Vec<u8>, rv: u64, key: &ObjKey, object: Option<&[u8]>) {
    // Serialising strings into a Vec cannot fail.
    out.extend_from_slice(format!("{{\"rv\":{rv},\"r\":").as_bytes());
    let _ = serde_json::to_writer(&mut *out, &*key.resource);
    out.extend_from_slice(b",\"ns\":");
    let _ = serde_json::to_writer(&mut *out, &key.namespace);
    out.extend_from_slice(b",\"n\":");
    let _ = serde_json::to_writer(&mut *out, &key.name);
    out.extend_from_slice(b",\"o\":");
    out.extend_from_slice(object.unwrap_or(b"null"));
    out.extend_from_slice(b"}\n");
}

/// Handle to the log writer thread.
pub struct Persister {
    tx: mpsc::Sender<(Record, oneshot::Sender<()>)>,
}

impl Persister {
    /// Queues a record; the receiver resolves after it has been fsynced.
    pub fn append(&self, record: Record) -> oneshot::Receiver<()> {
        let (ack, rx) = oneshot::channel();
        // If the writer thread died the receiver errors and the caller stops waiting; the write stays in memory.
        let _ = self.tx.send((record, ack));
        rx
    }
}

/// The state found on disk.
pub struct Loaded {
    pub rv: u64,
    pub objects: Vec<(ObjKey, u64, Arc<StoredObject>)>,
    /// The events logged since the last compaction (in resourceVersion order), replayed into the watch history
    /// so that clients resume their watches across a restart instead of relisting.
    pub history: Vec<Arc<Event>>,
    /// The resourceVersion of the last compaction: `history` holds every event after it.
    pub history_from: u64,
    /// The log ends in a torn line, which appending would leave in the middle.
    torn: bool,
}

/// An opened, compacted log, ready for its writer thread.
pub struct LogFile(File);

/// Loads `dir`, rewriting the log as a compact snapshot when its event tail is long or torn.
pub fn open(dir: &Path) -> std::io::Result<(LogFile, Loaded)> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join(LOG_FILE);
    let loaded = load(&path)?;
    // Compacting drops the logged events, so it waits until they outnumber a watch history; a log is always
    // compacted when it is missing or torn, so appends land after a whole line.
    if !path.exists() || loaded.torn || loaded.history.len() >= COMPACT_AFTER_EVENTS {
        compact(&path, &loaded)?;
    }
    let file = OpenOptions::new().append(true).open(&path)?;
    Ok((LogFile(file), loaded))
}

impl Persister {
    /// Starts the writer thread; it broadcasts each record's event after the record is on disk.
    pub fn start(
        log: LogFile,
        events: broadcast::Sender<Arc<Event>>,
    ) -> std::io::Result<Persister> {
        let (tx, rx) = mpsc::channel::<(Record, oneshot::Sender<()>)>();
        std::thread::Builder::new()
            .name("apiserver-log".into())
            .spawn(move || writer(log.0, rx, events))?;
        Ok(Persister { tx })
    }
}

type Slot = (String, String, String);

fn load(path: &Path) -> std::io::Result<Loaded> {
    let mut map: std::collections::BTreeMap<Slot, (u64, Arc<StoredObject>)> = Default::default();
    let mut rv = 0;
    let mut history = Vec::new();
    let mut history_from = 0;
    let mut torn = false;
    if path.exists() {
        for line in BufReader::new(File::open(path)?).lines() {
            let line = line?;
            // A line that does not parse is a torn tail from a crash: nothing after it was acknowledged.
            let Ok(rec) = serde_json::from_str::<Value>(&line) else {
                torn = true;
                break;
            };
            let (Some(r), Some(ns), Some(n), Some(rec_rv)) = (
                rec["r"].as_str(),
                rec["ns"].as_str(),
                rec["n"].as_str(),
                rec["rv"].as_u64(),
            ) else {
                torn = true;
                break;
            };
            rv = rv.max(rec_rv);
            if r.is_empty() {
                // The compaction marker: the snapshot records that follow are not events.
                history.clear();
                history_from = rec_rv;
                continue;
            }
            let slot = (r.to_string(), ns.to_string(), n.to_string());
            let key = ObjKey {
                resource: r.into(),
                namespace: ns.to_string(),
                name: n.to_string(),
            };
            let (prev, event) = match &rec["o"] {
                Value::Null => {
                    let Some((_, prev)) = map.remove(&slot) else {
                        continue;
                    };
                    // The DELETED event carries the last state with the deletion's resourceVersion.
                    let last = prev.restamp(EventType::Deleted.as_str(), rec_rv);
                    (Some(prev), (EventType::Deleted, Arc::new(last)))
                }
                obj => {
                    let prev = map.get(&slot).map(|(_, o)| o.clone());
                    let kind = match prev {
                        Some(_) => EventType::Modified,
                        None => EventType::Added,
                    };
                    let stored = Arc::new(Prepared::new(r, obj).stamp(kind.as_str(), rec_rv));
                    map.insert(slot, (rec_rv, stored.clone()));
                    (prev, (kind, stored))
                }
            };
            if rec_rv > history_from {
                let (kind, object) = event;
                history.push(Arc::new(Event {
                    rv: rec_rv,
                    kind,
                    key,
                    object,
                    prev,
                }));
            }
        }
    }
    let objects = map
        .into_iter()
        .map(|((r, ns, n), (obj_rv, obj))| {
            (
                ObjKey {
                    resource: r.into(),
                    namespace: ns,
                    name: n,
                },
                obj_rv,
                obj,
            )
        })
        .collect();
    Ok(Loaded {
        rv,
        objects,
        history,
        history_from,
        torn,
    })
}

fn compact(path: &Path, loaded: &Loaded) -> std::io::Result<()> {
    let tmp: PathBuf = path.with_extension("tmp");
    let mut out = BufWriter::new(File::create(&tmp)?);
    let mut buf = Vec::new();
    // A marker record keeps the resourceVersion counter even when the last write was a delete, and starts the
    // next replayed history: only records appended after it are events.
    let marker = ObjKey {
        resource: "".into(),
        namespace: String::new(),
        name: String::new(),
    };
    encode_line(&mut buf, loaded.rv, &marker, None);
    for (key, obj_rv, obj) in &loaded.objects {
        encode_line(&mut buf, *obj_rv, key, Some(obj.json_bytes()));
    }
    out.write_all(&buf)?;
    out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

fn writer(
    mut file: File,
    rx: mpsc::Receiver<(Record, oneshot::Sender<()>)>,
    events: broadcast::Sender<Arc<Event>>,
) {
    let mut buf = Vec::with_capacity(1 << 20);
    let mut acks = Vec::new();
    let mut done = Vec::new();
    while let Ok(first) = rx.recv() {
        buf.clear();
        acks.clear();
        done.clear();
        let mut next = Some(first);
        while let Some((rec, ack)) = next.take() {
            rec.encode(&mut buf);
            acks.push(ack);
            done.push(rec.event);
            if acks.len() < GROUP_COMMIT_MAX {
                next = rx.try_recv().ok();
            }
        }
        if let Err(e) = file.write_all(&buf).and_then(|_| file.sync_data()) {
            // Without a durable log no further write may be acknowledged as durable: stop acking.
            tracing::error!(error = %e, "apiserver data log write failed; further writes are not durable");
            return;
        }
        for event in done.drain(..) {
            // No receivers is fine: nobody is watching.
            let _ = events.send(event);
        }
        for ack in acks.drain(..) {
            let _ = ack.send(());
        }
    }
}
