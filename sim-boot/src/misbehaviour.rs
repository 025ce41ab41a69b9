//! Deliberate bugs, off by default. Each imitates a failure seen (or inferred from the code) in
//! boot-operator, so the conformance suite can prove it catches it. Exactly one mode is active at a time.
//! `upstream-like` is no bug: it behaves like boot-operator main, the baseline the contract is measured by.

use std::str::FromStr;
use std::time::Duration;

/// A misbehaviour mode. The doc on each variant names the real bug it imitates.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Misbehaviour {
    /// Honest behaviour.
    #[default]
    None,
    /// Writes `Ready` as soon as the image resolves, and publishes the boot record only a few seconds later.
    /// Imitates boot-operator's child controllers, which declare Ready without checking that anything is
    /// served (issue #328: Ready while the `/image` URLs answered HTTP 400).
    ReadyBeforeServing,
    /// Prepares and serves everything but never writes `Ready`. Imitates boot-operator's default deployment,
    /// which enables no controller unless `--controllers` is passed, so SBCs stay Pending forever.
    NeverReady,
    /// On a spec change keeps `Ready` (stamped with the new generation) and keeps serving the old artifacts
    /// for a while before preparing the new ones. Imitates boot-operator mirroring the child's stale Ready
    /// straight after re-applying it (no observedGeneration guard; fixed only in open PRs #292/#303).
    StaleReadyOnUpdate,
    /// A missing ignition Secret or key does not block `Ready`; the kernel command line still points at
    /// `/ignition/{uuid}`, which answers 404. Imitates boot-operator's HTTP child controller, which returns
    /// without requeueing after an error, leaving a previously mirrored Ready on the SBC.
    ReadyOnMissingSecret,
    /// An image that does not resolve, or lacks required layers, still becomes `Ready` with whatever could be
    /// found. Imitates the gap since boot-operator PR #352: a missing kernel/initrd no longer sets Error.
    ReadyOnBadImage,
    /// Serves the ignition Secret's Butane YAML untranslated even when `format: fcos`. Imitates a boot server
    /// that ignores the `format` key (boot-operator before Butane support).
    WrongIgnition,
    /// After a spec change reports `Ready` for the new generation but keeps serving the previous record.
    /// Imitates boot-operator after a failed child apply (PR #352 gap) and stale children (PR #312).
    ServeOldArtifacts,
    /// After `Ready`, a second writer keeps flipping the state between `Error` and `Ready`. Imitates
    /// boot-operator with both the PXE and HTTP reconcilers enabled racing on `status.state` (PR #292).
    Flap,
    /// Rewrites `spec.image` to its canonical form (a spec write by a status-only component). Imitates a
    /// backend "defaulting" fields it does not own, which bumps the generation and fights the producer.
    TouchSpec,
    /// Delays every reconcile by [`MisbehaviourOptions::slow_delay`] (a slow registry or a large image).
    Slow,
    /// Panics in every reconcile; the supervisor restarts the controller with backoff, like a crash-looping
    /// manager pod. Nothing progresses.
    CrashOnReconcile,
    /// Writes its own intermediate state `Preparing` where the contract says `Pending`. Imitates backends
    /// that surface internal phases in `status.state`; consumers compare the string exactly, so tooling that
    /// waits for `Pending`/`Error` never sees them and users meet an undocumented state.
    InventedState,
    /// A missing Server does not stop preparation: the record gets an empty system UUID and the SBC becomes
    /// `Ready`, serving no machine. Imitates the controller-runtime slip of wrapping the Server GET in
    /// `client.IgnoreNotFound` and carrying on with a zero-valued Server.
    ReadyWithoutServer,
    /// Stores each SBC's boot record in a ConfigMap `sim-boot-<name>` (for other boot servers to read)
    /// without an ownerReference or finalizer, so it outlives the SBC. Imitates boot-operator's child
    /// IPXEBootConfig/HTTPBootConfig objects created without `SetControllerReference`: the released server's
    /// image and ignition stay published for the next tenant.
    LeakChildren,
    /// Starts new SBCs only after [`MisbehaviourOptions::queue_delay`] in an in-memory queue and, when it
    /// starts, takes every SBC that already exists as handled. Imitates a controller that keeps its work queue and boot records in memory
    /// and watches "from now" instead of resyncing existing objects: after a restart, SBCs still waiting in
    /// the lost queue are never finished and Ready SBCs' records are never rebuilt (machines get 404 while
    /// the status still says Ready).
    WatchFromNow,
    /// Stops the controller for good when its hand-rolled list-then-watch breaks (an error, an error event,
    /// a closed stream). Imitates `for event := range watch.ResultChan()` without a relist: after a 410
    /// Gone, a dropped connection or an API server restart, provisioning silently stops.
    WatchGivesUp,
    /// Reconciles one SBC at a time, each holding the worker for [`MisbehaviourOptions::serial_delay`] (a
    /// registry round trip without a cache). Imitates controller-runtime's default
    /// `MaxConcurrentReconciles: 1`, which boot-operator keeps: one SBC is fast, a rack of them queues.
    SingleWorker,
    /// When the ignition Secret is missing in the SBC's namespace, takes a same-named Secret from any other
    /// namespace. Imitates a lookup through a cluster-wide informer cache indexed by `metadata.name` alone
    /// (the namespace dropped from the key): another tenant's credentials boot this server.
    SecretFromAnyNamespace,
    /// Keeps boot records in one namespace-blind table keyed by the SBC's name, refusing a second SBC of the
    /// same name ("already exists") with Error. Imitates child objects (IPXEBootConfig) created in the
    /// operator's own namespace under the SBC's name: same-named claims in two tenants collide.
    RecordsByName,
    /// Serves a machine the newest record prepared for its system UUID and reports every SBC naming the
    /// Server Ready, ignoring `Server.spec.bootConfigurationRef`. Imitates boot-operator before #312, where
    /// a leftover SBC (an old claim, discovery) won the machine's boot record.
    ServeNewest,
    /// Keeps serving a deleted SBC's record (deletion neither removes it nor does serving check the SBC
    /// still exists). Imitates boot-operator's no-op ("TODO") delete handlers with a record cache that is
    /// never invalidated: a released server keeps booting its previous tenant's image and ignition.
    ServeDeleted,
    /// A Ready SBC whose spec changes to an image that cannot be served keeps `Ready` and the old record: the
    /// failure never reaches the status. Imitates boot-operator since #352, where a missing kernel makes the
    /// child apply fail without setting Error, and the previously Ready child keeps serving.
    KeepReadyOnBadUpdate,
    /// Adds a finalizer on the first reconcile that its delete handler never removes. Imitates the kubebuilder
    /// finalizer scaffold wired to boot-operator's no-op `delete()`: deleting an SBC hangs forever.
    FinalizerNeverRemoved,
    /// Treats `Error` as final: an SBC in Error is skipped at the top of every reconcile, so neither a fixed
    /// Secret, a created Server nor a corrected image brings it back. Imitates the common
    /// `if status.State == Error { return nil }` guard (and boot-operator's HTTP child controller, which
    /// returns without requeueing after an error).
    ErrorIsTerminal,
    /// Refuses SBCs without `ignitionSecretRef` with Error. Imitates backends from before boot-operator #104,
    /// whose ignition handler dereferenced the reference unconditionally.
    IgnitionRequired,
    /// Not a bug: boot-operator main's documented behaviour (`/work/shared/notes/boot-operator-behaviour.md`).
    /// Writes only `Ready` or `Error`, never `Pending`; keeps `Ready` across a spec change (publishing the new
    /// record at once); writes no condition while Ready (so none carries `observedGeneration`); an image
    /// failure is Error with `ImageValidation`/`ValidationFailed`, a missing Secret is Error without a
    /// condition, and a missing Server is retried with backoff leaving the status untouched. Passes the
    /// baseline level and fails SBC-GEN-002 and SBC-GEN-003 (and SBC-BOOT-003: no Ready is attributable to
    /// the new generation); not in [`Misbehaviour::ALL`].
    UpstreamLike,
}

