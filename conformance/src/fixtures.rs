//! The objects a check creates: namespaces, Servers, ignition Secrets and SBCs, built as wire JSON.
//! Everything carries the suite label; Servers carry `metal.ironcore.dev/operation: ignore` so a running
//! metal-operator leaves them alone.

use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use serde_json::{Value, json};

pub const GROUP: &str = "metal.ironcore.dev";
pub const VERSION: &str = "v1alpha1";
/// Label on everything the suite creates; its value is the run ID, so cleanup never touches foreign objects.
pub const SUITE_LABEL: &str = "conformance.metal.ironcore.dev/run";
/// Label naming the check that created an object.
pub const CHECK_LABEL: &str = "conformance.metal.ironcore.dev/check";
pub const OPERATION_ANNOTATION: &str = "metal.ironcore.dev/operation";
pub const OPERATION_IGNORE: &str = "ignore";
pub const IGNITION_KEY: &str = "ignition";
pub const IGNITION_FORMAT_KEY: &str = "format";
pub const IGNITION_FORMAT_FCOS: &str = "fcos";

pub fn sbc_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(GROUP, VERSION, "ServerBootConfiguration"),
        "serverbootconfigurations",
    )
}

pub fn server_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(GROUP, VERSION, "Server"), "servers")
}

/// Labels every suite object carries.
pub fn suite_labels(run_id: &str, check: &str) -> Value {
    json!({ SUITE_LABEL: run_id, CHECK_LABEL: check.replace('.', "-") })
}

pub fn namespace(name: &str, run_id: &str, check: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": { "name": name, "labels": suite_labels(run_id, check) },
    })
}

/// A cluster-scoped Server the backend resolves the machine identity from.
pub fn server(
    name: &str,
    system_uuid: &str,
    boot_ref: Option<(&str, &str)>,
    run_id: &str,
    check: &str,
) -> Value {
    let mut spec = json!({ "systemUUID": system_uuid });
    if let Some((ns, sbc)) = boot_ref {
        spec["bootConfigurationRef"] = json!({
            "apiVersion": format!("{GROUP}/{VERSION}"),
            "kind": "ServerBootConfiguration",
            "namespace": ns,
            "name": sbc,
        });
    }
    json!({
        "apiVersion": format!("{GROUP}/{VERSION}"),
        "kind": "Server",
        "metadata": {
            "name": name,
            "labels": suite_labels(run_id, check),
            "annotations": { OPERATION_ANNOTATION: OPERATION_IGNORE },
        },
        "spec": spec,
    })
}

/// An ignition Secret; `data` of None leaves the `ignition` key out (the "missing key" case).
pub fn ignition_secret(name: &str, ignition: Option<&[u8]>, run_id: &str, check: &str) -> Value {
    use base64::Engine as _;
    let mut data = serde_json::Map::new();
    match ignition {
        Some(bytes) => {
            data.insert(
                IGNITION_KEY.into(),
                base64::engine::general_purpose::STANDARD
                    .encode(bytes)
                    .into(),
            );
        }
        None => {
            data.insert(
                "not-ignition".into(),
                base64::engine::general_purpose::STANDARD
                    .encode(b"{}")
                    .into(),
            );
        }
    }
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": { "name": name, "labels": suite_labels(run_id, check) },
        "type": "Opaque",
        "data": data,
    })
}

/// The SBC spec as the harness writes it.
pub fn sbc_spec(server: &str, image: &str, ignition_secret: Option<&str>) -> Value {
    let mut spec = json!({ "serverRef": { "name": server }, "image": image });
    if let Some(secret) = ignition_secret {
        spec["ignitionSecretRef"] = json!({ "name": secret });
    }
    spec
}

pub fn sbc(name: &str, spec: Value, run_id: &str, check: &str) -> Value {
    json!({
        "apiVersion": format!("{GROUP}/{VERSION}"),
        "kind": "ServerBootConfiguration",
        "metadata": { "name": name, "labels": suite_labels(run_id, check) },
        "spec": spec,
    })
}

/// A minimal, valid Ignition v3 config unique to `tag`, so a machine that boots it proves which one it got.
pub fn ignition_config(tag: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "ignition": { "version": "3.4.0" },
        "storage": { "files": [{
            "path": "/etc/conformance-tag",
            "contents": { "source": format!("data:,{tag}") },
        }]},
    }))
    .unwrap_or_default()
}

/// Butane (fcos variant) YAML unique to `tag`, for a Secret with `format: fcos`: the backend must translate it.
pub fn butane_config(tag: &str) -> Vec<u8> {
    format!(
        "variant: fcos\nversion: 1.3.0\nstorage:\n  files:\n    - path: /etc/conformance-tag\n      contents:\n        inline: {tag:?}\n"
    )
    .into_bytes()
}

/// An ignition Secret holding Butane YAML marked `format: fcos`.
pub fn butane_secret(name: &str, butane: &[u8], run_id: &str, check: &str) -> Value {
    use base64::Engine as _;
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let mut secret = ignition_secret(name, Some(butane), run_id, check);
    secret["data"][IGNITION_FORMAT_KEY] = b64(IGNITION_FORMAT_FCOS.as_bytes()).into();
    secret
}

pub fn to_dynamic(value: Value) -> Result<DynamicObject, serde_json::Error> {
    serde_json::from_value(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_is_ignored_by_the_operator_and_labelled() {
        let s = server(
            "s1",
            "uuid",
            Some(("ns", "sbc")),
            "run1",
            "core.valid-ready",
        );
        assert_eq!(s["metadata"]["annotations"][OPERATION_ANNOTATION], "ignore");
        assert_eq!(s["metadata"]["labels"][SUITE_LABEL], "run1");
        assert_eq!(s["metadata"]["labels"][CHECK_LABEL], "core-valid-ready");
        assert_eq!(s["spec"]["bootConfigurationRef"]["namespace"], "ns");
        to_dynamic(s).unwrap();
    }

    #[test]
    fn secret_without_key_has_no_ignition() {
        let s = ignition_secret("x", None, "r", "c");
        assert!(s["data"].get(IGNITION_KEY).is_none());
        let s = ignition_secret("x", Some(b"{}"), "r", "c");
        assert_eq!(s["data"][IGNITION_KEY], "e30=");
    }
}
