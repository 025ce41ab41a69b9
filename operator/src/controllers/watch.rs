//! The controllers' watches: per-watch fast backoff and fingerprinted triggers, shared with sim-boot
//! in the `watches` crate.

pub use watches::*;
