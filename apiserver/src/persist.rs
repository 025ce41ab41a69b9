//! Opt-in durability: an append-only JSON-lines log with group-commit fsync, compacted into a snapshot at a start
//! once its events outnumber a watch history; the events since the last compaction are replayed into the history.
//!
//! A write is acknowledged to the client only after its record has been fsynced. Every record ends in a CRC-32 of
//! its JSON (`<json>\t<crc32 hex>`), so damage is found, not parsed around: damage after the last intact record is
//! a torn tail (a write that was never acknowledged) and is dropped; damage anywhere before it stops the start with
//! an error naming the file and byte offset, and only [`repair`] (the `--repair-data-log` command) changes such a
//! log. Logs written before checksums (format 1) still load and are rewritten with checksums at once.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, mpsc};

use serde_json::Value;
use tokio::sync::oneshot;

use tokio::sync::broadcast;

use crate::stored::{Event, EventType, ObjKey, Prepared, StoredObject};

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
    let start = out.len();
    // Serialising strings into a Vec cannot fail.
    out.extend_from_slice(format!("{{\"rv\":{rv},\"r\":").as_bytes());
    let _ = serde_json::to_writer(&mut *out, &*key.resource);
    out.extend_from_slice(b",\"ns\":");
    let _ = serde_json::to_writer(&mut *out, &key.namespace);
    out.extend_from_slice(b",\"n\":");
    let _ = serde_json::to_writer(&mut *out, &key.name);
    out.extend_from_slice(b",\"o\":");
    out.extend_from_slice(object.unwrap_or(b"null"));
    out.push(b'}');
    seal(out, start);
}

/// Appends the checksum of `out[start..]` and the line end. Stored JSON never holds a raw tab (serde_json escapes
/// control characters), so the last tab of a line always separates the record from its checksum.
fn seal(out: &mut Vec<u8>, start: usize) {
    let crc = crc32fast::hash(&out[start..]);
    out.extend_from_slice(format!("\t{crc:08x}\n").as_bytes());
}

/// One line of the log: its JSON if intact, or why not.
fn check_line(line: &[u8], legacy: bool) -> Result<&[u8], &'static str> {
    if legacy {
        return Ok(line);
    }
    let Some(tab) = line.iter().rposition(|b| *b == b'\t') else {
        return Err("the record has no checksum");
    };
    let (json, sum) = (&line[..tab], &line[tab + 1..]);
    let want = std::str::from_utf8(sum)
        .ok()
        .filter(|s| s.len() == 8)
        .and_then(|s| u32::from_str_radix(s, 16).ok());
    match want {
        Some(w) if w == crc32fast::hash(json) => Ok(json),
        Some(_) => Err("checksum mismatch"),
        None => Err("the checksum is malformed"),
    }
}

/// Handle to the log writer: a thread with group commit, or (on a paused clock) the caller's own thread.
pub enum Persister {
    Thread {
        tx: mpsc::Sender<(Record, oneshot::Sender<()>)>,
    },
    /// Each record written and fsynced before `append` returns: on a simulated clock a write must take no
    /// virtual time and leave no other thread to race, so the run stays the same for the same seed.
    Inline {
        file: std::sync::Mutex<Option<File>>,
        events: broadcast::Sender<Arc<Event>>,
    },
}

impl Persister {
    /// Queues a record; the receiver resolves after it has been fsynced.
    pub fn append(&self, record: Record) -> oneshot::Receiver<()> {
        let (ack, rx) = oneshot::channel();
        match self {
            // If the writer thread died the receiver errors and the caller stops waiting; the write stays in memory.
            Persister::Thread { tx } => {
                let _ = tx.send((record, ack));
            }
            Persister::Inline { file, events } => {
                let mut file = file.lock().unwrap_or_else(|p| p.into_inner());
                let Some(f) = file.as_mut() else {
                    return rx; // an earlier write failed: nothing further is acknowledged as durable
                };
                let mut buf = Vec::new();
                record.encode(&mut buf);
                if let Err(e) = f.write_all(&buf).and_then(|_| f.sync_data()) {
                    tracing::error!(error = %e, "apiserver data log write failed; further writes are not durable");
                    *file = None;
                    return rx;
                }
                let _ = events.send(record.event);
                let _ = ack.send(());
            }
        }
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
    /// Written before records carried checksums: rewritten at once.
    legacy: bool,
}

/// Damage before the tail of the log: the start stops here instead of guessing what was acknowledged.
#[derive(Debug)]
pub struct Damage {
    pub path: PathBuf,
    pub offset: usize,
    pub record: usize,
    pub why: String,
}

impl std::fmt::Display for Damage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the data log {} is damaged at byte offset {} (record {}): {}; intact records follow it, so nothing was \
             dropped or changed. Restore the file from a backup, or run `apiserver --data-dir {} --repair-data-log` \
             to keep every intact record (the damaged file is kept next to it)",
            self.path.display(),
            self.offset,
            self.record,
            self.why,
            self.path.parent().unwrap_or(Path::new(".")).display(),
        )
    }
}

