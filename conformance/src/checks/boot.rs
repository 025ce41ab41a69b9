//! Boot checks: Ready is judged by a simulated machine that network-boots from the backend (iPXE script, kernel
//! and initrd with digest checks, ignition) rather than by what the backend claims.

use super::core::describe;
use crate::ctx::{Ctx, ServerRef};
use crate::fixtures::{butane_config, ignition_config, sbc_spec};
use crate::history::{EventKind, History};
use crate::outcome::Outcomes;
use crate::target::{ArtifactKind, BootArtifact, BootResult, ExpectedImage, MachineBoot};
use futures::future::BoxFuture;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Duration;

const NO_BOOT_NETWORK: &str =
    "no boot network configured (use --embedded, or --boot-url-template with --kubeconfig)";
/// Consecutive successful boots required, as Gateway API requires consecutive successes to rule out alternation.
const CONSECUTIVE_BOOTS: usize = 3;
/// Pause between re-boots while waiting for the backend to converge on a change.
const REBOOT_INTERVAL: Duration = Duration::from_millis(100);

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// What a boot is expected to deliver.
struct Expect {
    image: ExpectedImage,
    ignition_sha256: String,
}

impl Expect {
    async fn new(boot: &dyn MachineBoot, image: &str, ignition: &[u8]) -> anyhow::Result<Expect> {
        Ok(Expect {
            image: boot.expected(image).await?,
            ignition_sha256: sha256_hex(ignition),
        })
    }

    /// `(image_problem, ignition_problem)`: None where the boot delivered exactly what was expected.
    fn compare(&self, result: &BootResult) -> (Option<String>, Option<String>) {
        match result {
            BootResult::Failed { reason } => (
                Some(format!("boot failed: {reason}")),
                Some(format!("boot failed: {reason}")),
            ),
            BootResult::Booted {
                image,
                image_digest,
                ignition_sha256,
                artifacts,
            } => {
                let image_problem = image_problems(
                    &self.image,
                    image.as_deref(),
                    image_digest.as_deref(),
                    artifacts,
                );
                let ignition_problem = (ignition_sha256.as_deref() != Some(&self.ignition_sha256))
                    .then(|| {
                        format!(
                            "booted ignition sha256 {ignition_sha256:?}, expected {}",
                            self.ignition_sha256
                        )
                    });
                (image_problem, ignition_problem)
            }
        }
    }
}

/// What is wrong with a boot of `expected`: the image its artifacts name (generated images only), and every
/// downloaded artifact whose digest is not the image's layer of that kind for the machine's architecture.
fn image_problems(
    expected: &ExpectedImage,
    image: Option<&str>,
    image_digest: Option<&str>,
    artifacts: &[BootArtifact],
) -> Option<String> {
    let mut problems = Vec::new();
    if let Some(image) = image.filter(|i| !image_matches(i, expected)) {
        problems.push(format!(
            "booted image {image}, expected {}",
            expected.reference()
        ));
    }
    if let Some(digest) = image_digest
        && !expected.digests.iter().any(|d| d == digest)
        && expected.layer(digest).is_none()
    {
        problems.push(format!(
            "the machine verified its image by {digest}, which is none of {}'s",
            expected.reference()
        ));
    }
    if artifacts.is_empty() {
        problems.push("the machine reported no downloaded boot artifacts".into());
    }
    for artifact in artifacts {
        let kind = artifact.kind.as_str();
        match expected.layer(&artifact.sha256) {
            None => problems.push(format!(
                "{kind} {} ({}, {} bytes) is no layer of {} for {}",
                artifact.url,
                artifact.sha256,
                artifact.size,
                expected.reference(),
                expected.architecture
            )),
            Some(layer) if layer.kind != artifact.kind && artifact.kind != ArtifactKind::Other => {
                problems.push(format!(
                    "{kind} {} ({}) is the image's {} layer ({})",
                    artifact.url,
                    artifact.sha256,
                    layer.kind.as_str(),
                    layer.media_type
                ))
            }
            Some(_) => {}
        }
    }
    (!problems.is_empty()).then(|| {
        let layers: Vec<String> = expected
            .layers
            .iter()
            .map(|l| format!("{} {}", l.kind.as_str(), l.digest))
            .collect();
        format!(
            "{} (the image's {} boot layers: {})",
            problems.join("; "),
            expected.architecture,
            if layers.is_empty() {
                "none".to_string()
            } else {
                layers.join(", ")
            }
        )
    })
}

