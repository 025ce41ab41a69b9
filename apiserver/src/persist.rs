//! Opt-in durability: an append-only JSON-lines log with group-commit fsync, compacted into a snapshot at a start
//! once its events outnumber a watch history; the events since the last compaction are replayed into the history.
//!
//! A write is acknowledged to the client only after its record has been fsynced. A torn last line (a crash in
//! the middle of a write) belongs to a write that was never acknowledged and is dropped when loading.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, mpsc};

use serde_json::{Value, json};
use tokio::sync::oneshot;

use tokio::sync::broadcast;

use crate::store::{Event, EventType, ObjKey};

const LOG_FILE: &str = "objects.log";
/// How many queued records one fsync covers at most.
const GROUP_COMMIT_MAX: usize = 4096;
/// How many logged events a start keeps uncompacted (replayed into the watch history of the next start).
const COMPACT_AFTER_EVENTS: usize = 10_000;

pub struct Record {
    rv: u64,
    key: ObjKey,
    object: Option<Arc<Value>>,
    /// Broadcast to watchers once durable, so no watcher ever sees a write a crash could lose.
    event: Option<Arc<Event>>,
}

impl Record {
    pub fn put(rv: u64, key: &ObjKey, object: &Arc<Value>) -> Self {
        Record {
            rv,
            key: key.clone(),
            object: Some(object.clone()),
            event: None,
        }
    }

    pub fn with_event(mut self, event: Arc<Event>) -> Self {
        self.event = Some(event);
        self
    }

    pub fn delete(rv: u64, key: &ObjKey) -> Self {
        Record {
            rv,
            key: key.clone(),
            object: None,
            event: None,
        }
    }

    fn encode(&self, out: &mut Vec<u8>) {
        let line = json!({
            "rv": self.rv,
            "r": &*self.key.resource,
            "ns": self.key.namespace,
            "n": self.key.name,
            "o": self.object.as_deref(),
        });
        // Serialising a Value into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, &line);
        out.push(b'\n');
    }
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
    pub objects: Vec<(ObjKey, u64, Value)>,
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
    let mut map: std::collections::BTreeMap<Slot, (u64, Arc<Value>)> = Default::default();
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
            let prev = match &rec["o"] {
                Value::Null => map.remove(&slot).map(|(_, o)| o),
                obj => map
                    .insert(slot, (rec_rv, Arc::new(obj.clone())))
                    .map(|(_, o)| o),
            };
            if rec_rv > history_from {
                history.extend(replayed_event(rec_rv, key, prev, &rec["o"]));
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
                Arc::unwrap_or_clone(obj),
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

/// The watch event a logged record produced when it was committed (see `Store::commit`).
fn replayed_event(
    rv: u64,
    key: ObjKey,
    prev: Option<Arc<Value>>,
    object: &Value,
) -> Option<Arc<Event>> {
    let (kind, object) = match object {
        Value::Null => {
            // The DELETED event carries the last state with the deletion's resourceVersion.
            let mut last = (*prev.clone()?).clone();
            if let Some(meta) = last.get_mut("metadata").and_then(Value::as_object_mut) {
                meta.insert("resourceVersion".into(), Value::String(rv.to_string()));
            }
            (EventType::Deleted, last)
        }
        obj if prev.is_some() => (EventType::Modified, obj.clone()),
        obj => (EventType::Added, obj.clone()),
    };
    Some(Arc::new(Event::new(rv, kind, key, Arc::new(object), prev)))
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
    Record::delete(loaded.rv, &marker).encode(&mut buf);
    for (key, obj_rv, obj) in &loaded.objects {
        Record::put(*obj_rv, key, &Arc::new(obj.clone())).encode(&mut buf);
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
            done.extend(rec.event);
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
