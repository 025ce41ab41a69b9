//! The conformance report: report.yaml / report.json (one schema), JUnit XML for CI, and the Markdown summary.

use crate::outcome::Verdict;
use crate::rules::{CONTRACT_VERSION, Level, Profile, Tier};
use crate::runner::{CheckRecord, RuleResult, RunResult};
use crate::stats::{Percentiles, percentiles};
use crate::timeouts::Timeouts;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

pub const REPORT_API_VERSION: &str = "conformance.metal.ironcore.dev/v1alpha1";

/// The one wall-clock read of the suite: the report date.
pub fn wall_clock_now() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now()
}

#[derive(Debug, Clone, Serialize)]
pub struct Implementation {
    pub name: String,
    pub version: String,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Result {
    /// Every requested rule passed.
    Success,
    /// No MUST failed, but a SHOULD/MAY failed or a rule was skipped or errored.
    Partial,
    /// A requested MUST rule did not pass.
    Failure,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Statistics {
    pub passed: usize,
    pub failed: usize,
    pub errored: usize,
    pub skipped: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct TierResult {
    pub result: Result,
    pub statistics: Statistics,
    pub failed_rules: Vec<String>,
    pub skipped_rules: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ProfileResult {
    pub profile: Profile,
    pub requested: bool,
    pub baseline: TierResult,
    pub extension: TierResult,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub contract_version: &'static str,
    pub suite_version: &'static str,
    pub date: String,
    pub implementation: Implementation,
    /// The exact command line that reproduces this run.
    pub command: String,
    pub result: Result,
    /// False when a timeout was outside its published limit or the run was interrupted.
    pub certifying: bool,
    pub certifying_notes: Vec<String>,
    pub duration_seconds: f64,
    pub timeouts: Timeouts,
    pub profiles: Vec<ProfileResult>,
    pub rules: Vec<RuleResult>,
    /// Latency figures (seconds) over all checks, by name.
    pub latencies: BTreeMap<String, Percentiles>,
    pub checks: Vec<CheckRecord>,
}

fn tier_result(rules: &[&RuleResult]) -> TierResult {
    let mut s = Statistics::default();
    for r in rules {
        match r.verdict {
            Verdict::Pass => s.passed += 1,
            Verdict::Fail => s.failed += 1,
            Verdict::Error => s.errored += 1,
            Verdict::Skip => s.skipped += 1,
        }
    }
    let must_ok = rules
        .iter()
        .filter(|r| r.level == Level::Must)
        .all(|r| r.verdict == Verdict::Pass);
    let result = if !must_ok {
        Result::Failure
    } else if rules.iter().all(|r| r.verdict == Verdict::Pass) {
        Result::Success
    } else {
        Result::Partial
    };
    TierResult {
        result,
        failed_rules: rules
            .iter()
            .filter(|r| r.verdict == Verdict::Fail)
            .map(|r| r.id.clone())
            .collect(),
        skipped_rules: rules
            .iter()
            .filter(|r| r.verdict == Verdict::Skip)
            .map(|r| r.id.clone())
            .collect(),
        statistics: s,
    }
}

impl Report {
    pub fn new(
        run: &RunResult,
        implementation: Implementation,
        command: String,
        timeouts: &Timeouts,
    ) -> Report {
        let requested: Vec<&RuleResult> = run.rules.iter().filter(|r| r.requested).collect();
        let profiles = Profile::ALL
            .into_iter()
            .map(|p| {
                let of = |tier: Tier| -> Vec<&RuleResult> {
                    requested
                        .iter()
                        .copied()
                        .filter(|r| r.profile == p && r.tier == tier)
                        .collect()
                };
                ProfileResult {
                    profile: p,
                    requested: requested.iter().any(|r| r.profile == p),
                    baseline: tier_result(&of(Tier::Baseline)),
                    extension: tier_result(&of(Tier::Extension)),
                }
            })
            .collect();
        let mut by_name: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        for (name, v) in run.checks.iter().flat_map(|c| c.latencies.iter()) {
            by_name.entry(name.clone()).or_default().push(*v);
        }
        let latencies = by_name
            .into_iter()
            .filter_map(|(k, v)| percentiles(&v).map(|p| (k, p)))
            .collect();
        let mut notes = timeouts.violations();
        if run.interrupted {
            notes.push("the run was interrupted".into());
        }
        Report {
            api_version: REPORT_API_VERSION,
            kind: "ConformanceReport",
            contract_version: CONTRACT_VERSION,
            suite_version: env!("CARGO_PKG_VERSION"),
            date: wall_clock_now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            implementation,
            command,
            result: tier_result(&requested).result,
            certifying: notes.is_empty(),
            certifying_notes: notes,
            duration_seconds: run.seconds,
            timeouts: timeouts.clone(),
            profiles,
            rules: run.rules.clone(),
            latencies,
            checks: run.checks.clone(),
        }
    }

    pub fn to_json(&self) -> anyhow::Result<String> {
        Ok(serde_json::to_string_pretty(self)?)
    }

    pub fn to_yaml(&self) -> anyhow::Result<String> {
        Ok(serde_saphyr::to_string(self)?)
    }

    /// JUnit XML: one test suite per profile, one test case per requested rule.
    pub fn to_junit(&self) -> anyhow::Result<String> {
        use quick_junit::{NonSuccessKind, Report as JReport, TestCase, TestCaseStatus, TestSuite};
        let mut report = JReport::new(format!("sbc-conformance-{}", self.contract_version));
        for p in Profile::ALL {
            let mut suite = TestSuite::new(p.as_str());
            for r in self.rules.iter().filter(|r| r.profile == p && r.requested) {
                let reason = r.reasons.join("\n");
                let status = match r.verdict {
                    Verdict::Pass => TestCaseStatus::success(),
                    Verdict::Skip => {
                        let mut s = TestCaseStatus::skipped();
                        s.set_message(reason);
                        s
                    }
                    v => {
                        let kind = if v == Verdict::Fail {
                            NonSuccessKind::Failure
                        } else {
                            NonSuccessKind::Error
                        };
                        let mut s = TestCaseStatus::non_success(kind);
                        s.set_message(format!("{} {}: {v}", r.level, r.id));
                        s.set_description(reason);
                        s
                    }
                };
                let mut case = TestCase::new(format!("{} [{} {}]", r.id, r.level, r.tier), status);
                case.set_classname(format!("conformance.{}", p.as_str()));
                suite.add_test_case(case);
            }
            if !suite.test_cases.is_empty() {
                report.add_test_suite(suite);
            }
        }
        Ok(report.to_string()?)
    }

    /// The Markdown summary printed at the end of a run.
    pub fn to_markdown(&self) -> String {
        let mut md = String::new();
        let verdict = match self.result {
            Result::Success => "SUCCESS",
            Result::Partial => "PARTIAL",
            Result::Failure => "FAILURE",
        };
        md.push_str(&format!(
            "# SBC conformance {}: {} {} — {verdict}\n\n",
            self.contract_version, self.implementation.name, self.implementation.version
        ));
        md.push_str(&format!(
            "Suite {} · {} · {:.1}s · certifying: {}\n\n",
            self.suite_version, self.date, self.duration_seconds, self.certifying
        ));
        for n in &self.certifying_notes {
            md.push_str(&format!("- not certifying: {n}\n"));
        }
        md.push_str("| Profile | Baseline | Extension |\n|---|---|---|\n");
        for p in self.profiles.iter().filter(|p| p.requested) {
            let cell = |t: &TierResult| {
                let s = &t.statistics;
                format!(
                    "{:?}: {} pass, {} fail, {} error, {} skip",
                    t.result, s.passed, s.failed, s.errored, s.skipped
                )
            };
            md.push_str(&format!(
                "| {} | {} | {} |\n",
                p.profile,
                cell(&p.baseline),
                cell(&p.extension)
            ));
        }
        md.push_str("\n| Rule | Level | Tier | Verdict | Reason |\n|---|---|---|---|---|\n");
        for r in self.rules.iter().filter(|r| r.requested) {
            let reason = r
                .reasons
                .first()
                .map(|s| s.lines().next().unwrap_or_default().to_string())
                .unwrap_or_default();
            let mark = match r.verdict {
                Verdict::Pass => "pass",
                Verdict::Fail => "**FAIL**",
                Verdict::Error => "**ERROR**",
                Verdict::Skip => "skip",
            };
            md.push_str(&format!(
                "| {} | {} | {} | {mark} | {} |\n",
                r.id,
                r.level,
                r.tier,
                reason.replace('|', "\\|")
            ));
        }
        if !self.latencies.is_empty() {
            md.push_str(
                "\n| Latency (s) | n | p50 | p90 | p99 | max |\n|---|---|---|---|---|---|\n",
            );
            for (name, p) in &self.latencies {
                md.push_str(&format!(
                    "| {name} | {} | {:.3} | {:.3} | {:.3} | {:.3} |\n",
                    p.count, p.p50, p.p90, p.p99, p.max
                ));
            }
        }
        md.push_str(&format!("\nReproduce: `{}`\n", self.command));
        md
    }

    /// Writes report.yaml, report.json, junit.xml and summary.md into `dir`.
    pub fn write(&self, dir: &Path) -> anyhow::Result<()> {
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join("report.yaml"), self.to_yaml()?)?;
        std::fs::write(dir.join("report.json"), self.to_json()?)?;
        std::fs::write(dir.join("junit.xml"), self.to_junit()?)?;
        std::fs::write(dir.join("summary.md"), self.to_markdown())?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::RuleOutcome;
    use crate::runner::{Selection, fold_rules};

    fn outcome(rule: &str, verdict: Verdict, reason: &str) -> RuleOutcome {
        RuleOutcome {
            rule: rule.into(),
            verdict,
            reason: reason.into(),
        }
    }

    /// A core-only run where the backend flickered Ready for a missing Secret and lacks a declared image.
    fn sample() -> Report {
        let check =
            |id: &str, outcomes: Vec<RuleOutcome>, latencies: Vec<(String, f64)>| CheckRecord {
                id: id.into(),
                profile: Profile::Core,
                seconds: 3.5,
                outcomes,
                latencies,
                cleanup_problems: vec![],
            };
        let checks = vec![
            check(
                "core.valid-ready",
                vec![outcome("SBC-CORE-001", Verdict::Pass, "Ready after 0.812s")],
                vec![("time_to_ready".into(), 0.812)],
            ),
            check(
                "core.ignition-secret-missing",
                vec![
                    outcome(
                        "SBC-IGN-001",
                        Verdict::Fail,
                        "Ready at 1.204s (resourceVersion 17, generation 1) for an invalid input",
                    ),
                    outcome(
                        "SBC-IGN-003",
                        Verdict::Pass,
                        "Error with reason \"IgnitionMissing\" after 0.3s",
                    ),
                    outcome(
                        "SBC-IMG-003",
                        Verdict::Skip,
                        "no disallowed-registry image configured (capability not declared)",
                    ),
                ],
                vec![],
            ),
        ];
        let selection = Selection::profiles(&[Profile::Core]);
        let run = RunResult {
            rules: fold_rules(&checks, &selection),
            checks,
            seconds: 7.25,
            interrupted: false,
        };
        let implementation = Implementation {
            name: "example-backend".into(),
            version: "1.2.3".into(),
        };
        let mut report = Report::new(
            &run,
            implementation,
            "conformance certify --kubeconfig k".into(),
            &Timeouts::default(),
        );
        report.date = "2026-01-01T00:00:00Z".into();
        report
    }

    #[test]
    fn markdown_summary() {
        insta::assert_snapshot!(sample().to_markdown());
    }

    #[test]
    fn junit_xml() {
        insta::assert_snapshot!(sample().to_junit().unwrap());
    }

    #[test]
    fn results_follow_must_rules() {
        let report = sample();
        assert_eq!(report.result, Result::Failure);
        let core = report
            .profiles
            .iter()
            .find(|p| p.profile == Profile::Core)
            .unwrap();
        assert_eq!(core.baseline.failed_rules, vec!["SBC-IGN-001"]);
        // Rules no check decided are errors, never silent passes.
        let unreported = report
            .rules
            .iter()
            .find(|r| r.id == "SBC-CORE-002")
            .unwrap();
        assert_eq!(unreported.verdict, Verdict::Error);
        let json: serde_json::Value = serde_json::from_str(&report.to_json().unwrap()).unwrap();
        assert_eq!(json["kind"], "ConformanceReport");
        assert_eq!(json["timeouts"]["time-to-ready"], 30.0);
        assert!(report.to_yaml().unwrap().contains("contractVersion: v1"));
    }
}
