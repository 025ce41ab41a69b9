//! Computing what a ServerBootConfiguration's machine should boot: the Server's identity, the resolved
//! image and its verified blobs, and the rendered ignition. Pure inputs → a boot record or a failure.

use bytes::Bytes;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::ListParams;
use kube::runtime::reflector::ObjectRef;
use metal_api::{Server, ServerBootConfiguration};

use super::conditions::{Cond, reasons, types};
use super::{Context, Inputs};
use crate::ignition;
use crate::misbehaviour::Misbehaviour;
use crate::oci::ResolvedImage;
use crate::records::{BootRecord, SbcKey};
use boot_image::LayerKind;
use boot_image::reference::{self, ImageRef};
use boot_image::{MediaStyle, media};

/// Which boot modes the backend serves; each needs its layers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BootModes {
    /// PXE/iPXE: kernel and initramfs (squashfs optional).
    pub ipxe: bool,
    /// UEFI HTTP boot: a UKI.
    pub http: bool,
}

impl Default for BootModes {
    fn default() -> Self {
        Self {
            ipxe: true,
            http: true,
        }
    }
}

impl BootModes {
    /// Parses `--boot-modes` values (`ipxe`, `http`); at least one is required.
    pub fn from_names(names: &[String]) -> Result<Self, String> {
        let mut modes = Self {
            ipxe: false,
            http: false,
        };
        for name in names {
            match name.as_str() {
                "ipxe" => modes.ipxe = true,
                "http" => modes.http = true,
                other => return Err(format!("--boot-modes: unknown mode {other:?} (ipxe, http)")),
            }
        }
        if !modes.ipxe && !modes.http {
            return Err("--boot-modes: at least one of ipxe, http is required".into());
        }
        Ok(modes)
    }

    fn required(&self) -> Vec<LayerKind> {
        let mut kinds = Vec::new();
        if self.ipxe {
            kinds.extend([LayerKind::Kernel, LayerKind::Initramfs]);
        }
        if self.http {
            kinds.push(LayerKind::Uki);
        }
        kinds
    }
}

/// A prepared record, its blobs, and the conditions that describe it.
pub struct Prepared {
    pub record: BootRecord,
    pub blobs: Vec<(String, Bytes)>,
    pub server_references_sbc: bool,
    pub conditions: Vec<Cond>,
}

/// Why preparation failed, as the conditions to report (the state is Error).
#[derive(Debug)]
pub struct Failure {
    pub conditions: Vec<Cond>,
}

impl Failure {
    fn new(conditions: Vec<Cond>) -> Self {
        Self { conditions }
    }
}

/// The Server fields serving renders from; nothing else of the Server may influence the record.
struct ServerFacts {
    uuid: String,
    architecture: String,
    references_sbc: bool,
}

/// Prepares `sbc` from `inputs`, the caches of the watches that wake it on Server and Secret changes.
pub async fn prepare(
    sbc: &ServerBootConfiguration,
    ctx: &Context,
    inputs: &Inputs,
) -> Result<Prepared, Failure> {
    let key = SbcKey::of(&sbc.metadata);
    tracing::trace!(sbc = %key, "prepare: server");
    let server = server_facts(sbc, &key, ctx, inputs).await?;
    tracing::trace!(sbc = %key, "prepare: image");
    let server_ok = Cond::truth(
        types::SERVER_RESOLVED,
        reasons::SERVER_FOUND,
        format!(
            "Server {} has system UUID {}",
            sbc.spec.server_ref.name, server.uuid
        ),
    );
    let (image, resolved, blobs, image_cond) = match image_step(sbc, &server, ctx).await {
        Ok(step) => step,
        Err(mut conds) => {
            conds.insert(0, server_ok);
            return Err(Failure::new(conds));
        }
    };
    tracing::trace!(sbc = %key, "prepare: ignition");
    let (ignition, ignition_cond, advertise_missing) =
        match ignition_step(sbc, &key, ctx, inputs).await {
            Ok(step) => step,
            Err(cond) => return Err(Failure::new(vec![server_ok, image_cond, cond])),
        };
    let layer = |kind| resolved.as_ref().and_then(|r| r.layer(kind).cloned());
    let record = BootRecord {
        sbc: key,
        uid: sbc.metadata.uid.clone().unwrap_or_default(),
        generation: sbc.metadata.generation.unwrap_or(0),
        server: sbc.spec.server_ref.name.clone(),
        system_uuid: server.uuid.to_ascii_lowercase(),
        architecture: server.architecture,
        manifest_digest: resolved
            .as_ref()
            .map(|r| r.manifest_digest.clone())
            .unwrap_or_default(),
        kernel: layer(LayerKind::Kernel),
        initramfs: layer(LayerKind::Initramfs),
        squashfs: layer(LayerKind::Squashfs),
        uki: layer(LayerKind::Uki),
        image,
        ignition,
        advertise_missing_ignition: advertise_missing,
    };
    Ok(Prepared {
        record,
        blobs,
        server_references_sbc: server.references_sbc,
        conditions: vec![server_ok, image_cond, ignition_cond],
    })
}

