//! Lifecycle checks: spec changes on a Ready SBC, deletion and what it leaves behind, namespace isolation.

use super::core::{describe, ready_sbc};
use crate::ctx::Ctx;
use crate::fixtures::{ignition_config, sbc_spec};
use crate::history::{EventKind, History};
use crate::outcome::{Outcomes, Verdict};
use futures::future::BoxFuture;
use kube::api::{Api, DynamicObject, ListParams};
use kube::discovery::{Discovery, Scope, verbs};
use serde_json::json;

/// The SBC reached Ready as a precondition; if not, every rule of the check fails with that reason.
fn precondition(out: &mut Outcomes, rules: &[&str], h: &History, ready: bool) -> bool {
    if !ready {
        for r in rules {
            out.fail(
                r,
                format!(
                    "precondition: the valid SBC never became Ready; {}",
                    describe(h)
                ),
            );
        }
    }
    ready
}

pub fn spec_change_to_invalid(ctx: &Ctx) -> BoxFuture<'_, anyhow::Result<Outcomes>> {
    Box::pin(async move {
        let mut out = Outcomes::default();
        let t = &ctx.target.timeouts;
        let images = &ctx.target.images;
        let Some(bad) = images.unresolvable.clone().or(images.missing_layer.clone()) else {
            out.skip(
                "SBC-GEN-001",
                "no unresolvable or missing-layer image configured",
            );
            return Ok(out);
        };
        let (h, latency) = ready_sbc(ctx, "sbc").await?;
        if !precondition(&mut out, &["SBC-GEN-001"], &h, latency.is_some()) {
            return Ok(out);
        }
        let generation = ctx.set_image("sbc", &bad).await?;
        let left = |h: &History| {
            h.observations
                .iter()
                .any(|o| o.generation >= generation && !o.is_ready())
        };
        let (h, did_leave) = ctx
            .wait_for(
                "sbc",
                "invalid image: waiting to leave Ready",
                t.error_deadline,
                left,
            )
            .await;
        if !did_leave {
            out.fail(
                "SBC-GEN-001",
                format!(
                    "still Ready {:?} after the image became {bad}; {}",
                    t.error_deadline,
                    describe(&h)
                ),
            );
            return Ok(out);
        }
        ctx.observe("sbc: watching for a return to Ready", t.never_ready_window)
            .await;
        let h = ctx.recorder.history("sbc");
        let left_at = h
            .observations
            .iter()
            .find(|o| o.generation >= generation && !o.is_ready())
            .map(|o| o.at);
        let back = left_at.and_then(|at| h.first_ready_since(at));
        match back {
            None => out.pass_never_ready(
                "SBC-GEN-001",
                "left Ready for the invalid image and stayed out",
            ),
            Some(o) => out.fail(
                "SBC-GEN-001",
                format!(
                    "Ready again at {:.3}s with the invalid image; {}",
                    o.at.as_secs_f64(),
                    describe(&h)
                ),
            ),
        };
        Ok(out)
    })
}

pub fn spec_change(ctx: &Ctx) -> BoxFuture<'_, anyhow::Result<Outcomes>> {
    Box::pin(async move {
        let mut out = Outcomes::default();
        let rules = ["SBC-GEN-002", "SBC-GEN-003"];
        let (h, latency) = ready_sbc(ctx, "sbc").await?;
        if !precondition(&mut out, &rules, &h, latency.is_some()) {
            return Ok(out);
        }
        // Change the image when a second image is known, and always the ignition reference.
        ctx.secret("sbc-ignition-b", Some(&ignition_config("second")))
            .await?;
        let mut spec = json!({ "ignitionSecretRef": { "name": "sbc-ignition-b" } });
        if let Some(alt) = &ctx.target.images.valid_alt {
            spec["image"] = json!(alt);
        }
        let t1 = ctx.now();
        let generation = ctx
            .patch_spec("sbc", spec, "spec changed (image and ignitionSecretRef)")
            .await?;
        // Done once the backend claims Ready for the new generation, honestly (after a non-Ready) or by stamp.
        let (h, done) = ctx.wait_ready_for_generation("sbc", generation).await;
        match h.ready_carried_across(generation) {
            Some(o) => out.fail(
                "SBC-GEN-002",
                format!("Ready carried from generation {} into {} without a non-Ready state (last at {:.3}s); {}",
                    generation - 1, o.generation, o.at.as_secs_f64(), describe(&h)),
            ),
            None if done => out.pass("SBC-GEN-002", "left Ready after the spec change before Ready again"),
            None => out.fail("SBC-GEN-002", format!("not Ready again within the deadline; {}", describe(&h))),
        };
        let last_ready = h
            .observations
            .iter()
            .rev()
            .find(|o| o.is_ready() && o.generation >= generation && o.at >= t1);
        match last_ready {
            Some(o) => out.expect(
                "SBC-GEN-003",
                o.ready_stamp_problem(),
                format!("Ready stamped with generation {}", o.generation),
            ),
            None => out.fail(
                "SBC-GEN-003",
                format!("no Ready for generation {generation}; {}", describe(&h)),
            ),
        };
        Ok(out)
    })
}

