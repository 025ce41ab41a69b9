//! What the end-to-end test files share: loading a shipped scenario and playing it on the embedded stack.

use std::path::PathBuf;

use scenarios::spec::{self, Scenario};

/// A scenario file shipped beside the crate (`quickstart.yaml`, `real-boot.yaml`, …).
pub fn load(name: &str) -> Scenario {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(name);
    spec::load_file(&path).unwrap_or_else(|e| panic!("{e}"))
}

/// Plays a scenario with its own seed on a runtime of its own; a harness error fails the test.
pub fn play(scenario: &Scenario) -> scenarios::report::Report {
    scenarios::explore::play(scenario).unwrap_or_else(|e| panic!("{e}"))
}
