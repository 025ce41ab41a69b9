//! The reference boot backend: resolves OCI boot images, serves iPXE/ignition/artifacts over HTTP,
//! and sets ServerBootConfiguration status honestly. Switchable misbehaviour modes imitate real bugs
//! so the conformance suite can prove it catches each of them.

pub mod bytes_response;
pub mod http_client;
pub mod ignition;
pub mod oci;
