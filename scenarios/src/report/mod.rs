//! The run report: phase timings, final states, invariant verdicts, faults; printed as a summary
//! table and written as `report.json` plus a self-contained HTML timeline.

mod html;
pub mod phases;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use crate::evidence::Evidence;
use crate::invariants::{Violation, catalog};
use crate::model::World;
use crate::spec::Scenario;

/// One fault applied, for the report.
#[derive(Clone, Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Injected {
    pub at_ms: u64,
    pub until_ms: Option<u64>,
    pub label: String,
}

#[derive(Clone, Debug, Default, Serialize, serde::Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ComponentRequests {
    pub total: u64,
    pub by_verb: BTreeMap<String, u64>,
    /// Requests by `verb resource[/subresource]`, e.g. `patch servers/status`.
    #[serde(default)]
    pub by_resource: BTreeMap<String, u64>,
}

/// API requests of a run, as written into report.json.
#[derive(Clone, Debug, Default, Serialize, serde::Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ApiRequests {
    /// `operator`, `backend` (in-process only; a child-process backend is not counted) and `harness`.
    pub by_component: BTreeMap<String, ComponentRequests>,
    /// Operator + backend requests, all verbs, divided by the number of declared servers.
    pub per_server: f64,
    pub servers: usize,
}

pub use phases::Stats;

/// Violations kept in report.json (the count is always exact).
const MAX_LISTED_VIOLATIONS: usize = 500;

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Verdict {
    pub invariant: String,
    pub description: String,
    pub violations: usize,
    /// `held`, `violated`, `violated (expected)`, `violated (tolerated)`, `NOT violated (expected)`.
    pub verdict: String,
    pub ok: bool,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub scenario: String,
    pub seed: u64,
    pub passed: bool,
    /// `wall` or `simulated`: what `durationMs` and every `atMs` are measured on.
    pub clock: String,
    /// The run's length on its clock.
    pub duration_ms: u64,
    /// The run's length in real time (equal to `durationMs` on the wall clock, give or take start-up).
    pub wall_ms: u64,
    /// `embedded at URL`, or the URL of the cluster given by `--kubeconfig`.
    pub api_server: String,
    /// Why the run failed besides invariants (unmet end state, a step that timed out).
    pub failures: Vec<String>,
    pub phases: Vec<(String, Stats)>,
    pub servers_by_state: BTreeMap<String, usize>,
    pub claims_by_phase: BTreeMap<String, usize>,
    pub invariants: Vec<Verdict>,
    pub violations: Vec<Violation>,
    pub faults: Vec<Injected>,
    pub evidence_events: usize,
    /// Extra figures from the components (API writes, reconciles, power-on requests).
    pub figures: BTreeMap<String, f64>,
    /// API requests per component and verb, counted on the components' clients.
    pub api_requests: ApiRequests,
}

impl Report {
    #[allow(clippy::too_many_arguments)]
    pub fn build(
        scenario: &Scenario,
        seed: u64,
        duration_ms: u64,
        world: &World,
        evidence: &[Evidence],
        violations: &[Violation],
        faults: Vec<Injected>,
        failures: Vec<String>,
    ) -> Report {
        let times = phases::claim_times(evidence);
        let mut servers_by_state = BTreeMap::new();
        for s in world.servers.values() {
            *servers_by_state
                .entry(s.state.clone().unwrap_or_else(|| "(none)".into()))
                .or_insert(0) += 1;
        }
        let mut claims_by_phase = BTreeMap::new();
        for c in world.claims.values() {
            *claims_by_phase
                .entry(if c.bound { "Bound" } else { "Unbound" }.to_string())
                .or_insert(0) += 1;
        }
        let invariants = verdicts(scenario, violations);
        let passed = failures.is_empty() && invariants.iter().all(|v| v.ok);
        Report {
            scenario: scenario.name.clone(),
            seed,
            passed,
            clock: "wall".into(),
            duration_ms,
            wall_ms: duration_ms,
            api_server: String::new(),
            failures,
            phases: phases::phase_stats(&times),
            servers_by_state,
            claims_by_phase,
            invariants,
            violations: violations
                .iter()
                .take(MAX_LISTED_VIOLATIONS)
                .cloned()
                .collect(),
            faults,
            evidence_events: evidence.len(),
            figures: BTreeMap::new(),
            api_requests: ApiRequests::default(),
        }
    }

    /// `12.3s`, or on the simulated clock `6h 0m 0s simulated in 41.2s`.
    pub fn length(&self) -> String {
        let wall = format!("{:.1}s", self.wall_ms as f64 / 1000.0);
        if self.clock == "simulated" {
            let s = self.duration_ms / 1000;
            format!(
                "{}h {}m {}s simulated in {wall}",
                s / 3600,
                s / 60 % 60,
                s % 60
            )
        } else {
            wall
        }
    }

    /// The verdict on `invariant`, when the run checked it.
    pub fn verdict(&self, invariant: &str) -> Option<&Verdict> {
        self.invariants.iter().find(|v| v.invariant == invariant)
    }

