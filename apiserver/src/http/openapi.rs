//! `/openapi/v3`: one document per group/version, generated from the registry. PATCH operations carry
//! `x-kubernetes-group-version-kind` and a `fieldValidation` parameter (kubectl checks both before `apply`), and
//! component schemas carry the CRD schemas so `kubectl explain` works. `/openapi/v2` answers 404, which kubectl
//! tolerates.

use std::sync::Arc;

use axum::extract::{Path, State as AxState};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde_json::{Map, Value, json};

use super::value_response;
use crate::ops::State;
use crate::resources::ResourceInfo;
use crate::status::ApiError;

pub async fn v2() -> Response {
    ApiError::path_not_found().into_response()
}

fn gv_paths(st: &State) -> Vec<String> {
    let mut out = vec!["api/v1".to_string()];
    for (g, versions) in st.registry.groups() {
        for v in versions {
            out.push(format!("apis/{g}/{v}"));
        }
    }
    out
}

/// Changes whenever the registry changes, so clients re-fetch documents after a CRD is added.
fn registry_hash(st: &State) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    for info in st.registry.all() {
        for b in format!(
            "{}{}{:?}{:?}",
            info.key,
            info.kind,
            info.versions,
            info.schemas.len()
        )
        .bytes()
        {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x100000001b3);
        }
    }
    format!("{h:016X}")
}

pub async fn v3_index(AxState(st): AxState<Arc<State>>) -> Response {
    let hash = registry_hash(&st);
    let mut paths = Map::new();
    for p in gv_paths(&st) {
        paths.insert(
            p.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{p}?hash={hash}")}),
        );
    }
    value_response(StatusCode::OK, &json!({"paths": paths}))
}

pub async fn v3_doc(AxState(st): AxState<Arc<State>>, Path(path): Path<String>) -> Response {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version) = match segs.as_slice() {
        ["api", v] => ("", *v),
        ["apis", g, v] => (*g, *v),
        _ => return ApiError::path_not_found().into_response(),
    };
    let infos = st.registry.in_group_version(group, version);
    if infos.is_empty() {
        return ApiError::path_not_found().into_response();
    }
    value_response(StatusCode::OK, &document(group, version, &infos))
}

/// `io.ironcore.dev.metal.v1alpha1.Server` for `metal.ironcore.dev/v1alpha1 Server`, as CRD schemas are named.
pub fn schema_name(group: &str, version: &str, kind: &str) -> String {
    if group.is_empty() {
        return format!("io.k8s.api.core.{version}.{kind}");
    }
    let reversed: Vec<&str> = group.split('.').rev().collect();
    format!("{}.{version}.{kind}", reversed.join("."))
}

const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";

fn gvk(info: &ResourceInfo, version: &str) -> Value {
    json!([{"group": info.group, "version": version, "kind": info.kind}])
}

fn kind_schema(info: &ResourceInfo, version: &str) -> Value {
    let mut schema = info
        .schema(version)
        .cloned()
        .unwrap_or_else(|| json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}));
    let props = schema
        .as_object_mut()
        .map(|o| o.entry("properties").or_insert_with(|| json!({})));
    if let Some(props) = props.and_then(Value::as_object_mut) {
        props.insert("apiVersion".into(), json!({"type": "string", "description": "APIVersion defines the versioned schema of this representation of an object."}));
        props.insert("kind".into(), json!({"type": "string", "description": "Kind is a string value representing the REST resource this object represents."}));
        props.insert("metadata".into(), json!({"allOf": [{"$ref": format!("#/components/schemas/{OBJECT_META}")}], "description": "Standard object's metadata."}));
    }
    schema["x-kubernetes-group-version-kind"] = gvk(info, version);
    schema
}

fn param(name: &str, location: &str, description: &str) -> Value {
    json!({"name": name, "in": location, "description": description, "schema": {"type": "string", "uniqueItems": true}})
}

