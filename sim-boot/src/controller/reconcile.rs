//! The reconcile loop for one ServerBootConfiguration: Pending first on anything new, then prepare,
//! publish, self-probe, and only then Ready. Misbehaviour modes hook in at the points where the real bugs sit.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use metal_api::{ServerBootConfiguration, ServerBootConfigurationState as State};
use serde_json::json;

// `upstream-like` is a branch of this reconcile over the same target, so it is a child module.
mod upstream;

use super::conditions::{self, Cond, Written, reasons, types, write_status_on};
use super::prepare::{Failure, Prepared, prepare};
use super::probe::{Prober, self_probe};
use super::{Context, Error, Inputs};
use crate::misbehaviour::Misbehaviour;
use crate::records::{BootRecord, SbcKey};

/// How often a Ready SBC is re-examined (tags can move, registries can lose blobs).
pub(super) const RESYNC: Duration = Duration::from_secs(300);

/// The finalizer `finalizer-never-removed` adds.
pub const FINALIZER: &str = "sim-boot.ironcore.dev/cleanup";

pub(super) struct Target<'a> {
    api: Api<ServerBootConfiguration>,
    pub(super) key: SbcKey,
    generation: i64,
    pub(super) ctx: &'a Context,
    /// The SBC as this reconcile last read or wrote it: each status write starts from it (guarded by
    /// its resourceVersion) instead of reading it again.
    current: Mutex<Option<Arc<ServerBootConfiguration>>>,
}

