//! The self-test: every sim-boot misbehaviour mode run through the suite must fail, and must fail the rules that
//! describe its lie. Rules that no mode trips are printed as untested.

mod common;

use conformance::outcome::Verdict;
use conformance::rules::{Profile, RULES};
use conformance::runner::Selection;
use conformance::timeouts::Timeouts;
use futures::StreamExt;
use sim_boot::Misbehaviour;
use std::collections::BTreeSet;
use std::time::Duration;

/// What a mode is run through and what it must fail.
struct Case {
    mode: Misbehaviour,
    /// Rules the mode must fail.
    fails: &'static [&'static str],
    /// Whether `fails` is exact (no other requested rule may fail). The older, broad lies (never Ready, slow)
    /// also trip rules downstream of their lie, some of them timing-dependent, so only their core is asserted.
    exact: bool,
}

const fn at_least(mode: Misbehaviour, fails: &'static [&'static str]) -> Case {
    Case {
        mode,
        fails,
        exact: false,
    }
}

const fn exactly(mode: Misbehaviour, fails: &'static [&'static str]) -> Case {
    Case {
        mode,
        fails,
        exact: true,
    }
}

const RESILIENCE_RULES: [&str; 5] = [
    "SBC-RES-001",
    "SBC-RES-002",
    "SBC-RES-003",
    "SBC-RES-004",
    "SBC-RES-005",
];

/// Mode → the rules it must fail. See [`selection`] for what each mode is run through.
const CASES: &[Case] = &[
    at_least(Misbehaviour::ReadyBeforeServing, &["SBC-BOOT-001"]),
    at_least(Misbehaviour::NeverReady, &["SBC-CORE-001"]),
    at_least(
        Misbehaviour::StaleReadyOnUpdate,
        &["SBC-GEN-002", "SBC-BOOT-003"],
    ),
    at_least(
        Misbehaviour::ReadyOnMissingSecret,
        &["SBC-IGN-001", "SBC-IGN-002"],
    ),
    at_least(
        Misbehaviour::ReadyOnBadImage,
        &["SBC-IMG-001", "SBC-IMG-002"],
    ),
    at_least(Misbehaviour::WrongIgnition, &["SBC-BOOT-002"]),
    at_least(Misbehaviour::ServeOldArtifacts, &["SBC-BOOT-003"]),
    at_least(Misbehaviour::Flap, &["SBC-FLAP-001"]),
    at_least(Misbehaviour::TouchSpec, &["SBC-CORE-002"]),
    at_least(Misbehaviour::Slow, &["SBC-CORE-001"]),
    at_least(
        Misbehaviour::CrashOnReconcile,
        &["SBC-CORE-001", "SBC-RES-005"],
    ),
    exactly(Misbehaviour::InventedState, &["SBC-CORE-003"]),
    exactly(
        Misbehaviour::ReadyWithoutServer,
        &["SBC-SRV-001", "SBC-SRV-002"],
    ),
    exactly(Misbehaviour::LeakChildren, &["SBC-DEL-002"]),
    exactly(Misbehaviour::WatchFromNow, &["SBC-RES-001", "SBC-RES-002"]),
    exactly(Misbehaviour::WatchGivesUp, &["SBC-RES-003", "SBC-RES-004"]),
    exactly(
        Misbehaviour::SingleWorker,
        &["SBC-SCALE-001", "SBC-SCALE-002"],
    ),
];

/// The `slow` mode's delay per reconcile, beyond the self-test's time-to-Ready deadline.
const SLOW_DELAY: Duration = Duration::from_secs(8);
/// Modes certified at once (each has its own API server and backend).
const PARALLEL_MODES: usize = 4;

fn timeouts(mode: Misbehaviour) -> Timeouts {
    // Shorter than the published maxima (non-certifying) so that lying modes fail fast; sim-boot's honest
    // latencies are around one second, far below these.
    Timeouts {
        time_to_ready: Duration::from_secs(if mode == Misbehaviour::Slow { 4 } else { 10 }),
        error_deadline: Duration::from_secs(5),
        // `single-worker` needs at least 20 × 300 ms for the 20 scale SBCs; honest sim-boot about 2 s.
        scale_ready: Duration::from_secs(5),
        ..Timeouts::default()
    }
}

