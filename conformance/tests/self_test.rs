//! The self-test: every sim-boot misbehaviour mode run through the suite fails exactly the rules that describe
//! its lie and the level it breaks; `upstream-like` (boot-operator main) certifies baseline and no more; and every
//! rule of the contract is tripped by at least one mode, so no check is left that cannot fail.

mod common;

use conformance::level::ConformanceLevel;
use conformance::outcome::Verdict;
use conformance::rules::{Profile, RULES};
use conformance::runner::Selection;
use conformance::timeouts::Timeouts;
use futures::StreamExt;
use sim_boot::Misbehaviour;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// What a mode is run through and what it must fail.
struct Case {
    mode: Misbehaviour,
    profiles: &'static [Profile],
    /// The rules requested (None: every rule of `profiles`). Narrow where one check shows the lie: it is the
    /// same verdict, and the self-test's wall time is the sum of these runs.
    rules: Option<&'static [&'static str]>,
    /// Exactly the requested rules the mode fails: no more, no fewer.
    fails: &'static [&'static str],
    /// The level the run meets (`None`: a baseline MUST rule failed; Baseline: only extension MUST rules did).
    met: Option<ConformanceLevel>,
}

use ConformanceLevel::{Baseline, Extended};
use Profile::{Boot, Core, Resilience, Scale};

const fn case(
    mode: Misbehaviour,
    profiles: &'static [Profile],
    rules: &'static [&'static str],
    fails: &'static [&'static str],
    met: Option<ConformanceLevel>,
) -> Case {
    Case {
        mode,
        profiles,
        rules: Some(rules),
        fails,
        met,
    }
}

