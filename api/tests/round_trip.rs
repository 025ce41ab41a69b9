//! Objects as upstream writes them deserialize into our types and serialize back to the same JSON.
//!
//! Inputs: our fixtures (every field of every kind, plus values this crate does not know) and
//! upstream's own samples, including the visualizer's 24 demo Servers.

use std::path::{Path, PathBuf};

use metal_api::{
    BMC, BMCSecret, BMCUser, Endpoint, Server, ServerBootConfiguration, ServerClaim,
    ServerReadinessRule, ServerState,
};
use pretty_assertions::assert_eq;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn samples_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/upstream/metal-operator/samples")
}

fn documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|error| panic!("{} cannot be read: {error}", path.display()));
    let documents: Vec<Value> = serde_saphyr::from_multiple(&text)
        .unwrap_or_else(|error| panic!("{} is not YAML: {error}", path.display()));
    documents
        .into_iter()
        .filter(|document| !document.is_null())
        .collect()
}

fn round_trip<K: DeserializeOwned + Serialize>(document: &Value, origin: &str) {
    let typed: K = serde_json::from_value(document.clone())
        .unwrap_or_else(|error| panic!("{origin}: does not deserialize: {error}"));
    let written = serde_json::to_value(&typed).expect("serializes");
    assert_eq!(&written, document, "{origin}: changed by a round trip");
}

/// Round-trips one document if it is one of our kinds; returns whether it was.
fn round_trip_any(document: &Value, origin: &str) -> bool {
    if document["apiVersion"] != metal_api::API_VERSION {
        return false;
    }
    let kind = document["kind"].as_str().unwrap_or_default();
    match kind {
        "BMC" => round_trip::<BMC>(document, origin),
        "BMCSecret" => round_trip::<BMCSecret>(document, origin),
        "BMCUser" => round_trip::<BMCUser>(document, origin),
        "Endpoint" => round_trip::<Endpoint>(document, origin),
        "Server" => round_trip::<Server>(document, origin),
        "ServerBootConfiguration" => round_trip::<ServerBootConfiguration>(document, origin),
        "ServerClaim" => round_trip::<ServerClaim>(document, origin),
        "ServerReadinessRule" => round_trip::<ServerReadinessRule>(document, origin),
        other => panic!("{origin}: unexpected metal.ironcore.dev kind {other:?}"),
    }
    true
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|error| panic!("{} cannot be listed: {error}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    files.sort();
    files
}

#[test]
fn fixtures_round_trip_and_cover_every_kind() {
    let mut kinds = std::collections::BTreeSet::new();
    for path in yaml_files(&fixtures_dir()) {
        for (index, document) in documents(&path).iter().enumerate() {
            let origin = format!("{}#{index}", path.display());
            assert!(
                round_trip_any(document, &origin),
                "{origin}: not a metal.ironcore.dev/v1alpha1 object"
            );
            kinds.insert(document["kind"].as_str().expect("kind").to_owned());
        }
    }
    assert_eq!(kinds.len(), 8, "fixtures cover {kinds:?}");
}

/// The openAPIV3Schema of `kind` in upstream's CRD.
fn upstream_schema(kind: &str) -> Value {
    let crds_dir =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/upstream/metal-operator/crds");
    for path in yaml_files(&crds_dir) {
        let crd = documents(&path).remove(0);
        if crd["spec"]["names"]["kind"] == kind {
            return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone();
        }
    }
    panic!("no upstream CRD for {kind}")
}

/// Drops what the API server's structural pruning would drop (fields the schema does not
/// declare), returning the dropped paths. Root `metadata` is kept whole, as the API server
/// handles it itself.
fn prune(value: &mut Value, schema: &Value, path: &str, dropped: &mut Vec<String>) {
    if schema.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true)) {
        return;
    }
    match value {
        Value::Object(object) => {
            if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
                object.retain(|key, _| {
                    let known =
                        properties.contains_key(key) || (path.is_empty() && key == "metadata");
                    if !known {
                        dropped.push(format!("{path}.{key}"));
                    }
                    known
                });
                for (key, child) in object.iter_mut() {
                    if path.is_empty() && key == "metadata" {
                        continue;
                    }
                    if let Some(child_schema) = properties.get(key) {
                        prune(child, child_schema, &format!("{path}.{key}"), dropped);
                    }
                }
            } else if let Some(values_schema) = schema.get("additionalProperties") {
                for (key, child) in object.iter_mut() {
                    prune(child, values_schema, &format!("{path}.{key}"), dropped);
                }
            } else if !(path.is_empty() && object.is_empty()) {
                dropped.extend(object.keys().map(|key| format!("{path}.{key}")));
                object.clear();
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (index, item) in items.iter_mut().enumerate() {
                    prune(item, item_schema, &format!("{path}[{index}]"), dropped);
                }
            }
        }
        _ => {}
    }
}

/// Upstream samples an API server with upstream's CRDs rejects, so they are never stored.
const INVALID_SAMPLES: &[(&str, &str)] = &[(
    "metal_v1alpha1_serverreadinessrule.yaml#0",
    "`requiredStatus: True` is a YAML boolean; the CRD requires the string \"True\"",
)];

