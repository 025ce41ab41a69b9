//! Well-known names: upstream's (from `metal_api::constants`) plus this implementation's extensions.

pub use metal_api::constants::*;

/// On the discovery ignition Secret: a digest of what its ignition was rendered from besides the
/// SSH material (template, probe image, registry URL, system UUID). While it matches, a repeated
/// Initial pass (a retried reconcile) keeps the Secrets instead of minting new keys — new keys would
/// change the ignition under a Ready SBC and send it back to Pending for re-verification.
pub const DISCOVERY_IGNITION_INPUTS_ANNOTATION: &str =
    "metal.ironcore.dev/discovery-ignition-inputs";

/// Extension condition types and reasons written by the strict readiness gate.
pub mod gate {
    /// Server condition: the readiness gate's verdict on `spec.bootConfigurationRef`.
    pub const BOOT_CONFIGURATION_READY: &str = "BootConfigurationReady";
    pub const REASON_READY: &str = "Ready";
    pub const REASON_PENDING: &str = "Pending";
    pub const REASON_MISSING: &str = "BootConfigurationMissing";
    pub const REASON_NOT_REFERENCED: &str = "NoBootConfiguration";
    pub const REASON_STALE: &str = "StaleGeneration";
    /// Used when the backend reports `Error` without a failing condition of its own.
    pub const REASON_ERROR: &str = "BootConfigurationError";
    /// Server condition: the current discovery attempt; its transition time starts the timeout.
    pub const DISCOVERY: &str = "Discovery";
    pub const REASON_DISCOVERY_IN_PROGRESS: &str = "InProgress";
    pub const REASON_DISCOVERY_TIMED_OUT: &str = "TimedOut";
    pub const REASON_POWER_ON_CONFIRMED: &str = "PowerOnConfirmed";
    /// `PoweringOn` turned False: a power-off was wanted before the BMC reported On.
    pub const REASON_POWER_ON_SUPERSEDED: &str = "PowerOnSuperseded";
    pub const REASON_POWER_ON_TIMED_OUT: &str = "PowerOnTimedOut";
}