impl std::error::Error for Damage {}

fn damaged(d: Damage) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, d)
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
    if loaded.legacy {
        tracing::warn!(path = %path.display(), "data log written without checksums (format 1): rewriting it with a checksum per record");
    }
    if !path.exists()
        || loaded.torn
        || loaded.legacy
        || loaded.history.len() >= COMPACT_AFTER_EVENTS
    {
        compact(&path, &loaded)?;
    }
    let file = OpenOptions::new().append(true).open(&path)?;
    Ok((LogFile(file), loaded))
}

impl Persister {
    /// Starts the writer thread (inline: none); it broadcasts each record's event after the record is on disk.
    pub fn start(
        log: LogFile,
        events: broadcast::Sender<Arc<Event>>,
        inline: bool,
    ) -> std::io::Result<Persister> {
        if inline {
            return Ok(Persister::Inline {
                file: std::sync::Mutex::new(Some(log.0)),
                events,
            });
        }
        let (tx, rx) = mpsc::channel::<(Record, oneshot::Sender<()>)>();
        std::thread::Builder::new()
            .name("apiserver-log".into())
            .spawn(move || writer(log.0, rx, events))?;
        Ok(Persister::Thread { tx })
    }
}

type Slot = (String, String, String);

/// The records of a log: (byte offset, line without its end, whether a line end followed it).
fn lines(bytes: &[u8]) -> impl Iterator<Item = (usize, &[u8], bool)> {
    let mut offset = 0;
    std::iter::from_fn(move || {
        if offset >= bytes.len() {
            return None;
        }
        let rest = &bytes[offset..];
        let (line, ended) = match rest.iter().position(|b| *b == b'\n') {
            Some(n) => (&rest[..n], true),
            None => (rest, false),
        };
        let at = offset;
        offset += line.len() + 1;
        Some((at, line, ended))
    })
}

/// A log written before checksums: its first record (always the compaction marker) carries none.
fn is_legacy(bytes: &[u8]) -> bool {
    lines(bytes)
        .next()
        .is_some_and(|(_, l, _)| !l.contains(&b'\t') && l.starts_with(b"{"))
}

/// A parsed record: resource ("" for the compaction marker), namespace, name, rv, object (null: deletion).
struct Rec {
    rv: u64,
    r: String,
    ns: String,
    n: String,
    o: Value,
}

fn parse_record(json: &[u8]) -> Result<Rec, &'static str> {
    let mut rec: Value = serde_json::from_slice(json).map_err(|_| "the record is not JSON")?;
    let (Some(r), Some(ns), Some(n), Some(rv)) = (
        rec["r"].as_str(),
        rec["ns"].as_str(),
        rec["n"].as_str(),
        rec["rv"].as_u64(),
    ) else {
        return Err("the record lacks rv, r, ns or n");
    };
    let (r, ns, n) = (r.to_string(), ns.to_string(), n.to_string());
    Ok(Rec {
        rv,
        r,
        ns,
        n,
        o: rec["o"].take(),
    })
}

/// The resourceVersion a damaged record starts with, if it can still be read: no later start hands it out again.
fn salvage_rv(line: &[u8]) -> Option<u64> {
    let digits = line.strip_prefix(b"{\"rv\":")?;
    let end = digits.iter().position(|b| !b.is_ascii_digit())?;
    std::str::from_utf8(&digits[..end]).ok()?.parse().ok()
}

/// Reads a log into its records, refusing damage before the tail. Returns the records and whether a tail was torn
/// (and the highest resourceVersion any record, torn ones included, names).
fn read_records(path: &Path, bytes: &[u8]) -> std::io::Result<(Vec<Rec>, bool, u64)> {
    let legacy = is_legacy(bytes);
    let mut recs = Vec::new();
    let mut first_damage: Option<Damage> = None;
    let mut max_rv = 0u64;
    let mut snapshot_rv = None::<u64>;
    let mut last_rv = 0u64;
    let mut unterminated = false;
    for (index, (offset, line, ended)) in lines(bytes).enumerate() {
        let parsed = check_line(line, legacy)
            .and_then(parse_record)
            .and_then(|rec| {
                // Events after the snapshot only move forward; snapshot records are at or below its marker.
                match snapshot_rv {
                    None if rec.r.is_empty() => {}
                    None => return Err("the log does not start with a compaction marker"),
                    Some(m) if rec.rv <= m && last_rv <= m && !rec.r.is_empty() => {}
                    Some(_) if rec.rv > last_rv && !rec.r.is_empty() => {}
                    Some(_) => return Err("the resourceVersion goes backwards"),
                }
                Ok(rec)
            });
        // An unterminated last line of an old log is torn even if it parses (its writer never finished it).
        let parsed = if legacy && !ended {
            Err("the record is torn")
        } else {
            parsed
        };
        match parsed {
            Ok(rec) => {
                if let Some(d) = first_damage.take() {
                    return Err(damaged(d));
                }
                // A whole record without its line end: appending after it would glue two records together.
                unterminated |= !ended;
                if rec.r.is_empty() {
                    snapshot_rv = Some(rec.rv);
                }
                last_rv = last_rv.max(rec.rv);
                max_rv = max_rv.max(rec.rv);
                recs.push(rec);
            }
            Err(why) => {
                max_rv = max_rv.max(salvage_rv(line).unwrap_or(0));
                first_damage.get_or_insert(Damage {
                    path: path.to_path_buf(),
                    offset,
                    record: index + 1,
                    why: why.to_string(),
                });
            }
        }
    }
    Ok((recs, first_damage.is_some() || unterminated, max_rv))
}

