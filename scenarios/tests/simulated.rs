//! The simulated clock: the shipped day of fleet life passes, and a mutated operator (strict gate switched to
//! upstream's, against a backend that flips Ready late) is caught on the simulated clock as on the wall clock,
//! while the strict gate passes the same run.

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
        assert!(report.passed, "{}", report.summary());
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
