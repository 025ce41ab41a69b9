//! OCI images: generated boot images, the read-only registry serving them, and resolution of references.

pub mod catalog;
pub mod http_resolver;
pub mod media;
pub mod reference;
pub mod registry;
pub mod registry_auth;
pub mod registry_tls;
pub mod resolve;

pub use catalog::{BlobSizes, Catalog, ImageSpec, LayerKind, MediaStyle, PlatformSpec, names};
pub use http_resolver::HttpResolver;
pub use registry::Registry;
pub use registry_tls::RegistryCa;
pub use resolve::{ImageResolver, Layer, OciClientResolver, ResolveError, ResolvedImage};
