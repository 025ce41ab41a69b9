//! The conformance suite that certifies a boot backend against the ServerBootConfiguration contract.
//! Rules are data (ID, level, profile, purpose) next to the checks, so the report and CONTRACT.md cannot drift.
//! Runs on the embedded API server by default, or against any cluster through a kubeconfig.

pub mod boot_net;
pub mod certify;
pub mod checks;
pub mod cli;
pub mod contract;
pub mod ctx;
pub mod embedded;
pub mod fixtures;
pub mod history;
pub mod level;
pub mod outcome;
pub mod pods;
pub mod progress;
pub mod proxy;
pub mod recorder;
pub mod report;
pub mod rules;
pub mod runner;
pub mod simboot;
pub mod stats;
pub mod supervisor;
pub mod target;
pub mod timeouts;
