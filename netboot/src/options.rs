//! Configuration of the simulated firmware and of the OS it boots, shared by both (its own module so that the
//! OS need not import the firmware that starts it).

use std::sync::Arc;

use crate::facts::{DerivedFacts, MachineFacts};
use crate::probe::ProbeOptions;
use http_client::HttpClient;

/// Configuration of the simulated firmware and OS.
#[derive(Clone)]
pub struct NetbootOptions {
    /// Transport for every download and for the probe (real sockets by default; `InProcessNet::client()`
    /// reaches in-process servers by the host names written into boot scripts and ignition).
    pub http: HttpClient,
    /// NICs and LLDP the OS reports.
    pub facts: Arc<dyn MachineFacts>,
    /// Images (`repository:tag`, as the kernel header names them, or a suffix of a full reference) whose OS
    /// runs the discovery probe; empty means any image whose ignition starts metalprobe.
    pub probe_images: Vec<String>,
    pub probe: ProbeOptions,
    /// Stamps the probe's reports (`Clock::wall()` by default).
    pub clock: clock::Clock,
}

impl Default for NetbootOptions {
    fn default() -> Self {
        Self {
            http: HttpClient::hyper(),
            facts: Arc::new(DerivedFacts),
            probe_images: vec![],
            probe: ProbeOptions::default(),
            clock: clock::Clock::wall(),
        }
    }
}
