//! The `metal.ironcore.dev/operation` annotation on Servers: park/unpark, resets, retry.
//!
//! Upstream consumes (removes) the annotation after acting and drops unknown values with a Warning.
//! Stricter here: a reset that can boot the host is deferred (annotation kept, Warning event)
//! while the readiness gate says the Server's boot configuration is not ready.

use std::time::Duration;

use kube::runtime::controller::Action;
use metal_api::ServerState;
use metal_api::constants::Operation;

use super::power::{Progress, ensure_off};
use super::run::Run;
use crate::config::ReadinessGate;
use crate::controllers::operation_of;
use crate::error::Result;
use crate::gate::Verdict;
use crate::keys;
use crate::redfish::ResetType;

/// Removes the annotation once acted on, refused or failed, with an Event that says which.
async fn consume(run: &mut Run<'_>, warning: bool, reason: &str, note: String) -> Result<()> {
    run.patch_annotations(&[(keys::OPERATION_ANNOTATION, None)])
        .await?;
    run.event(warning, reason, note).await;
    Ok(())
}

/// Acts on the annotation; `Some(action)` ends this reconcile early.
pub(super) async fn handle_operation(run: &mut Run<'_>) -> Result<Option<Action>> {
    let Some(value) = operation_of(&*run.server) else {
        return Ok(None);
    };
    let operation = Operation::from(value.as_str());
    if run.is_parked() && !matches!(operation, Operation::Unpark | Operation::Park) {
        consume(
            run,
            true,
            keys::events::PARKED_OPERATION_DROPPED,
            format!("server is parked; dropped operation {value}"),
        )
        .await?;
        return Ok(None);
    }
    match operation {
        Operation::Park => park(run).await,
        Operation::Unpark => {
            let next = run.unparked_state();
            let was_parked = run.is_parked();
            run.patch_annotations(&[
                (keys::OPERATION_ANNOTATION, None),
                (keys::PARKED_ANNOTATION, None),
            ])
            .await?;
            if was_parked {
                run.set_state(next.clone());
                run.event(
                    false,
                    "Unparked",
                    format!("server unparked, back to {next}"),
                )
                .await;
            }
            Ok(Some(Action::requeue(Duration::ZERO)))
        }
        Operation::Retry => {
            run.patch_annotations(&[(keys::OPERATION_ANNOTATION, None)])
                .await?;
            if run.state() == ServerState::Error {
                run.set_state(ServerState::Initial);
            }
            Ok(None)
        }
        Operation::GracefulRestartServer
        | Operation::HardRestartServer
        | Operation::PowerCycleServer
        | Operation::ForceOffServer
        | Operation::ForceOnServer => reset(run, &operation, &value).await,
        _ => {
            consume(
                run,
                true,
                "UnsupportedOperation",
                format!("operation {value} is not supported on Servers"),
            )
            .await?;
            Ok(None)
        }
    }
}

async fn park(run: &mut Run<'_>) -> Result<Option<Action>> {
    if run.is_parked() {
        run.patch_annotations(&[(keys::OPERATION_ANNOTATION, None)])
            .await?;
        return Ok(None);
    }
    if !matches!(run.state(), ServerState::Available | ServerState::Reserved) {
        let note = format!("cannot park a server in state {}; will retry", run.state());
        run.event(true, keys::events::PARK_DEFERRED, note).await;
        return Ok(None);
    }
    if ensure_off(run).await? == Progress::Waiting {
        return Ok(Some(Action::requeue(run.ctx.config.power_polling_interval)));
    }
    run.patch_annotations(&[
        (keys::OPERATION_ANNOTATION, None),
        (keys::PARKED_ANNOTATION, Some(keys::ANNOTATION_TRUE)),
    ])
    .await?;
    run.set_state(ServerState::Parked);
    run.event(false, "Parked", "server powered off and parked".into())
        .await;
    Ok(Some(Action::requeue(run.ctx.config.server_resync_interval)))
}

fn reset_type(operation: &Operation) -> ResetType {
    match operation {
        Operation::GracefulRestartServer => ResetType::GracefulRestart,
        Operation::HardRestartServer => ResetType::ForceRestart,
        Operation::PowerCycleServer => ResetType::PowerCycle,
        Operation::ForceOffServer => ResetType::ForceOff,
        _ => ResetType::ForceOn,
    }
}

async fn reset(run: &mut Run<'_>, operation: &Operation, value: &str) -> Result<Option<Action>> {
    let reset = reset_type(operation);
    if reset.boots_host() && run.ctx.config.readiness_gate == ReadinessGate::Strict {
        let verdict = reset_verdict(run).await?;
        if !verdict.is_ready() {
            let (reason, message) = verdict.condition();
            let note = format!(
                "{value} deferred until the boot configuration is ready: {reason}: {message}"
            );
            run.event(true, "ResetDeferred", note).await;
            return Ok(None);
        }
    }
    match run.redfish.reset_system(&run.system, reset).await {
        Ok(()) => {}
        Err(error) if !error.is_transient() => {
            // The BMC will never accept it (e.g. not in its allowable reset types): report and drop.
            consume(run, true, "ResetFailed", format!("{value}: {error}")).await?;
            return Ok(None);
        }
        Err(error) => return Err(error.into()),
    }
    if reset.boots_host() {
        run.ctx
            .metrics
            .power_on_requests
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    consume(
        run,
        false,
        "ResetRequested",
        format!("{value}: sent {reset} to the BMC"),
    )
    .await?;
    Ok(Some(Action::requeue(run.ctx.config.power_polling_interval)))
}

/// A boot-type reset needs a ready boot configuration when the Server references one, and in
/// Discovery/Reserved (where booting without one would boot the wrong thing).
async fn reset_verdict(run: &mut Run<'_>) -> Result<Verdict> {
    if run.server.spec.boot_configuration_ref.is_some() {
        return run.boot_readiness_fresh().await;
    }
    match run.state() {
        ServerState::Discovery | ServerState::Reserved => Ok(Verdict::NotReferenced),
        _ => Ok(Verdict::Ready),
    }
}
