//! A fleet of simulated Redfish BMCs, each owning a simulated machine with power and boot behaviour.
//! Real Redfish clients cannot tell it from a vendor BMC; faults can be injected per BMC and endpoint,
//! and every machine keeps an event log that tests use as independent evidence.

// Handlers return a finished HTTP response as their error value; boxing it would only add noise.
#![allow(clippy::result_large_err)]

pub mod bmc;
pub mod boot;
pub mod cli;
pub mod error;
pub mod fault;
pub mod fleet;
pub mod machine;
pub mod metrics;
pub mod redfish;
pub mod tls;
pub mod vendor;

pub use error::Error;
pub use fleet::{BindMode, BmcInfo, Fleet, FleetHandle, FleetOptions, FleetSpec, SystemInfo};
pub use machine::{BootedOsSummary, MachineEvent, MachineEventKind, MachineHandle, PowerState};
