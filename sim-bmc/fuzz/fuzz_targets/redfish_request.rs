//! Redfish request handling: arbitrary method, path, headers and body (see `harness.rs`) against a
//! fresh in-process BMC of each vendor flavour.
#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::run(data));
