//! Well-known strings upstream metal-operator and boot-operator agree on: finalizers, annotations,
//! labels, secret keys, condition types and reasons, field manager.

use crate::string_enum::string_enum;

// ---- Finalizers (set by the controller that owns the kind) ----

/// Finalizer on Endpoints.
pub const ENDPOINT_FINALIZER: &str = "metal.ironcore.dev/endpoint";
/// Finalizer on BMCs.
pub const BMC_FINALIZER: &str = "metal.ironcore.dev/bmc";
/// Finalizer on BMCUsers.
pub const BMC_USER_FINALIZER: &str = "metal.ironcore.dev/bmcuser";
/// Finalizer on Servers.
pub const SERVER_FINALIZER: &str = "metal.ironcore.dev/server";
/// Finalizer on ServerClaims.
pub const SERVER_CLAIM_FINALIZER: &str = "metal.ironcore.dev/serverclaim";
/// Finalizer on ServerReadinessRules: removes the rule's taints from Servers on deletion.
pub const SERVER_READINESS_RULE_FINALIZER: &str = "readiness.metal.ironcore.dev/cleanup-taints";
// BMCSecret and ServerBootConfiguration carry no finalizer upstream.

// ---- The operation annotation ----

/// Annotation key requesting an out-of-band operation; its value is an [`Operation`].
pub const OPERATION_ANNOTATION: &str = "metal.ironcore.dev/operation";

string_enum! {
    /// A value of [`OPERATION_ANNOTATION`]. Unknown values are kept as `Other` (upstream raises a
    /// Warning event and removes them).
    pub enum Operation (open) {
        /// Skip reconciling the object entirely.
        Ignore = "ignore",
        /// Restart reconciliation from a failed state.
        Retry = "retry",
        /// Set by a controller on a child after its parent was asked to retry.
        RetryPropagated = "retry-propagated",
        /// Rotate the object's credentials (BMCUser).
        RotateCredentials = "rotate-credentials",
        /// Allow deletion while an operation is in progress.
        AllowInProgressDelete = "allow-in-progress-delete",
        /// Allow an update while an operation is in progress.
        AllowInProgressUpdate = "allow-in-progress-update",
        /// Park an Available or Reserved Server (power off, state `Parked`).
        Park = "park",
        /// Return a parked Server to Available or Reserved.
        Unpark = "unpark",
        /// Redfish `ComputerSystem.Reset` with `GracefulRestart`.
        GracefulRestartServer = "graceful-restart-server",
        /// Redfish `ComputerSystem.Reset` with `ForceRestart`.
        HardRestartServer = "hard-restart-server",
        /// Redfish `ComputerSystem.Reset` with `PowerCycle`.
        PowerCycleServer = "power-cycle-server",
        /// Redfish `ComputerSystem.Reset` with `ForceOff`.
        ForceOffServer = "force-off-server",
        /// Redfish `ComputerSystem.Reset` with `ForceOn`.
        ForceOnServer = "force-on-server",
        /// Redfish `Manager.Reset` with `GracefulRestart`.
        GracefulRestartBmc = "graceful-restart-bmc",
        /// Internal: the Redfish BMC reset failed with 5xx; reset over SSH next.
        ForceSshResetBmc = "force-ssh-reset-bmc",
    }
}

impl Operation {
    /// The Redfish `ResetType` this operation maps to (upstream's `AnnotationToRedfishMapping`).
    /// `GracefulRestartBmc` maps to a Manager reset; the others to a ComputerSystem reset.
    pub fn redfish_reset_type(&self) -> Option<&'static str> {
        match self {
            Self::GracefulRestartServer | Self::GracefulRestartBmc => Some("GracefulRestart"),
            Self::HardRestartServer => Some("ForceRestart"),
            Self::PowerCycleServer => Some("PowerCycle"),
            Self::ForceOffServer => Some("ForceOff"),
            Self::ForceOnServer => Some("ForceOn"),
            _ => None,
        }
    }
}

// ---- Other annotations and labels ----

/// Controller-owned durable marker (value `"true"`) that a Server is parked.
pub const PARKED_ANNOTATION: &str = "metal.ironcore.dev/parked";
/// Records the Server state before parking, so unpark can resume it.
pub const PRE_PARK_STATE_ANNOTATION: &str = "metal.ironcore.dev/pre-park-state";
/// Marks operator-owned objects; value [`TYPE_INTERNAL`] on the discovery ServerBootConfiguration.
pub const TYPE_ANNOTATION: &str = "metal.ironcore.dev/type";
/// Value of [`TYPE_ANNOTATION`] on the discovery ServerBootConfiguration (only these are auto-deleted).
pub const TYPE_INTERNAL: &str = "Internal";
/// Informational annotation (value `"true"`) on the discovery ServerBootConfiguration.
pub const IS_DEFAULT_OS_IMAGE_ANNOTATION: &str = "metal.ironcore.dev/is-default-os-image";
/// The string `"true"` used as annotation value by the markers above.
pub const ANNOTATION_TRUE: &str = "true";
/// Prefix of Server labels/annotations exported (prefix stripped) by the metaldata service.
pub const METADATA_KEY_PREFIX: &str = "metadata.metal.ironcore.dev/";
/// Predefined metadata label: location.
pub const METADATA_LOCATION_LABEL: &str = "metadata.metal.ironcore.dev/location";
/// Predefined metadata label: rack.
pub const METADATA_RACK_LABEL: &str = "metadata.metal.ironcore.dev/rack";
/// Predefined metadata label: shelf.
pub const METADATA_SHELF_LABEL: &str = "metadata.metal.ironcore.dev/shelf";
/// Predefined metadata label: height.
pub const METADATA_HEIGHT_LABEL: &str = "metadata.metal.ironcore.dev/height";
/// Header the metaldata service requires on every request.
pub const METADATA_FLAVOR_HEADER: &str = "Metadata-Flavor";
/// Value of [`METADATA_FLAVOR_HEADER`].
pub const METADATA_FLAVOR_VALUE: &str = "IronCore Metal";
/// Prefix of the Server annotation `<prefix><rule name>: "true"` a BootstrapOnly readiness rule records.
pub const BOOTSTRAP_COMPLETED_ANNOTATION_PREFIX: &str =
    "readiness.metal.ironcore.dev/bootstrap-completed-";

