//! Types shared by several kinds: object references, the BMC protocol, taints and tolerations.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::string_enum::string_enum;

/// A reference to a namespaced object by namespace and name.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
#[schemars(transform = crate::schema::strip_null)]
pub struct ObjectReference {
    /// Namespace is the namespace of the referenced object.
    pub namespace: String,
    /// Name is the name of the referenced object.
    pub name: String,
}

impl ObjectReference {
    /// A reference to `namespace/name`.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

/// An [`ObjectReference`] whose fields cannot be edited once set (the whole reference may still be
/// set or cleared). Used for `Server.spec.serverClaimRef`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
#[schemars(transform = crate::schema::strip_null)]
pub struct ImmutableObjectReference {
    /// Namespace is the namespace of the referenced object.
    #[schemars(extend(
        "maxLength" = 63,
        "x-kubernetes-validations" = [{"rule": "self == oldSelf"}],
    ))]
    pub namespace: String,
    /// Name is the name of the referenced object.
    #[schemars(extend(
        "maxLength" = 253,
        "x-kubernetes-validations" = [{"rule": "self == oldSelf"}],
    ))]
    pub name: String,
}

impl ImmutableObjectReference {
    /// A reference to `namespace/name`.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

string_enum! {
    /// How to talk to a BMC (`BMC.spec.protocol.name`). A free string upstream; the client factory
    /// understands `Redfish`, `RedfishLocal` and `RedfishWithRegistryPatch`.
    pub enum ProtocolName (open) {
        Redfish,
        /// Test/dev mode: plain Redfish client against a local mock.
        RedfishLocal,
        /// Test/dev mode: RedfishLocal plus a fake probe registration after each PXE override.
        RedfishWithRegistryPatch,
        Ipmi = "IPMI",
        Ssh = "SSH",
    }
}

string_enum! {
    /// URL scheme for a BMC (`protocol.scheme`). A free string upstream.
    pub enum ProtocolScheme (open) {
        Http = "http",
        Https = "https",
    }
}

/// How to reach a BMC: protocol name, port and optional scheme.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[schemars(transform = crate::schema::strip_null)]
pub struct Protocol {
    /// Name specifies the name of the protocol.
    pub name: ProtocolName,
    /// Port specifies the port number used for communication.
    pub port: i32,
    /// Scheme specifies the scheme used for communication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme: Option<ProtocolScheme>,
}

string_enum! {
    /// A desired power state (`Server.spec.power`, `ServerClaim.spec.power`). A free string upstream.
    pub enum Power (open) {
        On,
        Off,
    }
}

string_enum! {
    /// What a taint does to claims that do not tolerate it. Only `NoBind` blocks binding; `Evict` is
    /// reserved upstream.
    pub enum TaintEffect (closed) {
        NoBind,
        Evict,
    }
}

string_enum! {
    /// How a toleration compares its value with a taint's.
    pub enum TolerationOperator (closed) {
        Equal,
        Exists,
    }
}

/// A taint on a Server restricting which ServerClaims may bind to it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[schemars(transform = crate::schema::strip_null)]
pub struct Taint {
    /// Key is the taint key to be applied to a server.
    #[schemars(extend("minLength" = 1))]
    pub key: String,
    /// Value is the taint value corresponding to the taint key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Effect on claims that do not tolerate the taint; `NoBind` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "NoBind"))]
    pub effect: Option<TaintEffect>,
}

/// A toleration on a ServerClaim allowing it to bind to Servers with matching taints.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[schemars(transform = crate::schema::strip_null)]
pub struct Toleration {
    /// Key is the taint key that the toleration applies to.
    #[schemars(extend("minLength" = 1))]
    pub key: String,
    /// Operator is `Equal` (the default when unset) or `Exists`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<TolerationOperator>,
    /// Value the taint value must equal when the operator is `Equal`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Effect to match; all effects when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effect: Option<TaintEffect>,
}

string_enum! {
    /// A condition status (`True`, `False`, `Unknown`), as in `metav1.ConditionStatus`.
    pub enum ConditionStatus (closed) {
        True,
        False,
        Unknown,
    }
}

/// The value of the operation annotation on an object, if set.
pub fn operation_of(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> Option<crate::constants::Operation> {
    let annotations = meta.annotations.as_ref()?;
    annotations
        .get(crate::constants::OPERATION_ANNOTATION)
        .map(|value| crate::constants::Operation::from(value.as_str()))
}

impl From<ImmutableObjectReference> for ObjectReference {
    fn from(reference: ImmutableObjectReference) -> Self {
        Self {
            namespace: reference.namespace,
            name: reference.name,
        }
    }
}

impl From<ObjectReference> for ImmutableObjectReference {
    fn from(reference: ObjectReference) -> Self {
        Self {
            namespace: reference.namespace,
            name: reference.name,
        }
    }
}
