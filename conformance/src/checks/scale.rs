//! Scale: N SBCs for N Servers at once; all must be Ready within the scale deadline; time-to-Ready percentiles.

use crate::ctx::Ctx;
use crate::fixtures::{ignition_config, sbc_spec};
use crate::outcome::Outcomes;
use crate::stats::percentiles;
use futures::future::BoxFuture;
use futures::{StreamExt, TryStreamExt};
use std::time::Duration;

/// Object creation in flight at once; the backend sees a burst either way.
const CREATE_CONCURRENCY: usize = 16;

pub fn burst(ctx: &Ctx) -> BoxFuture<'_, anyhow::Result<Outcomes>> {
    Box::pin(async move {
        let mut out = Outcomes::default();
        let t = &ctx.target.timeouts;
        let n = ctx.target.scale_count.max(1);
        ctx.secret("ignition", Some(&ignition_config(&ctx.ns)))
            .await?;
        ctx.progress
            .phase(&format!("creating {n} Servers and SBCs"), t.scale_ready);
        let start = ctx.now();
        let created: Vec<(String, Duration)> = futures::stream::iter(0..n)
            .map(|i| async move {
                let name = format!("sbc-{i:04}");
                let server = ctx.server(&name, Some(&name)).await?;
                let at = ctx.now();
                ctx.sbc(
                    &name,
                    sbc_spec(&server.name, &ctx.target.images.valid, Some("ignition")),
                )
                .await?;
                anyhow::Ok((name, at))
            })
            .buffer_unordered(CREATE_CONCURRENCY)
            .try_collect()
            .await?;
        let mut latencies = Vec::with_capacity(n);
        let mut late = Vec::new();
        for (name, at) in &created {
            let remaining = (start + t.scale_ready).saturating_sub(ctx.now());
            let (h, ready) = ctx.wait_ready_since(name, *at, remaining).await;
            match h.first_ready_since(*at).filter(|_| ready) {
                Some(o) => latencies.push((o.at - *at).as_secs_f64()),
                None => late.push(name.clone()),
            }
        }
        let all = (ctx.now() - start).as_secs_f64();
        let problem = (!late.is_empty()).then(|| {
            format!(
                "{} of {n} not Ready within {:?}: {}",
                late.len(),
                t.scale_ready,
                late.iter().take(10).cloned().collect::<Vec<_>>().join(", ")
            )
        });
        out.expect(
            "SBC-SCALE-001",
            problem,
            format!("{n} SBCs Ready, the last {all:.3}s after the burst began"),
        );
        out.latency("scale_all_ready", all);
        match percentiles(&latencies) {
            Some(p) => {
                for (name, v) in [
                    ("scale_ttr_p50", p.p50),
                    ("scale_ttr_p90", p.p90),
                    ("scale_ttr_p99", p.p99),
                    ("scale_ttr_max", p.max),
                ] {
                    out.latency(name, v);
                }
                let max = t.time_to_ready.as_secs_f64();
                let problem = (p.p99 > max || !late.is_empty())
                    .then(|| format!("p99 time-to-Ready {:.3}s (of {} Ready) exceeds {max:.0}s or some never became Ready", p.p99, p.count));
                out.expect(
                    "SBC-SCALE-002",
                    problem,
                    format!(
                        "p50 {:.3}s p90 {:.3}s p99 {:.3}s max {:.3}s",
                        p.p50, p.p90, p.p99, p.max
                    ),
                )
            }
            None => out.fail("SBC-SCALE-002", "no SBC became Ready"),
        };
        Ok(out)
    })
}
