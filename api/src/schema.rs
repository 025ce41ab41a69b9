//! Schema pieces that make the derived OpenAPI schema equal to upstream's controller-gen output.
//!
//! schemars renders `Option<T>` as "T or null" and kube-derive then marks it `nullable: true`;
//! controller-gen never does, so every struct strips the null arm ([`strip_null`]). Kubernetes
//! types whose upstream schema carries kubebuilder markers (LocalObjectReference, LabelSelector,
//! Condition, Quantity) get their schema from the functions here instead of from k8s-openapi.

use schemars::{Schema, SchemaGenerator, json_schema};
use serde_json::{Map, Value, json};

/// Struct-level transform: removes the `null` alternative schemars adds for `Option<T>` properties.
///
/// Optionality is expressed by the absence from `required`, as controller-gen does.
pub(crate) fn strip_null(schema: &mut Schema) {
    let Some(properties) = schema.get_mut("properties").and_then(Value::as_object_mut) else {
        return;
    };
    for property in properties.values_mut() {
        if let Some(object) = property.as_object_mut() {
            strip_null_from(object);
        }
    }
}

fn strip_null_from(object: &mut Map<String, Value>) {
    if let Some(Value::Array(types)) = object.get_mut("type") {
        types.retain(|t| t != "null");
        if types.len() == 1 {
            let single = types.remove(0);
            object.insert("type".into(), single);
        }
    }
    if let Some(Value::Array(values)) = object.get_mut("enum") {
        values.retain(|v| !v.is_null());
    }
    let Some(Value::Array(any_of)) = object.get("anyOf") else {
        return;
    };
    let is_null =
        |s: &Value| s.get("type") == Some(&json!("null")) || s.get("enum") == Some(&json!([null]));
    if any_of.len() != 2 || !any_of.iter().any(is_null) {
        return;
    }
    let Some(Value::Object(inner)) = any_of.iter().find(|s| !is_null(s)).cloned() else {
        return;
    };
    object.remove("anyOf");
    for (key, value) in inner {
        object.entry(key).or_insert(value);
    }
}

/// `corev1.LocalObjectReference` as controller-gen renders it (atomic map, `name` defaults to "").
pub(crate) fn local_object_reference(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "description": "A reference to an object by name.",
        "type": "object",
        "properties": {
            "name": {
                "description": "Name of the referent.",
                "type": "string",
                "default": "",
            },
        },
        "x-kubernetes-map-type": "atomic",
    })
}

/// `metav1.LabelSelector` as controller-gen renders it (atomic lists and map).
pub(crate) fn label_selector(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "description": "A label query over a set of resources; matchLabels and matchExpressions are ANDed.",
        "type": "object",
        "properties": {
            "matchExpressions": {
                "description": "A list of label selector requirements, ANDed.",
                "type": "array",
                "items": {
                    "description": "A selector requirement: a key, an operator and values.",
                    "type": "object",
                    "properties": {
                        "key": {"description": "The label key the selector applies to.", "type": "string"},
                        "operator": {"description": "In, NotIn, Exists or DoesNotExist.", "type": "string"},
                        "values": {
                            "description": "Values for In/NotIn; empty for Exists/DoesNotExist.",
                            "type": "array",
                            "items": {"type": "string"},
                            "x-kubernetes-list-type": "atomic",
                        },
                    },
                    "required": ["key", "operator"],
                },
                "x-kubernetes-list-type": "atomic",
            },
            "matchLabels": {
                "description": "A map of {key,value} pairs, each equivalent to an In requirement.",
                "type": "object",
                "additionalProperties": {"type": "string"},
            },
        },
        "x-kubernetes-map-type": "atomic",
    })
}

fn condition_item() -> Value {
    json!({
        "description": "Condition contains details for one aspect of the current state of this API Resource.",
        "type": "object",
        "properties": {
            "lastTransitionTime": {
                "description": "The last time the condition transitioned from one status to another.",
                "type": "string",
                "format": "date-time",
            },
            "message": {
                "description": "A human readable message indicating details about the transition.",
                "type": "string",
                "maxLength": 32768,
            },
            "observedGeneration": {
                "description": "The .metadata.generation that the condition was set based upon.",
                "type": "integer",
                "format": "int64",
                "minimum": 0,
            },
            "reason": {
                "description": "A programmatic CamelCase identifier for the reason of the last transition.",
                "type": "string",
                "maxLength": 1024,
                "minLength": 1,
                "pattern": "^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$",
            },
            "status": {
                "description": "Status of the condition, one of True, False, Unknown.",
                "type": "string",
                "enum": ["True", "False", "Unknown"],
            },
            "type": {
                "description": "Type of condition in CamelCase or in foo.example.com/CamelCase.",
                "type": "string",
                "maxLength": 316,
                "pattern": "^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$",
            },
        },
        "required": ["lastTransitionTime", "message", "reason", "status", "type"],
    })
}

/// `[]metav1.Condition` without list markers (Server, BMC, ServerBootConfiguration).
pub(crate) fn conditions(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "description": "The latest available observations of the object's state.",
        "type": "array",
        "items": condition_item(),
    })
}

/// `[]metav1.Condition` with `listType=map` keyed by `type` (ServerReadinessRule).
pub(crate) fn conditions_list_map(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "description": "The latest available observations of the object's state.",
        "type": "array",
        "items": condition_item(),
        "x-kubernetes-list-map-keys": ["type"],
        "x-kubernetes-list-type": "map",
    })
}

/// `resource.Quantity` as controller-gen renders it (int-or-string with the quantity pattern).
pub(crate) fn quantity(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "description": "A fixed-point quantity such as 96Gi.",
        "anyOf": [{"type": "integer"}, {"type": "string"}],
        "pattern": "^(\\+|-)?(([0-9]+(\\.[0-9]*)?)|(\\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\\+|-)?(([0-9]+(\\.[0-9]*)?)|(\\.[0-9]+))))?$",
        "x-kubernetes-int-or-string": true,
    })
}

/// A Go `int`: controller-gen emits `type: integer` without a format.
pub(crate) fn go_int(_: &mut SchemaGenerator) -> Schema {
    json_schema!({"type": "integer"})
}

/// A list of IP addresses (`[]metal.IP`), each item with `format: ip`.
pub(crate) fn ip_list(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "array",
        "items": {"type": "string", "format": "ip"},
    })
}

/// `map[string][]byte`: base64 strings (`format: byte`) keyed by name, as in a core Secret's `data`.
pub(crate) fn byte_map(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "additionalProperties": {"type": "string", "format": "byte"},
    })
}
