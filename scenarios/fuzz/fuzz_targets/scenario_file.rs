//! The scenario file loader (`metal-harness validate` and the first step of `run`) on arbitrary text.
#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::run(data));
