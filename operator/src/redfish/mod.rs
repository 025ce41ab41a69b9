//! Redfish client used by the BMC, Server and Endpoint controllers (and reusable by tests).

mod client;
mod error;
mod etag;
mod retry;
mod session;
mod transport;
pub mod types;
mod wire;

pub use client::{ClientOptions, RedfishClient};
pub use error::RedfishError;
pub use session::{AuthMode, Credentials};
pub use transport::{
    HttpService, RequestBody, TlsVerification, hyper_transport, service_transport,
};
pub use types::ResetType;
