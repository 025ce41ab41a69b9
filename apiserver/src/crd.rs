//! CustomResourceDefinitions: checking a definition, turning it into a served resource, and its status
//! conditions (`NamesAccepted`, `Established`).

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::objects::{name_of, strings_at};
use crate::resources::{PrinterColumn, ResourceInfo, res_key};
use crate::status::Cause;

pub const CLEANUP_FINALIZER: &str = "customresourcecleanup.apiextensions.k8s.io";

fn s<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

/// Field errors of a CRD spec (a subset of apiextensions validation: what would make it unservable).
pub fn validate(crd: &Value) -> Vec<Cause> {
    let mut causes = vec![];
    let group = s(crd, "/spec/group");
    let plural = s(crd, "/spec/names/plural");
    let kind = s(crd, "/spec/names/kind");
    if group.is_empty() {
        causes.push(Cause::new(
            "FieldValueRequired",
            "spec.group",
            "Required value",
        ));
    } else if !group.contains('.') {
        causes.push(Cause::new(
            "FieldValueInvalid",
            "spec.group",
            format!("Invalid value: \"{group}\": should be a domain with at least one dot"),
        ));
    }
    if plural.is_empty() {
        causes.push(Cause::new(
            "FieldValueRequired",
            "spec.names.plural",
            "Required value",
        ));
    }
    if kind.is_empty() {
        causes.push(Cause::new(
            "FieldValueRequired",
            "spec.names.kind",
            "Required value",
        ));
    }
    let scope = s(crd, "/spec/scope");
    if scope != "Namespaced" && scope != "Cluster" {
        let supported = ["Cluster", "Namespaced"];
        causes.push(Cause::not_supported("spec.scope", scope, &supported));
    }
    if !plural.is_empty() && !group.is_empty() && name_of(crd) != format!("{plural}.{group}") {
        causes.push(Cause::new(
            "FieldValueInvalid",
            "metadata.name",
            format!(
                "Invalid value: \"{}\": must be spec.names.plural+\".\"+spec.group",
                name_of(crd)
            ),
        ));
    }
    let versions = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if versions.is_empty() {
        causes.push(Cause::new(
            "FieldValueRequired",
            "spec.versions",
            "Required value: must have exactly one version marked as storage version",
        ));
    }
    let storage = versions
        .iter()
        .filter(|v| v["storage"] == json!(true))
        .count();
    if !versions.is_empty() && storage != 1 {
        causes.push(Cause::new("FieldValueInvalid", "spec.versions", format!("Invalid value: must have exactly one version marked as storage version, status.storedVersions[{storage}]")));
    }
    for (i, v) in versions.iter().enumerate() {
        if v.get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .is_empty()
        {
            causes.push(Cause::new(
                "FieldValueRequired",
                format!("spec.versions[{i}].name"),
                "Required value",
            ));
        }
        if v.pointer("/schema/openAPIV3Schema").is_none() {
            causes.push(Cause::new(
                "FieldValueRequired",
                format!("spec.versions[{i}].schema.openAPIV3Schema"),
                "Required value: schemas are required",
            ));
        }
    }
    causes
}

fn printer_columns(v: &Value) -> Vec<PrinterColumn> {
    v.get("additionalPrinterColumns")
        .and_then(Value::as_array)
        .map(|cols| {
            cols.iter()
                .map(|c| PrinterColumn {
                    name: s(c, "/name").to_string(),
                    type_: s(c, "/type").to_string(),
                    format: s(c, "/format").to_string(),
                    description: s(c, "/description").to_string(),
                    json_path: s(c, "/jsonPath").to_string(),
                    priority: c.get("priority").and_then(Value::as_i64).unwrap_or(0),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The served resource a (valid) CRD describes; served versions with the storage version first.
pub fn resource_info(crd: &Value) -> ResourceInfo {
    let group = s(crd, "/spec/group").to_string();
    let plural = s(crd, "/spec/names/plural").to_string();
    let kind = s(crd, "/spec/names/kind").to_string();
    let mut versions: Vec<&Value> = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter(|v| v["served"] != json!(false)).collect())
        .unwrap_or_default();
    versions.sort_by_key(|v| v["storage"] != json!(true));
    let mut printer = BTreeMap::new();
    let mut schemas = BTreeMap::new();
    let mut has_status = false;
    for v in &versions {
        let name = s(v, "/name").to_string();
        printer.insert(name.clone(), printer_columns(v));
        if let Some(schema) = v.pointer("/schema/openAPIV3Schema") {
            schemas.insert(name.clone(), schema.clone());
        }
        has_status |= v.pointer("/subresources/status").is_some();
    }
    let singular = match s(crd, "/spec/names/singular") {
        "" => kind.to_lowercase(),
        x => x.to_string(),
    };
    let list_kind = match s(crd, "/spec/names/listKind") {
        "" => format!("{kind}List"),
        x => x.to_string(),
    };
    ResourceInfo {
        key: res_key(&group, &plural),
        versions: versions.iter().map(|v| s(v, "/name").to_string()).collect(),
        namespaced: s(crd, "/spec/scope") == "Namespaced",
        short_names: strings_at(crd, "/spec/names/shortNames"),
        categories: strings_at(crd, "/spec/names/categories"),
        has_status,
        printer_columns: printer,
        schemas,
        custom: true,
        schemaless: false,
        group,
        plural,
        singular,
        kind,
        list_kind,
    }
}

/// The status a CRD gets once served: names accepted, established, stored versions.
pub fn established_status(crd: &Value, now: &str) -> Value {
    let mut names = crd.pointer("/spec/names").cloned().unwrap_or(json!({}));
    if names.get("singular").is_none() {
        names["singular"] = json!(s(crd, "/spec/names/kind").to_lowercase());
    }
    if names.get("listKind").is_none() {
        names["listKind"] = json!(format!("{}List", s(crd, "/spec/names/kind")));
    }
    let storage: Vec<String> = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter(|v| v["storage"] == json!(true))
                .map(|v| s(v, "/name").to_string())
                .collect()
        })
        .unwrap_or_default();
    let mut stored: Vec<String> = strings_at(crd, "/status/storedVersions");
    for v in storage {
        if !stored.contains(&v) {
            stored.push(v);
        }
    }
    let condition = |type_: &str, reason: &str, message: &str| json!({"type": type_, "status": "True", "lastTransitionTime": now, "reason": reason, "message": message});
    json!({
        "acceptedNames": names,
        "conditions": [
            condition("NamesAccepted", "NoConflicts", "no conflicts found"),
            condition("Established", "InitialNamesAccepted", "the initial names have been accepted"),
        ],
        "storedVersions": stored,
    })
}
