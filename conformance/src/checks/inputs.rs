//! Bad inputs: a missing Secret or key, an image that cannot be served, a missing Server. Each must never be
//! Ready, SHOULD be Error with a reason, and must converge to Ready once the input is fixed.

use super::core::describe;
use crate::ctx::Ctx;
use crate::fixtures::{ignition_config, sbc_spec};
use crate::outcome::Outcomes;
use futures::future::BoxFuture;
use std::future::Future;

/// Rule IDs decided by one bad-input check.
struct BadInputRules {
    never_ready: &'static str,
    error_reason: &'static str,
    recovers: &'static str,
}

/// Watches the (already created) bad SBC, then applies `fix` and waits for Ready.
async fn judge_bad_input<F>(
    ctx: &Ctx,
    sbc: &str,
    rules: BadInputRules,
    fix: F,
) -> anyhow::Result<Outcomes>
where
    F: Future<Output = anyhow::Result<()>>,
{
    let t = &ctx.target.timeouts;
    let mut out = Outcomes::default();
    // The window starts when the create was issued: a Ready written while it was in flight counts.
    let t0 = ctx.create_issued_at(sbc).unwrap_or_default();
    // Wait for the SHOULD-level Error (or a Ready, which ends the question), then fill the never-Ready window.
    let (_, got_error) = ctx
        .wait_for(
            sbc,
            "waiting for Error with a reason",
            t.error_deadline,
            |h| h.first_error_with_reason_since(t0).is_some() || h.first_ready_since(t0).is_some(),
        )
        .await;
    let elapsed = ctx.now().saturating_sub(t0);
    if elapsed < t.never_ready_window {
        ctx.observe(
            &format!("{sbc}: watching for any Ready"),
            t.never_ready_window - elapsed,
        )
        .await;
    }
    let h = ctx.recorder.history(sbc);
    let t_fix = ctx.now();
    let ready = h.ready_between(t0, t_fix);
    match ready.first() {
        None => out.pass_never_ready(
            rules.never_ready,
            format!("no Ready in {:.1}s", (t_fix - t0).as_secs_f64()),
        ),
        Some(o) => out.fail(
            rules.never_ready,
            format!(
                "Ready at {:.3}s (resourceVersion {}, generation {}) for an invalid input; {}",
                o.at.as_secs_f64(),
                o.resource_version,
                o.generation,
                describe(&h)
            ),
        ),
    };
    match h.first_error_with_reason_since(t0) {
        Some(o) if got_error => {
            let c = o
                .conditions
                .iter()
                .find(|c| c.status == "False")
                .map(|c| c.reason.clone())
                .unwrap_or_default();
            out.pass(
                rules.error_reason,
                format!(
                    "Error with reason {c:?} after {:.3}s",
                    (o.at - t0).as_secs_f64()
                ),
            )
        }
        _ => out.fail(
            rules.error_reason,
            format!(
                "no Error with a reason and message within {:?}; {}",
                t.error_deadline,
                describe(&h)
            ),
        ),
    };
    fix.await?;
    let (h, recovered) = ctx
        .wait_for(sbc, "fixed: waiting for Ready", t.time_to_ready, |h| {
            // Already Ready (a lie judged above) counts as Ready: this rule is about convergence only.
            h.first_ready_since(t_fix).is_some() || h.last().is_some_and(|o| o.is_ready())
        })
        .await;
    if recovered {
        let at = h.first_ready_since(t_fix).map(|o| o.at).unwrap_or(t_fix);
        out.pass(
            rules.recovers,
            format!("Ready {:.3}s after the fix", (at - t_fix).as_secs_f64()),
        );
        out.latency("time_to_ready_after_fix", (at - t_fix).as_secs_f64());
    } else {
        out.fail(
            rules.recovers,
            format!(
                "not Ready within {:?} after the fix; {}",
                t.time_to_ready,
                describe(&h)
            ),
        );
    }
    Ok(out)
}

const IGNITION_RULES: fn() -> BadInputRules = || BadInputRules {
    never_ready: "SBC-IGN-001",
    error_reason: "SBC-IGN-003",
    recovers: "SBC-IGN-004",
};

