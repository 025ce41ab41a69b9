//! The metal-operator's server lifecycle in Rust: BMCs, Servers, claims and boot configurations.
//! It consumes ServerBootConfigurations and never powers a server on before its SBC is Ready
//! for the current generation (the strict readiness gate). Start it in-process with [`run`].

pub mod bindings;
pub mod conditions;
pub mod config;
pub mod context;
pub mod controllers;
pub mod discovery;
pub mod dns;
pub mod error;
pub mod events;
pub mod gate;
pub mod keys;
pub mod leader;
pub mod macdb;
pub mod metrics;
pub mod probe_registry;
pub mod probes;
pub mod redfish;
mod runtime;
pub mod selector;
pub mod serverevents;
pub mod template;

pub use runtime::{OperatorHandle, Options, run};