/// Whether the image a machine reports is `expected`: same repository (with or without the registry host, as
/// firmware headers usually omit it), and the same tag when both are known.
fn image_matches(booted: &str, expected: &ExpectedImage) -> bool {
    let (booted_name, booted_tag, _) = crate::boot_net::split_reference(booted);
    let repository = expected
        .name
        .split_once('/')
        .map(|(_, r)| r)
        .unwrap_or(&expected.name);
    let name_ok = booted_name == expected.name || booted_name == repository;
    let tag_ok = match (&expected.tag, &booted_tag) {
        (Some(want), Some(got)) => want == got,
        _ => true,
    };
    name_ok && tag_ok
}

fn booter(ctx: &Ctx) -> Option<Arc<dyn MachineBoot>> {
    ctx.target.boot.clone()
}

/// The ignition Secret of a boot check: plain Ignition JSON, or Butane YAML with `format: fcos`.
enum Ignition<'a> {
    Plain(&'a [u8]),
    Butane(&'a [u8]),
}

/// Server + Secret + SBC; returns once Ready is first observed (so the boot that follows probes that instant).
async fn ready_for_boot(
    ctx: &Ctx,
    name: &str,
    ignition: Ignition<'_>,
) -> anyhow::Result<(ServerRef, History, bool)> {
    let server = ctx.server(name, Some(name)).await?;
    let secret = format!("{name}-ignition");
    match ignition {
        Ignition::Plain(bytes) => ctx.secret(&secret, Some(bytes)).await?,
        Ignition::Butane(bytes) => ctx.butane_secret(&secret, bytes).await?,
    }
    let (_, h, ready) = ctx
        .sbc_until_ready(name, &server.name, Some(&secret))
        .await?;
    Ok((server, h, ready))
}

/// Boots until `done` accepts a result or the deadline passes; returns the last result.
async fn boot_until(
    boot: &dyn MachineBoot,
    uuid: &str,
    deadline: Duration,
    done: impl Fn(&BootResult) -> bool,
) -> anyhow::Result<(BootResult, bool)> {
    let until = tokio::time::Instant::now() + deadline;
    loop {
        let result = boot.boot(uuid).await?;
        if done(&result) {
            return Ok((result, true));
        }
        if tokio::time::Instant::now() + REBOOT_INTERVAL > until {
            return Ok((result, false));
        }
        tokio::time::sleep(REBOOT_INTERVAL).await;
    }
}

pub fn ready_means_bootable(ctx: &Ctx) -> BoxFuture<'_, anyhow::Result<Outcomes>> {
    Box::pin(async move {
        let mut out = Outcomes::default();
        let Some(boot) = booter(ctx) else {
            out.skip("SBC-BOOT-001", NO_BOOT_NETWORK)
                .skip("SBC-BOOT-002", NO_BOOT_NETWORK);
            return Ok(out);
        };
        let ignition = ignition_config(&format!("{}/machine", ctx.ns));
        let expect = Expect::new(boot.as_ref(), &ctx.target.images.valid, &ignition).await?;
        let (server, h, ready) = ready_for_boot(ctx, "machine", Ignition::Plain(&ignition)).await?;
        if !ready {
            let reason = format!("precondition: never Ready; {}", describe(&h));
            out.fail("SBC-BOOT-001", &reason)
                .fail("SBC-BOOT-002", &reason);
            return Ok(out);
        }
        let (mut image_problems, mut ignition_problems) = (Vec::new(), Vec::new());
        for attempt in 1..=CONSECUTIVE_BOOTS {
            let (image, ign) = expect.compare(&boot.boot(&server.uuid).await?);
            image_problems.extend(image.map(|p| format!("boot {attempt}: {p}")));
            ignition_problems.extend(ign.map(|p| format!("boot {attempt}: {p}")));
        }
        ignition_problems.extend(butane_problems(ctx, boot.as_ref()).await?);
        let join = |v: Vec<String>| (!v.is_empty()).then(|| v.join("; "));
        out.expect(
            "SBC-BOOT-001",
            join(image_problems),
            format!("{CONSECUTIVE_BOOTS} boots from the first Ready on, digests verified"),
        );
        out.expect(
            "SBC-BOOT-002",
            join(ignition_problems),
            "the machine got the Secret's ignition byte for byte",
        );
        Ok(out)
    })
}

