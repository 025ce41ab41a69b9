//! The operator of a testbed: how it is configured and reaches the fleet, kept so it can be stopped and started
//! again (an operator restart) with the same settings.

use std::net::SocketAddr;

use operator::config::Config;
use operator::macdb::MacDb;
use operator::redfish::{ClientOptions, TlsVerification};

/// The operator's host on the testbed's in-process network: its probe registry and Redfish event receiver
/// ([`operator::OperatorHandle::router`]). In-process, point `config.registry_url` (and `event_url`) here.
pub const OPERATOR_HOST: &str = "operator.sim.invalid";

/// How to run the operator.
#[derive(Clone)]
pub struct OperatorSetup {
    pub config: Config,
    /// Serve the probe registry on this address (the probe then reaches it over sockets); in-process when None.
    pub registry_listen: Option<SocketAddr>,
    /// Serve the Redfish event receiver here.
    pub event_listen: Option<SocketAddr>,
    pub mac_db: MacDb,
    /// The Redfish client's retry and timeout settings (default: the config's request timeout).
    pub redfish: ClientOptions,
    /// Certificate checks towards BMCs over sockets (default: as the config's `skip_cert_validation` says).
    pub tls: TlsVerification,
    /// Record every Redfish request to an in-process fleet ([`crate::Testbed::redfish_requests`]); off by default
    /// because the log grows with the run.
    pub record_redfish: bool,
    /// Stamps what the operator writes (`Clock::wall()` at start when None).
    pub clock: Option<clock::Clock>,
    /// Seeds the operator's random draws (OS randomness when None).
    pub seed: Option<u64>,
}

impl OperatorSetup {
    pub fn new(config: Config) -> Self {
        let redfish = ClientOptions {
            request_timeout: config.redfish_request_timeout,
            ..ClientOptions::default()
        };
        let tls = match config.skip_cert_validation {
            true => TlsVerification::Skip,
            false => TlsVerification::Verify,
        };
        OperatorSetup {
            tls,
            config,
            registry_listen: None,
            event_listen: None,
            mac_db: MacDb::default(),
            redfish,
            record_redfish: false,
            clock: None,
            seed: None,
        }
    }
}
