//! The live progress line (indicatif): elapsed time, servers per state, claims bound and booted,
//! evidence seen, and violations as they happen.

use std::collections::BTreeMap;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use super::conditions;
use crate::invariants::{Monitor, Violation};
use crate::spec::Scenario;

#[derive(Clone)]
pub struct Progress {
    bar: ProgressBar,
}

impl Progress {
    pub fn new(enabled: bool, scenario: &Scenario) -> Self {
        let bar = if enabled {
            ProgressBar::new_spinner()
        } else {
            ProgressBar::hidden()
        };
        bar.set_style(
            ProgressStyle::with_template("{spinner} [{elapsed_precise}] {prefix} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_prefix(scenario.name.clone());
        bar.enable_steady_tick(Duration::from_millis(200));
        Progress { bar }
    }

    pub fn update(&self, m: &Monitor) {
        if self.bar.is_hidden() {
            return;
        }
        let w = m.world();
        let mut states: BTreeMap<&str, usize> = BTreeMap::new();
        for s in w.servers.values() {
            *states.entry(s.state.as_deref().unwrap_or("-")).or_default() += 1;
        }
        let states: Vec<String> = states.iter().map(|(k, v)| format!("{k} {v}")).collect();
        let bound = w.claims.values().filter(|c| c.bound).count();
        self.bar.set_message(format!(
            "servers [{}] · claims {}/{} bound, {} booted · {} events · {} violations",
            states.join(", "),
            bound,
            w.claims.len(),
            conditions::count_booted(w),
            m.evidence_count(),
            m.violations().len()
        ));
    }

    pub fn violations(&self, found: &[Violation]) {
        for v in found {
            self.bar
                .println(format!("  ✗ {} {}: {}", v.invariant, v.subject, v.message));
        }
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
