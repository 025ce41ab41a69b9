//! Built manifests: `kubectl kustomize` output parsed into JSON objects, with small accessors.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use crate::tools::{ToolError, run_tool};

/// The objects of one `kubectl kustomize` build (or any multi-document YAML).
#[derive(Clone, Debug, Default)]
pub struct Manifests {
    objects: Vec<Value>,
}

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error(transparent)]
    Tool(#[from] ToolError),
    #[error("YAML: {0}")]
    Yaml(String),
    #[error("document {index} is not a Kubernetes object (no apiVersion/kind/metadata.name)")]
    NotAnObject { index: usize },
}

impl Manifests {
    /// Runs `kubectl kustomize DIR` (kustomize built into kubectl; no network) and parses the result.
    pub fn build(dir: &Path) -> Result<Manifests, ManifestError> {
        let out = run_tool("kubectl", &["kustomize".as_ref(), dir.as_os_str()])?;
        Manifests::parse(&out)
    }

    /// Parses multi-document YAML; empty documents are skipped, anything else must be an object.
    pub fn parse(yaml: &str) -> Result<Manifests, ManifestError> {
        let docs: Vec<Value> =
            serde_saphyr::from_multiple(yaml).map_err(|e| ManifestError::Yaml(e.to_string()))?;
        let mut objects = Vec::new();
        for (index, doc) in docs.into_iter().enumerate() {
            if doc.is_null() {
                continue;
            }
            let ok = doc["apiVersion"].is_string()
                && doc["kind"].is_string()
                && doc["metadata"]["name"].is_string();
            if !ok {
                return Err(ManifestError::NotAnObject { index });
            }
            objects.push(doc);
        }
        Ok(Manifests { objects })
    }

    pub fn objects(&self) -> &[Value] {
        &self.objects
    }

    /// How many objects of each kind.
    pub fn kind_counts(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for o in &self.objects {
            *counts.entry(kind_of(o).to_string()).or_default() += 1;
        }
        counts
    }

    pub fn of_kind<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
        self.objects.iter().filter(move |o| kind_of(o) == kind)
    }

    pub fn get(&self, kind: &str, name: &str) -> Option<&Value> {
        self.objects
            .iter()
            .find(|o| kind_of(o) == kind && name_of(o) == name)
    }

    /// The objects as multi-document YAML (JSON documents are valid YAML), for `kubectl apply -f`.
    pub fn to_yaml(&self) -> String {
        self.objects.iter().map(|o| format!("---\n{o}\n")).collect()
    }

    /// Only the objects `keep` accepts.
    pub fn filtered(&self, keep: impl Fn(&Value) -> bool) -> Manifests {
        Manifests {
            objects: self.objects.iter().filter(|o| keep(o)).cloned().collect(),
        }
    }
}

pub fn kind_of(o: &Value) -> &str {
    o["kind"].as_str().unwrap_or_default()
}

pub fn name_of(o: &Value) -> &str {
    o["metadata"]["name"].as_str().unwrap_or_default()
}

pub fn namespace_of(o: &Value) -> Option<&str> {
    o["metadata"]["namespace"].as_str()
}

/// Every container (init containers included) of a workload's pod template.
pub fn containers(workload: &Value) -> Vec<&Value> {
    let spec = match kind_of(workload) {
        "CronJob" => &workload["spec"]["jobTemplate"]["spec"]["template"]["spec"],
        _ => &workload["spec"]["template"]["spec"],
    };
    ["initContainers", "containers"]
        .iter()
        .filter_map(|k| spec[*k].as_array())
        .flatten()
        .collect()
}

pub fn pod_spec(workload: &Value) -> &Value {
    match kind_of(workload) {
        "CronJob" => &workload["spec"]["jobTemplate"]["spec"]["template"]["spec"],
        _ => &workload["spec"]["template"]["spec"],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_documents_and_rejects_non_objects() {
        let m = Manifests::parse("---\napiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: b, namespace: a}\n").unwrap();
        assert_eq!(m.objects().len(), 2);
        assert_eq!(m.kind_counts().get("ConfigMap"), Some(&1));
        assert_eq!(namespace_of(m.get("ConfigMap", "b").unwrap()), Some("a"));
        let again = Manifests::parse(&m.to_yaml()).unwrap();
        assert_eq!(again.objects(), m.objects());
        assert!(matches!(
            Manifests::parse("a: 1\n"),
            Err(ManifestError::NotAnObject { index: 0 })
        ));
    }
}
