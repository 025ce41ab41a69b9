//! Automatic BMC reset, as upstream: a BMC whose Redfish service has been failing (`Ready=False`
//! with reason `InternalServerError` or `ConnectionFailed`) for longer than
//! `--bmc-failure-reset-delay` gets one `Manager.Reset` (`GracefulRestart`) per outage. The `Reset`
//! condition stays True until the BMC answers again, so a dead BMC is not reset in a loop.
//! Upstream's next step after a 5xx answer, a reset over SSH, is not implemented: it is reported
//! as a Warning Event instead.

use kube::Resource as _;
use kube::runtime::controller::Action;
use metal_api::{BMC, BMCState, BMCStatus};

use super::name_of;
use crate::conditions::{self, NewCondition};
use crate::context::Context;
use crate::keys;
use crate::redfish::{RedfishClient, ResetType};

/// Upstream's `Reset` condition message for an automatic reset.
pub const AUTO_RESET_MESSAGE: &str = "BMC reset initiated automatically after repeated connection failures. Waiting for it to come back online.";

/// Whether the BMC has failed long enough to be reset (judged on the status before this reconcile).
fn due(status: &BMCStatus, ctx: &Context) -> bool {
    let delay = ctx.config.bmc_failure_reset_delay;
    if delay.is_zero() || conditions::is_true(&status.conditions, keys::conditions::RESET) {
        return false;
    }
    conditions::find(&status.conditions, keys::conditions::READY).is_some_and(|ready| {
        ready.status == "False"
            && [
                keys::conditions::REASON_INTERNAL_SERVER_ERROR,
                keys::conditions::REASON_CONNECTION_FAILED,
            ]
            .contains(&ready.reason.as_str())
            && conditions::age(ready, ctx.clock.now()) >= delay
    })
}

/// Resets the BMC when it is due; `Some(action)` when a reset was attempted (the status then says
/// `Reset=True`, state `Pending`, and the caller writes it).
pub(super) async fn auto_reset(
    bmc: &BMC,
    ctx: &Context,
    redfish: &RedfishClient,
    status: &mut BMCStatus,
) -> Option<Action> {
    if !due(status, ctx) {
        return None;
    }
    conditions::set(
        &mut status.conditions,
        NewCondition {
            type_: keys::conditions::RESET,
            status: true,
            reason: keys::conditions::REASON_AUTO_RESETTING,
            message: AUTO_RESET_MESSAGE.into(),
            observed_generation: None,
        },
        ctx.clock.now(),
    );
    status.state = Some(BMCState::Pending);
    let sent = async {
        let manager = redfish.manager(bmc.spec.bmc_uuid.as_deref()).await?;
        redfish
            .reset_manager(&manager, ResetType::GracefulRestart)
            .await
    }
    .await;
    let name = name_of(bmc);
    let (warning, event_reason, note) = match sent {
        Ok(()) => (
            false,
            "BMCAutoReset",
            format!(
                "Redfish failing for {:?}: Manager.Reset GracefulRestart sent",
                ctx.config.bmc_failure_reset_delay
            ),
        ),
        Err(error) if error.status().is_some_and(|s| (500..600).contains(&s)) => (
            true,
            "BMCResetFailed",
            format!("Manager.Reset answered {error}; a reset over SSH is not implemented"),
        ),
        Err(error) => (
            true,
            "BMCResetFailed",
            format!("could not reset the BMC: {error}"),
        ),
    };
    tracing::warn!(bmc = %name, %note, "automatic BMC reset");
    ctx.event(bmc.object_ref(&()), warning, event_reason, "Reset", note)
        .await;
    Some(Action::requeue(ctx.config.power_polling_interval))
}