type ImageStep = (ImageRef, Option<ResolvedImage>, Vec<(String, Bytes)>, Cond);

/// Resolves the image (or, for `ready-on-bad-image`, pretends to); Err carries the failed conditions.
async fn image_step(
    sbc: &ServerBootConfiguration,
    server: &ServerFacts,
    ctx: &Context,
) -> Result<ImageStep, Vec<Cond>> {
    match resolve_image(sbc, server, ctx).await {
        Ok((image, resolved, blobs)) => {
            let cond = Cond::truth(
                types::IMAGE_RESOLVED,
                reasons::IMAGE_RESOLVED,
                describe(&resolved),
            );
            Ok((image, Some(resolved), blobs, cond))
        }
        Err((image, resolved, message))
            if ctx.options.misbehaviour == Misbehaviour::ReadyOnBadImage =>
        {
            let cond = Cond::truth(
                types::IMAGE_RESOLVED,
                reasons::IMAGE_RESOLVED,
                format!("(ignored) {message}"),
            );
            Ok((image, resolved, vec![], cond))
        }
        Err((_, _, message)) => {
            let validation = Cond::falsity(
                types::IMAGE_VALIDATION,
                reasons::VALIDATION_FAILED,
                message.clone(),
            );
            let image = Cond::falsity(
                types::IMAGE_RESOLVED,
                reasons::IMAGE_VALIDATION_FAILED,
                message,
            );
            Err(vec![image, validation])
        }
    }
}

/// Renders the ignition (or, for `ready-on-missing-secret`, ignores its absence).
async fn ignition_step(
    sbc: &ServerBootConfiguration,
    key: &SbcKey,
    ctx: &Context,
    inputs: &Inputs,
) -> Result<(Option<Bytes>, Cond, bool), Cond> {
    match render_ignition(sbc, key, ctx, inputs).await {
        Ok((data, cond)) => Ok((data, cond, false)),
        Err(cond)
            if ctx.options.misbehaviour == Misbehaviour::ReadyOnMissingSecret
                && cond.reason == reasons::IGNITION_MISSING =>
        {
            Ok((
                None,
                Cond::truth(
                    types::IGNITION_READY,
                    reasons::IGNITION_RENDERED,
                    format!("(ignored) {}", cond.message),
                ),
                true,
            ))
        }
        Err(cond) => Err(cond),
    }
}

/// The Server's facts from the cache of the watch that wakes this SBC on Server changes: a change the
/// cache does not show yet is still on its way and wakes the SBC again. Only a verdict against the SBC
/// (no such Server, no UUID) takes a fresh read first, since the cache may just be behind (a Server
/// created right before its SBC): Error is never reported from a cache.
async fn server_facts(
    sbc: &ServerBootConfiguration,
    key: &SbcKey,
    ctx: &Context,
    inputs: &Inputs,
) -> Result<ServerFacts, Failure> {
    let name = &sbc.spec.server_ref.name;
    if let Some(server) = inputs.servers.get(&ObjectRef::new(name))
        && let Ok(facts) = facts_of(&server, key, ctx)
    {
        return Ok(facts);
    }
    let api: Api<Server> = Api::all(ctx.client.clone());
    let server = match api.get_opt(name).await {
        Ok(Some(server)) => server,
        Ok(None) if ctx.options.misbehaviour == Misbehaviour::ReadyWithoutServer => {
            // The zero-valued Server the imitated bug carries on with: no UUID, no processors.
            return Ok(ServerFacts {
                uuid: String::new(),
                architecture: ctx.options.architecture.clone(),
                references_sbc: true,
            });
        }
        Ok(None) => {
            return Err(Failure::new(vec![Cond::falsity(
                types::SERVER_RESOLVED,
                reasons::SERVER_NOT_FOUND,
                format!(
                    "Server {name:?} (spec.serverRef.name) does not exist; create it or point serverRef at an existing Server"
                ),
            )]));
        }
        Err(e) => {
            return Err(Failure::new(vec![Cond::unknown(
                types::SERVER_RESOLVED,
                reasons::WAITING,
                format!("reading Server {name}: {e}"),
            )]));
        }
    };
    facts_of(&server, key, ctx)
}

