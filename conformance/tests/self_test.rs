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

/// Mode → the rules it must fail. Every mode runs core + boot; crash-on-reconcile also checks that the backend
/// stays up (resilience).
const EXPECTED: &[(Misbehaviour, &[&str])] = &[
    (Misbehaviour::ReadyBeforeServing, &["SBC-BOOT-001"]),
    (Misbehaviour::NeverReady, &["SBC-CORE-001"]),
    (
        Misbehaviour::StaleReadyOnUpdate,
        &["SBC-GEN-002", "SBC-BOOT-003"],
    ),
    (
        Misbehaviour::ReadyOnMissingSecret,
        &["SBC-IGN-001", "SBC-IGN-002"],
    ),
    (
        Misbehaviour::ReadyOnBadImage,
        &["SBC-IMG-001", "SBC-IMG-002"],
    ),
    (Misbehaviour::WrongIgnition, &["SBC-BOOT-002"]),
    (Misbehaviour::ServeOldArtifacts, &["SBC-BOOT-003"]),
    (Misbehaviour::Flap, &["SBC-FLAP-001"]),
    (Misbehaviour::TouchSpec, &["SBC-CORE-002"]),
    (Misbehaviour::Slow, &["SBC-CORE-001"]),
    (
        Misbehaviour::CrashOnReconcile,
        &["SBC-CORE-001", "SBC-RES-005"],
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
        ..Timeouts::default()
    }
}

fn selection(mode: Misbehaviour) -> Selection {
    let mut profiles = vec![Profile::Core, Profile::Boot];
    let mut selection = Selection::profiles(&profiles);
    if mode == Misbehaviour::CrashOnReconcile {
        profiles.push(Profile::Resilience);
        selection = Selection::profiles(&profiles);
        selection.rules = Some(
            ["SBC-CORE-001", "SBC-RES-005"]
                .map(String::from)
                .into_iter()
                .collect(),
        );
    }
    selection
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_misbehaviour_mode_fails_its_rules() {
    let runs: Vec<(Misbehaviour, &[&str], BTreeSet<String>)> = futures::stream::iter(EXPECTED)
        .map(|(mode, expected)| async move {
            let run = common::certify(*mode, selection(*mode), timeouts(*mode), SLOW_DELAY).await;
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
            (*mode, *expected, run.result.failed())
        })
        .buffer_unordered(PARALLEL_MODES)
        .collect()
        .await;
    let mut tripped = BTreeSet::new();
    let mut problems = Vec::new();
    println!("mode → rules failed");
    for (mode, expected, failed) in &runs {
        println!(
            "{mode:<24} {}",
            failed.iter().cloned().collect::<Vec<_>>().join(" ")
        );
        tripped.extend(failed.iter().cloned());
        let missing: Vec<&&str> = expected.iter().filter(|r| !failed.contains(**r)).collect();
        if !missing.is_empty() {
            problems.push(format!(
                "{mode}: expected {missing:?} to fail; failed {failed:?}"
            ));
        }
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
    assert_eq!(
        runs.len(),
        Misbehaviour::ALL.len(),
        "every mode is in the table"
    );
}
