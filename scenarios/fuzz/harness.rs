//! One fuzz input → the scenario loader, with the properties its answer must have. Shared by the
//! cargo-fuzz target (`fuzz_targets/scenario_file.rs`) and the bounded run in the test suite
//! (`scenarios/tests/fuzz.rs`).
//!
//! The input is scenario file text. A rejected file must name `file:line:column`; an accepted one
//! must be within the limits (`spec::limits`) the runner relies on, derive everything the runner
//! derives up front without a panic, convert its BMC faults into faults sim-bmc accepts, and
//! round-trip through YAML (regressions are written that way).

use scenarios::spec::{self, Action, Fault, LoadError, limits};

pub fn run(data: &[u8]) {
    // `load_file` turns invalid UTF-8 into an error before parsing; the parser sees text only.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match spec::parse("fuzz.yaml", text) {
        Err(e) => check_error(&e),
        Ok(s) => check_scenario(&s),
    }
}

fn check_error(e: &LoadError) {
    let shown = e.to_string();
    for line in shown.lines() {
        assert!(line.starts_with("fuzz.yaml:"), "unlocated error: {line}");
    }
    assert!(!shown.is_empty());
}

fn check_scenario(s: &spec::Scenario) {
    let bmcs = s.fleet.resolve();
    let servers: u64 = bmcs.iter().map(|b| u64::from(b.systems)).sum();
    assert!(
        (1..=limits::MAX_SERVERS).contains(&servers),
        "{servers} servers passed validation"
    );
    assert!(
        bmcs.iter()
            .all(|b| b.systems <= limits::MAX_SYSTEMS_PER_BMC)
    );
    assert_eq!(s.fleet.server_names().len() as u64, servers);
    let claims = s.claims_created();
    assert!(claims.len() as u64 <= limits::MAX_CLAIMS);
    assert!(s.workload.steps.len() <= limits::MAX_STEPS);
    for step in &s.workload.steps {
        let _ = step.action.label();
        let _ = step.action.claim_names();
        if let Action::CreateClaims { count, .. } = &step.action {
            assert_ne!(*count, Some(0));
        }
    }
    assert!(s.faults.len() <= limits::MAX_FAULT_STEPS);
    let names: Vec<String> = bmcs.iter().map(|b| b.name.clone()).collect();
    for step in &s.faults {
        let _ = step.fault.label();
        if let Fault::Bmc { bmcs: target, kind } = &step.fault {
            let chosen = target.select(&names, s.effective_seed(None));
            assert!(chosen.iter().all(|c| names.contains(c)), "{chosen:?}");
            sim_bmc::fault::FaultSpec::new(kind.sim_bmc_kind())
                .validate()
                .unwrap_or_else(|e| panic!("a validated BMC fault is refused by sim-bmc: {e}"));
        }
    }
    assert!(!s.expect.within.0.is_zero());
    let text = s.to_yaml();
    let again = spec::parse("roundtrip.yaml", &text)
        .unwrap_or_else(|e| panic!("a valid scenario written as YAML does not load: {e}\n{text}"));
    assert_eq!(&again, s, "a valid scenario does not round-trip:\n{text}");
}