/// Upstream samples, as an API server with upstream's CRDs would store them, round-trip.
#[test]
fn upstream_samples_round_trip_as_stored() {
    let mut ours = 0;
    let mut dropped = Vec::new();
    for path in yaml_files(&samples_dir()) {
        let file = path
            .file_name()
            .expect("file name")
            .to_string_lossy()
            .into_owned();
        for (index, mut document) in documents(&path).into_iter().enumerate() {
            if document["apiVersion"] != metal_api::API_VERSION {
                continue;
            }
            let origin = format!("{file}#{index}");
            if let Some((_, reason)) = INVALID_SAMPLES.iter().find(|(name, _)| *name == origin) {
                let parsed = serde_json::from_value::<ServerReadinessRule>(document.clone());
                assert!(parsed.is_err(), "{origin} should be rejected: {reason}");
                continue;
            }
            let schema = upstream_schema(document["kind"].as_str().expect("kind"));
            let mut pruned = Vec::new();
            prune(&mut document, &schema, "", &mut pruned);
            dropped.extend(pruned.into_iter().map(|field| format!("{origin}{field}")));
            assert!(round_trip_any(&document, &origin));
            ours += 1;
        }
    }
    // 8 kind samples plus the visualizer's 24 Servers, less the invalid ones.
    assert_eq!(
        ours,
        32 - INVALID_SAMPLES.len(),
        "number of metal.ironcore.dev objects in upstream samples"
    );
    // Upstream's BMCUser sample is older than its CRD; an API server prunes these two fields.
    assert_eq!(
        dropped,
        [
            "metal_v1alpha1_bmcuser.yaml#0.spec.BMCControllerUser",
            "metal_v1alpha1_bmcuser.yaml#0.spec.enabled"
        ]
    );
}

#[test]
fn fixtures_hold_only_fields_upstream_declares() {
    for path in yaml_files(&fixtures_dir()) {
        for (index, mut document) in documents(&path).into_iter().enumerate() {
            let schema = upstream_schema(document["kind"].as_str().expect("kind"));
            let mut dropped = Vec::new();
            prune(&mut document, &schema, "", &mut dropped);
            let origin = format!("{}#{index}", path.display());
            assert!(
                dropped.is_empty(),
                "{origin}: fields upstream does not declare: {dropped:?}"
            );
        }
    }
}

#[test]
fn visualizer_servers_read_known_states_and_keep_unknown_ones() {
    let path = samples_dir().join("visualizer-servers.yaml");
    let servers: Vec<Server> = documents(&path)
        .into_iter()
        .map(|document| serde_json::from_value(document).expect("a Server"))
        .collect();
    assert_eq!(servers.len(), 24);
    let maintenance = ServerState::Other("Maintenance".into());
    for server in &servers {
        let name = server.metadata.name.as_deref().unwrap_or("?");
        let state = server.state().expect("every demo server has a state");
        // The demo still shows v0.7.0's Maintenance state: kept verbatim, not known.
        assert!(
            !state.is_other() || state == &maintenance,
            "{name}: unexpected state {state}"
        );
        let power = server
            .power_state()
            .expect("every demo server has a power state");
        assert!(!power.is_other(), "{name}: unexpected power state {power}");
    }
    let count = |state: &ServerState| servers.iter().filter(|s| s.state() == Some(state)).count();
    assert_eq!(count(&ServerState::Available), 10);
    assert_eq!(count(&maintenance), 3);
}

#[test]
fn unknown_values_survive_and_typed_fields_are_read() {
    let documents = documents(&fixtures_dir().join("server.yaml"));
    let claimed: Server = serde_json::from_value(documents[0].clone()).expect("a Server");
    assert!(claimed.is_claimed());
    assert_eq!(claimed.reclaim_policy(), metal_api::ReclaimPolicy::Retain);
    assert!(
        !claimed.tolerated_by(&[]),
        "the firmware NoBind taint blocks an intolerant claim"
    );

    let legacy: Server = serde_json::from_value(documents[2].clone()).expect("a Server");
    assert_eq!(
        legacy.state(),
        Some(&ServerState::Other("Maintenance".into()))
    );
    assert!(!legacy.is_claimed());
    assert_eq!(legacy.reclaim_policy(), metal_api::ReclaimPolicy::Recycle);
    let written = serde_json::to_value(&legacy).expect("serializes");
    assert_eq!(written["status"]["state"], "Maintenance");
}

#[test]
fn bmc_secret_credentials_come_from_data_or_string_data() {
    let documents = documents(&fixtures_dir().join("bmcsecret.yaml"));
    let from_data: BMCSecret = serde_json::from_value(documents[0].clone()).expect("a BMCSecret");
    assert_eq!(
        from_data.credentials(),
        Some(("admin".into(), "adminpass".into()))
    );
    let from_string_data: BMCSecret =
        serde_json::from_value(documents[1].clone()).expect("a BMCSecret");
    assert_eq!(
        from_string_data.credentials(),
        Some(("foo".into(), "bar".into()))
    );
}
