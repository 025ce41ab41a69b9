//! Boot settings (override and order), BIOS settings and the indicator, as the machine's firmware stores them.

use std::collections::BTreeMap;

use super::{Machine, MachineEventKind, MachineHandle};

/// `BootSourceOverrideTarget` values the firmware understands.
pub const BOOT_TARGETS: &[&str] = &[
    "None",
    "Pxe",
    "Hdd",
    "Cd",
    "UefiHttp",
    "BiosSetup",
    "UefiShell",
];
pub const BOOT_ENABLED: &[&str] = &["Disabled", "Once", "Continuous"];
pub const BOOT_MODES: &[&str] = &["Legacy", "UEFI"];

/// The firmware's boot configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootSettings {
    pub override_target: String,
    pub override_enabled: String,
    /// `None` for flavours whose firmware does not report a boot mode.
    pub override_mode: Option<String>,
    /// Boot option references (`Boot0000`…) or device names, first is tried first.
    pub boot_order: Vec<String>,
}

impl BootSettings {
    pub fn new(mode: Option<&str>) -> Self {
        Self {
            override_target: "None".into(),
            override_enabled: "Disabled".into(),
            override_mode: mode.map(str::to_string),
            boot_order: vec!["Boot0001".into(), "Boot0000".into(), "Boot0002".into()],
        }
    }
}

/// A validated change to the boot settings (unset fields stay as they are).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BootSettingsPatch {
    pub target: Option<String>,
    pub enabled: Option<String>,
    pub mode: Option<String>,
    pub boot_order: Option<Vec<String>>,
}

/// The device a boot option or override target stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootTargetName {
    Pxe,
    UefiHttp,
    Hdd,
    /// A device with nothing bootable on it (Cd without media, BIOS setup, …).
    Unbootable,
}

/// Boot options the simulated firmware offers: (reference, display name, device).
pub const BOOT_OPTIONS: &[(&str, &str, BootTargetName)] = &[
    (
        "Boot0000",
        "PXE IPv4 NIC.Integrated.1-1",
        BootTargetName::Pxe,
    ),
    (
        "Boot0001",
        "Hard disk: Integrated RAID Controller",
        BootTargetName::Hdd,
    ),
    (
        "Boot0002",
        "UEFI HTTPv4 NIC.Integrated.1-1",
        BootTargetName::UefiHttp,
    ),
];

impl BootTargetName {
    /// Maps an override target or a boot order entry to a device.
    pub fn parse(entry: &str) -> Self {
        if let Some((_, _, device)) = BOOT_OPTIONS.iter().find(|(r, _, _)| *r == entry) {
            return *device;
        }
        match entry {
            "Pxe" => Self::Pxe,
            "UefiHttp" => Self::UefiHttp,
            "Hdd" => Self::Hdd,
            _ => Self::Unbootable,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pxe => "Pxe",
            Self::UefiHttp => "UefiHttp",
            Self::Hdd => "Hdd",
            Self::Unbootable => "None",
        }
    }
}

impl MachineHandle {
    /// Applies a validated boot PATCH and records what changed.
    pub fn patch_boot(&self, patch: BootSettingsPatch) {
        let m = &self.inner;
        let mut state = m.lock();
        let before = state.boot.clone();
        state.version += 1;
        if let Some(t) = patch.target {
            state.boot.override_target = t;
        }
        if let Some(e) = patch.enabled {
            state.boot.override_enabled = e;
        }
        if let Some(mode) = patch.mode {
            state.boot.override_mode = Some(mode);
        }
        let order_changed = patch
            .boot_order
            .as_ref()
            .is_some_and(|o| *o != before.boot_order);
        if let Some(order) = patch.boot_order {
            state.boot.boot_order = order;
        }
        if state.boot.override_target != before.override_target
            || state.boot.override_enabled != before.override_enabled
        {
            let kind = MachineEventKind::BootOverrideChanged {
                target: state.boot.override_target.clone(),
                enabled: state.boot.override_enabled.clone(),
            };
            m.record(&mut state, kind);
        }
        if order_changed {
            let kind = MachineEventKind::BootOrderChanged {
                order: state.boot.boot_order.clone(),
            };
            m.record(&mut state, kind);
        }
    }

    /// Current BIOS attributes.
    pub fn bios_attributes(&self) -> BTreeMap<String, serde_json::Value> {
        self.inner.settle();
        self.inner.lock().bios.clone()
    }

    /// BIOS attributes waiting for the next reset.
    pub fn bios_pending(&self) -> BTreeMap<String, serde_json::Value> {
        self.inner.settle();
        self.inner.lock().bios_pending.clone()
    }

    /// Stages BIOS attributes; they apply at the next power-on or reset.
    pub fn stage_bios(&self, attributes: BTreeMap<String, serde_json::Value>) {
        let mut state = self.inner.lock();
        state.version += 1;
        state.bios_pending.extend(attributes);
    }

    pub fn indicator(&self) -> String {
        self.inner.lock().indicator.clone()
    }

    pub fn set_indicator(&self, value: &str) {
        let m = &self.inner;
        let mut state = m.lock();
        if state.indicator != value {
            state.indicator = value.to_string();
            m.record(
                &mut state,
                MachineEventKind::IndicatorChanged {
                    state: value.to_string(),
                },
            );
        }
    }
}

impl Machine {
    /// Moves staged BIOS settings into effect (called at power-on and warm reset).
    pub(crate) fn apply_pending_bios(&self, state: &mut super::State) {
        if state.bios_pending.is_empty() {
            return;
        }
        let applied = std::mem::take(&mut state.bios_pending);
        state.bios.extend(applied.clone());
        self.record(
            state,
            MachineEventKind::BiosSettingsApplied {
                attributes: applied,
            },
        );
    }
}