/// Core and boot for every mode; the resilience and scale modes only the rules of their profile (the boot
/// profile stays selected for them so the restarted backend's machines are booted, SBC-RES-002).
fn selection(mode: Misbehaviour) -> Selection {
    let rules = |profiles: &[Profile], rules: &[&str]| {
        let mut selection = Selection::profiles(profiles);
        selection.rules = Some(rules.iter().map(|r| r.to_string()).collect());
        selection
    };
    match mode {
        Misbehaviour::CrashOnReconcile => rules(
            &[Profile::Core, Profile::Boot, Profile::Resilience],
            &["SBC-CORE-001", "SBC-RES-005"],
        ),
        Misbehaviour::WatchGivesUp => {
            rules(&[Profile::Boot, Profile::Resilience], &RESILIENCE_RULES)
        }
        // Its queue delay (which keeps the SBCs created just before the restart in flight) adds to the
        // watchers' relist backoff after a 410 or an API server restart, leaving RES-003/004 without a
        // deterministic margin under the self-test's short deadline; `watch-gives-up` covers those.
        Misbehaviour::WatchFromNow => rules(
            &[Profile::Boot, Profile::Resilience],
            &["SBC-RES-001", "SBC-RES-002", "SBC-RES-005"],
        ),
        Misbehaviour::SingleWorker => Selection::profiles(&[Profile::Scale]),
        _ => Selection::profiles(&[Profile::Core, Profile::Boot]),
    }
}

/// Certifies one mode; returns the rules it failed.
async fn failed_rules(case: &Case) -> BTreeSet<String> {
    let mode = case.mode;
    let run = common::certify(mode, selection(mode), timeouts(mode), SLOW_DELAY).await;
    let errors: Vec<_> = run
        .result
        .rules
        .iter()
        .filter(|r| r.verdict == Verdict::Error)
        .collect();
    assert!(errors.is_empty(), "{mode}: harness errors {errors:#?}");
    assert!(
        run.leftovers.is_empty(),
        "{mode}: cleanup left {:?}",
        run.leftovers
    );
    assert_eq!(
        run.report.result,
        conformance::report::Result::Failure,
        "{mode} must not certify"
    );
    run.result.failed()
}

/// What is wrong with a mode's failures, if anything.
fn problem(case: &Case, failed: &BTreeSet<String>) -> Option<String> {
    let missing: Vec<_> = case
        .fails
        .iter()
        .filter(|r| !failed.contains(**r))
        .collect();
    let extra: Vec<_> = failed
        .iter()
        .filter(|r| case.exact && !case.fails.contains(&r.as_str()))
        .collect();
    (!missing.is_empty() || !extra.is_empty()).then(|| {
        format!(
            "{}: expected {:?} to fail (exact: {}); failed {failed:?}",
            case.mode, case.fails, case.exact
        )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_misbehaviour_mode_fails_its_rules() {
    let runs: Vec<(&Case, BTreeSet<String>)> = futures::stream::iter(CASES)
        .map(|case| async move { (case, failed_rules(case).await) })
        .buffer_unordered(PARALLEL_MODES)
        .collect()
        .await;
    let mut tripped = BTreeSet::new();
    let mut problems = Vec::new();
    println!("mode → rules failed");
    for (case, failed) in &runs {
        println!(
            "{:<24} {}",
            case.mode,
            failed.iter().cloned().collect::<Vec<_>>().join(" ")
        );
        tripped.extend(failed.iter().cloned());
        problems.extend(problem(case, failed));
    }
    let untested: Vec<&str> = RULES
        .iter()
        .map(|r| r.id)
        .filter(|id| !tripped.contains(*id))
        .collect();
    println!(
        "rules no mode trips (untested by the self-test): {}",
        untested.join(" ")
    );
    assert!(problems.is_empty(), "{problems:#?}");
    let missing: Vec<_> = Misbehaviour::ALL
        .into_iter()
        .filter(|m| !CASES.iter().any(|c| c.mode == *m))
        .collect();
    assert!(missing.is_empty(), "modes without a case: {missing:?}");
}
