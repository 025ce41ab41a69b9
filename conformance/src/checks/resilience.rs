//! Resilience checks: backend restart mid-reconcile, watch disruption, API server restart, crash detection.

use super::core::{describe, ready_sbc, ready_sbc_on};
use crate::ctx::Ctx;
use crate::ctx::ServerRef;
use crate::fixtures::{ignition_config, sbc_spec};
use crate::outcome::Outcomes;
use crate::target::BootResult;
use futures::future::BoxFuture;
use std::time::Duration;

const RESTART_UNAVAILABLE: &str = "backend restart not available (use --embedded --backend-cmd, or --backend-restart-cmd with --kubeconfig)";
/// SBC-RES-002 is about machines booting after a restart; a Ready status alone was already seen before it.
const NEEDS_BOOT: &str = "needs the boot profile: Ready again after the restart, but no machine booted to show the boot records were rebuilt (add --profile boot)";
const API_CONTROL_UNAVAILABLE: &str = "API server faults need the embedded API server (--embedded)";

/// Creates Server + SBC `name` using the shared Secret `ignition`, without waiting.
async fn start_sbc(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    let server = ctx.server(name, Some(name)).await?;
    ctx.sbc(
        name,
        sbc_spec(&server.name, &ctx.target.images.valid, Some("ignition")),
    )
    .await
}

/// Waits for every SBC in `names` to be Ready after `since`; returns the ones that were not, described.
async fn not_ready(ctx: &Ctx, names: &[String], since: std::time::Duration) -> Vec<String> {
    let mut missing = Vec::new();
    for name in names {
        let (h, ready) = ctx
            .wait_ready_since(name, since, ctx.target.timeouts.time_to_ready)
            .await;
        if !ready && !h.last().is_some_and(|o| o.is_ready()) {
            missing.push(format!("{name}: {}", describe(&h)));
        }
    }
    missing
}

pub fn backend_restart(ctx: &Ctx) -> BoxFuture<'_, anyhow::Result<Outcomes>> {
    Box::pin(async move {
        let mut out = Outcomes::default();
        let Some(backend) = ctx.target.backend.clone() else {
            out.skip("SBC-RES-001", RESTART_UNAVAILABLE)
                .skip("SBC-RES-002", RESTART_UNAVAILABLE);
            return Ok(out);
        };
        let (steady_server, _, steady) = ready_sbc_on(ctx, "steady").await?;
        ctx.secret("ignition", Some(&ignition_config(&ctx.ns)))
            .await?;
        let fresh: Vec<String> = (0..3).map(|i| format!("fresh-{i}")).collect();
        let t0 = ctx.now();
        for name in &fresh {
            start_sbc(ctx, name).await?;
        }
        let Some(restart) = backend.restart() else {
            out.skip("SBC-RES-001", RESTART_UNAVAILABLE)
                .skip("SBC-RES-002", RESTART_UNAVAILABLE);
            return Ok(out);
        };
        ctx.progress
            .phase("restarting the backend", ctx.target.timeouts.time_to_ready);
        // A restart is not an input change for SBC-FLAP-001; SBC-RES-002 judges what follows it.
        ctx.recorder.note_input_all("backend restart began");
        restart.await?;
        ctx.recorder.note_input_all("backend restart completed");
        let missing = not_ready(ctx, &fresh, t0).await;
        let problem = (!missing.is_empty())
            .then(|| format!("not Ready after the restart: {}", missing.join("; ")));
        out.expect(
            "SBC-RES-001",
            problem,
            "all SBCs created before the restart became Ready",
        );
        match steady_after_restart(ctx, &steady_server, steady.is_some()).await? {
            Some(p) if p == NEEDS_BOOT => out.skip("SBC-RES-002", NEEDS_BOOT),
            problem => out.expect(
                "SBC-RES-002",
                problem,
                "the Ready SBC was Ready again after the restart and its machine booted",
            ),
        };
        Ok(out)
    })
}

