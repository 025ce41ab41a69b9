//! End to end on the embedded stack (API server, sim-bmc + netboot, sim-boot, operator): the
//! README's quickstart and the claim churn (with an operator restart and a watch expiry) pass with
//! no invariant tolerated, the lying backend is caught, regressions replay, and one generated
//! scenario runs. Runs are serialised: they share the machine's two cores and the panic hook.

mod common;

use common::{load, play};

use std::sync::Mutex;

use std::path::PathBuf;

use scenarios::spec;

static SERIAL: Mutex<()> = Mutex::new(());

#[test]
fn quickstart_passes_end_to_end() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let report = play(&load("quickstart.yaml"));
    assert!(report.passed, "{}", report.summary());
    assert_eq!(
        report.servers_by_state.get("Available"),
        Some(&3),
        "{}",
        report.summary()
    );
    let booted = &report
        .phases
        .iter()
        .find(|(p, _)| p == "claim → booted")
        .unwrap()
        .1;
    assert_eq!(
        booted.count, 2,
        "both claims booted before one was released"
    );
    assert!(
        report.invariants.iter().all(|v| v.violations == 0),
        "{}",
        report.summary()
    );
    // Every component's client was counted, with the verbs its controllers must use.
    let requests = &report.api_requests;
    for (component, verbs) in [
        ("operator", &["list", "watch", "patch"][..]),
        ("backend", &["list", "watch"][..]),
        ("harness", &["create", "list", "watch"][..]),
    ] {
        let counted = &requests.by_component[component].by_verb;
        for verb in verbs {
            assert!(
                counted.get(*verb).is_some_and(|n| *n > 0),
                "{component} sent no {verb}:\n{}",
                report.summary()
            );
        }
    }
    assert_eq!(requests.servers, 4);
    assert!(requests.per_server > 1.0, "{}", report.summary());
}

#[test]
fn claim_churn_passes_through_an_operator_restart_and_a_watch_expiry() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let report = play(&load("claim-churn.yaml"));
    assert!(report.passed, "{}", report.summary());
    assert!(
        report.invariants.iter().all(|v| v.violations == 0),
        "{}",
        report.summary()
    );
    let labels: Vec<&str> = report.faults.iter().map(|f| f.label.as_str()).collect();
    assert_eq!(labels.len(), 2, "both faults were injected: {labels:?}");
}

#[test]
fn lying_backend_is_caught_from_the_machines_boot_logs() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let report = play(&load("lying-backend.yaml"));
    assert!(report.passed, "{}", report.summary());
    let caught = report.verdict("ready-sbc-boots").unwrap();
    assert!(caught.violations > 0, "{}", report.summary());
    // Without the expectation the same run fails.
    let mut strict = load("lying-backend.yaml");
    strict.expect.violations.clear();
    // Nothing can settle with this backend: end at a short deadline.
    strict.expect.within = spec::Dur::from_secs(10);
    let report = play(&strict);
    assert!(!report.passed, "{}", report.summary());
}

#[test]
fn regressions_replay() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("regressions");
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let scenario = spec::load_file(&path).unwrap_or_else(|e| panic!("{e}"));
        let report = play(&scenario);
        assert!(
            report.passed,
            "{} regressed:\n{}",
            path.display(),
            report.summary()
        );
    }
}

#[test]
fn one_generated_scenario_runs_clean() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    // CI runs one case from a fixed seed; `metal-harness explore --cases N` runs more.
    let cases = std::env::var("SCENARIO_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(1);
    if let Err(path) = scenarios::explore::explore_with(
        cases,
        7,
        dir.path(),
        &[],
        scenarios::spec::ClockMode::Wall,
    ) {
        panic!(
            "shrunk failure:\n{}",
            std::fs::read_to_string(path).unwrap()
        );
    }
}