/// A machine whose Secret holds Butane with `format: fcos` must boot with a translated, valid Ignition config:
/// the firmware rejects anything else, and the raw YAML is never acceptable.
async fn butane_problems(ctx: &Ctx, boot: &dyn MachineBoot) -> anyhow::Result<Vec<String>> {
    let butane = butane_config(&format!("{}/butane", ctx.ns));
    let (server, h, ready) = ready_for_boot(ctx, "butane", Ignition::Butane(&butane)).await?;
    if !ready {
        return Ok(vec![format!(
            "precondition: the Butane SBC never became Ready; {}",
            describe(&h)
        )]);
    }
    let raw = sha256_hex(&butane);
    let mut problems = Vec::new();
    for attempt in 1..=CONSECUTIVE_BOOTS {
        match boot.boot(&server.uuid).await? {
            BootResult::Failed { reason } => {
                problems.push(format!("Butane boot {attempt}: failed: {reason}"));
            }
            BootResult::Booted {
                ignition_sha256: Some(sha),
                ..
            } if sha == raw => {
                problems.push(format!("Butane boot {attempt}: served the untranslated Butane YAML (format: fcos ignored)"));
            }
            BootResult::Booted {
                ignition_sha256: None,
                ..
            } => {
                problems.push(format!(
                    "Butane boot {attempt}: booted without any ignition"
                ));
            }
            BootResult::Booted { .. } => {}
        }
    }
    Ok(problems)
}

pub fn spec_change(ctx: &Ctx) -> BoxFuture<'_, anyhow::Result<Outcomes>> {
    Box::pin(async move {
        let mut out = Outcomes::default();
        let Some(boot) = booter(ctx) else {
            out.skip("SBC-BOOT-003", NO_BOOT_NETWORK);
            return Ok(out);
        };
        let (server, h, ready) =
            ready_for_boot(ctx, "machine", Ignition::Plain(&ignition_config("first"))).await?;
        if !ready {
            out.fail(
                "SBC-BOOT-003",
                format!("precondition: never Ready; {}", describe(&h)),
            );
            return Ok(out);
        }
        let second = ignition_config(&format!("{}/second", ctx.ns));
        ctx.secret("second", Some(&second)).await?;
        let image = ctx.target.images.or_valid(|i| &i.valid_alt);
        let expect = Expect::new(boot.as_ref(), &image, &second).await?;
        let generation = ctx
            .patch_spec(
                "machine",
                serde_json::json!({"image": image, "ignitionSecretRef": {"name": "second"}}),
                "image and ignition changed",
            )
            .await?;
        // Ready for the new generation: after a non-Ready at that generation, or stamped with it.
        let (h, done) = ctx.wait_ready_for_generation("machine", generation).await;
        if !done {
            out.fail(
                "SBC-BOOT-003",
                format!("never Ready for generation {generation}; {}", describe(&h)),
            );
            return Ok(out);
        }
        let mut problems = Vec::new();
        for attempt in 1..=CONSECUTIVE_BOOTS {
            let (img, ign) = expect.compare(&boot.boot(&server.uuid).await?);
            problems.extend(
                img.into_iter().chain(ign).map(|p| {
                    format!("boot {attempt} after Ready for generation {generation}: {p}")
                }),
            );
        }
        out.expect(
            "SBC-BOOT-003",
            (!problems.is_empty()).then(|| problems.join("; ")),
            "the machine booted the new image and ignition",
        );
        Ok(out)
    })
}