/// What serving takes from `server` (exactly what the controller's Server fingerprint covers).
fn facts_of(server: &Server, key: &SbcKey, ctx: &Context) -> Result<ServerFacts, Failure> {
    let name = server.metadata.name.as_deref().unwrap_or_default();
    if server.spec.system_uuid.trim().is_empty() {
        return Err(Failure::new(vec![Cond::falsity(
            types::SERVER_RESOLVED,
            reasons::SERVER_HAS_NO_UUID,
            format!(
                "Server {name} has an empty spec.systemUUID; the boot server identifies machines by it"
            ),
        )]));
    }
    let references_sbc = server
        .spec
        .boot_configuration_ref
        .as_ref()
        .is_some_and(|r| r.namespace == key.namespace && r.name == key.name);
    Ok(ServerFacts {
        uuid: server.spec.system_uuid.clone(),
        architecture: architecture_of(server).unwrap_or_else(|| ctx.options.architecture.clone()),
        references_sbc,
    })
}

/// The Server's CPU architecture from its Redfish processor inventory, in OCI terms.
pub(crate) fn architecture_of(server: &Server) -> Option<String> {
    let cpu = server.status.as_ref()?.processors.first()?;
    let hint = cpu
        .instruction_set
        .as_deref()
        .or(cpu.architecture.as_deref())?
        .to_ascii_lowercase();
    if hint.contains("arm") || hint.contains("aarch64") {
        Some("arm64".into())
    } else if hint.contains("x86") || hint.contains("amd64") {
        Some("amd64".into())
    } else {
        None
    }
}

type ImageResult = Result<
    (ImageRef, ResolvedImage, Vec<(String, Bytes)>),
    (ImageRef, Option<ResolvedImage>, String),
>;

async fn resolve_image(
    sbc: &ServerBootConfiguration,
    server: &ServerFacts,
    ctx: &Context,
) -> ImageResult {
    let spec_image = sbc.spec.image.clone().unwrap_or_default();
    let unparsed = ImageRef::unparsed(&spec_image);
    let image = reference::parse(&spec_image).map_err(|e| {
        (
            unparsed,
            None,
            format!("{e}; set spec.image to an OCI reference"),
        )
    })?;
    if !reference::registry_allowed(image.registry(), &ctx.options.allowed_registries) {
        let message = format!(
            "registry {} of image {} is not allowed (allowed: {}); use an allowed registry or extend --allowed-registries",
            image.registry(),
            image.canonical(),
            ctx.options.allowed_registries.join(", ")
        );
        return Err((image, None, message));
    }
    let resolved = match ctx
        .resolver
        .resolve(image.clone(), server.architecture.clone())
        .await
    {
        Ok(resolved) => resolved,
        Err(e) => return Err((image, None, e.to_string())),
    };
    let missing: Vec<_> = ctx
        .options
        .boot_modes
        .required()
        .into_iter()
        .filter(|k| resolved.layer(*k).is_none())
        .collect();
    if !missing.is_empty() {
        let names: Vec<_> = missing
            .iter()
            .map(|k| media::for_layer(*k, MediaStyle::Ironcore))
            .collect();
        let message = format!(
            "image {} ({}) lacks layers required by the enabled boot modes: {} (legacy application/io.gardenlinux.* types are accepted too)",
            image.canonical(),
            resolved.architecture,
            names.join(", ")
        );
        return Err((image, Some(resolved), message));
    }
    let mut blobs = Vec::new();
    for layer in resolved.layers.values() {
        let bytes = match ctx.records.artifact(&layer.digest) {
            Some(bytes) => bytes,
            None => {
                let fetch = || ctx.resolver.fetch_blob(image.clone(), layer.clone());
                match ctx.downloads.run(&layer.digest, fetch).await {
                    Ok(bytes) => bytes,
                    Err(e) => return Err((image, Some(resolved), e.to_string())),
                }
            }
        };
        blobs.push((layer.digest.clone(), bytes));
    }
    Ok((image, resolved, blobs))
}

fn describe(resolved: &ResolvedImage) -> String {
    let layers: Vec<_> = resolved
        .layers
        .values()
        .map(|l| format!("{:?} {}", l.kind, l.digest))
        .collect();
    format!(
        "{} resolved to manifest {} for {}: {}",
        resolved.image.canonical(),
        resolved.manifest_digest,
        resolved.architecture,
        layers.join(", ")
    )
}

