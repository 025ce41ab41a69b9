//! Every string enum round-trips every string: known values map to their variant, anything else is
//! kept verbatim in `Other`, and JSON sees a plain string either way.

use metal_api::{
    BMCPowerState, BMCState, ConditionStatus, ConsoleProtocolName, EnforcementMode, IndicatorLed,
    Operation, Power, ProtocolName, ProtocolScheme, ReclaimPolicy, ServerBootConfigurationState,
    ServerClaimPhase, ServerPowerState, ServerState, TaintEffect, TolerationOperator,
};
use proptest::prelude::*;

macro_rules! string_enum_properties {
    ($($module:ident => $ty:ty),+ $(,)?) => {$(
        mod $module {
            use super::*;

            proptest! {
                #[test]
                fn any_string_survives(value in ".{0,24}") {
                    let parsed = <$ty>::from(value.as_str());
                    prop_assert_eq!(parsed.as_str(), value.as_str());
                    prop_assert_eq!(parsed.is_other(), !<$ty>::KNOWN.contains(&value.as_str()));
                    let json = serde_json::to_value(&parsed).expect("serializes");
                    prop_assert_eq!(&json, &serde_json::Value::String(value.clone()));
                    let back: $ty = serde_json::from_value(json).expect("deserializes");
                    prop_assert_eq!(back, parsed);
                }
            }

            #[test]
            fn known_values_are_variants() {
                for known in <$ty>::KNOWN {
                    let parsed = <$ty>::from(*known);
                    assert!(!parsed.is_other(), "{known} parsed as Other");
                    assert_eq!(parsed.to_string(), *known);
                }
            }

            #[test]
            fn non_strings_are_rejected() {
                assert!(serde_json::from_str::<$ty>("true").is_err());
                assert!(serde_json::from_str::<$ty>("1").is_err());
            }
        }
    )+};
}

string_enum_properties! {
    server_state => ServerState,
    server_power_state => ServerPowerState,
    indicator_led => IndicatorLed,
    reclaim_policy => ReclaimPolicy,
    bmc_state => BMCState,
    bmc_power_state => BMCPowerState,
    console_protocol_name => ConsoleProtocolName,
    sbc_state => ServerBootConfigurationState,
    claim_phase => ServerClaimPhase,
    enforcement_mode => EnforcementMode,
    power => Power,
    protocol_name => ProtocolName,
    protocol_scheme => ProtocolScheme,
    taint_effect => TaintEffect,
    toleration_operator => TolerationOperator,
    condition_status => ConditionStatus,
    operation => Operation,
}

#[test]
fn upstream_state_lists() {
    assert_eq!(
        ServerState::KNOWN,
        [
            "Initial",
            "Discovery",
            "Available",
            "Reserved",
            "Released",
            "Error",
            "Parked"
        ]
    );
    assert_eq!(
        ServerBootConfigurationState::KNOWN,
        ["Pending", "Ready", "Error"]
    );
    assert_eq!(
        ServerPowerState::KNOWN,
        ["On", "Off", "Paused", "PoweringOn", "PoweringOff"]
    );
    assert_eq!(ServerClaimPhase::KNOWN, ["Bound", "Unbound"]);
    assert_eq!(Power::KNOWN, ["On", "Off"]);
}

#[test]
fn operations_map_to_redfish_reset_types() {
    assert_eq!(
        Operation::from("power-cycle-server").redfish_reset_type(),
        Some("PowerCycle")
    );
    assert_eq!(
        Operation::from("hard-restart-server").redfish_reset_type(),
        Some("ForceRestart")
    );
    assert_eq!(
        Operation::from("graceful-restart-bmc").redfish_reset_type(),
        Some("GracefulRestart")
    );
    assert_eq!(Operation::Park.redfish_reset_type(), None);
    assert_eq!(Operation::from("reboot-now").redfish_reset_type(), None);
}