pub fn ignition_secret_missing(ctx: &Ctx) -> BoxFuture<'_, anyhow::Result<Outcomes>> {
    Box::pin(async move {
        let server = ctx.server("m", Some("sbc")).await?;
        ctx.sbc(
            "sbc",
            sbc_spec(&server.name, &ctx.target.images.valid, Some("ignition")),
        )
        .await?;
        let fix = async {
            ctx.recorder.note_input("sbc", "Secret ignition created");
            ctx.secret("ignition", Some(&ignition_config("late-secret")))
                .await
        };
        judge_bad_input(ctx, "sbc", IGNITION_RULES(), fix).await
    })
}

pub fn ignition_key_missing(ctx: &Ctx) -> BoxFuture<'_, anyhow::Result<Outcomes>> {
    Box::pin(async move {
        let server = ctx.server("m", Some("sbc")).await?;
        ctx.secret("ignition", None).await?;
        ctx.sbc(
            "sbc",
            sbc_spec(&server.name, &ctx.target.images.valid, Some("ignition")),
        )
        .await?;
        let late = ignition_config("late-key");
        let fix = ctx.set_secret_ignition("ignition", &late, &["sbc"]);
        let rules = BadInputRules {
            never_ready: "SBC-IGN-002",
            ..IGNITION_RULES()
        };
        judge_bad_input(ctx, "sbc", rules, fix).await
    })
}

/// A valid SBC except for its image; fixed by switching to the valid image.
async fn bad_image(
    ctx: &Ctx,
    image: Option<String>,
    what: &str,
    never_ready: &'static str,
) -> anyhow::Result<Outcomes> {
    let rules = BadInputRules {
        never_ready,
        error_reason: "SBC-IMG-004",
        recovers: "SBC-IMG-005",
    };
    let Some(image) = image else {
        let mut out = Outcomes::default();
        let reason = format!("no {what} image configured (capability not declared)");
        out.skip(rules.never_ready, &reason)
            .skip(rules.error_reason, &reason)
            .skip(rules.recovers, &reason);
        return Ok(out);
    };
    let server = ctx.server("m", Some("sbc")).await?;
    ctx.secret("ignition", Some(&ignition_config(&ctx.ns)))
        .await?;
    ctx.sbc("sbc", sbc_spec(&server.name, &image, Some("ignition")))
        .await?;
    let fix = async {
        ctx.set_image("sbc", &ctx.target.images.valid)
            .await
            .map(|_| ())
    };
    judge_bad_input(ctx, "sbc", rules, fix).await
}

pub fn image_unresolvable(ctx: &Ctx) -> BoxFuture<'_, anyhow::Result<Outcomes>> {
    Box::pin(bad_image(
        ctx,
        ctx.target.images.unresolvable.clone(),
        "unresolvable",
        "SBC-IMG-001",
    ))
}

pub fn image_missing_layer(ctx: &Ctx) -> BoxFuture<'_, anyhow::Result<Outcomes>> {
    Box::pin(bad_image(
        ctx,
        ctx.target.images.missing_layer.clone(),
        "missing-layer",
        "SBC-IMG-002",
    ))
}

pub fn image_disallowed_registry(ctx: &Ctx) -> BoxFuture<'_, anyhow::Result<Outcomes>> {
    Box::pin(bad_image(
        ctx,
        ctx.target.images.disallowed_registry.clone(),
        "disallowed-registry",
        "SBC-IMG-003",
    ))
}

pub fn server_missing(ctx: &Ctx) -> BoxFuture<'_, anyhow::Result<Outcomes>> {
    Box::pin(async move {
        let absent = format!("{}-late", ctx.ns);
        ctx.secret("ignition", Some(&ignition_config(&ctx.ns)))
            .await?;
        ctx.sbc(
            "sbc",
            sbc_spec(&absent, &ctx.target.images.valid, Some("ignition")),
        )
        .await?;
        let fix = async {
            ctx.recorder.note_input("sbc", "Server created");
            ctx.server("late", Some("sbc")).await.map(|_| ())
        };
        let rules = BadInputRules {
            never_ready: "SBC-SRV-001",
            error_reason: "SBC-SRV-002",
            recovers: "SBC-SRV-003",
        };
        judge_bad_input(ctx, "sbc", rules, fix).await
    })
}
