//! `sim-bmc-netboot --fleet fleet.yaml`: `sim-bmc` whose machines network-boot through netboot (iPXE or
//! UEFI HTTP from the fleet's `bootNetwork` URLs, then the OS and the discovery probe), as in a cluster.

use std::process::ExitCode;
use std::sync::Arc;

#[tokio::main]
async fn main() -> ExitCode {
    let netboot = netboot::Netboot::new(netboot::NetbootOptions::default());
    sim_bmc::cli::main(Some(Arc::new(netboot))).await
}
