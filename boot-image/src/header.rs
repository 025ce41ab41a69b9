//! The header line of a generated artifact: `<MAGIC> v1 arch=<arch> image=<ref>[ cmdline=…]\n`, followed by
//! the artifact's payload. sim-boot's catalog writes it; netboot reads it to check kind and architecture.

use crate::media::LayerKind;

/// How far into an artifact the header's newline may be.
const MAX_HEADER: usize = 4096;

/// The parsed header of a generated artifact.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArtifactHeader {
    /// The magic word as written (see [`LayerKind::magic`]); an unknown one is kept so it can be reported.
    pub magic: String,
    pub architecture: String,
    /// The image the artifact belongs to, `repository:tag`.
    pub image: String,
    /// A UKI's kernel command line.
    pub cmdline: Option<String>,
}

impl ArtifactHeader {
    pub fn new(kind: LayerKind, architecture: &str, image: &str, cmdline: Option<&str>) -> Self {
        Self {
            magic: kind.magic().to_string(),
            architecture: architecture.to_string(),
            image: image.to_string(),
            cmdline: cmdline.map(str::to_string),
        }
    }

    /// The layer kind the magic word names, if it is one of the harness's.
    pub fn kind(&self) -> Option<LayerKind> {
        LayerKind::from_magic(&self.magic)
    }

    /// The header line, newline included.
    pub fn render(&self) -> String {
        let mut line = format!(
            "{} v1 arch={} image={}",
            self.magic, self.architecture, self.image
        );
        if let Some(cmdline) = &self.cmdline {
            line.push_str(" cmdline=");
            line.push_str(cmdline);
        }
        line.push('\n');
        line
    }

    /// The header at the start of `bytes`, or None when they do not start with one (a real artifact).
    pub fn parse(bytes: &[u8]) -> Option<Self> {
        let end = bytes.iter().take(MAX_HEADER).position(|&b| b == b'\n')?;
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
        Some(Self {
            magic: magic.into(),
            architecture: field("arch=")?,
            image: field("image=")?,
            cmdline,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_render_and_parse() {
        let h =
            ArtifactHeader::parse(b"SIMUKI v1 arch=arm64 image=a/b:1 cmdline=x=1 y=${uuid}\nrest")
                .unwrap();
        assert_eq!(
            (h.magic.as_str(), h.architecture.as_str(), h.image.as_str()),
            ("SIMUKI", "arm64", "a/b:1")
        );
        assert_eq!(h.cmdline.as_deref(), Some("x=1 y=${uuid}"));
        assert_eq!(h.kind(), Some(LayerKind::Uki));
        let kernel = ArtifactHeader::new(LayerKind::Kernel, "amd64", "os:1", None);
        assert_eq!(kernel.render(), "SIMKERNEL v1 arch=amd64 image=os:1\n");
        assert_eq!(
            ArtifactHeader::parse(kernel.render().as_bytes()),
            Some(kernel)
        );
        let uki = ArtifactHeader::new(LayerKind::Uki, "arm64", "os:1", Some("a=1 b"));
        assert_eq!(ArtifactHeader::parse(uki.render().as_bytes()), Some(uki));
        assert_eq!(ArtifactHeader::parse(b"MZ\x90\0"), None);
        assert_eq!(
            ArtifactHeader::parse(b"SIMKERNEL v2 arch=amd64 image=a\n"),
            None
        );
        assert_eq!(ArtifactHeader::parse(b"SIMKERNEL v1 image=a\n"), None);
    }
}
