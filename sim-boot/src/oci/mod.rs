//! OCI images: generated boot images, the read-only registry serving them, and resolution of references.

pub mod catalog;
pub mod http_resolver;
pub mod registry_auth;
pub mod registry_server;
pub mod registry_tls;
pub mod resolve;

// The format's one home is the boot-image crate; re-exported because conformance and the tests name it here.
pub use boot_image::{media, reference};
pub use catalog::{BlobSizes, Catalog, ImageSpec, LayerKind, MediaStyle, PlatformSpec, names};
pub use http_resolver::HttpResolver;
pub use registry_server::Registry;
pub use registry_tls::RegistryCa;
pub use resolve::{ImageResolver, Layer, OciClientResolver, ResolveError, ResolvedImage};