/// Mode → what it is run through and fails. `crash-on-reconcile` is judged through a child process instead
/// ([`crash_through_the_process_exit`]): in-process sim-boot has no process whose exit the suite could see.
const CASES: &[Case] = &[
    case(
        Misbehaviour::ReadyBeforeServing,
        &[Boot],
        &["SBC-BOOT-001"],
        &["SBC-BOOT-001"],
        Some(Baseline),
    ),
    case(
        Misbehaviour::NeverReady,
        &[Core],
        &["SBC-CORE-001"],
        &["SBC-CORE-001"],
        None,
    ),
    case(
        Misbehaviour::StaleReadyOnUpdate,
        &[Core, Boot],
        &["SBC-GEN-002", "SBC-BOOT-003"],
        &["SBC-GEN-002", "SBC-BOOT-003"],
        Some(Baseline),
    ),
    case(
        Misbehaviour::ReadyOnMissingSecret,
        &[Core],
        &["SBC-IGN-001", "SBC-IGN-002", "SBC-IGN-003", "SBC-IGN-004"],
        &["SBC-IGN-001", "SBC-IGN-002", "SBC-IGN-003"],
        None,
    ),
    case(
        Misbehaviour::ReadyOnBadImage,
        &[Core],
        &[
            "SBC-IMG-001",
            "SBC-IMG-002",
            "SBC-IMG-003",
            "SBC-IMG-004",
            "SBC-IMG-005",
        ],
        &["SBC-IMG-001", "SBC-IMG-002", "SBC-IMG-003", "SBC-IMG-004"],
        None,
    ),
    case(
        Misbehaviour::WrongIgnition,
        &[Boot],
        &["SBC-BOOT-002"],
        &["SBC-BOOT-002"],
        None,
    ),
    case(
        Misbehaviour::ServeOldArtifacts,
        &[Boot],
        &["SBC-BOOT-003"],
        &["SBC-BOOT-003"],
        Some(Baseline),
    ),
    // History rules are judged over every check of the profile, so these run all of core.
    case(
        Misbehaviour::Flap,
        &[Core],
        &["SBC-FLAP-001"],
        &["SBC-FLAP-001"],
        Some(Baseline),
    ),
    case(
        Misbehaviour::TouchSpec,
        &[Core],
        &["SBC-CORE-002"],
        &["SBC-CORE-002"],
        None,
    ),
    case(
        Misbehaviour::Slow,
        &[Core],
        &["SBC-CORE-001"],
        &["SBC-CORE-001"],
        None,
    ),
    case(
        Misbehaviour::InventedState,
        &[Core],
        &["SBC-CORE-003"],
        &["SBC-CORE-003"],
        None,
    ),
    case(
        Misbehaviour::ReadyWithoutServer,
        &[Core],
        &["SBC-SRV-001", "SBC-SRV-002", "SBC-SRV-003"],
        &["SBC-SRV-001", "SBC-SRV-002"],
        None,
    ),
    case(
        Misbehaviour::LeakChildren,
        &[Core],
        &["SBC-DEL-001", "SBC-DEL-002"],
        &["SBC-DEL-002"],
        None,
    ),
    // The boot profile stays selected so the restarted backend's machines are booted (SBC-RES-002). RES-003/004
    // are left out: the queue delay adds to the watchers' relist backoff without a deterministic margin under
    // the short deadline, and `watch-gives-up` covers them.
    case(
        Misbehaviour::WatchFromNow,
        &[Boot, Resilience],
        &["SBC-RES-001", "SBC-RES-002"],
        &["SBC-RES-001", "SBC-RES-002"],
        None,
    ),
    // Only the checks that break its watch: the backend-restart check (RES-001/002) would pass only if a
    // restarted in-process backend converged within the short deadline, which a loaded machine does not
    // promise (it once failed there); `watch-from-now` fails those rules, the correct mode passes them.
    case(
        Misbehaviour::WatchGivesUp,
        &[Resilience],
        &["SBC-RES-003", "SBC-RES-004"],
        &["SBC-RES-003", "SBC-RES-004"],
        None,
    ),
    case(
        Misbehaviour::SingleWorker,
        &[Scale],
        &["SBC-SCALE-001", "SBC-SCALE-002"],
        &["SBC-SCALE-001", "SBC-SCALE-002"],
        None,
    ),
    case(
        Misbehaviour::SecretFromAnyNamespace,
        &[Core],
        &["SBC-ISO-001"],
        &["SBC-ISO-001"],
        None,
    ),
    case(
        Misbehaviour::RecordsByName,
        &[Core],
        &["SBC-ISO-002"],
        &["SBC-ISO-002"],
        None,
    ),
    case(
        Misbehaviour::ServeNewest,
        &[Boot],
        &["SBC-BOOT-004"],
        &["SBC-BOOT-004"],
        None,
    ),
    case(
        Misbehaviour::ServeDeleted,
        &[Boot],
        &["SBC-BOOT-005"],
        &["SBC-BOOT-005"],
        None,
    ),
    case(
        Misbehaviour::KeepReadyOnBadUpdate,
        &[Core],
        &["SBC-GEN-001"],
        &["SBC-GEN-001"],
        None,
    ),
    case(
        Misbehaviour::FinalizerNeverRemoved,
        &[Core],
        &["SBC-DEL-001", "SBC-DEL-002"],
        &["SBC-DEL-001"],
        None,
    ),
    case(
        Misbehaviour::ErrorIsTerminal,
        &[Core],
        &["SBC-IGN-004", "SBC-IMG-005", "SBC-SRV-003"],
        &["SBC-IGN-004", "SBC-IMG-005", "SBC-SRV-003"],
        None,
    ),
    // A MAY rule: failing it breaks no level.
    case(
        Misbehaviour::IgnitionRequired,
        &[Core],
        &["SBC-IGN-005"],
        &["SBC-IGN-005"],
        Some(Extended),
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
        // Honest deletion is immediate (no finalizer); only `finalizer-never-removed` waits it out.
        deletion: Duration::from_secs(5),
        ..Timeouts::default()
    }
}

fn selection(case: &Case) -> Selection {
    let mut selection = Selection::profiles(case.profiles);
    selection.rules = case
        .rules
        .map(|rules| rules.iter().map(|r| r.to_string()).collect());
    selection
}

/// What one mode's run came to.
struct Outcome {
    failed: BTreeSet<String>,
    /// Why each failed rule failed, for the message when the failures are not the expected ones.
    reasons: Vec<String>,
    met: Option<ConformanceLevel>,
    seconds: f64,
}

/// Certifies one mode in-process.
async fn certify(case: &Case) -> Outcome {
    let mode = case.mode;
    let start = Instant::now();
    let run = common::certify(mode, selection(case), timeouts(mode), SLOW_DELAY).await;
    let errors: Vec<_> = run
        .result
        .rules
        .iter()
        .filter(|r| r.verdict == Verdict::Error)
        .collect();
    assert!(errors.is_empty(), "{mode}: harness errors {errors:#?}");
    // The stuck finalizer is that mode's lie: its SBC cannot go.
    let leftovers: Vec<_> = run
        .leftovers
        .iter()
        .filter(|o| {
            !(mode == Misbehaviour::FinalizerNeverRemoved
                && o.starts_with("ServerBootConfiguration"))
        })
        .collect();
    assert!(leftovers.is_empty(), "{mode}: cleanup left {leftovers:?}");
    let reasons = run
        .result
        .rules
        .iter()
        .filter(|r| r.verdict == Verdict::Fail)
        .map(|r| format!("{}: {}", r.id, r.reasons.join(" | ")))
        .collect();
    Outcome {
        failed: run.result.failed(),
        reasons,
        met: run.report.certification.met_level,
        seconds: start.elapsed().as_secs_f64(),
    }
}