fn load(path: &Path) -> std::io::Result<Loaded> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e),
    };
    let legacy = !bytes.is_empty() && is_legacy(&bytes);
    let (recs, torn, max_rv) = read_records(path, &bytes)?;
    drop(bytes);
    let mut loaded = replay(recs);
    loaded.rv = loaded.rv.max(max_rv);
    // An empty log has no compaction marker yet: rewriting it puts one first.
    loaded.torn =
        torn || loaded.history_from == 0 && loaded.objects.is_empty() && loaded.history.is_empty();
    loaded.legacy = legacy;
    Ok(loaded)
}

fn replay(recs: Vec<Rec>) -> Loaded {
    let mut map: std::collections::BTreeMap<Slot, (u64, Arc<StoredObject>)> = Default::default();
    let mut rv = 0;
    let mut history = Vec::new();
    let mut history_from = 0;
    for rec in recs {
        let rec_rv = rec.rv;
        rv = rv.max(rec_rv);
        if rec.r.is_empty() {
            // The compaction marker: the snapshot records that follow are not events.
            history.clear();
            history_from = rec_rv;
            continue;
        }
        let key = ObjKey {
            resource: rec.r.as_str().into(),
            namespace: rec.ns.clone(),
            name: rec.n.clone(),
        };
        let slot = (rec.r, rec.ns, rec.n);
        let (prev, event) = match &rec.o {
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
                let stored = Arc::new(Prepared::new(&slot.0, obj).stamp(kind.as_str(), rec_rv));
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
    Loaded {
        rv,
        objects,
        history,
        history_from,
        torn: false,
        legacy: false,
    }
}

/// What [`repair`] did.
#[derive(Debug)]
pub struct Repaired {
    pub kept: usize,
    /// Byte offsets of the records dropped as damaged.
    pub dropped: Vec<usize>,
    /// The damaged log, kept as it was.
    pub backup: PathBuf,
}

/// Rewrites a damaged log from its intact records (each checksum-verified, the resourceVersions in order), keeping
/// the damaged file next to it. Only a person asks for this: losing the damaged records is their decision.
pub fn repair(dir: &Path, now: clock::Timestamp) -> std::io::Result<Repaired> {
    let path = dir.join(LOG_FILE);
    let bytes = std::fs::read(&path)?;
    let legacy = is_legacy(&bytes);
    let mut kept = Vec::new();
    let mut dropped = Vec::new();
    let (mut snapshot_rv, mut last_rv, mut max_rv) = (None::<u64>, 0u64, 0u64);
    for (offset, line, _) in lines(&bytes) {
        let ok = check_line(line, legacy)
            .and_then(parse_record)
            .ok()
            .filter(|rec| {
                match snapshot_rv {
                    // A damaged marker: every intact record is an event to replay.
                    None if !rec.r.is_empty() => {
                        snapshot_rv = Some(u64::MAX);
                        true
                    }
                    None => true,
                    Some(m) => {
                        !rec.r.is_empty() && ((rec.rv <= m && last_rv <= m) || rec.rv > last_rv)
                    }
                }
            });
        match ok {
            Some(rec) => {
                if rec.r.is_empty() {
                    snapshot_rv = Some(rec.rv);
                }
                last_rv = last_rv.max(rec.rv);
                kept.push(rec);
            }
            None => {
                max_rv = max_rv.max(salvage_rv(line).unwrap_or(0));
                dropped.push(offset)
            }
        }
    }
    let count = kept.len();
    let mut loaded = replay(kept);
    loaded.rv = loaded.rv.max(max_rv);
    let backup = path.with_extension(format!("log.damaged-{}", now.as_second().max(0)));
    std::fs::copy(&path, &backup)?;
    File::open(&backup)?.sync_all()?;
    compact(&path, &loaded)?;
    Ok(Repaired {
        kept: count,
        dropped,
        backup,
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