/// SBC-RES-002: the SBC that was Ready before the restart is Ready after it (state and, if possible, a boot).
async fn steady_after_restart(
    ctx: &Ctx,
    server: &ServerRef,
    was_ready: bool,
) -> anyhow::Result<Option<String>> {
    let t = &ctx.target.timeouts;
    if !was_ready {
        return Ok(Some(format!(
            "precondition: never Ready before the restart; {}",
            describe(&ctx.recorder.history("steady"))
        )));
    }
    // Let the restarted backend react first: an honest one may pass through Pending while it rebuilds.
    ctx.observe("steady: watching the restart", t.stability_window)
        .await;
    let (h, ready) = ctx
        .wait_for(
            "steady",
            "waiting for Ready after the restart",
            t.time_to_ready,
            |h| h.last().is_some_and(|o| o.is_ready()),
        )
        .await;
    if !ready {
        return Ok(Some(format!(
            "not Ready within {:?} after the restart; {}",
            t.time_to_ready,
            describe(&h)
        )));
    }
    let Some(boot) = ctx.target.boot.clone() else {
        return Ok(Some(NEEDS_BOOT.into()));
    };
    let until = tokio::time::Instant::now() + t.time_to_ready;
    loop {
        match boot.boot(&server.uuid).await? {
            BootResult::Booted { .. } => return Ok(None),
            BootResult::Failed { reason } if tokio::time::Instant::now() >= until => {
                return Ok(Some(format!(
                    "Ready after the restart, but its machine still fails to boot after {:?}: {reason}",
                    t.time_to_ready
                )));
            }
            BootResult::Failed { .. } => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

pub fn watch_disruption(ctx: &Ctx) -> BoxFuture<'_, anyhow::Result<Outcomes>> {
    Box::pin(async move {
        let mut out = Outcomes::default();
        let Some(api) = ctx.target.api.clone() else {
            out.skip("SBC-RES-003", API_CONTROL_UNAVAILABLE);
            return Ok(out);
        };
        let t = &ctx.target.timeouts;
        // An SBC waiting for its Secret: the fix arrives while the backend's watches are broken.
        let server = ctx.server("waiting", Some("waiting")).await?;
        ctx.sbc(
            "waiting",
            sbc_spec(&server.name, &ctx.target.images.valid, Some("ignition")),
        )
        .await?;
        ctx.wait_for(
            "waiting",
            "waiting for the backend to see it",
            t.error_deadline,
            |h| h.observations.iter().any(|o| o.state.is_some()),
        )
        .await;
        ctx.recorder.note_input_all("watches dropped");
        api.expire_watches().await?;
        api.drop_watches().await?;
        let t_fix = ctx.now();
        ctx.recorder
            .note_input("waiting", "Secret created during watch disruption");
        ctx.secret("ignition", Some(&ignition_config(&ctx.ns)))
            .await?;
        start_sbc(ctx, "created-during").await?;
        let missing = not_ready(
            ctx,
            &["waiting".to_string(), "created-during".to_string()],
            t_fix,
        )
        .await;
        let problem = (!missing.is_empty()).then(|| {
            format!(
                "changes made during the disruption not acted on: {}",
                missing.join("; ")
            )
        });
        out.expect(
            "SBC-RES-003",
            problem,
            "the Secret fix and the new SBC were both acted on",
        );
        Ok(out)
    })
}

pub fn apiserver_restart(ctx: &Ctx) -> BoxFuture<'_, anyhow::Result<Outcomes>> {
    Box::pin(async move {
        let mut out = Outcomes::default();
        let Some(restart) = ctx.target.api.as_ref().and_then(|api| api.restart()) else {
            out.skip("SBC-RES-004", API_CONTROL_UNAVAILABLE);
            return Ok(out);
        };
        ctx.recorder.note_input_all("API server restarted");
        ctx.progress.phase(
            "restarting the API server",
            ctx.target.timeouts.time_to_ready,
        );
        restart.await?;
        let (h, latency) = ready_sbc(ctx, "after").await?;
        match latency {
            Some(l) => out.pass(
                "SBC-RES-004",
                format!("new SBC Ready {:.3}s after creation", l.as_secs_f64()),
            ),
            None => out.fail(
                "SBC-RES-004",
                format!(
                    "new SBC not Ready after the API server restart; {}",
                    describe(&h)
                ),
            ),
        };
        Ok(out)
    })
}

pub fn backend_stays_up(ctx: &Ctx) -> BoxFuture<'_, anyhow::Result<Outcomes>> {
    Box::pin(async move {
        let mut out = Outcomes::default();
        let Some(backend) = ctx.target.backend.clone().filter(|b| b.observes_process()) else {
            out.skip(
                "SBC-RES-005",
                "nothing observes the backend's process: use --embedded --backend-cmd, or --backend-namespace and --backend-pod-selector with --kubeconfig",
            );
            return Ok(out);
        };
        let (_, _) = ready_sbc(ctx, "valid").await?;
        let server = ctx.server("broken", Some("broken")).await?;
        let bad_image = ctx.target.images.or_valid(|i| &i.unresolvable);
        ctx.sbc("broken", sbc_spec(&server.name, &bad_image, Some("absent")))
            .await?;
        ctx.observe(
            "reconciling valid and broken SBCs",
            ctx.target.timeouts.never_ready_window,
        )
        .await;
        let exits = backend.unexpected_exits().await?;
        let problem =
            (!exits.is_empty()).then(|| format!("the backend exited: {}", exits.join("; ")));
        out.expect(
            "SBC-RES-005",
            problem,
            "the backend's process was observed and kept running",
        );
        Ok(out)
    })
}
