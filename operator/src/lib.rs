//! The metal-operator's server lifecycle in Rust: BMCs, Servers, claims and boot configurations.
//! It consumes ServerBootConfigurations and never powers a server on before its SBC is Ready
//! for the current generation (the strict readiness gate).
