//! Vendor flavours: the ways real BMCs differ that clients notice (member ids, models, reset types, OEM data).

use serde::{Deserialize, Serialize};

/// A vendor flavour from the fleet file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Vendor {
    /// Dell iDRAC-like: `System.Embedded.1`, `iDRAC.Embedded.1`, reset returns 204.
    #[default]
    Dell,
    /// HPE iLO-like: member id `1`, reset returns 200 with a `Base.Success` message, no `PowerCycle`.
    Hpe,
    /// Lenovo XCC-like: member id `1`, boot mode reported, `Oem.Lenovo`.
    Lenovo,
    /// Supermicro-like: member id `1`, boot mode reported as `Legacy` until changed.
    Supermicro,
    /// AMI MegaRAC-like: member id `Self`, no `BootSourceOverrideMode` property.
    Ami,
}

impl Vendor {
    pub const ALL: [Vendor; 5] = [
        Vendor::Dell,
        Vendor::Hpe,
        Vendor::Lenovo,
        Vendor::Supermicro,
        Vendor::Ami,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Vendor::Dell => "dell",
            Vendor::Hpe => "hpe",
            Vendor::Lenovo => "lenovo",
            Vendor::Supermicro => "supermicro",
            Vendor::Ami => "ami",
        }
    }

    /// `Manufacturer` as metal-operator's vendor detection expects it.
    pub fn manufacturer(self) -> &'static str {
        match self {
            Vendor::Dell => "Dell Inc.",
            Vendor::Hpe => "HPE",
            Vendor::Lenovo => "Lenovo",
            Vendor::Supermicro => "Supermicro",
            Vendor::Ami => "AMI",
        }
    }

    pub fn system_model(self) -> &'static str {
        match self {
            Vendor::Dell => "PowerEdge R650",
            Vendor::Hpe => "ProLiant DL360 Gen10 Plus",
            Vendor::Lenovo => "ThinkSystem SR650 V2",
            Vendor::Supermicro => "SYS-120U-TNR",
            Vendor::Ami => "MegaRAC Reference Platform",
        }
    }

    pub fn manager_model(self) -> &'static str {
        match self {
            Vendor::Dell => "15G Monolithic",
            Vendor::Hpe => "iLO 5",
            Vendor::Lenovo => "XCC2",
            Vendor::Supermicro => "X12 BMC",
            Vendor::Ami => "MegaRAC SP-X",
        }
    }

    pub fn manager_firmware(self) -> &'static str {
        match self {
            Vendor::Dell => "7.00.00.171",
            Vendor::Hpe => "2.78 Jan 05 2023",
            Vendor::Lenovo => "3.10",
            Vendor::Supermicro => "01.01.06",
            Vendor::Ami => "13.2.0",
        }
    }

    pub fn bios_version(self) -> &'static str {
        match self {
            Vendor::Dell => "1.10.2",
            Vendor::Hpe => "U46 v2.72 (09/29/2022)",
            Vendor::Lenovo => "AFE130F-2.20",
            Vendor::Supermicro => "1.4a",
            Vendor::Ami => "5.27",
        }
    }

    /// The Redfish member id of the `index`-th (0-based) system.
    pub fn system_id(self, index: usize) -> String {
        match (self, index) {
            (Vendor::Dell, i) => format!("System.Embedded.{}", i + 1),
            (Vendor::Ami, 0) => "Self".to_string(),
            (Vendor::Ami, i) => format!("Self{}", i + 1),
            (_, i) => (i + 1).to_string(),
        }
    }

    pub fn manager_id(self) -> &'static str {
        match self {
            Vendor::Dell => "iDRAC.Embedded.1",
            Vendor::Ami => "Self",
            _ => "1",
        }
    }

    /// The chassis member id of the `index`-th system's enclosure.
    pub fn chassis_id(self, index: usize) -> String {
        self.system_id(index)
    }

    /// `ResetType@Redfish.AllowableValues` of `#ComputerSystem.Reset`.
    pub fn system_reset_types(self) -> &'static [&'static str] {
        match self {
            Vendor::Dell => &[
                "On",
                "ForceOff",
                "ForceRestart",
                "GracefulRestart",
                "GracefulShutdown",
                "PushPowerButton",
                "Nmi",
                "PowerCycle",
            ],
            Vendor::Hpe => &[
                "On",
                "ForceOff",
                "GracefulShutdown",
                "ForceRestart",
                "Nmi",
                "PushPowerButton",
                "GracefulRestart",
            ],
            Vendor::Lenovo => &[
                "On",
                "Nmi",
                "GracefulShutdown",
                "GracefulRestart",
                "ForceOn",
                "ForceOff",
                "ForceRestart",
            ],
            Vendor::Supermicro => &[
                "On",
                "ForceOff",
                "GracefulShutdown",
                "GracefulRestart",
                "ForceRestart",
                "Nmi",
                "ForceOn",
                "PowerCycle",
            ],
            Vendor::Ami => &[
                "On",
                "ForceOff",
                "GracefulShutdown",
                "GracefulRestart",
                "ForceRestart",
                "PowerCycle",
            ],
        }
    }

    pub fn manager_reset_types(self) -> &'static [&'static str] {
        match self {
            Vendor::Dell => &["GracefulRestart"],
            Vendor::Hpe => &["GracefulRestart", "ForceRestart"],
            _ => &["GracefulRestart", "ForceRestart"],
        }
    }

    /// Whether `Boot.BootSourceOverrideMode` is present at all.
    pub fn has_boot_mode(self) -> bool {
        !matches!(self, Vendor::Ami)
    }

    pub fn default_boot_mode(self) -> &'static str {
        match self {
            Vendor::Supermicro => "Legacy",
            _ => "UEFI",
        }
    }

    /// HPE answers a reset with 200 and a message body; the others with 204.
    pub fn reset_returns_body(self) -> bool {
        matches!(self, Vendor::Hpe)
    }

    /// The OEM section of a ComputerSystem, keyed by the vendor's OEM name.
    pub fn system_oem(self) -> Option<serde_json::Value> {
        use serde_json::json;
        match self {
            Vendor::Dell => Some(
                json!({"Dell": {"DellSystem": {"@odata.type": "#DellSystem.v1_3_0.DellSystem",
                "ChassisServiceTag": "SIM", "SystemGeneration": "15G Monolithic"}}}),
            ),
            Vendor::Hpe => Some(
                json!({"Hpe": {"@odata.type": "#HpeComputerSystemExt.v2_11_0.HpeComputerSystemExt",
                "PostState": "FinishedPost", "PowerRegulatorMode": "Dynamic"}}),
            ),
            Vendor::Lenovo => Some(
                json!({"Lenovo": {"@odata.type": "#LenovoComputerSystem.v1_0_0.LenovoComputerSystem",
                "SystemStatus": "OSBooted"}}),
            ),
            Vendor::Supermicro | Vendor::Ami => None,
        }
    }
}

/// Written by hand: the derive would turn each variant's rustdoc into a `oneOf` arm, and scenario files'
/// schema (`scenarios/schema/scenario.schema.json`) keeps the plain string enum it has always had.
impl schemars::JsonSchema for Vendor {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Vendor".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A vendor flavour of sim-bmc (how member ids, reset types and OEM sections differ).",
            "type": "string",
            "enum": Vendor::ALL.map(Vendor::as_str),
        })
    }
}