impl Target<'_> {
    pub(super) async fn write(&self, state: State, conditions: &[Cond]) -> Result<Written, Error> {
        let state = match state {
            State::Pending if self.ctx.options.misbehaviour == Misbehaviour::InventedState => {
                State::Other("Preparing".into())
            }
            state => state,
        };
        let known = self.lock().clone();
        let state_name = state.as_str().to_owned();
        let outcome = write_status_on(
            &self.api,
            &self.key.name,
            known,
            self.generation,
            state,
            conditions,
            &self.ctx.clock,
        )
        .await?;
        if outcome.written == Written::Yes
            && let Some(written) = &outcome.latest
        {
            // The next reconcile may start before the watch shows this write; it starts from it.
            self.ctx
                .sbc_writes
                .record(outcome.from.as_deref(), written.clone());
        }
        tracing::debug!(sbc = %self.key, state = %state_name, written = ?outcome.written, "status");
        *self.lock() = outcome.latest;
        Ok(outcome.written)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Arc<ServerBootConfiguration>>> {
        self.current.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub async fn reconcile(
    sbc: Arc<ServerBootConfiguration>,
    ctx: Arc<Context>,
    inputs: &Inputs,
) -> Result<Action, Error> {
    // The cached SBC may not show this controller's last write yet; deciding on it (say, "no state
    // yet: write Pending") would undo that write.
    let sbc = ctx.sbc_writes.freshest(sbc);
    let mode = ctx.options.misbehaviour;
    let key = SbcKey::of(&sbc.metadata);
    if mode == Misbehaviour::CrashOnReconcile {
        panic!("crash-on-reconcile: simulated controller crash while reconciling {key}");
    }
    match mode {
        Misbehaviour::Slow => tokio::time::sleep(ctx.options.misbehaviour_options.slow_delay).await,
        Misbehaviour::SingleWorker => {
            tokio::time::sleep(ctx.options.misbehaviour_options.serial_delay).await;
        }
        Misbehaviour::WatchFromNow if ctx.existed_at_start(&sbc) => {
            return Ok(Action::await_change());
        }
        Misbehaviour::WatchFromNow if conditions::state_of(&sbc).is_none() => {
            if let Some(wait) = ctx.queue_wait(&sbc) {
                return Ok(Action::requeue(wait));
            }
        }
        _ => {}
    }
    if sbc.metadata.deletion_timestamp.is_some() {
        if mode != Misbehaviour::ServeDeleted {
            ctx.records.remove(&key);
        }
        ctx.lie_over(&key);
        ctx.sbc_writes.forget(&sbc);
        return Ok(Action::await_change());
    }
    let sbc = match mode {
        Misbehaviour::FinalizerNeverRemoved => add_finalizer(&ctx, &key, sbc).await?,
        _ => sbc,
    };
    if mode == Misbehaviour::ErrorIsTerminal && conditions::state_of(&sbc) == Some(State::Error) {
        return Ok(Action::await_change());
    }
    let target = Target {
        api: Api::namespaced(ctx.client.clone(), &key.namespace),
        key,
        generation: sbc.metadata.generation.unwrap_or(0),
        ctx: &ctx,
        current: Mutex::new(Some(sbc.clone())),
    };
    let uid = sbc.metadata.uid.clone().unwrap_or_default();
    if ctx.records.get(&target.key).is_some_and(|r| r.uid != uid) {
        ctx.records.remove(&target.key);
    }
    if mode == Misbehaviour::UpstreamLike {
        return upstream::reconcile(&target, &sbc, inputs).await;
    }
    let state = conditions::state_of(&sbc);
    let fresh = conditions::observed_generation(&sbc) == Some(target.generation);
    // `keep-ready-on-bad-update` looks at a Ready SBC's new spec before leaving Ready, and does not leave
    // it when the new image fails: the failure never reaches the status.
    let mut early = None;
    if mode == Misbehaviour::KeepReadyOnBadUpdate && state == Some(State::Ready) && !fresh {
        let prepared = prepare(&sbc, &ctx, inputs).await;
        if let Err(failure) = &prepared
            && failure
                .conditions
                .iter()
                .any(|c| c.type_ == types::IMAGE_RESOLVED && c.status == "False")
        {
            return Ok(Action::requeue(ctx.backoff(&target.key)));
        }
        early = Some(prepared);
    }
    if state.is_none() || (!fresh && state != Some(State::Pending)) {
        let why = if state.is_none() {
            "new ServerBootConfiguration"
        } else {
            "spec changed"
        };
        if mode == Misbehaviour::StaleReadyOnUpdate && state == Some(State::Ready) {
            target.write(State::Ready, &stale_truths(&target)).await?;
            tokio::time::sleep(ctx.options.misbehaviour_options.lie_window).await;
        } else if target
            .write(
                State::Pending,
                &conditions::preparing(target.generation, why),
            )
            .await?
            == Written::Superseded
        {
            return Ok(Action::await_change());
        }
    }
    let prepared = match early {
        Some(prepared) => prepared,
        None => prepare(&sbc, &ctx, inputs).await,
    };
    match prepared {
        Ok(prepared) => on_prepared(&target, state, fresh, prepared).await,
        Err(failure) => {
            let ready_now = fresh && state == Some(State::Ready);
            on_failure(&target, failure, ready_now).await
        }
    }
}

/// Every condition True for the new generation, without having looked at it (the stale-Ready lie).
fn stale_truths(target: &Target<'_>) -> Vec<Cond> {
    [
        types::SERVER_RESOLVED,
        types::IMAGE_RESOLVED,
        types::IGNITION_READY,
        types::ARTIFACTS_SERVED,
    ]
    .into_iter()
    .map(|t| {
        Cond::truth(
            t,
            reasons::ARTIFACTS_SERVED,
            format!("generation {} (carried over)", target.generation),
        )
    })
    .collect()
}

/// Completes `conditions` with the owned types it lacks, as Unknown.
fn complete(mut conditions: Vec<Cond>, why: &str) -> Vec<Cond> {
    for type_ in [
        types::SERVER_RESOLVED,
        types::IMAGE_RESOLVED,
        types::IGNITION_READY,
        types::ARTIFACTS_SERVED,
    ] {
        if !conditions.iter().any(|c| c.type_ == type_) {
            conditions.push(Cond::unknown(type_, reasons::WAITING, why.to_string()));
        }
    }
    conditions
}

async fn on_failure(
    target: &Target<'_>,
    failure: Failure,
    ready_now: bool,
) -> Result<Action, Error> {
    let ctx = target.ctx;
    let transient = !failure.conditions.iter().any(|c| c.status == "False");
    if transient && ready_now && ctx.records.get(&target.key).is_some() {
        // A read that failed (API server overloaded or restarting) says nothing about the inputs: keep
        // serving what was verified for this generation and look again soon, instead of flapping.
        tracing::warn!(sbc = %target.key, "inputs unreadable while Ready; keeping Ready and retrying");
        return Ok(Action::requeue(ctx.backoff(&target.key)));
    }
    // Error means nothing is served for this SBC: a machine must not boot a previous generation's artifacts.
    ctx.records.remove(&target.key);
    let blocking: Vec<_> = failure
        .conditions
        .iter()
        .filter(|c| c.status != "True")
        .map(|c| c.message.clone())
        .collect();
    let why = format!("not served: {}", blocking.join("; "));
    // A transient read failure (Unknown) is not an Error: keep Pending and retry.
    let state = if failure.conditions.iter().any(|c| c.status == "False") {
        State::Error
    } else {
        State::Pending
    };
    target
        .write(state, &complete(failure.conditions, &why))
        .await?;
    Ok(Action::requeue(ctx.backoff(&target.key)))
}

async fn on_prepared(
    target: &Target<'_>,
    state: Option<State>,
    fresh: bool,
    prepared: Prepared,
) -> Result<Action, Error> {
    let ctx = target.ctx;
    let mode = ctx.options.misbehaviour;
    let mut conditions = prepared.conditions;
    if mode == Misbehaviour::RecordsByName
        && let Some(holder) = ctx.records.name_taken_by(&target.key)
    {
        conditions.push(Cond::falsity(
            types::ARTIFACTS_SERVED,
            reasons::RECORD_EXISTS,
            format!(
                "boot record {} already exists (for {holder})",
                target.key.name
            ),
        ));
        target.write(State::Error, &conditions).await?;
        return Ok(Action::requeue(ctx.backoff(&target.key)));
    }
    if !prepared.server_references_sbc && mode != Misbehaviour::ServeNewest {
        // Publishing early lets the reference take effect at once; `ready-before-serving` publishes late.
        if mode != Misbehaviour::ReadyBeforeServing {
            ctx.records.publish(prepared.record, prepared.blobs);
        }
        let message = format!(
            "Server {} does not reference {} in spec.bootConfigurationRef; only the referenced configuration is served",
            target.key.name, target.key
        );
        conditions.push(Cond::falsity(
            types::ARTIFACTS_SERVED,
            reasons::NOT_REFERENCED,
            message,
        ));
        target.write(State::Pending, &conditions).await?;
        return Ok(Action::requeue(Duration::from_secs(10)));
    }
    let current = ctx.records.get(&target.key);
    let unchanged = current.as_deref() == Some(&prepared.record);
    if unchanged && fresh && state == Some(State::Ready) {
        ctx.reset_backoff(&target.key);
        return Ok(Action::requeue(RESYNC));
    }
    if mode == Misbehaviour::ReadyBeforeServing
        && !unchanged
        && fresh
        && state == Some(State::Ready)
        && ctx.lying_about(&target.key, &prepared.record)
    {
        // Already Ready for this record, which goes live when the lie window closes: lie once, not on
        // every wake-up (which, at no cost in time, would never let a virtual clock move on).
        return Ok(Action::requeue(ctx.options.misbehaviour_options.lie_window));
    }
    if state == Some(State::Ready) && !unchanged && mode != Misbehaviour::StaleReadyOnUpdate {
        // Same generation, different inputs (Secret content, a moved tag): not Ready until re-verified.
        let mut pending = conditions.clone();
        pending.push(Cond::unknown(
            types::ARTIFACTS_SERVED,
            reasons::RECONCILING,
            "inputs changed; re-publishing and re-verifying",
        ));
        target.write(State::Pending, &pending).await?;
    }
    let keep_old = mode == Misbehaviour::ServeOldArtifacts
        && current
            .as_ref()
            .is_some_and(|c| c.generation != prepared.record.generation);
    if mode == Misbehaviour::ReadyBeforeServing && !unchanged {
        return ready_before_serving(target, conditions, prepared.record, prepared.blobs).await;
    }
    if !keep_old {
        ctx.records.publish(prepared.record.clone(), prepared.blobs);
    }
    verify_and_report(target, conditions, &prepared.record, keep_old).await
}

/// Self-probes the published record and writes Ready (or Pending with the probe's finding).
async fn verify_and_report(
    target: &Target<'_>,
    mut conditions: Vec<Cond>,
    record: &BootRecord,
    keep_old: bool,
) -> Result<Action, Error> {
    let ctx = target.ctx;
    let mode = ctx.options.misbehaviour;
    let skip_probe = keep_old
        || matches!(
            mode,
            Misbehaviour::ReadyOnBadImage
                | Misbehaviour::ReadyOnMissingSecret
                | Misbehaviour::ReadyWithoutServer
        );
    if !skip_probe
        && let Err(problem) = self_probe(
            &Prober {
                http: &ctx.probe,
                verified: &ctx.verified,
                inflight: &ctx.probes,
            },
            &ctx.base_url,
            record,
            ctx.options.boot_modes,
        )
        .await
    {
        conditions.push(Cond::falsity(
            types::ARTIFACTS_SERVED,
            reasons::SELF_PROBE_FAILED,
            problem,
        ));
        target.write(State::Pending, &conditions).await?;
        return Ok(Action::requeue(ctx.backoff(&target.key)));
    }
    let served = format!(
        "{} served and verified over HTTP at {}",
        target.key, ctx.base_url
    );
    conditions.push(Cond::truth(
        types::ARTIFACTS_SERVED,
        reasons::ARTIFACTS_SERVED,
        served,
    ));
    let state = if mode == Misbehaviour::NeverReady {
        State::Pending
    } else {
        State::Ready
    };
    if mode == Misbehaviour::LeakChildren {
        leak_child(target, record).await?;
    }
    if target.write(state, &conditions).await? != Written::Superseded {
        ctx.reset_backoff(&target.key);
        if mode == Misbehaviour::TouchSpec {
            pin_image_in_spec(target, record).await?;
        }
        if mode == Misbehaviour::Flap {
            ctx.start_flapping(
                target.api.clone(),
                target.key.clone(),
                target.generation,
                conditions,
            );
        }
    }
    Ok(Action::requeue(RESYNC))
}

async fn ready_before_serving(
    target: &Target<'_>,
    mut conditions: Vec<Cond>,
    record: crate::records::BootRecord,
    blobs: Vec<(String, bytes::Bytes)>,
) -> Result<Action, Error> {
    let ctx = target.ctx;
    conditions.push(Cond::truth(
        types::ARTIFACTS_SERVED,
        reasons::ARTIFACTS_SERVED,
        "served",
    ));
    target.write(State::Ready, &conditions).await?;
    ctx.records.remove(&target.key);
    ctx.lie_started(&target.key, &record);
    let records = ctx.records.clone();
    let delay = ctx.options.misbehaviour_options.lie_window;
    tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        records.publish(record, blobs);
    });
    Ok(Action::requeue(RESYNC))
}

