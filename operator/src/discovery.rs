//! The discovery boot: the discovery ServerBootConfiguration and its ignition and SSH Secrets,
//! built as upstream does (SBC named after the Server in the manager namespace, annotated
//! `metal.ironcore.dev/type: Internal`; Secrets owned by the SBC).

use std::collections::{BTreeMap, HashMap};

use clock::Entropy;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{LocalObjectReference, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::Resource as _;
use metal_api::{ServerBootConfiguration, ServerBootConfigurationSpec};

use crate::keys;

/// Upstream's default ignition template (`config/ignition-template.yaml`, Apache-2.0).
pub const DEFAULT_IGNITION_TEMPLATE: &str = include_str!("../config/ignition-template.yaml");

/// Generated login material for the discovery OS.
pub struct SshMaterial {
    pub private_pem: String,
    pub public_line: String,
    pub password: String,
    pub password_hash: String,
}

impl SshMaterial {
    /// A fresh Ed25519 key and a 20-character password drawn from `entropy`, as upstream regenerates
    /// on every Initial. (Upstream uses RSA-2048 and bcrypt; Ed25519 and SHA-512-crypt are accepted by
    /// Butane/OpenSSH alike and cost less.)
    pub fn generate(entropy: &Entropy) -> Self {
        let mut seed = [0u8; 32];
        entropy.fill_bytes(&mut seed);
        let pair = ring::signature::Ed25519KeyPair::from_seed_unchecked(&seed)
            .expect("any 32 bytes are an Ed25519 seed");
        let public: [u8; 32] = ring::signature::KeyPair::public_key(&pair)
            .as_ref()
            .try_into()
            .expect("an Ed25519 public key has 32 bytes");
        let pkcs8 = ed25519_pkcs8_v2(&seed, &public);
        let public_line = ssh_key::PublicKey::new(
            ssh_key::public::KeyData::Ed25519(ssh_key::public::Ed25519PublicKey(public)),
            "metal@metal-operator",
        )
        .to_openssh()
        .expect("an Ed25519 key encodes");
        let private_pem =
            pem_rfc7468::encode_string("PRIVATE KEY", pem_rfc7468::LineEnding::LF, &pkcs8)
                .expect("a PKCS#8 document encodes");
        let password = alphanumeric(entropy, 20);
        let password_hash = sha512_crypt(password.as_bytes(), &alphanumeric(entropy, 16));
        Self {
            private_pem,
            public_line,
            password,
            password_hash,
        }
    }
}

/// The PKCS#8 v2 document ring's `generate_pkcs8` writes (RFC 5958/8410: version 1, the Ed25519 OID, the
/// seed, the public key). Hand-written because ring only generates it from its own sealed random source,
/// which a seed cannot drive.
fn ed25519_pkcs8_v2(seed: &[u8; 32], public: &[u8; 32]) -> Vec<u8> {
    const BEFORE_SEED: [u8; 16] = [
        0x30, 0x53, 0x02, 0x01, 0x01, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    const BEFORE_PUBLIC: [u8; 5] = [0xa1, 0x23, 0x03, 0x21, 0x00];
    [&BEFORE_SEED[..], seed, &BEFORE_PUBLIC, public].concat()
}

fn alphanumeric(entropy: &Entropy, len: usize) -> String {
    entropy.string_from(
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
        len,
    )
}

/// Renders upstream's Go-template ignition (`{{.Image}}`, `{{.Flags}}`, `{{.SSHPublicKey}}`,
/// `{{.PasswordHash}}`); the template passed [`crate::template::validate`] at startup.
pub fn render_ignition(
    template: &str,
    probe_image: &str,
    registry_url: &str,
    system_uuid: &str,
    ssh: &SshMaterial,
) -> Result<String, String> {
    let flags = format!("--registry-url={registry_url} --server-uuid={system_uuid}");
    let data = HashMap::from([
        ("Image".to_owned(), gtmpl::Value::from(probe_image)),
        ("Flags".to_owned(), gtmpl::Value::from(flags)),
        (
            "SSHPublicKey".to_owned(),
            gtmpl::Value::from(ssh.public_line.as_str()),
        ),
        (
            "PasswordHash".to_owned(),
            gtmpl::Value::from(ssh.password_hash.as_str()),
        ),
    ]);
    crate::template::render(
        template,
        gtmpl::Value::from(data),
        "the discovery ignition template",
    )
}

/// Digest of the ignition's inputs other than the SSH material (see
/// [`keys::DISCOVERY_IGNITION_INPUTS_ANNOTATION`]).
pub fn ignition_inputs_digest(
    template: &str,
    probe_image: &str,
    registry_url: &str,
    system_uuid: &str,
) -> String {
    use sha2::Digest as _;
    let mut hasher = sha2::Sha256::new();
    for part in [template, probe_image, registry_url, system_uuid] {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part.as_bytes());
    }
    hex::encode(&hasher.finalize()[..16])
}

/// The discovery SBC for a Server (no owner reference, as upstream).
pub fn boot_configuration(
    server_name: &str,
    namespace: &str,
    probe_os_image: &str,
) -> ServerBootConfiguration {
    let mut sbc = ServerBootConfiguration::new(
        server_name,
        ServerBootConfigurationSpec {
            server_ref: LocalObjectReference {
                name: server_name.into(),
            },
            image: Some(probe_os_image.into()),
            ignition_secret_ref: Some(LocalObjectReference {
                name: server_name.into(),
            }),
        },
    );
    sbc.metadata.namespace = Some(namespace.into());
    sbc.metadata.annotations = Some(BTreeMap::from([
        (
            keys::TYPE_ANNOTATION.to_owned(),
            keys::TYPE_INTERNAL.to_owned(),
        ),
        (
            keys::IS_DEFAULT_OS_IMAGE_ANNOTATION.to_owned(),
            keys::ANNOTATION_TRUE.to_owned(),
        ),
    ]));
    sbc
}

/// The ignition Secret `<server>` and the `<server>-ssh` Secret, controller-owned by the SBC.
pub fn secrets(
    sbc: &ServerBootConfiguration,
    ignition: String,
    inputs_digest: &str,
    ssh: &SshMaterial,
) -> [Secret; 2] {
    let name = sbc.metadata.name.clone().unwrap_or_default();
    let owner = OwnerReference {
        api_version: ServerBootConfiguration::api_version(&()).into_owned(),
        kind: ServerBootConfiguration::kind(&()).into_owned(),
        name: name.clone(),
        uid: sbc.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    };
    let secret = |secret_name: String, data: Vec<(&str, String)>| Secret {
        metadata: ObjectMeta {
            name: Some(secret_name),
            namespace: sbc.metadata.namespace.clone(),
            owner_references: Some(vec![owner.clone()]),
            ..ObjectMeta::default()
        },
        type_: Some("Opaque".into()),
        data: Some(
            data.into_iter()
                .map(|(k, v)| (k.to_owned(), ByteString(v.into_bytes())))
                .collect(),
        ),
        ..Secret::default()
    };
    let mut ignition_secret = secret(
        name.clone(),
        vec![
            (keys::IGNITION_KEY, ignition),
            (keys::IGNITION_FORMAT_KEY, keys::IGNITION_FORMAT_FCOS.into()),
        ],
    );
    ignition_secret.metadata.annotations = Some(
        [(
            keys::DISCOVERY_IGNITION_INPUTS_ANNOTATION.to_owned(),
            inputs_digest.to_owned(),
        )]
        .into(),
    );
    [
        ignition_secret,
        secret(
            format!("{name}-ssh"),
            vec![
                (keys::SSH_SECRET_PRIVATE_KEY, ssh.private_pem.clone()),
                (keys::SSH_SECRET_PUBLIC_KEY, ssh.public_line.clone()),
                (keys::SSH_SECRET_PASSWORD_KEY, ssh.password.clone()),
            ],
        ),
    ]
}

/// SHA-512-crypt (`$6$<salt>$<hash>`, the default 5000 rounds, so no `rounds=` field), as
/// `openssl passwd -6` writes it. sha-crypt 0.5: 0.6 always writes `rounds=` and a base64 salt.
pub fn sha512_crypt(password: &[u8], salt: &str) -> String {
    let salt = &salt.as_bytes()[..salt.len().min(16)];
    let params = sha_crypt::Sha512Params::new(5_000).expect("5000 rounds are in range");
    let hash = sha_crypt::sha512_crypt_b64(password, salt, &params)
        .expect("SHA-512-crypt of bytes cannot fail");
    format!("$6${}${hash}", String::from_utf8_lossy(salt))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The default template rendered for image `probe:1` with fresh SSH material.
    fn render_default(registry_url: &str, uuid: &str) -> (String, SshMaterial) {
        let ssh = SshMaterial::generate(&Entropy::os());
        let text = render_ignition(
            DEFAULT_IGNITION_TEMPLATE,
            "probe:1",
            registry_url,
            uuid,
            &ssh,
        );
        (text.unwrap(), ssh)
    }

    #[test]
    fn sha512_crypt_matches_the_reference_vector() {
        // Test vector from the specification (also `openssl passwd -6 -salt saltstring 'Hello world!'`).
        assert_eq!(
            sha512_crypt(b"Hello world!", "saltstring"),
            "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1"
        );
    }

    #[test]
    fn ignition_renders_all_placeholders() {
        let (text, ssh) = render_default("http://reg:10000", "uuid-1");
        assert!(!text.contains("{{"), "unrendered placeholder in {text}");
        assert!(text.contains("--registry-url=http://reg:10000 --server-uuid=uuid-1"));
        assert!(text.contains(&ssh.password_hash));
        assert_eq!(ssh.password.len(), 20);
        assert!(ssh.public_line.starts_with("ssh-ed25519 "));
    }

    #[test]
    fn the_default_ignition_is_the_template_with_its_four_fields_filled_in() {
        let (text, ssh) = render_default("http://reg", "u");
        let substituted = DEFAULT_IGNITION_TEMPLATE
            .replace("{{.Image}}", "probe:1")
            .replace("{{.Flags}}", "--registry-url=http://reg --server-uuid=u")
            .replace("{{.SSHPublicKey}}", &ssh.public_line)
            .replace("{{.PasswordHash}}", &ssh.password_hash);
        assert_eq!(text, substituted);
        let error = render_ignition("{{.Nope}}", "i", "r", "u", &ssh).unwrap_err();
        assert!(error.contains("does not have"), "{error}");
    }

    #[test]
    fn a_seed_replays_the_ssh_material_and_another_seed_changes_it() {
        let (a, b) = (Entropy::seeded(3), Entropy::seeded(3));
        let (first, again) = (SshMaterial::generate(&a), SshMaterial::generate(&b));
        assert_eq!(first.private_pem, again.private_pem);
        assert_eq!(first.password_hash, again.password_hash);
        let other = SshMaterial::generate(&Entropy::seeded(4));
        assert_ne!(first.public_line, other.public_line);
        assert_ne!(first.password, other.password);
    }

    #[test]
    fn the_private_key_is_pkcs8_pem_and_the_public_key_an_openssh_line() {
        let ssh = SshMaterial::generate(&Entropy::os());
        let (label, der) = pem_rfc7468::decode_vec(ssh.private_pem.as_bytes()).unwrap();
        assert_eq!(label, "PRIVATE KEY");
        let pair = ring::signature::Ed25519KeyPair::from_pkcs8(&der).unwrap();
        assert!(ssh.private_pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
        assert!(ssh.private_pem.ends_with("\n-----END PRIVATE KEY-----\n"));
        assert!(ssh.private_pem.lines().all(|l| l.len() <= 64));
        let public = ssh_key::PublicKey::from_openssh(&ssh.public_line).unwrap();
        assert_eq!(public.comment(), "metal@metal-operator");
        let key = public.key_data().ed25519().unwrap();
        assert_eq!(
            key.0.as_slice(),
            ring::signature::KeyPair::public_key(&pair).as_ref()
        );
    }
}
