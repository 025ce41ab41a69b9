//! The crate's error type.

use std::net::SocketAddr;

/// Errors from loading a fleet file or starting a fleet.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The fleet file is not valid YAML or does not match the schema; the message carries line and column.
    #[error("invalid fleet file: {0}")]
    FleetFile(String),
    /// The fleet file parsed but describes something impossible (e.g. duplicate BMC names).
    #[error("invalid fleet: {0}")]
    InvalidFleet(String),
    /// A BMC or control listener could not bind its loopback address.
    #[error("cannot bind {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    /// Generating or loading the fleet's TLS certificate failed.
    #[error("tls setup failed: {0}")]
    Tls(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}