impl Misbehaviour {
    /// Modes that are not bugs: `none` and `upstream-like`. Every mode a name parses to is here or in [`ALL`].
    ///
    /// [`ALL`]: Misbehaviour::ALL
    pub const BEHAVIOURS: [Misbehaviour; 2] = [Misbehaviour::None, Misbehaviour::UpstreamLike];

    /// Every bug: each must fail the conformance suite (`conformance/tests/self_test.rs`).
    pub const ALL: [Misbehaviour; 25] = [
        Misbehaviour::ReadyBeforeServing,
        Misbehaviour::NeverReady,
        Misbehaviour::StaleReadyOnUpdate,
        Misbehaviour::ReadyOnMissingSecret,
        Misbehaviour::ReadyOnBadImage,
        Misbehaviour::WrongIgnition,
        Misbehaviour::ServeOldArtifacts,
        Misbehaviour::Flap,
        Misbehaviour::TouchSpec,
        Misbehaviour::Slow,
        Misbehaviour::CrashOnReconcile,
        Misbehaviour::InventedState,
        Misbehaviour::ReadyWithoutServer,
        Misbehaviour::LeakChildren,
        Misbehaviour::WatchFromNow,
        Misbehaviour::WatchGivesUp,
        Misbehaviour::SingleWorker,
        Misbehaviour::SecretFromAnyNamespace,
        Misbehaviour::RecordsByName,
        Misbehaviour::ServeNewest,
        Misbehaviour::ServeDeleted,
        Misbehaviour::KeepReadyOnBadUpdate,
        Misbehaviour::FinalizerNeverRemoved,
        Misbehaviour::ErrorIsTerminal,
        Misbehaviour::IgnitionRequired,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Misbehaviour::None => "none",
            Misbehaviour::ReadyBeforeServing => "ready-before-serving",
            Misbehaviour::NeverReady => "never-ready",
            Misbehaviour::StaleReadyOnUpdate => "stale-ready-on-update",
            Misbehaviour::ReadyOnMissingSecret => "ready-on-missing-secret",
            Misbehaviour::ReadyOnBadImage => "ready-on-bad-image",
            Misbehaviour::WrongIgnition => "wrong-ignition",
            Misbehaviour::ServeOldArtifacts => "serve-old-artifacts",
            Misbehaviour::Flap => "flap",
            Misbehaviour::TouchSpec => "touch-spec",
            Misbehaviour::Slow => "slow",
            Misbehaviour::CrashOnReconcile => "crash-on-reconcile",
            Misbehaviour::InventedState => "invented-state",
            Misbehaviour::ReadyWithoutServer => "ready-without-server",
            Misbehaviour::LeakChildren => "leak-children",
            Misbehaviour::WatchFromNow => "watch-from-now",
            Misbehaviour::WatchGivesUp => "watch-gives-up",
            Misbehaviour::SingleWorker => "single-worker",
            Misbehaviour::SecretFromAnyNamespace => "secret-from-any-namespace",
            Misbehaviour::RecordsByName => "records-by-name",
            Misbehaviour::ServeNewest => "serve-newest",
            Misbehaviour::ServeDeleted => "serve-deleted",
            Misbehaviour::KeepReadyOnBadUpdate => "keep-ready-on-bad-update",
            Misbehaviour::FinalizerNeverRemoved => "finalizer-never-removed",
            Misbehaviour::ErrorIsTerminal => "error-is-terminal",
            Misbehaviour::IgnitionRequired => "ignition-required",
            Misbehaviour::UpstreamLike => "upstream-like",
        }
    }
}

