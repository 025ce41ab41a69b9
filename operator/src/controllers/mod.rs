//! One reconciler per kind, all sharing [`Context`]; plus the plumbing every reconcile goes through
//! (metrics, panic isolation, malformed-object events, bounded error backoff), run by [`run`], and
//! kube-runtime's finalizer helper with this crate's error ([`finalized`]).

pub mod bmc;
mod bmc_reset;
pub mod bmcsecret;
mod claim_index;
pub mod endpoint;
pub mod readiness_rule;
pub mod server;
pub mod server_boot_configuration;
pub mod server_claim;

use std::fmt::Debug;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt as _, StreamExt as _};
use kube::Resource;
use kube::api::Api;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::finalizer::{self, Event as FinalizerEvent};
use kube::runtime::reflector::{ObjectRef, Store};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::context::Context;
use crate::error::{Error, Result};

/// Runs a controller until `shutdown`: every reconcile goes through [`instrumented`], failures
/// through [`error_policy`]. `concurrency` bounds reconciles in flight (0: unbounded, kube's default).
pub(crate) async fn run<K, F, Fut>(
    name: &'static str,
    controller: Controller<K>,
    concurrency: u16,
    ctx: Arc<Context>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
    reconcile: F,
) where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    F: FnOnce(Arc<K>, Arc<Context>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<Action>> + Send + 'static,
{
    // The concurrency limit is kept by `OrderedStarts` (first come, first served), not by kube-runtime
    // (which releases held objects in a hash order): see `watches::OrderedStarts`.
    let starts = watches::OrderedStarts::limited(usize::from(concurrency));
    let store = controller.store();
    controller
        .graceful_shutdown_on(shutdown)
        .run(
            move |obj, ctx| {
                // Started here, in the order kube-runtime hands objects over, not at first poll.
                let regarding = obj.object_ref(&());
                let key = format!(
                    "{}/{}",
                    regarding.namespace.as_deref().unwrap_or_default(),
                    regarding.name.as_deref().unwrap_or_default()
                );
                let reconcile = reconcile.clone();
                let (store, for_work) = (store.clone(), ctx.clone());
                let task = starts.start(key, move || {
                    // Waiting for a permit may have taken a while: the object as it is now; one deleted
                    // meanwhile is skipped, as kube-runtime skips an object gone from its store.
                    let fresh = store.get(&ObjectRef::from_obj(&*obj));
                    let work = fresh.map(|obj| reconcile(obj, for_work));
                    AssertUnwindSafe(async move {
                        match work {
                            Some(work) => work.await,
                            None => Ok(Action::await_change()),
                        }
                    })
                    .catch_unwind()
                });
                instrumented(name, regarding, ctx, task)
            },
            error_policy,
            ctx,
        )
        .for_each(log_outcome)
        .await;
}

/// A kind whose reconcile runs under its finalizer (see [`finalized`]).
pub(crate) trait Finalized:
    Resource<DynamicType = ()> + Clone + DeserializeOwned + Serialize + Debug
{
    const FINALIZER: &'static str;
    /// Whether an `ignore`-annotated object is still looked at every resync, not only on a change.
    const RESYNC_WHEN_IGNORED: bool = false;

    /// Where the finalizer patches go (cluster-scoped kinds; namespaced ones override).
    fn api(&self, client: kube::Client) -> Api<Self> {
        Api::all(client)
    }
}

/// kube-runtime's finalizer bookkeeping around `apply` and `cleanup`, whose errors come back as
/// they were (only the finalizer's own patch failures become [`Error::Finalizer`]); an
/// `ignore`-annotated object runs neither.
pub(crate) async fn finalized<K: Finalized>(
    obj: Arc<K>,
    ctx: &Context,
    apply: impl AsyncFnOnce(Arc<K>, &Context) -> Result<Action>,
    cleanup: impl AsyncFnOnce(Arc<K>, &Context) -> Result<Action>,
) -> Result<Action> {
    if is_ignored(&*obj) {
        return Ok(if K::RESYNC_WHEN_IGNORED {
            Action::requeue(ctx.config.server_resync_interval)
        } else {
            Action::await_change()
        });
    }
    let api = obj.api(ctx.client.clone());
    finalizer::finalizer(&api, K::FINALIZER, obj, |event| async move {
        match event {
            FinalizerEvent::Apply(obj) => apply(obj, ctx).await,
            FinalizerEvent::Cleanup(obj) => cleanup(obj, ctx).await,
        }
    })
    .await
    .map_err(|e| match e {
        finalizer::Error::ApplyFailed(e) | finalizer::Error::CleanupFailed(e) => e,
        other => Error::Finalizer(other.to_string()),
    })
}

/// Finishes one reconcile started by [`run`]: metrics, panic isolation and the malformed-object
/// policy.
///
/// The reconcile runs as a task of its own: kube-runtime polls all of a controller's reconciles
/// inside the controller's one task, which would hold each controller to one core however many
/// reconciles are in flight. Dropping the returned future (shutdown) aborts the task.
async fn instrumented(
    controller: &'static str,
    regarding: k8s_openapi::api::core::v1::ObjectReference,
    ctx: Arc<Context>,
    task: impl Future<Output = Result<std::thread::Result<Result<Action>>, tokio::task::JoinError>>,
) -> Result<Action> {
    let timer = ctx.metrics.reconcile_started(controller);
    let outcome = match task.await {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(panic)) => {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_else(|| "unknown panic".into());
            tracing::error!(controller, %message, "reconcile panicked");
            Err(Error::Panic(message))
        }
        Err(join) => Err(Error::Panic(format!("reconcile task ended: {join}"))),
    };
    drop(timer);
    match &outcome {
        Ok(_) => ctx.metrics.reconcile_finished(controller, "success", None),
        Err(error) => {
            ctx.metrics
                .reconcile_finished(controller, "error", Some(error.metric_label()))
        }
    }
    match outcome {
        Err(Error::Invalid { kind, name, reason }) => {
            // A malformed object is reported and skipped until it changes. The fault may lie in an
            // object this controller does not watch (a BMCSecret without a password), so it is
            // also looked at again at the resync interval rather than dropped for good.
            let note = format!("{kind} {name}: {reason}");
            tracing::warn!(controller, %note, "skipping malformed object");
            ctx.event(regarding, true, "InvalidObject", "Reconcile", note)
                .await;
            Ok(Action::requeue(ctx.config.server_resync_interval))
        }
        other => other,
    }
}

