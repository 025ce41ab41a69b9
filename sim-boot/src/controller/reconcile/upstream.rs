//! `upstream-like`: a ServerBootConfiguration handled as boot-operator main handles it (see
//! `/work/shared/notes/boot-operator-behaviour.md` §2): no Pending, no generation guard, no condition on
//! Ready, Error only for image and ignition failures, a missing Server retried without a status write.

use kube::runtime::controller::Action;
use metal_api::{ServerBootConfiguration, ServerBootConfigurationState as State};

use super::{RESYNC, Target};
use crate::controller::conditions::{Cond, types};
use crate::controller::prepare::prepare;
use crate::controller::{Error, Inputs};

pub(super) async fn reconcile(
    target: &Target<'_>,
    sbc: &ServerBootConfiguration,
    inputs: &Inputs,
) -> Result<Action, Error> {
    let ctx = target.ctx;
    tracing::debug!(sbc = %target.key, "upstream-like: preparing");
    let failure = match prepare(sbc, ctx, inputs).await {
        Ok(prepared) => {
            // The child is applied and served at once (the boot server never checks its state), then its
            // Ready is mirrored: on a spec change that is the previous generation's Ready, kept throughout.
            // Ready removes ImageValidation and leaves no condition, so none carries observedGeneration.
            ctx.records.publish(prepared.record, prepared.blobs);
            target.write(State::Ready, &[]).await?;
            ctx.reset_backoff(&target.key);
            return Ok(Action::requeue(RESYNC));
        }
        Err(failure) => failure,
    };
    tracing::debug!(sbc = %target.key, ?failure, "upstream-like: preparation failed");
    let failed = |type_: &str| {
        failure
            .conditions
            .iter()
            .any(|c| c.type_ == type_ && c.status == "False")
    };
    if failed(types::IMAGE_RESOLVED) {
        // PatchServerBootConfigWithError: Error plus ImageValidation/ValidationFailed stamped with the
        // generation. The child is not re-applied, so whatever it held is still served.
        let validation: Vec<Cond> = failure
            .conditions
            .into_iter()
            .filter(|c| c.type_ == types::IMAGE_VALIDATION)
            .collect();
        target.write(State::Error, &validation).await?;
    } else if failed(types::IGNITION_READY) {
        // The child controller's Error, mirrored as the state alone: no reason condition.
        ctx.records.remove(&target.key);
        target.write(State::Error, &[]).await?;
    }
    // A missing Server (or an unreadable input) returns an error: retried with backoff, status untouched.
    Ok(Action::requeue(ctx.backoff(&target.key)))
}
