//! Our generated CRDs against upstream metal-operator's (`../shared/upstream/metal-operator/crds/`).
//!
//! Both are walked side by side: group, names, scope, versions, printer columns, subresources and
//! every schema node (type, format, enum, default, required, patterns and bounds, `x-kubernetes-*`
//! markers, CEL rules). Descriptions are ignored. The only differences tolerated are the additions
//! listed in [`ALLOWED_ADDITIONS`], each with its reason.

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde_json::{Map, Value};

/// Deliberate additions beyond upstream: (kind, object path, reason). Additions only — a missing or
/// retyped upstream field can never be allowed here. Empty today: the schemas match exactly.
const ALLOWED_ADDITIONS: &[(&str, &str, &str)] = &[];

const KINDS: usize = 8;

fn upstream_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/upstream/metal-operator/crds")
}

fn upstream_crd(file_name: &str) -> Value {
    let path = upstream_dir().join(file_name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("upstream CRD {} cannot be read: {error}", path.display()));
    serde_saphyr::from_str(&text)
        .unwrap_or_else(|error| panic!("{} is not YAML: {error}", path.display()))
}

/// Collects differences between our CRD and upstream's for one kind.
struct Walker<'a> {
    kind: &'a str,
    differences: Vec<String>,
    used_allowances: BTreeSet<usize>,
}

impl Walker<'_> {
    fn report(&mut self, at: &str, message: String) {
        self.differences
            .push(format!("{}: {at}: {message}", self.kind));
    }

    /// Compares two JSON values; `at` locates the node in the CRD, `field` the object path.
    fn compare(&mut self, ours: &Value, upstream: &Value, at: &str, field: &str) {
        match (ours, upstream) {
            (Value::Object(ours), Value::Object(upstream)) => {
                self.compare_objects(ours, upstream, at, field)
            }
            (Value::Array(ours), Value::Array(upstream)) if ours.len() == upstream.len() => {
                for (index, (o, u)) in ours.iter().zip(upstream).enumerate() {
                    self.compare(o, u, &format!("{at}[{index}]"), field);
                }
            }
            // JSONSchemaProps keeps bounds as f64, so `minimum: 0` comes back as `0.0`.
            (Value::Number(o), Value::Number(u)) if o.as_f64() == u.as_f64() => {}
            _ if ours == upstream => {}
            _ => self.report(at, format!("ours {ours} != upstream {upstream}")),
        }
    }

    fn compare_objects(
        &mut self,
        ours: &Map<String, Value>,
        upstream: &Map<String, Value>,
        at: &str,
        field: &str,
    ) {
        let keys: BTreeSet<&String> = ours.keys().chain(upstream.keys()).collect();
        for key in keys {
            if key == "description" {
                continue;
            }
            let here = format!("{at}.{key}");
            match (ours.get(key), upstream.get(key)) {
                (Some(o), Some(u)) => match key.as_str() {
                    "properties" => self.compare_properties(o, u, &here, field),
                    "required" => self.compare_as_sets(o, u, &here),
                    "items" => self.compare(o, u, &here, &format!("{field}[]")),
                    "additionalProperties" => self.compare(o, u, &here, &format!("{field}{{}}")),
                    _ => self.compare(o, u, &here, field),
                },
                (None, Some(u)) => {
                    self.report(&here, format!("missing in ours (upstream has {u})"))
                }
                (Some(o), None) => self.report(&here, format!("only in ours ({o})")),
                (None, None) => unreachable!("key comes from one of the maps"),
            }
        }
    }

    fn compare_properties(&mut self, ours: &Value, upstream: &Value, at: &str, field: &str) {
        let (Some(ours), Some(upstream)) = (ours.as_object(), upstream.as_object()) else {
            return self.report(at, "properties is not an object".into());
        };
        for (name, upstream_schema) in upstream {
            let child = format!("{field}.{name}");
            match ours.get(name) {
                Some(our_schema) => {
                    self.compare(our_schema, upstream_schema, &format!("{at}.{name}"), &child)
                }
                None => self.report(&child, "upstream field missing in ours".into()),
            }
        }
        for name in ours.keys().filter(|name| !upstream.contains_key(*name)) {
            let child = format!("{field}.{name}");
            let allowance = ALLOWED_ADDITIONS
                .iter()
                .position(|(kind, path, _)| *kind == self.kind && *path == child);
            match allowance {
                Some(index) => {
                    self.used_allowances.insert(index);
                }
                None => self.report(
                    &child,
                    "field only in ours and not in ALLOWED_ADDITIONS".into(),
                ),
            }
        }
    }

    fn compare_as_sets(&mut self, ours: &Value, upstream: &Value, at: &str) {
        let set = |value: &Value| -> BTreeSet<String> {
            value
                .as_array()
                .into_iter()
                .flatten()
                .map(|v| v.to_string())
                .collect()
        };
        let (ours, upstream) = (set(ours), set(upstream));
        if ours != upstream {
            self.report(at, format!("ours {ours:?} != upstream {upstream:?}"));
        }
    }
}

