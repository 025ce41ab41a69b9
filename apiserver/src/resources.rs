//! The API resource registry: built-in kinds and the ones CustomResourceDefinitions add at run time.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use serde_json::Value;

use crate::stored::ResKey;

#[derive(Debug, Clone, PartialEq)]
pub struct PrinterColumn {
    pub name: String,
    pub type_: String,
    pub format: String,
    pub description: String,
    pub json_path: String,
    pub priority: i64,
}

/// Everything the server knows about one resource (all served versions share the stored objects).
#[derive(Debug, Clone)]
pub struct ResourceInfo {
    pub group: String,
    /// Served versions, storage version first.
    pub versions: Vec<String>,
    pub plural: String,
    pub singular: String,
    pub kind: String,
    pub list_kind: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    pub has_status: bool,
    /// Printer columns per version.
    pub printer_columns: BTreeMap<String, Vec<PrinterColumn>>,
    /// `openAPIV3Schema` per version (custom resources and built-ins with a schema).
    pub schemas: BTreeMap<String, Value>,
    /// Defined by a CRD (strategic merge patch is refused, generation is tracked).
    pub custom: bool,
    /// Accepted without a schema: says so in discovery (no `storageVersionHash`) and is never validated.
    pub schemaless: bool,
    pub key: ResKey,
}

impl ResourceInfo {
    pub fn api_version(&self, version: &str) -> String {
        if self.group.is_empty() {
            version.to_string()
        } else {
            format!("{}/{version}", self.group)
        }
    }

    pub fn tracks_generation(&self) -> bool {
        self.custom || self.kind == "CustomResourceDefinition"
    }

    pub fn schema(&self, version: &str) -> Option<&Value> {
        self.schemas.get(version)
    }

    pub fn verbs(&self) -> Vec<&'static str> {
        vec![
            "create",
            "delete",
            "deletecollection",
            "get",
            "list",
            "patch",
            "update",
            "watch",
        ]
    }
}

pub fn res_key(group: &str, plural: &str) -> ResKey {
    format!("{group}/{plural}").into()
}

#[allow(clippy::too_many_arguments)]
fn builtin(
    group: &str,
    version: &str,
    plural: &str,
    kind: &str,
    namespaced: bool,
    short: &[&str],
    has_status: bool,
) -> ResourceInfo {
    ResourceInfo {
        group: group.into(),
        versions: vec![version.into()],
        plural: plural.into(),
        singular: kind.to_lowercase(),
        kind: kind.into(),
        list_kind: format!("{kind}List"),
        namespaced,
        short_names: short.iter().map(|s| s.to_string()).collect(),
        categories: vec![],
        has_status,
        printer_columns: BTreeMap::new(),
        schemas: BTreeMap::new(),
        custom: false,
        schemaless: false,
        key: res_key(group, plural),
    }
}

/// Built-in kinds the project needs, plus a few accepted schemaless (discovery marks them without a hash).
pub fn builtins() -> Vec<ResourceInfo> {
    let mut out = vec![
        builtin("", "v1", "namespaces", "Namespace", false, &["ns"], true),
        builtin("", "v1", "secrets", "Secret", true, &[], false),
        builtin("", "v1", "configmaps", "ConfigMap", true, &["cm"], false),
        builtin("", "v1", "events", "Event", true, &["ev"], false),
        builtin(
            "events.k8s.io",
            "v1",
            "events",
            "Event",
            true,
            &["ev"],
            false,
        ),
        builtin(
            "coordination.k8s.io",
            "v1",
            "leases",
            "Lease",
            true,
            &[],
            false,
        ),
        builtin(
            "apiextensions.k8s.io",
            "v1",
            "customresourcedefinitions",
            "CustomResourceDefinition",
            false,
            &["crd", "crds"],
            true,
        ),
    ];
    for (plural, kind, short) in [
        ("serviceaccounts", "ServiceAccount", "sa"),
        ("services", "Service", "svc"),
        ("pods", "Pod", "po"),
    ] {
        let mut info = builtin(
            "",
            "v1",
            plural,
            kind,
            true,
            &[short],
            kind != "ServiceAccount",
        );
        info.schemaless = true;
        out.push(info);
    }
    out.extend(workload_and_rbac_kinds());
    for c in &mut out {
        if c.kind == "CustomResourceDefinition" {
            c.categories = vec!["api-extensions".into()];
        }
    }
    out
}

