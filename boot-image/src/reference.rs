//! Image references: `spec.image` parsed once (Docker normalisation by `oci-spec`, the parser oci-client uses)
//! into an [`ImageRef`] that travels typed to the resolver and the artifact URLs; and the registry allowlist.

use std::fmt;

pub use oci_spec::distribution::Reference;

/// A parsed `spec.image`, normalised: a digest wins over a tag (it pins content); neither means `latest`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageRef {
    /// None only for [`ImageRef::unparsed`].
    reference: Option<Reference>,
    /// `registry/repository:tag` or `registry/repository@digest` (or the text as written, when unparsed).
    canonical: String,
}

impl ImageRef {
    /// Parses an OCI reference; a reference with neither tag nor digest means `latest`.
    pub fn parse(image: &str) -> Result<Self, String> {
        if image.trim().is_empty() {
            return Err("spec.image is empty".into());
        }
        let parsed: Reference = image
            .parse()
            .map_err(|e| format!("{image:?} is not a valid OCI reference: {e}"))?;
        let (registry, repository) = (parsed.registry().into(), parsed.repository().into());
        let reference = match (parsed.digest(), parsed.tag()) {
            (Some(digest), _) => Reference::with_digest(registry, repository, digest.into()),
            (None, tag) => {
                Reference::with_tag(registry, repository, tag.unwrap_or("latest").into())
            }
        };
        Ok(Self {
            canonical: reference.whole(),
            reference: Some(reference),
        })
    }

    /// An image text that did not parse, kept as written for a backend that goes on as if it had (the
    /// `ready-on-bad-image` misbehaviour); registry, repository and version are empty, and resolving it fails.
    pub fn unparsed(image: &str) -> Self {
        Self {
            reference: None,
            canonical: image.to_string(),
        }
    }

    /// The OCI reference, for a distribution client; None for [`ImageRef::unparsed`].
    pub fn oci(&self) -> Option<&Reference> {
        self.reference.as_ref()
    }

    /// The registry host (`docker.io` for Docker Hub references).
    pub fn registry(&self) -> &str {
        self.reference.as_ref().map_or("", Reference::registry)
    }

    /// The repository path inside the registry.
    pub fn repository(&self) -> &str {
        self.reference.as_ref().map_or("", Reference::repository)
    }

    /// The digest when the reference has one, else the tag.
    pub fn version(&self) -> &str {
        self.reference
            .as_ref()
            .and_then(|r| r.digest().or(r.tag()))
            .unwrap_or("")
    }

    /// `registry/repository:tag` or `registry/repository@digest`.
    pub fn canonical(&self) -> &str {
        &self.canonical
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.canonical)
    }
}

/// Parses an OCI reference (see [`ImageRef::parse`]).
pub fn parse(image: &str) -> Result<ImageRef, String> {
    ImageRef::parse(image)
}

const DOCKER_HUB_ALIASES: [&str; 3] = ["docker.io", "index.docker.io", "registry-1.docker.io"];

fn normalise_registry(host: &str) -> &str {
    if DOCKER_HUB_ALIASES.contains(&host) {
        "docker.io"
    } else {
        host
    }
}

/// Whether `registry` is in `allowed` (Docker Hub aliases are one registry). An empty list allows everything.
pub fn registry_allowed(registry: &str, allowed: &[String]) -> bool {
    allowed.is_empty()
        || allowed
            .iter()
            .any(|a| normalise_registry(a.trim()) == normalise_registry(registry))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tags_digests_and_defaults() {
        let r = parse("127.0.0.1:5000/ironcore/os:1.0").unwrap();
        assert_eq!(
            (r.registry(), r.repository(), r.version()),
            ("127.0.0.1:5000", "ironcore/os", "1.0")
        );
        let digest = format!("sha256:{}", "a".repeat(64));
        let r = parse(&format!("ghcr.io/x/y:1@{digest}")).unwrap();
        assert_eq!(r.version(), digest);
        assert_eq!(r.canonical(), format!("ghcr.io/x/y@{digest}"));
        assert_eq!(r.oci().unwrap().tag(), None, "the digest wins");
        assert_eq!(
            parse("ubuntu").unwrap().canonical(),
            "docker.io/library/ubuntu:latest"
        );
        assert!(parse("").is_err());
        assert!(parse("has spaces/x:1").is_err());
        assert!(parse("x:bad tag!").is_err());
        let bad = ImageRef::unparsed("x:bad tag!");
        assert_eq!(
            (bad.canonical(), bad.registry(), bad.version()),
            ("x:bad tag!", "", "")
        );
        assert!(bad.oci().is_none());
    }

    #[test]
    fn allowlist_normalises_docker_hub() {
        let allowed = vec!["ghcr.io".to_string(), "index.docker.io".to_string()];
        assert!(registry_allowed("ghcr.io", &allowed));
        assert!(registry_allowed("docker.io", &allowed));
        assert!(!registry_allowed("quay.io", &allowed));
        assert!(registry_allowed("quay.io", &[]));
    }
}
