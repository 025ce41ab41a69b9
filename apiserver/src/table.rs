//! `meta.k8s.io/v1` Table answers for kubectl: CRD `additionalPrinterColumns`, or Name/Age (plus a few
//! built-in columns), with `date` cells rendered as ages like the real server does.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::jsonpath;
use crate::resources::{PrinterColumn, ResourceInfo};
use clock::parse_k8s;

fn col(name: &str, type_: &str, format: &str, description: &str, json_path: &str) -> PrinterColumn {
    PrinterColumn {
        name: name.into(),
        type_: type_.into(),
        format: format.into(),
        description: description.into(),
        json_path: json_path.into(),
        priority: 0,
    }
}

/// The columns after Name for a resource at a version.
pub fn printer_columns(info: &ResourceInfo, version: &str) -> Vec<PrinterColumn> {
    if let Some(cols) = info.printer_columns.get(version).filter(|c| !c.is_empty()) {
        return cols.clone();
    }
    let age = col(
        "Age",
        "date",
        "",
        "CreationTimestamp is a timestamp representing the server time when this object was created.",
        ".metadata.creationTimestamp",
    );
    match (info.group.as_str(), info.kind.as_str()) {
        ("", "Namespace") => vec![
            col(
                "Status",
                "string",
                "",
                "The status of the namespace",
                ".status.phase",
            ),
            age,
        ],
        ("", "Secret") => vec![
            col("Type", "string", "", "", ".type"),
            col("Data", "integer", "", "", DATA_COUNT),
            age,
        ],
        ("", "ConfigMap") => vec![col("Data", "integer", "", "", DATA_COUNT), age],
        ("apiextensions.k8s.io", "CustomResourceDefinition") => {
            vec![col(
                "Created At",
                "date",
                "",
                "",
                ".metadata.creationTimestamp",
            )]
        }
        _ => vec![age],
    }
}

pub fn column_definitions(info: &ResourceInfo, version: &str) -> Vec<Value> {
    let mut defs = vec![
        json!({"name": "Name", "type": "string", "format": "name", "description": "Name must be unique within a namespace.", "priority": 0}),
    ];
    for c in printer_columns(info, version) {
        defs.push(json!({"name": c.name, "type": c.type_, "format": c.format, "description": c.description, "priority": c.priority}));
    }
    defs
}

/// Kubernetes' `HumanDuration` rendering of an age.
pub fn human_age(secs: i64) -> String {
    if secs < 0 {
        return "0s".into();
    }
    let (m, h, d) = (secs / 60, secs / 3600, secs / 86400);
    if secs < 120 {
        format!("{secs}s")
    } else if m < 10 {
        with_remainder(m, "m", secs % 60, "s")
    } else if m < 180 {
        format!("{m}m")
    } else if h < 8 {
        with_remainder(h, "h", m % 60, "m")
    } else if h < 48 {
        format!("{h}h")
    } else if h < 192 {
        with_remainder(d, "d", h % 24, "h")
    } else if d < 365 * 2 {
        format!("{d}d")
    } else {
        format!("{}y{}d", d / 365, d % 365)
    }
}

/// `<n><unit>`, then the remainder in the next smaller unit unless it is zero (`5m`, `5m30s`).
fn with_remainder(n: i64, unit: &str, rest: i64, rest_unit: &str) -> String {
    if rest == 0 {
        format!("{n}{unit}")
    } else {
        format!("{n}{unit}{rest}{rest_unit}")
    }
}

/// A computed column: the number of entries in `data` and `binaryData`, as kubectl shows for ConfigMaps/Secrets.
const DATA_COUNT: &str = "#data-count";

fn cell(obj: &Value, c: &PrinterColumn, now: DateTime<Utc>) -> Value {
    if c.json_path == DATA_COUNT {
        let n = |k: &str| obj.get(k).and_then(Value::as_object).map_or(0, |m| m.len());
        return json!(n("data") + n("binaryData"));
    }
    let values = jsonpath::select(obj, &c.json_path);
    let Some(first) = values.first() else {
        return Value::Null;
    };
    if c.type_ == "date" {
        return match first.as_str().and_then(parse_k8s) {
            Some(t) => json!(human_age((now - t).num_seconds())),
            None => Value::Null,
        };
    }
    if values.len() > 1 {
        let parts: Vec<String> = values
            .iter()
            .map(|v| {
                v.as_str()
                    .map(String::from)
                    .unwrap_or_else(|| v.to_string())
            })
            .collect();
        return json!(parts.join(","));
    }
    match (c.type_.as_str(), first) {
        ("string", Value::String(_))
        | ("integer", Value::Number(_))
        | ("number", Value::Number(_))
        | ("boolean", Value::Bool(_)) => (*first).clone(),
        ("string", v) => json!(v.to_string()),
        (_, v) => (*v).clone(),
    }
}

/// One row; `object` is the PartialObjectMetadata kubectl uses for names and namespaces.
pub fn row(info: &ResourceInfo, version: &str, obj: &Value, now: DateTime<Utc>) -> Value {
    let mut cells = vec![
        obj.pointer("/metadata/name")
            .cloned()
            .unwrap_or(Value::Null),
    ];
    for c in printer_columns(info, version) {
        cells.push(cell(obj, &c, now));
    }
    json!({
        "cells": cells,
        "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj.get("metadata").cloned().unwrap_or(json!({}))},
    })
}

pub fn table(
    info: &ResourceInfo,
    version: &str,
    objs: &[&Value],
    list_meta: Value,
    headers: bool,
    now: DateTime<Utc>,
) -> Value {
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta,
        "columnDefinitions": if headers { column_definitions(info, version) } else { vec![] },
        "rows": objs.iter().map(|o| row(info, version, o, now)).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_render_like_kubectl() {
        assert_eq!(human_age(5), "5s");
        assert_eq!(human_age(150), "2m30s");
        assert_eq!(human_age(3600 * 3 + 60 * 5), "3h5m");
        assert_eq!(human_age(86400 * 3), "3d");
    }
}
