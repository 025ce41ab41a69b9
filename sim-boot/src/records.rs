//! What the boot server serves: one boot record per ServerBootConfiguration (published by the controller)
//! and a content-addressed store of the artifacts those records point at.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use kube::api::ObjectMeta;

use crate::misbehaviour::Misbehaviour;
use crate::oci::Layer;
use boot_image::ImageRef;
use boot_image::LayerKind;

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

    /// The key of the SBC with this metadata.
    pub fn of(meta: &ObjectMeta) -> Self {
        Self::new(
            meta.namespace.clone().unwrap_or_default(),
            meta.name.clone().unwrap_or_default(),
        )
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
    /// How many record layers name each digest; an artifact lives exactly while its count is
    /// positive. Counting keeps publish and remove O(layers) instead of a sweep over all records.
    references: HashMap<String, usize>,
    /// Records by lower-case system UUID, so a booting machine is found without a scan.
    by_uuid: HashMap<String, Vec<SbcKey>>,
}

impl Inner {
    fn index(&mut self, record: &BootRecord) {
        let keys = self.by_uuid.entry(record.system_uuid.clone()).or_default();
        if !keys.contains(&record.sbc) {
            keys.push(record.sbc.clone());
        }
    }

    fn unindex(&mut self, record: &BootRecord) {
        if let Some(keys) = self.by_uuid.get_mut(&record.system_uuid) {
            keys.retain(|k| k != &record.sbc);
            if keys.is_empty() {
                self.by_uuid.remove(&record.system_uuid);
            }
        }
    }

    fn reference(&mut self, record: &BootRecord) {
        for digest in record.digests() {
            *self.references.entry(digest.to_string()).or_default() += 1;
        }
    }

    fn release(&mut self, record: &BootRecord) {
        for digest in record.digests() {
            if let Some(count) = self.references.get_mut(digest) {
                *count -= 1;
                if *count == 0 {
                    self.references.remove(digest);
                    self.artifacts.remove(digest);
                }
            }
        }
    }
}

/// Shared between the controller (writer) and the boot server (reader). Cheap to clone.
#[derive(Clone, Default)]
pub struct BootRecords {
    inner: Arc<RwLock<Inner>>,
    /// The serving misbehaviours (`serve-newest`, `serve-deleted`) live where records are kept and looked up.
    misbehaviour: Misbehaviour,
}

impl BootRecords {
    /// An empty store for a backend in `misbehaviour`.
    pub fn for_mode(misbehaviour: Misbehaviour) -> Self {
        Self {
            misbehaviour,
            ..Self::default()
        }
    }

    pub fn misbehaviour(&self) -> Misbehaviour {
        self.misbehaviour
    }

    /// `records-by-name`: the record in another namespace holding `sbc`'s name, if any.
    pub fn name_taken_by(&self, sbc: &SbcKey) -> Option<SbcKey> {
        self.read()
            .records
            .keys()
            .find(|k| k.name == sbc.name && k.namespace != sbc.namespace)
            .cloned()
    }

    pub fn get(&self, sbc: &SbcKey) -> Option<Arc<BootRecord>> {
        self.read().records.get(sbc).cloned()
    }

    /// The records prepared for the machine with this system UUID (any case).
    pub fn for_uuid(&self, uuid: &str) -> Vec<Arc<BootRecord>> {
        let inner = self.read();
        inner
            .by_uuid
            .get(&uuid.to_ascii_lowercase())
            .into_iter()
            .flatten()
            .filter_map(|key| inner.records.get(key).cloned())
            .collect()
    }

    pub fn has_artifact(&self, digest: &str) -> bool {
        self.read().artifacts.contains_key(digest)
    }

    pub fn artifact(&self, digest: &str) -> Option<Bytes> {
        self.read().artifacts.get(digest).cloned()
    }

    /// Replaces the record of `record.sbc`, storing its blobs, and drops artifacts no record refers to.
    /// Blobs travel with the record so a concurrent publish cannot drop them in between.
    pub fn publish(&self, record: BootRecord, blobs: Vec<(String, Bytes)>) {
        let mut inner = self.write();
        let record = Arc::new(record);
        inner.reference(&record);
        if let Some(old) = inner.records.insert(record.sbc.clone(), record.clone()) {
            inner.release(&old);
            inner.unindex(&old);
        }
        inner.index(&record);
        for (digest, bytes) in blobs {
            if inner.references.contains_key(&digest) {
                inner.artifacts.entry(digest).or_insert(bytes);
            }
        }
    }

    /// Removes an SBC's record (the SBC was deleted).
    pub fn remove(&self, sbc: &SbcKey) {
        let mut inner = self.write();
        if let Some(old) = inner.records.remove(sbc) {
            inner.release(&old);
            inner.unindex(&old);
        }
    }

    /// Keeps only the records whose SBC `keep` accepts (`serve-deleted` keeps every record).
    /// The records (by SBC and uid) whose SBC `stored` does not know.
    pub fn unstored(&self, stored: impl Fn(&SbcKey) -> bool) -> HashSet<(SbcKey, String)> {
        self.read()
            .records
            .values()
            .filter(|record| !stored(&record.sbc))
            .map(|record| (record.sbc.clone(), record.uid.clone()))
            .collect()
    }

