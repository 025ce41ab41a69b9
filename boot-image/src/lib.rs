//! The boot image format both sides of a network boot speak: layer media types, the generated artifacts'
//! header and magic words, digest-pinning artifact URLs, and the typed image reference. A crate of its own
//! (not in `metal-api`) because only sim-boot and netboot need it, and `oci-spec` should not reach every crate.

pub mod digest;
pub mod header;
pub mod media;
pub mod reference;

pub use digest::sha256_digest;
pub use header::ArtifactHeader;
pub use media::{LayerKind, MediaStyle};
pub use reference::ImageRef;