/// The annotation a BootstrapOnly ServerReadinessRule named `rule` sets on a Server when done.
pub fn bootstrap_completed_annotation(rule: &str) -> String {
    format!("{BOOTSTRAP_COMPLETED_ANNOTATION_PREFIX}{rule}")
}

// ---- Secrets ----

/// Secret type required for `ServerClaim.spec.userDataRef`.
pub const USER_DATA_SECRET_TYPE: &str = "metal.ironcore.dev/user-data";
/// Key of the ignition document in an ignition Secret (boot-operator requires it).
pub const IGNITION_KEY: &str = "ignition";
/// Key naming the ignition document's format.
pub const IGNITION_FORMAT_KEY: &str = "format";
/// Value of [`IGNITION_FORMAT_KEY`]: Butane YAML, Fedora CoreOS variant.
pub const IGNITION_FORMAT_FCOS: &str = "fcos";
/// Key of the PEM private key in the discovery `<server>-ssh` Secret.
pub const SSH_SECRET_PRIVATE_KEY: &str = "pem";
/// Key of the authorized_keys line in the discovery `<server>-ssh` Secret.
pub const SSH_SECRET_PUBLIC_KEY: &str = "pub";
/// Key of the password in the discovery `<server>-ssh` Secret.
pub const SSH_SECRET_PASSWORD_KEY: &str = "password";
/// Key of the username in a BMCSecret.
pub const BMC_SECRET_USERNAME_KEY: &str = "username";
/// Key of the password in a BMCSecret.
pub const BMC_SECRET_PASSWORD_KEY: &str = "password";

/// Server-side apply field manager of the upstream operator.
pub const FIELD_MANAGER: &str = "metal.ironcore.dev/controller-manager";

/// Condition types and reasons upstream writes.
pub mod conditions {
    /// Server: a power-on was issued.
    pub const POWERING_ON: &str = "PoweringOn";
    /// Reason of [`POWERING_ON`].
    pub const REASON_SERVER_POWER_ON: &str = "ServerPowerOn";
    /// Server: waiting for the BMC to confirm power-off before releasing.
    pub const WAITING_FOR_POWER_OFF: &str = "WaitingForPowerOff";
    /// Reason of [`WAITING_FOR_POWER_OFF`] while waiting.
    pub const REASON_WAITING_FOR_POWER_OFF: &str = "WaitingForPowerOff";
    /// Reason of [`WAITING_FOR_POWER_OFF`]=False once Off is confirmed.
    pub const REASON_POWER_OFF_CONFIRMED: &str = "PowerOffConfirmed";

    /// BMC: reachable and authenticated.
    pub const READY: &str = "Ready";
    /// Ready=True reason.
    pub const REASON_CONNECTED: &str = "Connected";
    /// Ready=False reason: HTTP 401.
    pub const REASON_AUTHENTICATION_FAILED: &str = "AuthenticationFailed";
    /// Ready=False reason: HTTP 500.
    pub const REASON_INTERNAL_SERVER_ERROR: &str = "InternalServerError";
    /// Ready=False reason: HTTP 503 or no connection.
    pub const REASON_CONNECTION_FAILED: &str = "ConnectionFailed";
    /// Ready=False reason: anything else.
    pub const REASON_UNKNOWN_ERROR: &str = "UnknownError";
    /// BMC: a reset is in progress.
    pub const RESET: &str = "Reset";
    /// Reset reason: requested through the operation annotation.
    pub const REASON_USER_REQUESTED: &str = "UserRequested";
    /// Reset reason: automatic reset after persistent failures.
    pub const REASON_AUTO_RESETTING: &str = "AutoResetting";
    /// Reset reason: reset finished.
    pub const REASON_RESET_COMPLETE: &str = "ResetComplete";

    /// ServerBootConfiguration: the booted OS posted `/bootstate` to the registry.
    pub const BOOT_STATE_RECEIVED: &str = "BootStateReceived";
    /// Reason of [`BOOT_STATE_RECEIVED`].
    pub const REASON_BOOT_STATE_RECEIVED: &str = "BootStateReceived";
    /// ServerBootConfiguration (boot-operator): the image could not be resolved.
    pub const IMAGE_VALIDATION: &str = "ImageValidation";
    /// Reason of [`IMAGE_VALIDATION`]=False.
    pub const REASON_VALIDATION_FAILED: &str = "ValidationFailed";
    /// ServerBootConfiguration (boot-operator): the iPXE script was fetched.
    pub const IPXE_SCRIPT_FETCHED: &str = "IPXEScriptFetched";
    /// ServerBootConfiguration (boot-operator): the ignition data was fetched.
    pub const IGNITION_DATA_FETCHED: &str = "IgnitionDataFetched";
}

/// Event reasons upstream emits.
pub mod events {
    /// `park` requested on a Server in a state that cannot park now.
    pub const PARK_DEFERRED: &str = "ParkDeferred";
    /// An operation annotation was dropped because the Server is parked.
    pub const PARKED_OPERATION_DROPPED: &str = "ParkedOperationDropped";
}