    /// The summary table printed at the end of a run.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "\n{} · seed {} · {} · API server {}",
            self.scenario,
            self.seed,
            self.length(),
            self.api_server
        );
        let _ = writeln!(
            out,
            "\n{:<26} {:>6} {:>8} {:>8} {:>8} {:>8}",
            "phase", "n", "p50", "p90", "p99", "max"
        );
        for (phase, s) in &self.phases {
            let _ = writeln!(
                out,
                "{:<26} {:>6} {:>8} {:>8} {:>8} {:>8}",
                phase,
                s.count,
                ms(s.p50),
                ms(s.p90),
                ms(s.p99),
                ms(s.max)
            );
        }
        let join = |m: &BTreeMap<String, usize>| {
            m.iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = writeln!(out, "\nservers: {}", join(&self.servers_by_state));
        let _ = writeln!(out, "claims:  {}", join(&self.claims_by_phase));
        let _ = writeln!(out, "\n{:<30} {:>10}  verdict", "invariant", "violations");
        for v in &self.invariants {
            let mark = if v.ok { "ok  " } else { "FAIL" };
            let _ = writeln!(
                out,
                "{:<30} {:>10}  {mark} {}",
                v.invariant, v.violations, v.verdict
            );
        }
        for v in self.violations.iter().take(10) {
            let _ = writeln!(
                out,
                "  {:>8} {} {}: {}",
                ms(v.at_ms),
                v.invariant,
                v.subject,
                v.message
            );
        }
        if !self.faults.is_empty() {
            let _ = writeln!(out, "\nfaults injected:");
            for f in &self.faults {
                let until = f
                    .until_ms
                    .map(|u| format!("–{}", ms(u)))
                    .unwrap_or_default();
                let _ = writeln!(out, "  {}{until} {}", ms(f.at_ms), f.label);
            }
        }
        write_api_requests(&mut out, &self.api_requests);
        for (k, v) in &self.figures {
            let _ = writeln!(out, "{k}: {v:.1}");
        }
        for f in &self.failures {
            let _ = writeln!(out, "FAILED: {f}");
        }
        let _ = writeln!(out, "\n{}", if self.passed { "PASSED" } else { "FAILED" });
        out
    }

    /// Writes `report.json`, `timeline.html` and the raw `evidence.jsonl` into `dir`.
    pub fn write(&self, dir: &Path, evidence: &[Evidence]) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let json = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(dir.join("report.json"), json)?;
        // In arrival order: on the simulated clock that order is itself a product of the seed.
        let lines: String = evidence
            .iter()
            .map(|ev| serde_json::to_string(ev).map(|l| l + "\n"))
            .collect::<Result<_, _>>()
            .map_err(std::io::Error::other)?;
        std::fs::write(dir.join("evidence.jsonl"), lines)?;
        std::fs::write(dir.join("timeline.html"), html::render(self, evidence))
    }
}

fn write_api_requests(out: &mut String, r: &ApiRequests) {
    if r.by_component.values().all(|c| c.total == 0) {
        return;
    }
    let _ = writeln!(
        out,
        "\nAPI requests: {:.1} per server (operator + backend, all verbs, {} servers)",
        r.per_server, r.servers
    );
    for (component, c) in &r.by_component {
        let verbs: Vec<String> = c.by_verb.iter().map(|(v, n)| format!("{v} {n}")).collect();
        let _ = writeln!(out, "  {component:<9} {:>8}  {}", c.total, verbs.join(", "));
        let mut top: Vec<(&String, &u64)> = c.by_resource.iter().collect();
        top.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        if !top.is_empty() {
            let top: Vec<String> = top
                .iter()
                .take(6)
                .map(|(k, n)| format!("{k} {n}"))
                .collect();
            let _ = writeln!(out, "  {:<9} {:>8}  most: {}", "", "", top.join(", "));
        }
    }
}

fn verdicts(scenario: &Scenario, violations: &[Violation]) -> Vec<Verdict> {
    let e = &scenario.expect;
    catalog()
        .into_iter()
        .map(|(name, description)| {
            let n = violations.iter().filter(|v| v.invariant == name).count();
            let required = e.violations.iter().any(|v| v == name);
            let tolerated = e.tolerate.iter().any(|v| v == name);
            let (verdict, ok) = match (n > 0, required, tolerated) {
                (false, true, _) => ("NOT violated (expected a violation)", false),
                (false, false, _) => ("held", true),
                (true, true, _) => ("violated (expected)", true),
                (true, false, true) => ("violated (tolerated)", true),
                (true, false, false) => ("violated", false),
            };
            Verdict {
                invariant: name.into(),
                description: description.into(),
                violations: n,
                verdict: verdict.into(),
                ok,
            }
        })
        .collect()
}

pub fn ms(v: u64) -> String {
    if v >= 600_000 {
        // Simulated runs span hours: minutes read better than thousands of seconds.
        format!("{}m{:02}s", v / 60_000, v / 1000 % 60)
    } else if v >= 10_000 {
        format!("{:.1}s", v as f64 / 1000.0)
    } else {
        format!("{v}ms")
    }
}