pub fn referenced_only(ctx: &Ctx) -> BoxFuture<'_, anyhow::Result<Outcomes>> {
    Box::pin(async move {
        let mut out = Outcomes::default();
        let Some(boot) = booter(ctx) else {
            out.skip("SBC-BOOT-004", NO_BOOT_NETWORK);
            return Ok(out);
        };
        let t = &ctx.target.timeouts;
        let server = ctx.server("m", Some("chosen")).await?;
        let (chosen, other) = (
            ignition_config(&format!("{}/chosen", ctx.ns)),
            ignition_config(&format!("{}/other", ctx.ns)),
        );
        ctx.secret("chosen-ignition", Some(&chosen)).await?;
        ctx.secret("other-ignition", Some(&other)).await?;
        // The referenced SBC first, Ready, and only then another naming the same Server: a backend that serves
        // whichever record it prepared last is caught by the first boots whatever its reconcile order (the
        // reverse order left the verdict to which of two concurrent reconciles finished last).
        let (_, h, ready) = ctx
            .sbc_until_ready("chosen", &server.name, Some("chosen-ignition"))
            .await?;
        if !ready {
            out.fail(
                "SBC-BOOT-004",
                format!(
                    "precondition: the referenced SBC never became Ready; {}",
                    describe(&h)
                ),
            );
            return Ok(out);
        }
        ctx.sbc(
            "other",
            sbc_spec(
                &server.name,
                &ctx.target.images.valid,
                Some("other-ignition"),
            ),
        )
        .await?;
        // Give the unreferenced one time to settle, so a backend that serves the newest record is caught.
        ctx.wait_for("other", "settling", t.error_deadline, |h| {
            h.last().is_some_and(|o| o.state.is_some())
        })
        .await;
        let mut problems = boots_with_ignition(boot.as_ref(), &server.uuid, &chosen).await?;
        // Move the reference: the other SBC must take over.
        ctx.recorder
            .note_input("chosen", "Server now references another SBC");
        ctx.recorder
            .note_input("other", "Server now references this SBC");
        ctx.set_boot_ref(&server, "other").await?;
        let other_sha = sha256_hex(&other);
        let serves_other = |r: &BootResult| matches!(r, BootResult::Booted { ignition_sha256: Some(s), .. } if *s == other_sha);
        let (last, moved) =
            boot_until(boot.as_ref(), &server.uuid, t.time_to_ready, serves_other).await?;
        if !moved {
            problems.push(format!(
                "after bootConfigurationRef moved to `other`, still {last:?} after {:?}",
                t.time_to_ready
            ));
        }
        out.expect(
            "SBC-BOOT-004",
            (!problems.is_empty()).then(|| problems.join("; ")),
            "only the referenced SBC was served, also after the reference moved",
        );
        Ok(out)
    })
}

/// Boots the machine several times; every boot must carry exactly `ignition`.
async fn boots_with_ignition(
    boot: &dyn MachineBoot,
    uuid: &str,
    ignition: &[u8],
) -> anyhow::Result<Vec<String>> {
    let want = sha256_hex(ignition);
    let mut problems = Vec::new();
    for attempt in 1..=CONSECUTIVE_BOOTS {
        let got = match boot.boot(uuid).await? {
            BootResult::Booted {
                ignition_sha256, ..
            } => ignition_sha256,
            BootResult::Failed { reason } => Some(format!("boot failed: {reason}")),
        };
        if got.as_deref() != Some(want.as_str()) {
            problems.push(format!(
                "boot {attempt}: got {got:?}, expected the referenced SBC's ignition {want}"
            ));
        }
    }
    Ok(problems)
}

