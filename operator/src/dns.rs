//! DNS records for BMCs (`--dns-record-template-path`, as upstream): a Go text/template is
//! rendered per BMC into one Kubernetes object of any kind (e.g. a `DNSRecord`), which is applied
//! server-side into `--manager-namespace` (unless the template names a namespace) and
//! controller-owned by the BMC, so it goes with it.
//!
//! Template data, with upstream's Go field names: `.Name`, `.Namespace`, `.Labels`, the BMC spec
//! fields `.BMCUUID`, `.Hostname`, `.Protocol` (`.Name`, `.Port`, `.Scheme`), `.Endpoint`
//! (`.MACAddress`, `.IP`), and the status fields `.IP`, `.MACAddress`, `.Manufacturer`, `.Model`,
//! `.SKU`, `.SerialNumber`, `.FirmwareVersion`, `.State`, `.PowerState`. A field the BMC does not
//! have is an error (upstream renders with `missingkey=error`).

use std::collections::HashMap;

use gtmpl::Value;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::discovery::Scope;
use kube::{Resource as _, ResourceExt as _};
use metal_api::{BMC, BMCStatus};

use crate::error::{Error, Result};

/// Field manager of the server-side apply.
const FIELD_MANAGER: &str = "metal-operator";

fn text(value: Option<&str>) -> Value {
    Value::from(value.unwrap_or_default())
}

/// The template's data for one BMC (`status` is the one this reconcile observed).
fn data(bmc: &BMC, status: &BMCStatus, namespace: &str) -> Value {
    let spec = &bmc.spec;
    let labels: HashMap<String, String> = bmc
        .labels()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let protocol = HashMap::from([
        ("Name".to_owned(), Value::from(spec.protocol.name.as_str())),
        (
            "Port".to_owned(),
            Value::from(i64::from(spec.protocol.port)),
        ),
        (
            "Scheme".to_owned(),
            text(spec.protocol.scheme.as_ref().map(|s| s.as_str())),
        ),
    ]);
    let access = spec.access.as_ref();
    let endpoint = HashMap::from([
        (
            "MACAddress".to_owned(),
            text(access.and_then(|a| a.mac_address.as_deref())),
        ),
        ("IP".to_owned(), text(access.and_then(|a| a.ip.as_deref()))),
    ]);
    let fields: HashMap<String, Value> = HashMap::from([
        ("Name".to_owned(), Value::from(bmc.name_any())),
        ("Namespace".to_owned(), Value::from(namespace)),
        ("Labels".to_owned(), Value::from(labels)),
        ("BMCUUID".to_owned(), text(spec.bmc_uuid.as_deref())),
        ("Hostname".to_owned(), text(spec.hostname.as_deref())),
        ("Protocol".to_owned(), Value::from(protocol)),
        ("Endpoint".to_owned(), Value::from(endpoint)),
        ("IP".to_owned(), text(status.ip.as_deref())),
        ("MACAddress".to_owned(), text(status.mac_address.as_deref())),
        (
            "Manufacturer".to_owned(),
            text(status.manufacturer.as_deref()),
        ),
        ("Model".to_owned(), text(status.model.as_deref())),
        ("SKU".to_owned(), text(status.sku.as_deref())),
        (
            "SerialNumber".to_owned(),
            text(status.serial_number.as_deref()),
        ),
        (
            "FirmwareVersion".to_owned(),
            text(status.firmware_version.as_deref()),
        ),
        (
            "State".to_owned(),
            text(status.state.as_ref().map(|s| s.as_str())),
        ),
        (
            "PowerState".to_owned(),
            text(status.power_state.as_ref().map(|s| s.as_str())),
        ),
    ]);
    Value::from(fields)
}

/// Checks that the template parses, once, at startup (see [`crate::template::validate`]).
pub fn validate(template: &str) -> Result<(), String> {
    crate::template::validate(template, "the DNS record template")
}

/// Renders the template for one BMC into the object to apply (namespace defaulted, owner set).
/// The template must have passed [`validate`].
pub fn render(
    template: &str,
    bmc: &BMC,
    status: &BMCStatus,
    namespace: &str,
) -> Result<DynamicObject, String> {
    let rendered = crate::template::render(
        template,
        data(bmc, status, namespace),
        "the DNS record template",
    )?;
    let mut object: DynamicObject = serde_saphyr::from_str(&rendered)
        .map_err(|e| format!("the rendered DNS record is not a Kubernetes object: {e}"))?;
    let types = object
        .types
        .as_ref()
        .filter(|t| !t.api_version.is_empty() && !t.kind.is_empty());
    if types.is_none() {
        return Err("the DNS record template is missing apiVersion or kind".into());
    }
    if object.metadata.name.as_deref().is_none_or(str::is_empty) {
        return Err("the DNS record template must specify a name".into());
    }
    if object
        .metadata
        .namespace
        .as_deref()
        .is_none_or(str::is_empty)
    {
        object.metadata.namespace = Some(namespace.to_owned());
    }
    object.metadata.owner_references = bmc.controller_owner_ref(&()).map(|o| vec![o]);
    Ok(object)
}

