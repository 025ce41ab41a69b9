//! Redfish client used by the BMC, Server and Endpoint controllers (and reusable by tests).

mod client;
mod error;
mod transport;
pub mod types;

pub use client::{AuthMode, ClientOptions, Credentials, RedfishClient};
pub use error::{RedfishError, reason};
pub use transport::{
    HttpService, RequestBody, TlsVerification, hyper_transport, service_transport,
};
pub use types::ResetType;
