//! `sim-bmc --fleet fleet.yaml`: serves a simulated BMC fleet and prints each BMC's address and credentials.
//! Its machines have no boot server; `sim-bmc-netboot` (crate netboot) is the same with network boot.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    sim_bmc::cli::main(None).await
}