/// Compares the parts of two CRDs that matter: `metadata.name` and the whole `spec`.
fn compare_crds(kind: &str, ours: &Value, upstream: &Value) -> (Vec<String>, BTreeSet<usize>) {
    let mut walker = Walker {
        kind,
        differences: Vec::new(),
        used_allowances: BTreeSet::new(),
    };
    walker.compare(
        &ours["apiVersion"],
        &upstream["apiVersion"],
        "apiVersion",
        "",
    );
    walker.compare(&ours["kind"], &upstream["kind"], "kind", "");
    walker.compare(
        &ours["metadata"]["name"],
        &upstream["metadata"]["name"],
        "metadata.name",
        "",
    );
    walker.compare(&ours["spec"], &upstream["spec"], "spec", "");
    (walker.differences, walker.used_allowances)
}

#[test]
fn generated_crds_equal_upstream_modulo_descriptions() {
    let crds = metal_api::crds::all();
    assert_eq!(crds.len(), KINDS, "one CRD per kind on upstream main");
    let mut differences = Vec::new();
    let mut used = BTreeSet::new();
    for crd in &crds {
        let ours = serde_json::to_value(crd).expect("CRD serializes");
        let upstream = upstream_crd(&metal_api::crds::file_name(crd));
        let (found, allowances) = compare_crds(&crd.spec.names.kind, &ours, &upstream);
        differences.extend(found);
        used.extend(allowances);
    }
    for (index, (kind, path, reason)) in ALLOWED_ADDITIONS.iter().enumerate() {
        if !used.contains(&index) {
            differences.push(format!(
                "stale ALLOWED_ADDITIONS entry {kind} {path} ({reason}): no such addition"
            ));
        }
    }
    assert!(
        differences.is_empty(),
        "{} difference(s) from upstream:\n  {}",
        differences.len(),
        differences.join("\n  ")
    );
}

#[test]
fn every_upstream_crd_has_a_counterpart() {
    let ours: BTreeSet<String> = metal_api::crds::all()
        .iter()
        .map(metal_api::crds::file_name)
        .collect();
    let upstream: BTreeSet<String> = std::fs::read_dir(upstream_dir())
        .expect("upstream CRD directory is listable")
        .map(|entry| entry.expect("directory entry"))
        .filter(|entry| entry.file_type().map(|t| t.is_file()).unwrap_or(false))
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".yaml"))
        .collect();
    assert_eq!(ours, upstream);
}

/// A named change to an upstream CRD that the walker must report.
type Mutation = (&'static str, fn(&mut Value));

const SCHEMA: &str = "/spec/versions/0/schema/openAPIV3Schema/properties";

fn node<'a>(crd: &'a mut Value, pointer: &str) -> &'a mut Value {
    crd.pointer_mut(&format!("{SCHEMA}{pointer}"))
        .unwrap_or_else(|| panic!("{pointer} exists upstream"))
}

fn object<'a>(crd: &'a mut Value, pointer: &str) -> &'a mut Map<String, Value> {
    node(crd, pointer).as_object_mut().expect("an object")
}

/// The walker must notice each kind of drift, or the main test proves nothing.
#[test]
fn walker_detects_each_kind_of_difference() {
    let upstream = upstream_crd("metal.ironcore.dev_servers.yaml");
    let mutations: &[Mutation] = &[
        ("removed field", |crd| {
            object(crd, "/spec/properties").remove("systemURI");
        }),
        ("added field", |crd| {
            object(crd, "/status/properties")
                .insert("extra".into(), serde_json::json!({"type": "string"}));
        }),
        ("changed format", |crd| {
            *node(
                crd,
                "/status/properties/processors/items/properties/totalCores/format",
            ) = "int64".into();
        }),
        ("dropped default", |crd| {
            object(crd, "/spec/properties/reclaimPolicy").remove("default");
        }),
        ("changed CEL rule", |crd| {
            *node(
                crd,
                "/spec/properties/serverClaimRef/properties/name/x-kubernetes-validations/0/rule",
            ) = "true".into();
        }),
        ("extra required", |crd| {
            node(crd, "/spec/required")
                .as_array_mut()
                .expect("a list")
                .push("power".into());
        }),
        ("printer column priority", |crd| {
            *crd.pointer_mut("/spec/versions/0/additionalPrinterColumns/4/priority")
                .expect("priority") = 0.into();
        }),
        ("short name", |crd| {
            *crd.pointer_mut("/spec/names/shortNames/0")
                .expect("short name") = "server".into();
        }),
    ];
    for (name, mutate) in mutations {
        let mut changed = upstream.clone();
        mutate(&mut changed);
        let (differences, _) = compare_crds("Server", &changed, &upstream);
        assert!(!differences.is_empty(), "walker missed a {name}");
    }
    let (none, _) = compare_crds("Server", &upstream, &upstream);
    assert!(
        none.is_empty(),
        "identical CRDs must compare equal: {none:?}"
    );
}

/// Descriptions may differ freely.
#[test]
fn walker_ignores_descriptions() {
    let upstream = upstream_crd("metal.ironcore.dev_bmcs.yaml");
    let mut changed = upstream.clone();
    *changed
        .pointer_mut("/spec/versions/0/schema/openAPIV3Schema/properties/spec/description")
        .expect("spec has a description") = "something else".into();
    let (differences, _) = compare_crds("BMC", &changed, &upstream);
    assert!(differences.is_empty(), "{differences:?}");
}
