//! `ServerBootConfiguration`: what a Server should boot next; a boot provider reports readiness.

use k8s_openapi::api::core::v1::LocalObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use macro_rules_attribute::apply;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::kind::metal_kind;
use crate::string_enum::string_enum;

string_enum! {
    /// The boot provider's verdict (`status.state`). A free string upstream.
    pub enum ServerBootConfigurationState (open) {
        Pending,
        Ready,
        Error,
    }
}

/// ServerBootConfigurationSpec defines the desired state of ServerBootConfiguration.
#[apply(metal_kind!)]
#[kube(
    kind = "ServerBootConfiguration",
    shortname = "sbc",
    namespaced,
    status = "ServerBootConfigurationStatus",
    derive = "Default",
    doc = "ServerBootConfiguration is the Schema for the serverbootconfigurations API",
    printcolumn(
        name = "ServerRef",
        type_ = "string",
        json_path = ".spec.serverRef.name"
    ),
    printcolumn(name = "Image", type_ = "string", json_path = ".spec.image"),
    printcolumn(
        name = "IgnitionRef",
        type_ = "string",
        json_path = ".spec.ignitionSecretRef.name"
    ),
    printcolumn(name = "State", type_ = "string", json_path = ".status.state")
)]
#[derive(Default)]
pub struct ServerBootConfigurationSpec {
    /// ServerRef names the (cluster-scoped) Server this configuration is for.
    #[schemars(schema_with = "crate::schema::local_object_reference")]
    pub server_ref: LocalObjectReference,
    /// Image is the OCI reference of the image to boot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// IgnitionSecretRef names the Secret (same namespace) holding the ignition configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::local_object_reference")]
    pub ignition_secret_ref: Option<LocalObjectReference>,
}

/// ServerBootConfigurationStatus defines the observed state of ServerBootConfiguration.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[schemars(transform = crate::schema::strip_null)]
pub struct ServerBootConfigurationStatus {
    /// State represents the current state of the boot configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<ServerBootConfigurationState>,
    /// Conditions represents the latest available observations of the boot configuration.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "crate::schema::conditions")]
    pub conditions: Vec<Condition>,
}

impl ServerBootConfiguration {
    /// The state the boot provider reported, if any.
    pub fn state(&self) -> Option<&ServerBootConfigurationState> {
        self.status.as_ref()?.state.as_ref()
    }

    /// Upstream's readiness check: `status.state == "Ready"`, nothing else.
    pub fn is_ready(&self) -> bool {
        self.state() == Some(&ServerBootConfigurationState::Ready)
    }

    /// Ready, and no condition that carries an `observedGeneration` lags `metadata.generation`.
    ///
    /// Upstream has no generation handshake on this kind (only per-condition `observedGeneration`);
    /// this is metal-harness's stricter reading: a provider that stamps its conditions cannot be
    /// taken as Ready for a spec it has not seen yet. Conditions without `observedGeneration`, and
    /// objects without `metadata.generation`, do not block.
    pub fn is_ready_for_current_generation(&self) -> bool {
        if !self.is_ready() {
            return false;
        }
        let Some(generation) = self.metadata.generation else {
            return true;
        };
        self.conditions()
            .iter()
            .filter_map(|condition| condition.observed_generation)
            .all(|observed| observed >= generation)
    }

    /// The status conditions (none while there is no status).
    pub fn conditions(&self) -> &[Condition] {
        self.status
            .as_ref()
            .map(|s| s.conditions.as_slice())
            .unwrap_or_default()
    }

    /// The condition of the given type, if present.
    pub fn condition(&self, type_: &str) -> Option<&Condition> {
        crate::conditions::find_condition(self.conditions(), type_)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn sbc(
        state: Option<&str>,
        generation: Option<i64>,
        observed: &[Option<i64>],
    ) -> ServerBootConfiguration {
        let mut sbc = ServerBootConfiguration::new(
            "web-0",
            ServerBootConfigurationSpec {
                server_ref: LocalObjectReference {
                    name: "server-0".into(),
                },
                ..Default::default()
            },
        );
        sbc.metadata.generation = generation;
        let conditions = observed
            .iter()
            .enumerate()
            .map(|(i, observed_generation)| Condition {
                type_: format!("Step{i}"),
                status: "True".into(),
                reason: "Done".into(),
                message: String::new(),
                last_transition_time: Time(Default::default()),
                observed_generation: *observed_generation,
            })
            .collect();
        sbc.status = Some(ServerBootConfigurationStatus {
            state: state.map(Into::into),
            conditions,
        });
        sbc
    }

    #[test]
    fn only_ready_state_is_ready() {
        assert!(sbc(Some("Ready"), None, &[]).is_ready());
        assert!(!sbc(Some("Pending"), None, &[]).is_ready());
        assert!(!sbc(Some("Error"), None, &[]).is_ready());
        assert!(!sbc(Some("ready"), None, &[]).is_ready());
        assert!(!sbc(None, None, &[]).is_ready());
    }

    #[test]
    fn generation_check_blocks_only_on_lagging_conditions() {
        assert!(sbc(Some("Ready"), Some(3), &[Some(3), None]).is_ready_for_current_generation());
        assert!(
            !sbc(Some("Ready"), Some(3), &[Some(3), Some(2)]).is_ready_for_current_generation()
        );
        assert!(sbc(Some("Ready"), Some(3), &[]).is_ready_for_current_generation());
        assert!(sbc(Some("Ready"), None, &[Some(1)]).is_ready_for_current_generation());
        assert!(!sbc(Some("Pending"), Some(3), &[Some(3)]).is_ready_for_current_generation());
    }

    #[test]
    fn unknown_state_is_kept_and_not_ready() {
        let sbc = sbc(Some("Provisioning"), None, &[]);
        assert_eq!(
            sbc.state(),
            Some(&ServerBootConfigurationState::Other("Provisioning".into()))
        );
        let json = serde_json::to_value(&sbc).expect("serializes");
        assert_eq!(json["status"]["state"], "Provisioning");
        assert!(!sbc.is_ready());
    }
}