pub fn unknown_and_deleted(ctx: &Ctx) -> BoxFuture<'_, anyhow::Result<Outcomes>> {
    Box::pin(async move {
        let mut out = Outcomes::default();
        let Some(boot) = booter(ctx) else {
            out.skip("SBC-BOOT-005", NO_BOOT_NETWORK);
            return Ok(out);
        };
        let t = &ctx.target.timeouts;
        let mut problems = Vec::new();
        let stranger = uuid::Uuid::new_v4().to_string();
        if let BootResult::Booted { .. } = boot.boot(&stranger).await? {
            problems.push(format!(
                "a machine with no Server or SBC (uuid {stranger}) was served and booted"
            ));
        }
        let (server, h, ready) =
            ready_for_boot(ctx, "machine", Ignition::Plain(&ignition_config(&ctx.ns))).await?;
        if !ready {
            out.fail(
                "SBC-BOOT-005",
                format!("precondition: never Ready; {}", describe(&h)),
            );
            return Ok(out);
        }
        ctx.delete_sbc("machine").await?;
        ctx.wait_for(
            "machine",
            "deleted: waiting for it to go",
            t.deletion,
            |h| h.last().is_some_and(|o| o.kind == EventKind::Deleted),
        )
        .await;
        let refused = |r: &BootResult| matches!(r, BootResult::Failed { .. });
        let (last, stopped) =
            boot_until(boot.as_ref(), &server.uuid, t.error_deadline, refused).await?;
        if !stopped {
            problems.push(format!(
                "still served {:?} after its SBC was deleted: {last:?}",
                t.error_deadline
            ));
        }
        out.expect(
            "SBC-BOOT-005",
            (!problems.is_empty()).then(|| problems.join("; ")),
            "unknown and deleted machines got no boot script",
        );
        Ok(out)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::target::ExpectedLayer;

    const D: [&str; 4] = ["sha256:a1", "sha256:b2", "sha256:c3", "sha256:d4"];

    fn expected() -> ExpectedImage {
        let layer = |kind, media_type: &str, digest: &str| ExpectedLayer {
            media_type: media_type.into(),
            kind,
            digest: digest.into(),
            size: 10,
        };
        ExpectedImage {
            name: "127.0.0.1:5000/ironcore/os".into(),
            tag: Some("1.0".into()),
            architecture: "amd64".into(),
            digests: vec!["sha256:index".into(), "sha256:amd64".into()],
            layers: vec![
                layer(
                    ArtifactKind::Kernel,
                    "application/vnd.ironcore.image.kernel",
                    D[0],
                ),
                layer(
                    ArtifactKind::Initrd,
                    "application/io.gardenlinux.initrd",
                    D[1],
                ),
                layer(
                    ArtifactKind::Squashfs,
                    "application/vnd.ironcore.image.squashfs",
                    D[2],
                ),
            ],
        }
    }

    fn artifact(kind: ArtifactKind, digest: &str) -> BootArtifact {
        BootArtifact {
            url: format!("http://boot/image?layerDigest={digest}"),
            kind,
            sha256: digest.into(),
            size: 10,
        }
    }

    fn booted(image: Option<&str>, artifacts: Vec<BootArtifact>) -> BootResult {
        BootResult::Booted {
            image: image.map(str::to_string),
            image_digest: artifacts.first().map(|a| a.sha256.clone()),
            ignition_sha256: Some("ign".into()),
            artifacts,
        }
    }

    #[test]
    fn every_artifact_is_compared_with_the_layer_of_its_kind() {
        let expect = Expect {
            image: expected(),
            ignition_sha256: "ign".into(),
        };
        let all = vec![
            artifact(ArtifactKind::Kernel, D[0]),
            artifact(ArtifactKind::Initrd, D[1]),
            artifact(ArtifactKind::Squashfs, D[2]),
        ];
        // A real image names nothing: its digests are its identity.
        assert_eq!(expect.compare(&booted(None, all.clone())), (None, None));
        assert_eq!(
            expect.compare(&booted(Some("ironcore/os:1.0"), all.clone())),
            (None, None)
        );
        let (problem, _) = expect.compare(&booted(Some("ironcore/os:2.0"), all.clone()));
        assert!(
            problem
                .unwrap()
                .contains("booted image ironcore/os:2.0, expected 127.0.0.1:5000/ironcore/os:1.0")
        );
        // The kernel matches but the initrd is another image's: the initrd is named.
        let mut wrong_initrd = all.clone();
        wrong_initrd[1] = artifact(ArtifactKind::Initrd, D[3]);
        let problem = expect.compare(&booted(None, wrong_initrd)).0.unwrap();
        assert!(
            problem.starts_with("initrd http://boot/image?layerDigest=sha256:d4 (sha256:d4, 10 bytes) is no layer of 127.0.0.1:5000/ironcore/os:1.0 for amd64"),
            "{problem}"
        );
        assert!(
            problem.contains("kernel sha256:a1, initrd sha256:b2, squashfs sha256:c3"),
            "{problem}"
        );
        // Right bytes in the wrong role.
        let swapped = vec![
            artifact(ArtifactKind::Kernel, D[1]),
            artifact(ArtifactKind::Initrd, D[0]),
        ];
        let problem = expect.compare(&booted(None, swapped)).0.unwrap();
        assert!(problem.contains("kernel http://boot/image?layerDigest=sha256:b2 (sha256:b2) is the image's initrd layer (application/io.gardenlinux.initrd)"), "{problem}");
        assert!(
            expect
                .compare(&booted(None, vec![]))
                .0
                .unwrap()
                .contains("no downloaded boot artifacts")
        );
        let (image, ignition) = expect.compare(&BootResult::Failed {
            reason: "404".into(),
        });
        assert_eq!(image.as_deref(), Some("boot failed: 404"));
        assert_eq!(ignition.as_deref(), Some("boot failed: 404"));
    }

    #[test]
    fn image_names_match_by_repository_and_tag() {
        let e = expected();
        assert!(image_matches("127.0.0.1:5000/ironcore/os:1.0", &e));
        assert!(image_matches("ironcore/os:1.0", &e));
        assert!(!image_matches("ironcore/os:2.0", &e));
        assert!(image_matches(
            "127.0.0.1:5000/ironcore/os:1.0@sha256:ab",
            &e
        ));
        assert!(!image_matches("127.0.0.1:5000/ironcore/os:2.0", &e));
        assert!(!image_matches("127.0.0.1:5000/ironcore/os-old:1.0", &e));
        assert!(!image_matches("127.0.0.1:5001/ironcore/os:1.0", &e));
    }
}
