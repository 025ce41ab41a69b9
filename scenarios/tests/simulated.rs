//! The simulated clock: the shipped day of fleet life passes; one seed gives the same evidence and report byte
//! for byte (apart from the wall time); and a mutated operator (strict gate switched to upstream's, against a
//! backend that flips Ready late) is caught on the simulated clock as on the wall clock, while the strict gate
//! passes the same run.

mod common;

use std::sync::Mutex;

use common::{load, play};
use scenarios::spec::{ClockMode, ReadinessGate};

/// The runs in this file each take the machine's cores.
static SERIAL: Mutex<()> = Mutex::new(());

fn violations_of(report: &scenarios::report::Report, invariant: &str) -> usize {
    report
        .invariants
        .iter()
        .find(|v| v.invariant == invariant)
        .map(|v| v.violations)
        .unwrap_or_else(|| panic!("no verdict for {invariant}:\n{}", report.summary()))
}

/// Plays `scenario` with `seed` and writes its report; returns evidence.jsonl and report.json without `wallMs`.
fn recorded(scenario: &scenarios::spec::Scenario, seed: u64) -> (Vec<u8>, String) {
    let runtime = scenarios::runner::runtime(ClockMode::Simulated, seed).unwrap();
    let options = scenarios::runner::RunOptions {
        seed,
        clock: ClockMode::Simulated,
        ..Default::default()
    };
    let outcome = runtime
        .block_on(scenarios::runner::run(scenario, options))
        .unwrap_or_else(|e| panic!("harness error: {e:#}"));
    assert!(outcome.report.passed, "{}", outcome.report.summary());
    let dir = tempfile::tempdir().unwrap();
    outcome.report.write(dir.path(), &outcome.evidence).unwrap();
    let evidence = std::fs::read(dir.path().join("evidence.jsonl")).unwrap();
    let report = std::fs::read_to_string(dir.path().join("report.json")).unwrap();
    let without_wall: Vec<&str> = report
        .lines()
        .filter(|l| !l.trim_start().starts_with("\"wallMs\""))
        .collect();
    (evidence, without_wall.join("\n"))
}

#[test]
fn one_seed_gives_the_same_evidence_byte_for_byte() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !cfg!(tokio_unstable) {
        eprintln!(
            "skipped: built without `--cfg tokio_unstable` (a RUSTFLAGS variable replaces .cargo/config.toml), \
             so tokio's own random draws are not seeded and one seed may interleave two ways"
        );
        return;
    }
    // Restarts, a watch expiry and claims coming and going: the runs' interleavings have room to differ.
    let scenario = load("claim-churn.yaml");
    let seed = scenario.effective_seed(None);
    let (evidence, report) = recorded(&scenario, seed);
    let (again, report_again) = recorded(&scenario, seed);
    assert!(
        evidence.len() > 10_000,
        "{} bytes of evidence",
        evidence.len()
    );
    if evidence != again {
        let keep = std::env::temp_dir().join("metal-harness-determinism");
        let _ = std::fs::create_dir_all(&keep);
        let _ = std::fs::write(keep.join("first.jsonl"), &evidence);
        let _ = std::fs::write(keep.join("second.jsonl"), &again);
        panic!(
            "the same seed wrote different evidence (both kept in {})",
            keep.display()
        );
    }
    assert_eq!(report, report_again);
    // The seed is what decides: another one hands out other identities.
    let (other, _) = recorded(&scenario, seed + 1);
    assert!(evidence != other, "another seed wrote the same evidence");
}

#[test]
fn fleet_day_passes_on_the_simulated_clock() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let scenario = load("fleet-day.yaml");
    assert_eq!(scenario.clock, ClockMode::Simulated);
    let report = play(&scenario);
    assert!(report.passed, "{}", report.summary());
    assert_eq!(report.clock, "simulated");
    assert!(
        report.duration_ms >= 22 * 3600 * 1000,
        "the day was cut short: {}",
        report.summary()
    );
    assert_eq!(report.faults.len(), 6, "{}", report.summary());
    println!("{}", report.length());
}

#[test]
fn a_mutated_gate_is_caught_on_both_clocks_and_the_strict_gate_passes() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    for clock in [ClockMode::Wall, ClockMode::Simulated] {
        let mut mutated = load("late-ready.yaml");
        mutated.clock = clock;
        let report = play(&mutated);
        assert!(
            report.passed,
            "{} clock: {}",
            clock.as_str(),
            report.summary()
        );
        for caught in ["power-on-requires-ready-sbc", "boots-bound-sbc"] {
            assert!(violations_of(&report, caught) > 0, "{}", report.summary());
        }
    }
    let mut strict = load("late-ready.yaml");
    strict.clock = ClockMode::Simulated;
    strict.operator.readiness_gate = ReadinessGate::Strict;
    strict.expect.violations.clear();
    let report = play(&strict);
    assert!(report.passed, "{}", report.summary());
    assert!(
        report.invariants.iter().all(|v| v.violations == 0),
        "{}",
        report.summary()
    );
}