/// Objects in the namespace the backend made for the SBC: anything not labelled by the suite (minus the
/// namespace's automatic contents) or owned by the SBC.
/// What the suite found of the backend's objects in the check's namespace before the delete.
struct BackendObjects {
    objects: Vec<(Api<DynamicObject>, DynamicObject)>,
    /// Listable namespaced kinds the suite could not list (e.g. RBAC): their objects are unknown.
    unlisted: Vec<String>,
    /// Kinds listed.
    listed: usize,
}

/// Every object in the check's namespace that the backend made: found through API discovery over every
/// listable namespaced kind (the suite's own objects carry its label; Events are the API server's record).
async fn backend_objects(ctx: &Ctx, uid: &str) -> anyhow::Result<BackendObjects> {
    let discovery = Discovery::new(ctx.target.client.clone()).run().await?;
    let mut found = BackendObjects {
        objects: Vec::new(),
        unlisted: Vec::new(),
        listed: 0,
    };
    for group in discovery.groups() {
        for (ar, caps) in group.recommended_resources() {
            if caps.scope != Scope::Namespaced
                || !caps.supports_operation(verbs::LIST)
                || ar.plural == "events"
            {
                continue;
            }
            let api: Api<DynamicObject> =
                Api::namespaced_with(ctx.target.client.clone(), &ctx.ns, &ar);
            let list = match api.list(&ListParams::default()).await {
                Ok(list) => list,
                Err(e) => {
                    let group = if ar.group.is_empty() {
                        "core"
                    } else {
                        &ar.group
                    };
                    found.unlisted.push(format!("{}.{group} ({e})", ar.plural));
                    continue;
                }
            };
            found.listed += 1;
            for obj in list.items {
                let ours = obj
                    .metadata
                    .labels
                    .as_ref()
                    .is_some_and(|l| l.contains_key(crate::fixtures::SUITE_LABEL));
                let automatic = matches!(
                    obj.metadata.name.as_deref(),
                    Some("default" | "kube-root-ca.crt")
                );
                let owned = owned_by(&obj, uid);
                if owned || (!ours && !automatic) {
                    found.objects.push((api.clone(), obj));
                }
            }
        }
    }
    Ok(found)
}

/// Backend objects still present after the SBC is gone that no ownerReference ties to it.
async fn orphans(
    children: &[(Api<DynamicObject>, DynamicObject)],
    uid: &str,
) -> anyhow::Result<Vec<String>> {
    let mut orphans = Vec::new();
    for (api, obj) in children {
        let name = obj.metadata.name.clone().unwrap_or_default();
        if let Some(still) = api.get_opt(&name).await?
            && !owned_by(&still, uid)
        {
            let kind = obj
                .types
                .as_ref()
                .map(|t| t.kind.clone())
                .unwrap_or_default();
            orphans.push(format!("{kind} {name}"));
        }
    }
    Ok(orphans)
}

fn owned_by(obj: &DynamicObject, uid: &str) -> bool {
    obj.metadata
        .owner_references
        .as_ref()
        .is_some_and(|refs| refs.iter().any(|r| r.uid == uid))
}

pub fn deletion(ctx: &Ctx) -> BoxFuture<'_, anyhow::Result<Outcomes>> {
    Box::pin(async move {
        let mut out = Outcomes::default();
        let rules = ["SBC-DEL-001", "SBC-DEL-002"];
        let (h, latency) = ready_sbc(ctx, "sbc").await?;
        if !precondition(&mut out, &rules, &h, latency.is_some()) {
            return Ok(out);
        }
        let uid = ctx
            .get_sbc("sbc")
            .await?
            .and_then(|o| o.metadata.uid)
            .unwrap_or_default();
        let children = backend_objects(ctx, &uid).await;
        let t0 = ctx.now();
        ctx.delete_sbc("sbc").await?;
        let gone = |h: &History| h.last().is_some_and(|o| o.kind == EventKind::Deleted);
        let (h, deleted) = ctx
            .wait_for(
                "sbc",
                "deleted: waiting for it to go",
                ctx.target.timeouts.deletion,
                gone,
            )
            .await;
        if deleted {
            let at = h.last().map(|o| o.at).unwrap_or(t0);
            out.pass(
                "SBC-DEL-001",
                format!(
                    "gone {:.3}s after the delete request",
                    (at - t0).as_secs_f64()
                ),
            );
            out.latency("deletion", (at - t0).as_secs_f64());
        } else {
            let finalizers = ctx
                .get_sbc("sbc")
                .await?
                .and_then(|o| o.metadata.finalizers)
                .unwrap_or_default();
            out.fail(
                "SBC-DEL-001",
                format!(
                    "still present after {:?}; finalizers {finalizers:?}",
                    ctx.target.timeouts.deletion
                ),
            );
        }
        match children {
            Err(e) => out.record(
                "SBC-DEL-002",
                Verdict::Error,
                format!("API discovery failed: {e:#}"),
            ),
            Ok(found) if !found.unlisted.is_empty() => out.record(
                "SBC-DEL-002",
                Verdict::Error,
                format!(
                    "could not list {} kind(s), so the backend's objects there are unknown (grant the suite list on them): {}",
                    found.unlisted.len(),
                    found.unlisted.join("; ")
                ),
            ),
            Ok(found) => {
                let orphans = orphans(&found.objects, &uid).await?;
                let ok = format!(
                    "{} backend object(s) owned by the SBC or removed, over all {} listable namespaced kinds",
                    found.objects.len(),
                    found.listed
                );
                let problem = (!orphans.is_empty()).then(|| {
                    format!(
                        "left without an ownerReference to the SBC: {}",
                        orphans.join(", ")
                    )
                });
                out.expect("SBC-DEL-002", problem, ok)
            }
        };
        Ok(out)
    })
}