/// Creates or updates the BMC's DNS record (server-side apply, forcing ownership as upstream).
pub async fn apply(client: &kube::Client, object: &DynamicObject) -> Result<()> {
    let invalid = |reason: String| Error::Invalid {
        kind: "DNS record template",
        name: object.name_any(),
        reason,
    };
    let types = object
        .types
        .as_ref()
        .ok_or_else(|| invalid("no apiVersion/kind".into()))?;
    let gvk = GroupVersionKind::try_from(types).map_err(|e| invalid(e.to_string()))?;
    let (resource, capabilities) = kube::discovery::pinned_kind(client, &gvk).await?;
    let api: Api<DynamicObject> = match capabilities.scope {
        Scope::Namespaced => Api::namespaced_with(
            client.clone(),
            object.metadata.namespace.as_deref().unwrap_or_default(),
            &resource,
        ),
        Scope::Cluster => Api::all_with(client.clone(), &resource),
    };
    let params = PatchParams::apply(FIELD_MANAGER).force();
    api.patch(&object.name_any(), &params, &Patch::Apply(object))
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use metal_api::{BMCSpec, InlineEndpoint, Protocol};

    const TEMPLATE: &str = r#"apiVersion: dns.ironcore.dev/v1alpha1
kind: DNSRecord
metadata:
  name: {{ .Name }}
  labels:
    {{- range $key, $value := .Labels }}
    {{ $key }}: {{ $value }}
    {{- end }}
spec:
  hostname: {{ .Hostname }}
  ip: {{ .IP }}
  port: {{ .Protocol.Port }}
  recordType: A
"#;

    fn bmc() -> BMC {
        let mut bmc = BMC::new(
            "bmc-1",
            BMCSpec {
                bmc_uuid: None,
                endpoint_ref: None,
                access: Some(InlineEndpoint {
                    mac_address: Some("02:aa:00:00:00:01".into()),
                    ip: Some("10.0.0.7".into()),
                }),
                bmc_secret_ref: Default::default(),
                protocol: Protocol {
                    name: "Redfish".into(),
                    port: 443,
                    scheme: None,
                },
                console_protocol: None,
                hostname: Some("bmc-1.rack-3.example".into()),
            },
        );
        bmc.metadata.uid = Some("uid-1".into());
        bmc.metadata.labels = Some([("rack".to_owned(), "3".to_owned())].into());
        bmc
    }

    #[test]
    fn renders_upstream_fields_and_defaults_namespace_and_owner() {
        let status = BMCStatus {
            ip: Some("10.0.0.7".into()),
            ..Default::default()
        };
        let object = render(TEMPLATE, &bmc(), &status, "metal-system").unwrap();
        assert_eq!(object.name_any(), "bmc-1");
        assert_eq!(object.metadata.namespace.as_deref(), Some("metal-system"));
        assert_eq!(object.labels().get("rack").map(String::as_str), Some("3"));
        assert_eq!(object.data["spec"]["hostname"], "bmc-1.rack-3.example");
        assert_eq!(object.data["spec"]["ip"], "10.0.0.7");
        assert_eq!(object.data["spec"]["port"], 443);
        let owner = &object.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!((owner.kind.as_str(), owner.controller), ("BMC", Some(true)));
    }

    #[test]
    fn template_errors_are_reported() {
        let status = BMCStatus::default();
        let missing = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Rack }}\n";
        assert!(
            render(missing, &bmc(), &status, "ns")
                .unwrap_err()
                .contains("does not have")
        );
        let no_kind = "apiVersion: v1\nmetadata:\n  name: x\n";
        assert!(
            render(no_kind, &bmc(), &status, "ns")
                .unwrap_err()
                .contains("kind")
        );
        let no_name = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  labels: {}\n";
        assert!(
            render(no_name, &bmc(), &status, "ns")
                .unwrap_err()
                .contains("name")
        );
        assert!(render("{{ .Name", &bmc(), &status, "ns").is_err());
    }

    #[test]
    fn startup_validation_catches_templates_the_parser_cannot_finish() {
        assert!(validate(TEMPLATE).is_ok());
        assert!(validate("{{ .Name").is_err());
        // gtmpl's lexer never returns on this one; the deadline turns it into an error.
        assert!(validate("metadata:\n  name: {{ .Name ").is_err());
    }
}
