//! `sha256:<hex>` digests and the artifact URLs that pin them: boot-operator's
//! `<base>/image?imageName=…&version=…&layerDigest=…` and the HTTP-boot
//! `<base>/httpboot/<registry>/<repository>/sha256-<hex>.efi`. The backend builds them, the backend's
//! server and the firmware parse them back.

use sha2::{Digest, Sha256};
use url::Url;

use crate::reference::ImageRef;

/// The query parameter of an artifact URL that names the layer's digest.
pub const LAYER_DIGEST_PARAM: &str = "layerDigest";

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// `sha256-<hex>.efi`: the file name of an HTTP-boot UKI with digest `sha256:<hex>`.
pub fn uki_file_name(digest: &str) -> String {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    format!("sha256-{hex}.efi")
}

/// The digest a `sha256-<hex>.efi` file name pins.
pub fn digest_of_uki_file(file: &str) -> Option<String> {
    let hex = file.strip_prefix("sha256-")?.strip_suffix(".efi")?;
    Some(format!("sha256:{hex}"))
}

/// `<base>/image?imageName=…&version=…&layerDigest=…`, boot-operator's artifact URL shape (percent-encoded).
pub fn artifact_url(base: &str, image: &ImageRef, digest: &str) -> String {
    let image_name = format!("{}/{}", image.registry(), image.repository());
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("imageName", &image_name)
        .append_pair("version", image.version())
        .append_pair(LAYER_DIGEST_PARAM, digest)
        .finish();
    format!("{base}/image?{query}")
}

/// `<base>/httpboot/<registry>/<repository>/sha256-<hex>.efi`, boot-operator's UKI URL shape.
pub fn uki_url(base: &str, image: &ImageRef, digest: &str) -> String {
    format!(
        "{base}/httpboot/{}/{}/{}",
        image.registry(),
        image.repository(),
        uki_file_name(digest)
    )
}

/// The digest a URL pins: the `layerDigest` query parameter or an HTTP-boot `sha256-<hex>.efi` path.
pub fn pinned_digest(url: &str) -> Option<String> {
    let url = Url::parse(url).ok()?;
    if let Some((_, digest)) = url.query_pairs().find(|(k, _)| k == LAYER_DIGEST_PARAM) {
        return Some(digest.into_owned());
    }
    digest_of_uki_file(url.path_segments()?.next_back()?)
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
    fn built_urls_pin_their_digest() {
        let image = ImageRef::parse("registry.test:5000/ironcore/os:1.0").unwrap();
        let digest = sha256_digest(b"kernel");
        let artifact = artifact_url("http://boot", &image, &digest);
        assert_eq!(
            artifact,
            format!(
                "http://boot/image?imageName=registry.test%3A5000%2Fironcore%2Fos&version=1.0&layerDigest={}",
                digest.replace(':', "%3A")
            )
        );
        assert_eq!(pinned_digest(&artifact), Some(digest.clone()));
        let uki = uki_url("http://boot", &image, &digest);
        assert_eq!(
            uki,
            format!(
                "http://boot/httpboot/registry.test:5000/ironcore/os/sha256-{}.efi",
                &digest["sha256:".len()..]
            )
        );
        assert_eq!(pinned_digest(&uki), Some(digest));
        assert_eq!(pinned_digest("http://b/ipxe/1"), None);
        assert_eq!(digest_of_uki_file("boot.efi"), None);
    }
}
