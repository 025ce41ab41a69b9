//! The conformance suite that certifies a boot backend against the ServerBootConfiguration contract.
//! Rules are data (ID, level, profile, purpose) next to the checks, so the report and CONTRACT.md cannot drift.
//! Runs on the embedded API server by default, or against any cluster through a kubeconfig.
