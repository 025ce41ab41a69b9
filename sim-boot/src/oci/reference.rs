//! Image references: parsing with Docker normalisation (via `oci-client`) and the registry allowlist.

use oci_client::Reference;

/// A parsed `spec.image`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageRef {
    /// The registry host (`docker.io` for Docker Hub references).
    pub registry: String,
    /// The repository path inside the registry.
    pub repository: String,
    /// The tag, or the digest when the reference has one (the digest wins: it pins content).
    pub version: String,
    /// `registry/repository:tag` or `registry/repository@digest`.
    pub canonical: String,
}

/// Parses an OCI reference; a reference with neither tag nor digest means `latest`.
pub fn parse(image: &str) -> Result<ImageRef, String> {
    if image.trim().is_empty() {
        return Err("spec.image is empty".into());
    }
    let reference: Reference = image
        .parse()
        .map_err(|e| format!("{image:?} is not a valid OCI reference: {e}"))?;
    let registry = reference.registry().to_string();
    let repository = reference.repository().to_string();
    let (version, canonical) = match (reference.digest(), reference.tag()) {
        (Some(digest), _) => (
            digest.to_string(),
            format!("{registry}/{repository}@{digest}"),
        ),
        (None, tag) => {
            let tag = tag.unwrap_or("latest");
            (tag.to_string(), format!("{registry}/{repository}:{tag}"))
        }
    };
    Ok(ImageRef {
        registry,
        repository,
        version,
        canonical,
    })
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
            (
                r.registry.as_str(),
                r.repository.as_str(),
                r.version.as_str()
            ),
            ("127.0.0.1:5000", "ironcore/os", "1.0")
        );
        let digest = format!("sha256:{}", "a".repeat(64));
        let r = parse(&format!("ghcr.io/x/y:1@{digest}")).unwrap();
        assert_eq!(r.version, digest);
        assert_eq!(r.canonical, format!("ghcr.io/x/y@{digest}"));
        assert_eq!(
            parse("ubuntu").unwrap().canonical,
            "docker.io/library/ubuntu:latest"
        );
        assert!(parse("").is_err());
        assert!(parse("has spaces/x:1").is_err());
        assert!(parse("x:bad tag!").is_err());
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
