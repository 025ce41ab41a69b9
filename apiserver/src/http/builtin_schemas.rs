//! OpenAPI schemas of the built-in kinds, generated from k8s-openapi's `JsonSchema` implementations (the upstream
//! descriptions and field names), so `kubectl explain configmap.data` works as on a real cluster.

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Event, Namespace, Secret};
use k8s_openapi::api::events::v1::Event as EventV1;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use schemars::JsonSchema;
use schemars::generate::SchemaSettings;
use serde_json::{Map, Value};

use crate::resources::ResourceInfo;

fn generate<T: JsonSchema>(defs: &mut Map<String, Value>) -> (String, Value) {
    let mut generator = SchemaSettings::openapi3().into_generator();
    // A subschema reference puts the kind itself into the definitions under its upstream name.
    generator.subschema_for::<T>();
    for (k, v) in generator.take_definitions(true) {
        defs.entry(k).or_insert(v);
    }
    let name = T::schema_name().into_owned();
    let schema = defs.get(&name).cloned().unwrap_or(Value::Null);
    (name, schema)
}

/// The schema name and schema of a built-in kind (adding everything it references to `defs`).
pub fn schema(info: &ResourceInfo, defs: &mut Map<String, Value>) -> Option<(String, Value)> {
    Some(match (info.group.as_str(), info.kind.as_str()) {
        ("", "ConfigMap") => generate::<ConfigMap>(defs),
        ("", "Secret") => generate::<Secret>(defs),
        ("", "Namespace") => generate::<Namespace>(defs),
        ("", "Event") => generate::<Event>(defs),
        ("events.k8s.io", "Event") => generate::<EventV1>(defs),
        ("coordination.k8s.io", "Lease") => generate::<Lease>(defs),
        ("apiextensions.k8s.io", "CustomResourceDefinition") => {
            generate::<CustomResourceDefinition>(defs)
        }
        _ => return None,
    })
}
