//! Core positive checks: a valid SBC becomes Ready (and says for which generation); no-ignition SBCs.

use crate::ctx::{Ctx, ServerRef};
use crate::fixtures::ignition_config;
use crate::history::History;
use crate::outcome::Outcomes;
use futures::future::BoxFuture;
use std::time::Duration;

/// Creates Server + Secret + SBC named `name` and waits for Ready. Returns the history and the time-to-Ready.
pub async fn ready_sbc(ctx: &Ctx, name: &str) -> anyhow::Result<(History, Option<Duration>)> {
    ready_sbc_on(ctx, name)
        .await
        .map(|(_, h, latency)| (h, latency))
}

/// Like [`ready_sbc`], also returning the Server (for booting its machine).
pub async fn ready_sbc_on(
    ctx: &Ctx,
    name: &str,
) -> anyhow::Result<(ServerRef, History, Option<Duration>)> {
    let server = ctx.server(name, Some(name)).await?;
    let secret = format!("{name}-ignition");
    ctx.secret(
        &secret,
        Some(&ignition_config(&format!("{}/{name}", ctx.ns))),
    )
    .await?;
    let (t0, h, ready) = ctx
        .sbc_until_ready(name, &server.name, Some(&secret))
        .await?;
    let latency = ready
        .then(|| h.first_ready_since(t0).map(|o| o.at.saturating_sub(t0)))
        .flatten();
    Ok((server, h, latency))
}

/// "state X, last observations …" for failure messages.
pub fn describe(h: &History) -> String {
    let last = h
        .last()
        .map(|o| o.state_str().to_string())
        .unwrap_or_else(|| "never observed".into());
    let timeline = h.timeline();
    let lines: Vec<&str> = timeline.lines().collect();
    let tail = &lines[lines.len().saturating_sub(8)..];
    format!("last state {last:?}; timeline:\n{}", tail.join("\n"))
}

pub fn valid_ready(ctx: &Ctx) -> BoxFuture<'_, anyhow::Result<Outcomes>> {
    Box::pin(async move {
        let mut out = Outcomes::default();
        let deadline = ctx.target.timeouts.time_to_ready;
        let (_, latency) = ready_sbc(ctx, "valid").await?;
        match latency {
            Some(l) => {
                out.pass(
                    "SBC-CORE-001",
                    format!("Ready after {:.3}s", l.as_secs_f64()),
                );
                out.latency("time_to_ready", l.as_secs_f64());
            }
            None => {
                let h = ctx.recorder.history("valid");
                out.fail(
                    "SBC-CORE-001",
                    format!("not Ready within {deadline:?}; {}", describe(&h)),
                );
            }
        }
        // Stay and watch: flaps are judged by the history oracle over this window.
        ctx.observe(
            "valid: watching Ready for flaps",
            ctx.target.timeouts.stability_window,
        )
        .await;
        let h = ctx.recorder.history("valid");
        let ready: Vec<_> = h.observations.iter().filter(|o| o.is_ready()).collect();
        if ready.is_empty() {
            out.fail(
                "SBC-GEN-003",
                "never Ready, so readiness was never stamped with a generation",
            );
        } else {
            let problems: Vec<String> = ready
                .iter()
                .filter_map(|o| o.ready_stamp_problem())
                .collect();
            out.expect(
                "SBC-GEN-003",
                problems.first().cloned(),
                format!(
                    "{} Ready observations stamped with their generation",
                    ready.len()
                ),
            );
        }
        Ok(out)
    })
}

pub fn no_ignition_ref(ctx: &Ctx) -> BoxFuture<'_, anyhow::Result<Outcomes>> {
    Box::pin(async move {
        let mut out = Outcomes::default();
        let server = ctx.server("plain", Some("plain")).await?;
        let (_, h, ready) = ctx.sbc_until_ready("plain", &server.name, None).await?;
        if ready {
            out.pass(
                "SBC-IGN-005",
                "an SBC without ignitionSecretRef became Ready",
            );
        } else {
            out.fail(
                "SBC-IGN-005",
                format!(
                    "optional: not Ready without ignitionSecretRef; {}",
                    describe(&h)
                ),
            );
        }
        Ok(out)
    })
}
