//! Checks firmware applies to every download: HTTP status, Content-Length, the digest the URL or the
//! server names, and the image header (kind and architecture) of generated boot artifacts.

use bytes::Bytes;
use sha2::{Digest, Sha256};
use url::Url;

use http_client::Fetched;

/// `sha256:<hex>` of `bytes`.
pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// The digest a URL pins: boot-operator's `layerDigest` query parameter or an HTTP-boot `sha256-<hex>.efi` path.
pub fn pinned_digest(url: &str) -> Option<String> {
    let url = Url::parse(url).ok()?;
    if let Some((_, digest)) = url.query_pairs().find(|(k, _)| k == "layerDigest") {
        return Some(digest.into_owned());
    }
    let file = url.path_segments()?.next_back()?;
    let hex = file.strip_prefix("sha256-")?.strip_suffix(".efi")?;
    Some(format!("sha256:{hex}"))
}

/// Status, length and digest checks of one download.
pub fn check_download(url: &str, response: &Fetched) -> Result<Bytes, String> {
    if !response.status.is_success() {
        let body = String::from_utf8_lossy(&response.body[..response.body.len().min(200)])
            .trim()
            .to_string();
        return Err(format!("GET {url}: {} {body}", response.status));
    }
    if let Some(length) = response
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        && length.parse::<usize>().ok() != Some(response.body.len())
    {
        return Err(format!(
            "GET {url}: Content-Length {length} but {} bytes received",
            response.body.len()
        ));
    }
    let actual = sha256(&response.body);
    if let Some(expected) = pinned_digest(url)
        && expected != actual
    {
        return Err(format!(
            "GET {url}: digest mismatch: the URL pins {expected}, the content is {actual}"
        ));
    }
    if let Some(announced) = response
        .headers
        .get("docker-content-digest")
        .and_then(|v| v.to_str().ok())
        && announced != actual
    {
        return Err(format!(
            "GET {url}: digest mismatch: Docker-Content-Digest says {announced}, the content is {actual}"
        ));
    }
    Ok(response.body.clone())
}

/// The header line of a generated artifact: `<MAGIC> v1 arch=<arch> image=<ref> [cmdline=…]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArtifactHeader {
    pub magic: String,
    pub architecture: String,
    pub image: String,
    pub cmdline: Option<String>,
}

pub fn header(bytes: &[u8]) -> Option<ArtifactHeader> {
    let end = bytes.iter().take(4096).position(|&b| b == b'\n')?;
    let line = std::str::from_utf8(&bytes[..end]).ok()?;
    let (magic, rest) = line.split_once(' ')?;
    let rest = rest.strip_prefix("v1 ")?;
    let (fields, cmdline) = match rest.split_once(" cmdline=") {
        Some((fields, cmdline)) => (fields, Some(cmdline.to_string())),
        None => (rest, None),
    };
    let field = |name: &str| {
        fields
            .split(' ')
            .find_map(|f| f.strip_prefix(name))
            .map(str::to_string)
    };
    Some(ArtifactHeader {
        magic: magic.into(),
        architecture: field("arch=")?,
        image: field("image=")?,
        cmdline,
    })
}

/// Checks that `bytes` is a `magic` artifact for `architecture`.
pub fn check_artifact(
    what: &str,
    url: &str,
    bytes: &[u8],
    magic: &str,
    architecture: &str,
) -> Result<ArtifactHeader, String> {
    let header = header(bytes)
        .filter(|h| h.magic == magic)
        .ok_or_else(|| format!("{what} from {url} is not a bootable {magic} image (bad magic)"))?;
    if header.architecture != architecture {
        return Err(format!(
            "{what} from {url} is built for {}, this machine is {architecture}",
            header.architecture
        ));
    }
    Ok(header)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_from_urls() {
        let d = format!("sha256:{}", "ab".repeat(32));
        assert_eq!(
            pinned_digest(&format!(
                "http://b/image?imageName=x&version=1&layerDigest={}",
                d.replace(':', "%3A")
            )),
            Some(d.clone())
        );
        assert_eq!(
            pinned_digest(&format!(
                "http://b/httpboot/r/x/sha256-{}.efi",
                "ab".repeat(32)
            )),
            Some(d)
        );
        assert_eq!(pinned_digest("http://b/ipxe/1"), None);
    }

    #[test]
    fn headers() {
        let h = header(b"SIMUKI v1 arch=arm64 image=a/b:1 cmdline=x=1 y=${uuid}\nrest").unwrap();
        assert_eq!(
            (h.magic.as_str(), h.architecture.as_str(), h.image.as_str()),
            ("SIMUKI", "arm64", "a/b:1")
        );
        assert_eq!(h.cmdline.as_deref(), Some("x=1 y=${uuid}"));
        assert!(
            check_artifact(
                "kernel",
                "u",
                b"SIMKERNEL v1 arch=amd64 image=a:1\n",
                "SIMKERNEL",
                "arm64"
            )
            .unwrap_err()
            .contains("built for amd64")
        );
        assert!(
            check_artifact("kernel", "u", b"\x7fELF", "SIMKERNEL", "amd64")
                .unwrap_err()
                .contains("bad magic")
        );
    }
}