/// The kinds deploy manifests use (workloads, Jobs, RBAC), stored and served schemaless: no controller acts on
/// them, but `kubectl apply` (also `--dry-run=server`) finds them in discovery and OpenAPI, correctly scoped.
fn workload_and_rbac_kinds() -> Vec<ResourceInfo> {
    const APPS: &str = "apps";
    const BATCH: &str = "batch";
    const RBAC: &str = "rbac.authorization.k8s.io";
    // (group, plural, kind, namespaced, short name, has status)
    let kinds: [(&str, &str, &str, bool, &str, bool); 10] = [
        (APPS, "deployments", "Deployment", true, "deploy", true),
        (APPS, "statefulsets", "StatefulSet", true, "sts", true),
        (APPS, "daemonsets", "DaemonSet", true, "ds", true),
        (APPS, "replicasets", "ReplicaSet", true, "rs", true),
        (BATCH, "jobs", "Job", true, "", true),
        (BATCH, "cronjobs", "CronJob", true, "cj", true),
        (RBAC, "roles", "Role", true, "", false),
        (RBAC, "rolebindings", "RoleBinding", true, "", false),
        (RBAC, "clusterroles", "ClusterRole", false, "", false),
        (
            RBAC,
            "clusterrolebindings",
            "ClusterRoleBinding",
            false,
            "",
            false,
        ),
    ];
    kinds
        .into_iter()
        .map(|(group, plural, kind, namespaced, short, has_status)| {
            let short: &[&str] = if short.is_empty() { &[] } else { &[short] };
            let mut info = builtin(group, "v1", plural, kind, namespaced, short, has_status);
            info.schemaless = true;
            if group == APPS || group == BATCH {
                info.categories = vec!["all".into()];
            }
            info
        })
        .collect()
}

/// Thread-safe registry keyed by group, version and plural.
#[derive(Default)]
pub struct Registry {
    inner: RwLock<BTreeMap<(String, String), Arc<ResourceInfo>>>,
}

impl Registry {
    pub fn new() -> Self {
        let reg = Registry::default();
        for info in builtins() {
            reg.insert(info);
        }
        reg
    }

    pub fn insert(&self, info: ResourceInfo) {
        let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
        inner.insert((info.group.clone(), info.plural.clone()), Arc::new(info));
    }

    pub fn remove(&self, group: &str, plural: &str) {
        let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
        inner.remove(&(group.to_string(), plural.to_string()));
    }

    pub fn get(&self, group: &str, plural: &str) -> Option<Arc<ResourceInfo>> {
        let inner = self.inner.read().unwrap_or_else(|e| e.into_inner());
        inner.get(&(group.to_string(), plural.to_string())).cloned()
    }

    /// The resource served at `group/version/plural`.
    pub fn lookup(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceInfo>> {
        self.get(group, plural)
            .filter(|i| i.versions.iter().any(|v| v == version))
    }

    pub fn by_key(&self, key: &str) -> Option<Arc<ResourceInfo>> {
        let (group, plural) = key.split_once('/')?;
        self.get(group, plural)
    }

    pub fn all(&self) -> Vec<Arc<ResourceInfo>> {
        let inner = self.inner.read().unwrap_or_else(|e| e.into_inner());
        inner.values().cloned().collect()
    }

    /// Groups with their served versions (preferred = first), core group excluded.
    pub fn groups(&self) -> Vec<(String, Vec<String>)> {
        let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for info in self.all() {
            if info.group.is_empty() {
                continue;
            }
            let versions = groups.entry(info.group.clone()).or_default();
            for v in &info.versions {
                if !versions.contains(v) {
                    versions.push(v.clone());
                }
            }
        }
        groups.into_iter().collect()
    }

    pub fn in_group_version(&self, group: &str, version: &str) -> Vec<Arc<ResourceInfo>> {
        self.all()
            .into_iter()
            .filter(|i| i.group == group && i.versions.iter().any(|v| v == version))
            .collect()
    }
}
