//! What the boot server serves: one boot record per ServerBootConfiguration (published by the controller)
//! and a content-addressed store of the artifacts those records point at.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};

use bytes::Bytes;

use crate::oci::reference::ImageRef;
use crate::oci::{Layer, LayerKind};

/// `namespace/name` of a ServerBootConfiguration.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SbcKey {
    pub namespace: String,
    pub name: String,
}

impl SbcKey {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl std::fmt::Display for SbcKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// Everything needed to serve one SBC's machine, and nothing else: the controller compares a freshly
/// prepared record with the published one to decide whether a Ready SBC must re-verify (go Pending), so
/// a field here that serving does not render from (a Server's NICs, its power state) would make every
/// unrelated Server write flap the SBC. Equality of two records is the fingerprint of the served inputs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BootRecord {
    pub sbc: SbcKey,
    /// The SBC's metadata.uid: a deleted and recreated SBC of the same name is another record.
    pub uid: String,
    pub generation: i64,
    pub server: String,
    /// Lower-case system UUID.
    pub system_uuid: String,
    pub image: ImageRef,
    pub architecture: String,
    pub manifest_digest: String,
    pub kernel: Option<Layer>,
    pub initramfs: Option<Layer>,
    pub squashfs: Option<Layer>,
    pub uki: Option<Layer>,
    /// Rendered ignition (Ignition JSON, or the raw bytes for other formats); `None` without a Secret ref.
    pub ignition: Option<Bytes>,
    /// Whether the kernel command line points at `/ignition/{uuid}` even though there is no ignition
    /// (only misbehaviour modes produce such records).
    pub advertise_missing_ignition: bool,
}

impl BootRecord {
    pub fn layer(&self, kind: LayerKind) -> Option<&Layer> {
        match kind {
            LayerKind::Kernel => self.kernel.as_ref(),
            LayerKind::Initramfs => self.initramfs.as_ref(),
            LayerKind::Squashfs => self.squashfs.as_ref(),
            LayerKind::Uki => self.uki.as_ref(),
        }
    }

    fn digests(&self) -> impl Iterator<Item = &str> {
        [&self.kernel, &self.initramfs, &self.squashfs, &self.uki]
            .into_iter()
            .flatten()
            .map(|l| l.digest.as_str())
    }
}

#[derive(Default)]
struct Inner {
    records: HashMap<SbcKey, Arc<BootRecord>>,
    artifacts: HashMap<String, Bytes>,
}

/// Shared between the controller (writer) and the boot server (reader). Cheap to clone.
#[derive(Clone, Default)]
pub struct BootRecords {
    inner: Arc<RwLock<Inner>>,
}

impl BootRecords {
    pub fn get(&self, sbc: &SbcKey) -> Option<Arc<BootRecord>> {
        self.read().records.get(sbc).cloned()
    }

    pub fn has_artifact(&self, digest: &str) -> bool {
        self.read().artifacts.contains_key(digest)
    }

    pub fn artifact(&self, digest: &str) -> Option<Bytes> {
        self.read().artifacts.get(digest).cloned()
    }

    /// Replaces the record of `record.sbc`, storing its blobs, and drops artifacts no record refers to.
    /// Blobs travel with the record so a concurrent publish cannot prune them in between.
    pub fn publish(&self, record: BootRecord, blobs: Vec<(String, Bytes)>) {
        let mut inner = self.write();
        inner.artifacts.extend(blobs);
        inner.records.insert(record.sbc.clone(), Arc::new(record));
        Self::prune(&mut inner);
    }

    /// Removes an SBC's record (the SBC was deleted).
    pub fn remove(&self, sbc: &SbcKey) {
        let mut inner = self.write();
        if inner.records.remove(sbc).is_some() {
            Self::prune(&mut inner);
        }
    }

    fn prune(inner: &mut Inner) {
        let referenced: HashSet<String> = inner
            .records
            .values()
            .flat_map(|r| r.digests().map(str::to_string).collect::<Vec<_>>())
            .collect();
        inner
            .artifacts
            .retain(|digest, _| referenced.contains(digest));
    }

    /// Keeps only the records whose SBC `keep` accepts.
    pub fn retain(&self, keep: impl Fn(&SbcKey) -> bool) {
        let mut inner = self.write();
        let before = inner.records.len();
        inner.records.retain(|key, _| keep(key));
        if inner.records.len() != before {
            Self::prune(&mut inner);
        }
    }

    pub fn len(&self) -> usize {
        self.read().records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Total bytes of stored artifacts.
    pub fn artifact_bytes(&self) -> usize {
        self.read().artifacts.values().map(Bytes::len).sum()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
