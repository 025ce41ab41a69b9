//! The reference boot backend: resolves OCI boot images, serves iPXE/ignition/artifacts over HTTP,
//! and sets ServerBootConfiguration status honestly. Switchable misbehaviour modes imitate real bugs
//! so the conformance suite can prove it catches each of them.

pub mod backend;
pub mod bytes_response;
pub mod controller;
pub mod ignition;
pub mod misbehaviour;
pub mod oci;
pub mod records;
pub mod serve;
pub mod single_flight;

pub use backend::{Backend, BackendHandle, BackendOptions, EmbeddedRegistry, ResolverKind};
pub use controller::{BootModes, ControllerOptions};
pub use misbehaviour::{Misbehaviour, MisbehaviourOptions};