/// What is wrong with a mode's outcome, if anything.
fn problem(case: &Case, outcome: &Outcome) -> Option<String> {
    let expected: BTreeSet<String> = case.fails.iter().map(|r| r.to_string()).collect();
    (outcome.failed != expected || outcome.met != case.met).then(|| {
        format!(
            "{}: expected exactly {expected:?} to fail and level {:?}; failed {:?}, met {:?}; why:\n{}",
            case.mode,
            case.met,
            outcome.failed,
            outcome.met,
            outcome.reasons.join("\n")
        )
    })
}

/// `certify --embedded --backend-cmd` with the reference backend in `mode` as a child process: the path external
/// backends take, where a process exit is seen (SBC-RES-005). Returns the exit code and report.json.
fn certify_process(
    mode: Misbehaviour,
    args: &[&str],
) -> (Option<i32>, serde_json::Value, String, tempfile::TempDir) {
    let exe = env!("CARGO_BIN_EXE_conformance");
    let dir = tempfile::tempdir().expect("tempdir");
    let backend = format!(
        "{exe} reference-backend --misbehave {mode} --listen {{boot_addr}} --registry {{registry}} --insecure-registries {{disallowed_registry}}"
    );
    let out = std::process::Command::new(exe)
        .args(["certify", "--embedded", "--backend-cmd", &backend])
        .args(args)
        .arg("--report-dir")
        .arg(dir.path())
        .arg("--quiet")
        .output()
        .expect("run conformance");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let report = std::fs::read_to_string(dir.path().join("report.json"))
        .unwrap_or_else(|e| panic!("{mode}: no report.json ({e}); stdout: {stdout}"));
    let report = serde_json::from_str(&report).expect("report.json parses");
    (out.status.code(), report, stdout, dir)
}