/// Requeue policy after a failed reconcile: short on write conflicts, bounded backoff otherwise.
fn error_policy<K>(_obj: Arc<K>, error: &Error, ctx: Arc<Context>) -> Action {
    if error.is_conflict() {
        return Action::requeue(Duration::from_millis(50));
    }
    tracing::debug!(%error, "reconcile failed, retrying");
    Action::requeue(ctx.config.error_backoff)
}

/// Name of an object, for messages.
pub(crate) fn name_of<K: Resource>(obj: &K) -> String {
    obj.meta().name.clone().unwrap_or_default()
}

/// A watch mapper's answer: the objects in `store` that `refers` says point at the changed object.
pub(crate) fn referring<K>(store: &Store<K>, refers: impl Fn(&K) -> bool) -> Vec<ObjectRef<K>>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    store
        .state()
        .iter()
        .filter(|o| refers(o))
        .map(|o| ObjectRef::from_obj(&**o))
        .collect()
}

/// Whether the object asks to be left alone (`metal.ironcore.dev/operation: ignore`).
pub(crate) fn is_ignored<K: Resource>(obj: &K) -> bool {
    operation_of(obj).as_deref() == Some(crate::keys::Operation::Ignore.as_str())
}

pub(crate) fn operation_of<K: Resource>(obj: &K) -> Option<String> {
    obj.meta()
        .annotations
        .as_ref()?
        .get(crate::keys::OPERATION_ANNOTATION)
        .cloned()
}

/// Logs controller-level failures (watch errors, missing objects); reconcile errors are counted in metrics.
fn log_outcome<K, E1, E2>(
    outcome: Result<
        (kube::runtime::reflector::ObjectRef<K>, Action),
        kube::runtime::controller::Error<E1, E2>,
    >,
) -> futures::future::Ready<()>
where
    K: Resource,
    E1: std::error::Error,
    E2: std::error::Error,
{
    use kube::runtime::controller::Error as ControllerError;
    match outcome {
        Ok(_)
        | Err(ControllerError::ReconcilerFailed(..))
        | Err(ControllerError::ObjectNotFound(_)) => {}
        Err(error) => tracing::warn!(%error, "controller error"),
    }
    futures::future::ready(())
}
