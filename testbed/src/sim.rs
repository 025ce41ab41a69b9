//! The stack the paused-clock tests start: everything in process (no socket), a fleet whose BMCs are
//! registered as BMC objects, and the operator. One place, so those tests differ only in what they check.

use operator::config::Config;
use sim_bmc::fleet::FleetSpec;

use crate::{FleetSetup, OperatorSetup, Testbed, TestbedBuilder, Transport};

/// A builder for the in-process API server, `fleet` (with its BMC objects) and the operator with `config`;
/// add a clock, a seed or a backend before `start`.
pub fn fleet_and_operator(fleet: FleetSpec, config: Config) -> TestbedBuilder {
    Testbed::builder()
        .transport(Transport::InProcess)
        .fleet(FleetSetup::in_process(fleet))
        .bmc_objects()
        .operator(OperatorSetup::new(config))
}
