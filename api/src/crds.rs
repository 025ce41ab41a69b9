//! The CustomResourceDefinitions of all eight kinds, as installed in a cluster and written to
//! `config/crd/` by the `crdgen` binary.
//!
//! [`all`] is the canonical source: it takes kube-derive's `K::crd()` and applies the few fixes a
//! derive cannot express, so that the result equals upstream's controller-gen output (modulo
//! descriptions). Install CRDs from here (or from `config/crd/`), not from `K::crd()` directly.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, CustomResourceSubresourceStatus, CustomResourceSubresources,
};
use kube::CustomResourceExt;
use serde_json::{Value, json};

use crate::{
    BMC, BMCSecret, BMCUser, Endpoint, Server, ServerBootConfiguration, ServerClaim,
    ServerReadinessRule,
};

/// All eight CRDs, in a stable order (alphabetical by plural, like upstream's file names).
pub fn all() -> Vec<CustomResourceDefinition> {
    vec![
        of::<BMCSecret>(),
        of::<BMC>(),
        of::<BMCUser>(),
        of::<Endpoint>(),
        of::<ServerBootConfiguration>(),
        of::<ServerClaim>(),
        of::<ServerReadinessRule>(),
        of::<Server>(),
    ]
}

/// The finished CRD of one kind, e.g. `crds::of::<Server>()`.
pub fn of<K: CustomResourceExt>() -> CustomResourceDefinition {
    finish(K::crd())
}

/// The file name upstream uses for a CRD: `metal.ironcore.dev_<plural>.yaml`.
pub fn file_name(crd: &CustomResourceDefinition) -> String {
    format!("{}_{}.yaml", crd.spec.group, crd.spec.names.plural)
}

/// The CRD as a YAML document, as written to `config/crd/`.
pub fn to_yaml(crd: &CustomResourceDefinition) -> Result<String, serde_saphyr::SerializeError> {
    Ok(format!("---\n{}", serde_saphyr::to_string(crd)?))
}

/// Applies the fixes that make a derived CRD equal to upstream's.
fn finish(mut crd: CustomResourceDefinition) -> CustomResourceDefinition {
    crd.spec.names.list_kind = Some(format!("{}List", crd.spec.names.kind));
    for version in &mut crd.spec.versions {
        // BMCSecret is Secret-shaped (no status field), yet upstream still enables the status
        // subresource; kube-derive only does so when a status type exists.
        if version.subresources.is_none() {
            version.subresources = Some(CustomResourceSubresources {
                status: Some(CustomResourceSubresourceStatus(json!({}))),
                scale: None,
            });
        }
        let Some(schema) = version
            .schema
            .as_mut()
            .and_then(|s| s.open_api_v3_schema.as_mut())
        else {
            continue;
        };
        // Go always serializes a struct-typed `spec` (omitempty has no effect on structs), so
        // controller-gen marks it optional except where the Go tag lacks omitempty (ServerReadinessRule).
        if crd.spec.names.kind != "ServerReadinessRule" {
            schema.required = None;
        }
        let mut value =
            serde_json::to_value(&*schema).expect("a JSONSchemaProps serializes to JSON");
        restore_int_or_string(&mut value);
        complete_root(&mut value);
        *schema =
            serde_json::from_value(value).expect("the rewritten schema is still a JSONSchemaProps");
    }
    crd
}

/// kube's structural rewriter strips the `anyOf: [integer, string]` branches controller-gen writes
/// for int-or-string fields and marks optional ones nullable; put them back as upstream has them.
fn restore_int_or_string(value: &mut Value) {
    match value {
        Value::Object(object) => {
            if object.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true)) {
                object.insert(
                    "anyOf".into(),
                    json!([{"type": "integer"}, {"type": "string"}]),
                );
                object.remove("nullable");
            }
            object.values_mut().for_each(restore_int_or_string);
        }
        Value::Array(items) => items.iter_mut().for_each(restore_int_or_string),
        _ => {}
    }
}

/// kube-derive's root schema has a `title`, no `apiVersion`/`kind`/`metadata` properties and a
/// nullable `status`; controller-gen's has no title, the three type-meta properties and a plain
/// `status`.
fn complete_root(root: &mut Value) {
    let Some(object) = root.as_object_mut() else {
        return;
    };
    object.remove("title");
    let properties = object.entry("properties").or_insert_with(|| json!({}));
    let Some(properties) = properties.as_object_mut() else {
        return;
    };
    if let Some(status) = properties.get_mut("status").and_then(Value::as_object_mut) {
        status.remove("nullable");
    }
    properties.insert(
        "apiVersion".into(),
        json!({"description": "APIVersion defines the versioned schema of this representation of an object.", "type": "string"}),
    );
    properties.insert(
        "kind".into(),
        json!({"description": "Kind is a string value representing the REST resource this object represents.", "type": "string"}),
    );
    properties.insert("metadata".into(), json!({"type": "object"}));
}