pub fn isolation_secret(ctx: &Ctx) -> BoxFuture<'_, anyhow::Result<Outcomes>> {
    Box::pin(async move {
        let mut out = Outcomes::default();
        let t = &ctx.target.timeouts;
        let (other, _recorder) = ctx.extra_namespace("b").await?;
        ctx.secret_in(
            &other,
            "ignition",
            Some(&ignition_config("other-namespace")),
        )
        .await?;
        let server = ctx.server("m", Some("sbc")).await?;
        let t0 = ctx.now();
        ctx.sbc(
            "sbc",
            sbc_spec(&server.name, &ctx.target.images.valid, Some("ignition")),
        )
        .await?;
        let (_, _) = ctx
            .wait_for("sbc", "waiting for Error or Ready", t.error_deadline, |h| {
                h.first_ready_since(t0).is_some() || h.first_error_with_reason_since(t0).is_some()
            })
            .await;
        let elapsed = ctx.now().saturating_sub(t0);
        if elapsed < t.never_ready_window {
            ctx.observe(
                "sbc: watching for any Ready",
                t.never_ready_window - elapsed,
            )
            .await;
        }
        let h = ctx.recorder.history("sbc");
        match h.first_ready_since(t0) {
            None => out.pass_never_ready(
                "SBC-ISO-001",
                format!("not Ready with the Secret only in {other}"),
            ),
            Some(o) => out.fail(
                "SBC-ISO-001",
                format!(
                    "Ready at {:.3}s although its Secret exists only in namespace {other}",
                    o.at.as_secs_f64()
                ),
            ),
        };
        Ok(out)
    })
}

pub fn isolation_neighbours(ctx: &Ctx) -> BoxFuture<'_, anyhow::Result<Outcomes>> {
    Box::pin(async move {
        let mut out = Outcomes::default();
        let t = &ctx.target.timeouts;
        let (other, other_rec) = ctx.extra_namespace("b").await?;
        let bad_server = ctx.server("bad", Some("bad")).await?;
        ctx.sbc(
            "bad",
            sbc_spec(&bad_server.name, &ctx.target.images.valid, Some("absent")),
        )
        .await?;
        let twin_server = ctx
            .server_referencing("twin", Some((&other, "good")))
            .await?;
        ctx.secret_in(&other, "good-ignition", Some(&ignition_config("twin")))
            .await?;
        let t0 = ctx.now();
        ctx.sbc_in(
            &other_rec,
            &other,
            "good",
            sbc_spec(
                &twin_server.name,
                &ctx.target.images.valid,
                Some("good-ignition"),
            ),
        )
        .await?;
        let (_, latency) = ready_sbc(ctx, "good").await?;
        let (twin, twin_ready) = other_rec
            .wait_for("good", t.time_to_ready, |h| {
                h.first_ready_since(t0).is_some()
            })
            .await;
        ctx.observe("watching both valid SBCs stay Ready", t.stability_window)
            .await;
        let mut problems = Vec::new();
        if latency.is_none() {
            problems.push(format!("{}/good not Ready next to a broken SBC", ctx.ns));
        }
        if !twin_ready {
            problems.push(format!(
                "{other}/good (same name, other namespace) not Ready; {}",
                describe(&twin)
            ));
        }
        for h in [ctx.recorder.history("good"), other_rec.history("good")] {
            let first = h.first_ready().map(|o| o.at);
            let left =
                first.and_then(|at| h.observations.iter().find(|o| o.at > at && !o.is_ready()));
            if let Some(o) = left {
                problems.push(format!(
                    "{} left Ready at {:.3}s ({:?})",
                    h.key(),
                    o.at.as_secs_f64(),
                    o.state_str()
                ));
            }
        }
        if let Some(o) = ctx.recorder.history("bad").first_ready() {
            problems.push(format!(
                "the broken SBC was Ready at {:.3}s",
                o.at.as_secs_f64()
            ));
        }
        let problem = (!problems.is_empty()).then(|| problems.join("; "));
        out.expect(
            "SBC-ISO-002",
            problem,
            "both valid SBCs converged and stayed Ready next to a broken one",
        );
        Ok(out)
    })
}