/// `finalizer-never-removed`: adds the finalizer (once); returns the SBC as written.
async fn add_finalizer(
    ctx: &Context,
    key: &SbcKey,
    sbc: Arc<ServerBootConfiguration>,
) -> Result<Arc<ServerBootConfiguration>, Error> {
    let mut finalizers = sbc.metadata.finalizers.clone().unwrap_or_default();
    if finalizers.iter().any(|f| f == FINALIZER) {
        return Ok(sbc);
    }
    finalizers.push(FINALIZER.into());
    let patch = json!({"metadata": {
        "resourceVersion": sbc.metadata.resource_version,
        "finalizers": finalizers,
    }});
    let api: Api<ServerBootConfiguration> = Api::namespaced(ctx.client.clone(), &key.namespace);
    let written = api
        .patch(&key.name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(Arc::new(written))
}

/// `leak-children`: the boot record as a ConfigMap in the SBC's namespace, with no ownerReference.
async fn leak_child(target: &Target<'_>, record: &BootRecord) -> Result<(), Error> {
    let name = format!("sim-boot-{}", target.key.name);
    let ignition = record.ignition.as_deref().map(crate::ignition::hash);
    let child = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name},
        "data": {
            "systemUUID": record.system_uuid,
            "image": record.image.canonical(),
            "ignitionSHA256": ignition.unwrap_or_default(),
        },
    });
    let api: Api<ConfigMap> = Api::namespaced(target.ctx.client.clone(), &target.key.namespace);
    api.patch(
        &name,
        &PatchParams::apply("sim-boot").force(),
        &Patch::Apply(&child),
    )
    .await?;
    Ok(())
}

/// `touch-spec`: rewrites `spec.image` to the resolved manifest digest, a write to a field sim-boot does not own.
async fn pin_image_in_spec(
    target: &Target<'_>,
    record: &crate::records::BootRecord,
) -> Result<(), Error> {
    if record.image.version().starts_with("sha256:") || record.manifest_digest.is_empty() {
        return Ok(());
    }
    let pinned = format!(
        "{}/{}@{}",
        record.image.registry(),
        record.image.repository(),
        record.manifest_digest
    );
    let patch = json!({"spec": {"image": pinned}});
    target
        .api
        .patch(
            &target.key.name,
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await?;
    Ok(())
}