/// The failed rules of a report.json, with their reasons.
fn failed_in(report: &serde_json::Value) -> (BTreeSet<String>, Vec<String>) {
    let failed: Vec<&serde_json::Value> = report["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .filter(|r| r["verdict"] == "fail")
        .collect();
    let ids = failed
        .iter()
        .filter_map(|r| r["id"].as_str().map(str::to_string))
        .collect();
    let reasons = failed
        .iter()
        .map(|r| format!("{}: {}", r["id"], r["reasons"]))
        .collect();
    (ids, reasons)
}

fn met_in(report: &serde_json::Value) -> Option<ConformanceLevel> {
    report["certification"]["metLevel"]
        .as_str()
        .and_then(ConformanceLevel::parse)
}

/// `crash-on-reconcile`: the reference backend's process exits when its controller panics; the run stops with
/// exit code 3 and SBC-RES-005 failed.
fn crash_through_the_process_exit() -> Outcome {
    let start = Instant::now();
    let mode = Misbehaviour::CrashOnReconcile;
    let (code, report, stdout, _dir) = certify_process(
        mode,
        &["--profile", "core,resilience", "--level", "baseline"],
    );
    assert_eq!(code, Some(3), "{mode}: {stdout}");
    let (failed, reasons) = failed_in(&report);
    assert!(failed.contains("SBC-RES-005"), "{mode}: {reasons:#?}");
    assert_eq!(met_in(&report), None, "{mode}: {}", report["certification"]);
    Outcome {
        failed,
        reasons,
        met: None,
        seconds: start.elapsed().as_secs_f64(),
    }
}

/// The rules `upstream-like` fails: it keeps Ready across a spec change and stamps no generation, so the two
/// generation extensions fail, and with them SBC-BOOT-003 (no Ready is attributable to the new generation); its
/// missing-Secret Error carries no condition and a missing Server is retried silently, so two SHOULDs fail.
const UPSTREAM_FAILS: [&str; 5] = [
    "SBC-BOOT-003",
    "SBC-GEN-002",
    "SBC-GEN-003",
    "SBC-IGN-003",
    "SBC-SRV-002",
];

/// `upstream-like` (boot-operator main) over every profile, as a process, with the published timeouts:
/// certifies baseline (exit 0), not extended.
fn upstream_certifies_baseline() -> Outcome {
    let start = Instant::now();
    let mode = Misbehaviour::UpstreamLike;
    let args = vec![
        "--profile",
        "core,boot,resilience,scale",
        "--level",
        "baseline",
        "--scale",
        "20",
    ];
    let (code, report, stdout, dir) = certify_process(mode, &args);
    let (failed, reasons) = failed_in(&report);
    let met = met_in(&report);
    if code != Some(0) {
        // Kept for the backend's log (backend.log), which says what the backend did and when.
        let kept = dir.keep();
        panic!(
            "{mode} must certify baseline; exit {code:?}, met {met:?}; reports kept in {}; {reasons:#?}\n{stdout}",
            kept.display()
        );
    }
    Outcome {
        failed,
        reasons,
        met,
        seconds: start.elapsed().as_secs_f64(),
    }
}

/// `SELF_TEST_MODES=a,b` runs only those modes (to reproduce one); the coverage assertions then do not apply.
fn only() -> Option<Vec<String>> {
    std::env::var("SELF_TEST_MODES")
        .ok()
        .map(|v| v.split(',').map(str::to_string).collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_every_misbehaviour_mode_fails_its_rules_and_every_rule_is_tripped() {
    let start = Instant::now();
    let only = only();
    let wanted = |mode: Misbehaviour| {
        only.as_ref()
            .is_none_or(|o| o.iter().any(|m| m == mode.name()))
    };
    let crash = wanted(Misbehaviour::CrashOnReconcile)
        .then(|| tokio::task::spawn_blocking(crash_through_the_process_exit));
    let upstream = wanted(Misbehaviour::UpstreamLike)
        .then(|| tokio::task::spawn_blocking(upstream_certifies_baseline));
    let cases = CASES.iter().filter(|c| wanted(c.mode));
    let runs: Vec<(&Case, Outcome)> = futures::stream::iter(cases)
        .map(|case| async move { (case, certify(case).await) })
        .buffer_unordered(PARALLEL_MODES)
        .collect()
        .await;
    let crash = match crash {
        Some(crash) => Some(crash.await.expect("crash-on-reconcile case")),
        None => None,
    };
    let upstream = match upstream {
        Some(upstream) => Some(upstream.await.expect("upstream-like case")),
        None => None,
    };
    let mut tripped = BTreeSet::new();
    let mut problems = Vec::new();
    println!("mode → level met, rules failed (seconds)");
    for (case, outcome) in &runs {
        println!(
            "{:<26} {:<9} {} ({:.1}s)",
            case.mode,
            outcome.met.map(|l| l.as_str()).unwrap_or("none"),
            outcome.failed.iter().cloned().collect::<Vec<_>>().join(" "),
            outcome.seconds
        );
        tripped.extend(outcome.failed.iter().cloned());
        problems.extend(problem(case, outcome));
    }
    if let Some(crash) = crash {
        println!(
            "{:<26} {:<9} {} ({:.1}s, child process)",
            Misbehaviour::CrashOnReconcile,
            "none",
            crash.failed.iter().cloned().collect::<Vec<_>>().join(" "),
            crash.seconds
        );
        tripped.extend(crash.failed);
    }
    if let Some(upstream) = upstream {
        println!(
            "{:<26} {:<9} {} ({:.1}s, child process)",
            Misbehaviour::UpstreamLike,
            upstream.met.map(|l| l.as_str()).unwrap_or("none"),
            upstream
                .failed
                .iter()
                .cloned()
                .collect::<Vec<_>>()
                .join(" "),
            upstream.seconds
        );
        let expected: BTreeSet<String> = UPSTREAM_FAILS.iter().map(|r| r.to_string()).collect();
        if upstream.failed != expected || upstream.met != Some(Baseline) {
            problems.push(format!(
                "upstream-like: expected exactly {expected:?} to fail and level baseline; failed {:?}, met {:?}; why:\n{}",
                upstream.failed,
                upstream.met,
                upstream.reasons.join("\n")
            ));
        }
        tripped.extend(upstream.failed);
    }
    println!("self-test wall time {:.1}s", start.elapsed().as_secs_f64());
    for p in &problems {
        println!("PROBLEM {p}");
    }
    assert!(problems.is_empty(), "{problems:#?}");
    if only.is_some() {
        return;
    }
    let missing: Vec<_> = Misbehaviour::ALL
        .into_iter()
        .filter(|m| *m != Misbehaviour::CrashOnReconcile && !CASES.iter().any(|c| c.mode == *m))
        .collect();
    assert!(missing.is_empty(), "modes without a case: {missing:?}");
    let untested: Vec<&str> = RULES
        .iter()
        .map(|r| r.id)
        .filter(|id| !tripped.contains(*id))
        .collect();
    assert!(
        untested.is_empty(),
        "rules no misbehaviour mode trips (a check that cannot fail): {untested:?}"
    );
}
