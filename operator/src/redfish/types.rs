//! The slice of the Redfish schema the operator reads. Unknown fields are ignored.

use serde::{Deserialize, Deserializer, Serialize};

/// A JSON `null` read as the type's default. Redfish services write `null` for empty arrays
/// (`"BootOrder": null`, `"Drives": null`); gofish reads that as empty, so must we.
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
pub struct ODataId {
    #[serde(rename = "@odata.id")]
    pub odata_id: String,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct Collection {
    #[serde(rename = "Members", default, deserialize_with = "null_as_default")]
    pub members: Vec<ODataId>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ServiceRoot {
    #[serde(default)]
    pub redfish_version: Option<String>,
    #[serde(rename = "UUID", default)]
    pub uuid: Option<String>,
    #[serde(default)]
    pub systems: Option<ODataId>,
    #[serde(default)]
    pub managers: Option<ODataId>,
    #[serde(default)]
    pub session_service: Option<ODataId>,
    #[serde(default)]
    pub event_service: Option<ODataId>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct Status {
    #[serde(default)]
    pub state: Option<String>,
    #[serde(default)]
    pub health: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Boot {
    #[serde(default)]
    pub boot_source_override_enabled: Option<String>,
    #[serde(default)]
    pub boot_source_override_target: Option<String>,
    #[serde(default)]
    pub boot_source_override_mode: Option<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub boot_order: Vec<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MemorySummary {
    #[serde(rename = "TotalSystemMemoryGiB", default)]
    pub total_system_memory_gib: Option<f64>,
}

/// A `ResetType` action descriptor (`#ComputerSystem.Reset` / `#Manager.Reset`).
#[derive(Clone, Debug, Default, Deserialize)]
pub struct ResetAction {
    #[serde(default)]
    pub target: Option<String>,
    #[serde(rename = "ResetType@Redfish.AllowableValues", default)]
    pub allowable_values: Option<Vec<String>>,
    #[serde(rename = "@Redfish.ActionInfo", default)]
    pub action_info: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct SystemActions {
    #[serde(rename = "#ComputerSystem.Reset", default)]
    pub reset: Option<ResetAction>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct ManagerActions {
    #[serde(rename = "#Manager.Reset", default)]
    pub reset: Option<ResetAction>,
}

/// `@Redfish.Settings`: where a resource that cannot be changed directly takes its pending values.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Settings {
    #[serde(rename = "SettingsObject", default)]
    pub settings_object: Option<ODataId>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ComputerSystem {
    #[serde(rename = "@odata.id", default)]
    pub odata_id: String,
    #[serde(rename = "@odata.etag", default)]
    pub odata_etag: Option<String>,
    #[serde(rename = "@Redfish.Settings", default)]
    pub settings: Option<Settings>,
    #[serde(default)]
    pub id: Option<String>,
    #[serde(rename = "UUID", default)]
    pub uuid: Option<String>,
    #[serde(default)]
    pub manufacturer: Option<String>,
    #[serde(default)]
    pub model: Option<String>,
    #[serde(rename = "SKU", default)]
    pub sku: Option<String>,
    #[serde(default)]
    pub serial_number: Option<String>,
    #[serde(default)]
    pub power_state: Option<String>,
    #[serde(rename = "IndicatorLED", default)]
    pub indicator_led: Option<String>,
    #[serde(default)]
    pub bios_version: Option<String>,
    #[serde(default)]
    pub status: Option<Status>,
    #[serde(default)]
    pub boot: Option<Boot>,
    #[serde(default)]
    pub memory_summary: Option<MemorySummary>,
    #[serde(default)]
    pub processors: Option<ODataId>,
    #[serde(default)]
    pub storage: Option<ODataId>,
    #[serde(default)]
    pub simple_storage: Option<ODataId>,
    #[serde(default)]
    pub actions: Option<SystemActions>,
}

impl ComputerSystem {
    /// The Reset action target, falling back to the conventional path.
    pub fn reset_target(&self) -> String {
        self.actions
            .as_ref()
            .and_then(|a| a.reset.as_ref())
            .and_then(|r| r.target.clone())
            .unwrap_or_else(|| {
                format!(
                    "{}/Actions/ComputerSystem.Reset",
                    self.odata_id.trim_end_matches('/')
                )
            })
    }

    pub fn allowed_reset_types(&self) -> Option<&[String]> {
        self.actions
            .as_ref()?
            .reset
            .as_ref()?
            .allowable_values
            .as_deref()
    }

    /// The `@Redfish.Settings` object, when the System has one other than itself.
    pub fn settings_target(&self) -> Option<&str> {
        let target = self.settings.as_ref()?.settings_object.as_ref()?;
        (target.odata_id.trim_end_matches('/') != self.odata_id.trim_end_matches('/'))
            .then_some(target.odata_id.as_str())
    }
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Processor {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub processor_type: Option<String>,
    #[serde(default)]
    pub processor_architecture: Option<String>,
    #[serde(default)]
    pub instruction_set: Option<String>,
    #[serde(default)]
    pub manufacturer: Option<String>,
    #[serde(default)]
    pub model: Option<String>,
    #[serde(rename = "MaxSpeedMHz", default)]
    pub max_speed_mhz: Option<f64>,
    #[serde(default)]
    pub total_cores: Option<i64>,
    #[serde(default)]
    pub total_threads: Option<i64>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Storage {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub status: Option<Status>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub drives: Vec<ODataId>,
    #[serde(default)]
    pub volumes: Option<ODataId>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Volume {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub capacity_bytes: Option<i64>,
    #[serde(rename = "RAIDType", default)]
    pub raid_type: Option<String>,
    #[serde(default)]
    pub status: Option<Status>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Drive {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub media_type: Option<String>,
    #[serde(default)]
    pub drive_form_factor: Option<String>,
    #[serde(default)]
    pub capacity_bytes: Option<i64>,
    #[serde(default)]
    pub manufacturer: Option<String>,
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub status: Option<Status>,
}

/// A storage controller with its drives and volumes resolved.
#[derive(Clone, Debug, Default)]
pub struct StorageInventory {
    pub name: Option<String>,
    pub status: Option<Status>,
    pub drives: Vec<Drive>,
    pub volumes: Vec<Volume>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Manager {
    #[serde(rename = "@odata.id", default)]
    pub odata_id: String,
    #[serde(default)]
    pub id: Option<String>,
    #[serde(rename = "UUID", default)]
    pub uuid: Option<String>,
    #[serde(default)]
    pub manufacturer: Option<String>,
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub part_number: Option<String>,
    #[serde(default)]
    pub serial_number: Option<String>,
    #[serde(default)]
    pub firmware_version: Option<String>,
    #[serde(default)]
    pub power_state: Option<String>,
    #[serde(default)]
    pub last_reset_time: Option<String>,
    #[serde(default)]
    pub status: Option<Status>,
    #[serde(default)]
    pub graphical_console: Option<ConsoleService>,
    #[serde(default)]
    pub actions: Option<ManagerActions>,
}

/// A Manager's `GraphicalConsole` (Redfish `GraphicalConnectProtocol` service description).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ConsoleService {
    #[serde(default)]
    pub max_concurrent_sessions: Option<i64>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub connect_types_supported: Vec<String>,
}

impl Manager {
    /// Whether this Manager serves the host's graphical console (upstream's `DiscoverManager` test).
    pub fn has_graphical_console(&self) -> bool {
        self.graphical_console.as_ref().is_some_and(|c| {
            c.max_concurrent_sessions.unwrap_or(0) != 0 || !c.connect_types_supported.is_empty()
        })
    }

    pub fn reset_target(&self) -> String {
        self.actions
            .as_ref()
            .and_then(|a| a.reset.as_ref())
            .and_then(|r| r.target.clone())
            .unwrap_or_else(|| {
                format!(
                    "{}/Actions/Manager.Reset",
                    self.odata_id.trim_end_matches('/')
                )
            })
    }

    pub fn allowed_reset_types(&self) -> Option<&[String]> {
        self.actions
            .as_ref()?
            .reset
            .as_ref()?
            .allowable_values
            .as_deref()
    }
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EventService {
    #[serde(default)]
    pub service_enabled: Option<bool>,
    #[serde(default)]
    pub subscriptions: Option<ODataId>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EventDestination {
    #[serde(rename = "@odata.id", default)]
    pub odata_id: String,
    #[serde(default)]
    pub destination: Option<String>,
    #[serde(default)]
    pub context: Option<String>,
}

/// `ComputerSystem.Reset` / `Manager.Reset` reset types the operator issues.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ResetType {
    On,
    ForceOn,
    ForceOff,
    GracefulShutdown,
    GracefulRestart,
    ForceRestart,
    PowerCycle,
}

impl ResetType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::On => "On",
            Self::ForceOn => "ForceOn",
            Self::ForceOff => "ForceOff",
            Self::GracefulShutdown => "GracefulShutdown",
            Self::GracefulRestart => "GracefulRestart",
            Self::ForceRestart => "ForceRestart",
            Self::PowerCycle => "PowerCycle",
        }
    }

    /// Whether this reset can (re)boot the host, i.e. must pass the readiness gate.
    pub fn boots_host(self) -> bool {
        !matches!(self, Self::ForceOff | Self::GracefulShutdown)
    }
}

impl std::fmt::Display for ResetType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Indicator LED values writable via Redfish.
pub const LED_VALUES: [&str; 3] = ["Lit", "Blinking", "Off"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn null_arrays_read_as_empty() {
        let system: ComputerSystem = serde_json::from_str(
            r#"{"@odata.id": "/redfish/v1/Systems/1", "Boot": {"BootOrder": null, "BootSourceOverrideTarget": "Pxe"}, "PowerState": null}"#,
        )
        .unwrap();
        assert!(system.boot.unwrap().boot_order.is_empty());
        let collection: Collection = serde_json::from_str(r#"{"Members": null}"#).unwrap();
        assert!(collection.members.is_empty());
        let storage: Storage = serde_json::from_str(r#"{"Drives": null}"#).unwrap();
        assert!(storage.drives.is_empty());
    }

    #[test]
    fn settings_object_only_when_it_is_another_resource() {
        let with = |target: &str| -> ComputerSystem {
            serde_json::from_value(serde_json::json!({
                "@odata.id": "/redfish/v1/Systems/1",
                "@Redfish.Settings": { "SettingsObject": { "@odata.id": target } }
            }))
            .unwrap()
        };
        assert_eq!(
            with("/redfish/v1/Systems/1/Pending").settings_target(),
            Some("/redfish/v1/Systems/1/Pending")
        );
        assert_eq!(with("/redfish/v1/Systems/1/").settings_target(), None);
    }
}