/// Renders the ignition Secret from the cache of the watch that wakes this SBC on Secret changes; as for
/// the Server, a missing Secret or a Secret that does not render is confirmed by a fresh read first.
async fn render_ignition(
    sbc: &ServerBootConfiguration,
    key: &SbcKey,
    ctx: &Context,
    inputs: &Inputs,
) -> Result<(Option<Bytes>, Cond), Cond> {
    let Some(secret_ref) = &sbc.spec.ignition_secret_ref else {
        if ctx.options.misbehaviour == Misbehaviour::IgnitionRequired {
            return Err(Cond::falsity(
                types::IGNITION_READY,
                reasons::IGNITION_MISSING,
                "spec.ignitionSecretRef is required by this backend",
            ));
        }
        return Ok((
            None,
            Cond::truth(
                types::IGNITION_READY,
                reasons::NO_IGNITION,
                "spec.ignitionSecretRef is not set; machines boot without ignition",
            ),
        ));
    };
    let cached = ObjectRef::new(&secret_ref.name).within(&key.namespace);
    if let Some(secret) = inputs.secrets.get(&cached) {
        let rendered = ignition_of(&secret, &secret_ref.name, key, ctx);
        if rendered.is_ok() {
            return rendered;
        }
    }
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &key.namespace);
    let secret = match api.get_opt(&secret_ref.name).await {
        Ok(Some(secret)) => secret,
        Ok(None) if ctx.options.misbehaviour == Misbehaviour::SecretFromAnyNamespace => {
            // The imitated bug: a lookup keyed by name alone answers with another namespace's Secret.
            let named = ListParams::default().fields(&format!("metadata.name={}", secret_ref.name));
            match Api::<Secret>::all(ctx.client.clone()).list(&named).await {
                Ok(list) if !list.items.is_empty() => list.items[0].clone(),
                _ => return Err(secret_missing(key, &secret_ref.name)),
            }
        }
        Ok(None) => return Err(secret_missing(key, &secret_ref.name)),
        Err(e) => {
            return Err(Cond::unknown(
                types::IGNITION_READY,
                reasons::WAITING,
                format!("reading Secret {}/{}: {e}", key.namespace, secret_ref.name),
            ));
        }
    };
    ignition_of(&secret, &secret_ref.name, key, ctx)
}

fn secret_missing(key: &SbcKey, name: &str) -> Cond {
    Cond::falsity(
        types::IGNITION_READY,
        reasons::IGNITION_MISSING,
        format!(
            "Secret {}/{name} (spec.ignitionSecretRef) does not exist; create it with key `{}`",
            key.namespace,
            ignition::IGNITION_KEY
        ),
    )
}

/// The ignition a Secret renders to (exactly what the controller's Secret fingerprint covers).
fn ignition_of(
    secret: &Secret,
    name: &str,
    key: &SbcKey,
    ctx: &Context,
) -> Result<(Option<Bytes>, Cond), Cond> {
    let missing =
        |message: String| Cond::falsity(types::IGNITION_READY, reasons::IGNITION_MISSING, message);
    let empty = Default::default();
    let data = secret.data.as_ref().unwrap_or(&empty);
    let Some(raw) = data.get(ignition::IGNITION_KEY) else {
        return Err(missing(format!(
            "Secret {}/{} has no key `{}`; add the ignition config under it",
            key.namespace,
            name,
            ignition::IGNITION_KEY
        )));
    };
    let format = data.get(ignition::FORMAT_KEY).map(|f| f.0.as_slice());
    if ctx.options.misbehaviour == Misbehaviour::WrongIgnition {
        let rendered = Bytes::from(raw.0.clone());
        return Ok((
            Some(rendered),
            Cond::truth(
                types::IGNITION_READY,
                reasons::IGNITION_RENDERED,
                "served as stored",
            ),
        ));
    }
    match ignition::render(&raw.0, format) {
        Ok(rendered) => {
            let message = format!(
                "Secret {}/{} rendered to {} bytes ({})",
                key.namespace,
                name,
                rendered.len(),
                ignition::hash(&rendered)
            );
            Ok((
                Some(Bytes::from(rendered)),
                Cond::truth(types::IGNITION_READY, reasons::IGNITION_RENDERED, message),
            ))
        }
        Err(e) => Err(Cond::falsity(
            types::IGNITION_READY,
            reasons::IGNITION_INVALID,
            format!("Secret {}/{}: {e}", key.namespace, name),
        )),
    }
}
