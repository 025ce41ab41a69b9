//! Redfish client used by the BMC, Server and Endpoint controllers (and reusable by tests).

mod client;
mod error;
mod etag;
mod retry;
mod session;
mod transport;
pub mod types;

pub use client::{ClientOptions, Credentials, RedfishClient};
pub use error::{RedfishError, reason};
pub use session::AuthMode;
pub use transport::{
    HttpService, RequestBody, TlsVerification, hyper_transport, service_transport,
};
pub use types::ResetType;