impl FromStr for Misbehaviour {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut known = Misbehaviour::BEHAVIOURS
            .into_iter()
            .chain(Misbehaviour::ALL);
        known.clone().find(|m| m.name() == s).ok_or_else(|| {
            let names: Vec<_> = known.by_ref().map(|m| m.name()).collect();
            format!("unknown misbehaviour {s:?}; known: {}", names.join(", "))
        })
    }
}

impl std::fmt::Display for Misbehaviour {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Timing knobs of the misbehaviour modes.
#[derive(Clone, Copy, Debug)]
pub struct MisbehaviourOptions {
    /// `slow`: delay per reconcile.
    pub slow_delay: Duration,
    /// `ready-before-serving` and `stale-ready-on-update`: how long the lie lasts before the truth is served.
    pub lie_window: Duration,
    /// `flap`: time between flips.
    pub flap_interval: Duration,
    /// `single-worker`: how long each reconcile holds the only worker.
    pub serial_delay: Duration,
    /// `watch-from-now`: how long a new SBC waits in the in-memory queue before it is first reconciled.
    pub queue_delay: Duration,
}

impl Default for MisbehaviourOptions {
    fn default() -> Self {
        Self {
            slow_delay: Duration::from_secs(5),
            // Long enough that a loaded machine's first boot after Ready still falls inside the lie.
            lie_window: Duration::from_secs(5),
            flap_interval: Duration::from_millis(300),
            serial_delay: Duration::from_millis(300),
            // Longer than creating a few SBCs and restarting the backend takes on a loaded machine, so the
            // queue is still holding them when it is lost.
            queue_delay: Duration::from_secs(3),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for mode in Misbehaviour::BEHAVIOURS
            .into_iter()
            .chain(Misbehaviour::ALL)
        {
            assert_eq!(mode.name().parse::<Misbehaviour>(), Ok(mode));
        }
        assert!(!Misbehaviour::ALL.contains(&Misbehaviour::UpstreamLike));
        assert!(
            "ready-always"
                .parse::<Misbehaviour>()
                .unwrap_err()
                .contains("known: none, upstream-like, ready-before-serving")
        );
    }
}