    /// Drops the records of these SBC incarnations (key and uid): a record published since for a
    /// recreated SBC of the same name stays.
    pub fn drop_incarnations(&self, deleted: &HashSet<(SbcKey, String)>) {
        if self.misbehaviour == Misbehaviour::ServeDeleted {
            return;
        }
        let mut inner = self.write();
        let dropped: Vec<SbcKey> = inner
            .records
            .values()
            .filter(|record| deleted.contains(&(record.sbc.clone(), record.uid.clone())))
            .map(|record| record.sbc.clone())
            .collect();
        for key in dropped {
            if let Some(old) = inner.records.remove(&key) {
                inner.release(&old);
                inner.unindex(&old);
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(kind: LayerKind, digest: &str) -> Option<Layer> {
        Some(Layer {
            kind,
            media_type: "application/octet-stream".into(),
            digest: digest.into(),
            size: 1,
        })
    }

    fn record(name: &str, kernel: &str, initramfs: &str) -> BootRecord {
        BootRecord {
            sbc: SbcKey::new("ns", name),
            uid: format!("uid-{name}"),
            generation: 1,
            server: format!("server-{name}"),
            system_uuid: format!("uuid-{name}"),
            image: ImageRef::parse("registry.test/os:1").unwrap(),
            architecture: "amd64".into(),
            manifest_digest: "sha256:m".into(),
            kernel: layer(LayerKind::Kernel, kernel),
            initramfs: layer(LayerKind::Initramfs, initramfs),
            squashfs: None,
            uki: None,
            ignition: None,
            advertise_missing_ignition: false,
        }
    }

    fn blobs(digests: &[&str]) -> Vec<(String, Bytes)> {
        digests
            .iter()
            .map(|d| (d.to_string(), Bytes::from(d.to_string())))
            .collect()
    }

    #[test]
    fn artifacts_live_exactly_while_a_record_names_them() {
        let records = BootRecords::default();
        records.publish(record("a", "k1", "i1"), blobs(&["k1", "i1", "stray"]));
        records.publish(record("b", "k1", "i2"), blobs(&["k1", "i2"]));
        assert!(records.has_artifact("k1") && records.has_artifact("i1"));
        assert!(
            !records.has_artifact("stray"),
            "a blob no record names is not kept"
        );

        // Replacing a's record drops what only the old one named, keeps what b still shares.
        records.publish(record("a", "k2", "i1"), blobs(&["k2", "i1"]));
        assert!(records.has_artifact("k1"), "b still boots k1");
        assert!(records.has_artifact("k2") && records.has_artifact("i1"));

        records.remove(&SbcKey::new("ns", "b"));
        assert!(!records.has_artifact("k1") && !records.has_artifact("i2"));
        assert!(records.has_artifact("k2"));

        assert_eq!(
            records.for_uuid("UUID-A").len(),
            1,
            "found by UUID in any case"
        );
        assert!(records.for_uuid("uuid-b").is_empty(), "b's record is gone");

        records.drop_incarnations(&records.unstored(|_| false));
        assert!(records.is_empty());
        assert!(records.for_uuid("uuid-a").is_empty());
        assert_eq!(records.artifact_bytes(), 0);
    }

    #[test]
    fn misbehaving_stores_keep_deleted_records_and_see_names_across_namespaces() {
        let honest = BootRecords::default();
        honest.publish(record("a", "k", "i"), blobs(&["k", "i"]));
        honest.drop_incarnations(&honest.unstored(|_| false));
        assert!(
            honest.is_empty(),
            "an honest store drops deleted SBCs' records"
        );
        let keeper = BootRecords::for_mode(Misbehaviour::ServeDeleted);
        keeper.publish(record("a", "k", "i"), blobs(&["k", "i"]));
        keeper.drop_incarnations(&keeper.unstored(|_| false));
        assert_eq!(keeper.len(), 1, "serve-deleted keeps every record");
        assert!(keeper.has_artifact("k"));

        let records = BootRecords::default();
        records.publish(record("a", "k", "i"), blobs(&[]));
        assert_eq!(records.name_taken_by(&SbcKey::new("ns", "a")), None);
        assert_eq!(
            records.name_taken_by(&SbcKey::new("other", "a")),
            Some(SbcKey::new("ns", "a"))
        );
        assert_eq!(records.name_taken_by(&SbcKey::new("other", "b")), None);
    }

    #[test]
    fn only_the_listed_deleted_incarnation_is_dropped() {
        let records = BootRecords::default();
        records.publish(record("a", "k", "i"), blobs(&[]));
        records.publish(record("b", "k", "i"), blobs(&[]));
        // The store knows `b` only; `a` is unconfirmed, as a record published ahead of the store is.
        let unconfirmed = records.unstored(|key| key == &SbcKey::new("ns", "b"));
        assert_eq!(
            unconfirmed,
            HashSet::from([(SbcKey::new("ns", "a"), "uid-a".to_string())])
        );
        // Meanwhile `a` was deleted and recreated, and the controller published the new one.
        let mut recreated = record("a", "k2", "i2");
        recreated.uid = "uid-a2".into();
        records.publish(recreated, blobs(&[]));
        records.drop_incarnations(&unconfirmed);
        assert_eq!(records.len(), 2, "the recreated SBC's record stays");
        assert_eq!(records.get(&SbcKey::new("ns", "a")).unwrap().uid, "uid-a2");
        // Dropping the recorded incarnation itself removes it.
        records.drop_incarnations(&HashSet::from([(
            SbcKey::new("ns", "a"),
            "uid-a2".to_string(),
        )]));
        assert_eq!(records.len(), 1);
    }

    #[test]
    fn a_record_naming_one_digest_twice_keeps_it_until_removed() {
        let records = BootRecords::default();
        records.publish(record("a", "same", "same"), blobs(&["same"]));
        records.publish(record("a", "same", "other"), blobs(&["other"]));
        assert!(records.has_artifact("same") && records.has_artifact("other"));
        records.remove(&SbcKey::new("ns", "a"));
        assert_eq!(records.artifact_bytes(), 0);
    }
}