fn operations(info: &ResourceInfo, version: &str, schema_ref: &str) -> Value {
    let body_ref = json!({"content": {"application/json": {"schema": {"$ref": schema_ref}}}});
    let ok = json!({"200": {"description": "OK", "content": {"application/json": {"schema": {"$ref": schema_ref}}}}});
    let ext = gvk(info, version)[0].clone();
    let field_validation = param(
        "fieldValidation",
        "query",
        "instructs the server on how to handle objects in the request containing unknown or duplicate fields",
    );
    let field_manager = param(
        "fieldManager",
        "query",
        "a name associated with the actor or entity that is making these changes",
    );
    let dry_run = param(
        "dryRun",
        "query",
        "when present, indicates that modifications should not be persisted",
    );
    let force =
        json!({"name": "force", "in": "query", "schema": {"type": "boolean", "uniqueItems": true}});
    let id = |verb: &str| format!("{verb}{}{}", version, info.kind);
    json!({
        "get": {"operationId": id("read"), "responses": ok, "x-kubernetes-action": "get", "x-kubernetes-group-version-kind": ext},
        "put": {"operationId": id("replace"), "requestBody": body_ref, "responses": ok, "parameters": [dry_run, field_manager, field_validation],
                "x-kubernetes-action": "put", "x-kubernetes-group-version-kind": ext},
        "patch": {"operationId": id("patch"), "responses": ok,
                  "requestBody": {"content": {
                      "application/json-patch+json": {"schema": {"type": "object"}},
                      "application/merge-patch+json": {"schema": {"type": "object"}},
                      "application/apply-patch+yaml": {"schema": {"type": "object"}},
                      "application/strategic-merge-patch+json": {"schema": {"type": "object"}}}},
                  "parameters": [dry_run, field_manager, field_validation, force],
                  "x-kubernetes-action": "patch", "x-kubernetes-group-version-kind": ext},
        "delete": {"operationId": id("delete"), "responses": ok, "x-kubernetes-action": "delete", "x-kubernetes-group-version-kind": ext},
        "parameters": [param("name", "path", "name of the resource")],
    })
}

fn document(group: &str, version: &str, infos: &[Arc<ResourceInfo>]) -> Value {
    let mut paths = Map::new();
    let mut schemas = Map::new();
    let prefix = if group.is_empty() {
        format!("/api/{version}")
    } else {
        format!("/apis/{group}/{version}")
    };
    for info in infos {
        let name = match super::builtin_schemas::schema(info, &mut schemas) {
            Some((name, mut schema)) => {
                schema["x-kubernetes-group-version-kind"] = gvk(info, version);
                schemas.insert(name.clone(), schema);
                name
            }
            None => {
                let name = schema_name(&info.group, version, &info.kind);
                schemas.insert(name.clone(), kind_schema(info, version));
                name
            }
        };
        let schema_ref = format!("#/components/schemas/{name}");
        let base = if info.namespaced {
            format!("{prefix}/namespaces/{{namespace}}/{}", info.plural)
        } else {
            format!("{prefix}/{}", info.plural)
        };
        let mut ops = operations(info, version, &schema_ref);
        if info.namespaced
            && let Some(params) = ops["parameters"].as_array_mut()
        {
            params.push(param("namespace", "path", "object name and auth scope"));
        }
        paths.insert(format!("{base}/{{name}}"), ops.clone());
        if info.has_status {
            paths.insert(format!("{base}/{{name}}/status"), ops);
        }
        paths.insert(base, json!({"get": {"operationId": format!("list{}{}", version, info.kind), "x-kubernetes-action": "list",
            "x-kubernetes-group-version-kind": gvk(info, version)[0], "responses": {"200": {"description": "OK"}}}}));
    }
    schemas
        .entry(OBJECT_META)
        .or_insert_with(object_meta_schema);
    json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": format!("v{}.{}.0", super::discovery::MAJOR, super::discovery::MINOR)},
        "paths": paths,
        "components": {"schemas": schemas},
    })
}

fn object_meta_schema() -> Value {
    let string = |d: &str| json!({"type": "string", "description": d});
    let map = |d: &str| json!({"type": "object", "additionalProperties": {"type": "string"}, "description": d});
    json!({
        "type": "object",
        "description": "ObjectMeta is metadata that all persisted resources must have, which includes all objects users must create.",
        "properties": {
            "name": string("Name must be unique within a namespace."),
            "generateName": string("GenerateName is an optional prefix, used by the server, to generate a unique name."),
            "namespace": string("Namespace defines the space within which each name must be unique."),
            "uid": string("UID is the unique in time and space value for this object."),
            "resourceVersion": string("An opaque value that represents the internal version of this object."),
            "generation": {"type": "integer", "format": "int64", "description": "A sequence number representing a specific generation of the desired state."},
            "creationTimestamp": {"type": "string", "format": "date-time", "description": "CreationTimestamp is a timestamp representing the server time when this object was created."},
            "deletionTimestamp": {"type": "string", "format": "date-time", "description": "DeletionTimestamp is RFC 3339 date and time at which this resource will be deleted."},
            "labels": map("Map of string keys and values that can be used to organize and categorize objects."),
            "annotations": map("Annotations is an unstructured key value map stored with a resource."),
            "finalizers": {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "set", "description": "Must be empty before the object is deleted from the registry."},
            "ownerReferences": {"type": "array", "items": {"type": "object"}, "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["uid"], "description": "List of objects depended by this object."},
            "managedFields": {"type": "array", "items": {"type": "object"}, "description": "ManagedFields maps workflow-id and version to the set of fields that are managed by that workflow."},
        },
    })
}
