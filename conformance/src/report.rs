//! The conformance report: report.yaml / report.json (one schema), JUnit XML for CI, and the Markdown summary.

use crate::level::{ConformanceLevel, LevelResult};
use crate::outcome::Verdict;
use crate::rules::{CONTRACT_VERSION, Level, Profile, Tier};
use crate::runner::{CheckRecord, RuleResult, RunResult};
use crate::stats::{Percentiles, percentiles};
use crate::timeouts::Timeouts;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

pub const REPORT_API_VERSION: &str = "conformance.metal.ironcore.dev/v1alpha1";

/// The one wall-clock read of the suite: the report date. It stays wall time even in a simulated run on
/// purpose: a certificate says when it was issued, and nothing in the verdicts depends on it.
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
    /// The requested level was met and every requested rule passed.
    Success,
    /// The requested level was met, but a SHOULD/MAY or a rule outside the level did not pass.
    Partial,
    /// The requested level was not met.
    Failure,
}

impl Result {
    /// Failure unless `met`; then Success only if every rule passed.
    fn of<'a>(met: bool, mut rules: impl Iterator<Item = &'a RuleResult>) -> Result {
        if !met {
            Result::Failure
        } else if rules.all(|r| r.verdict == Verdict::Pass) {
            Result::Success
        } else {
            Result::Partial
        }
    }
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
    /// The conformance level this profile met, its blockers and its extension score.
    pub level: LevelResult,
    /// The certificate line, e.g. `core: baseline CONFORMANT · extension 1/3`.
    pub headline: String,
    pub baseline: TierResult,
    pub extension: TierResult,
}

/// What the run certifies: the requested level, the level met over every requested profile, and the verdict.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Certification {
    pub requested_level: ConformanceLevel,
    /// The highest level every requested profile met (None: not even baseline).
    pub met_level: Option<ConformanceLevel>,
    /// The requested level was met: the exit code is 0 exactly then.
    pub conformant: bool,
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
    pub certification: Certification,
    pub result: Result,
    /// Set when the backend was not running (it exited, or never wrote a status): the run stopped early.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backend_stopped: Option<crate::runner::BackendStop>,
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
    TierResult {
        result: Result::of(must_ok, rules.iter().copied()),
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
        requested_level: ConformanceLevel,
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
                let level = LevelResult::of(requested.iter().copied().filter(|r| r.profile == p));
                ProfileResult {
                    profile: p,
                    requested: requested.iter().any(|r| r.profile == p),
                    headline: level.headline(p, requested_level),
                    level,
                    baseline: tier_result(&of(Tier::Baseline)),
                    extension: tier_result(&of(Tier::Extension)),
                }
            })
            .collect();
        let overall = LevelResult::of(requested.iter().copied());
        let conformant = overall.meets(requested_level)
            && !requested.is_empty()
            && run.backend_stopped.is_none();
        let result = Result::of(conformant, requested.iter().copied());
        let mut by_name: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        for (name, v) in run.checks.iter().flat_map(|c| c.latencies.iter()) {
            by_name.entry(name.clone()).or_default().push(*v);
        }
        let latencies = by_name
            .into_iter()
            .filter_map(|(k, v)| percentiles(&v).map(|p| (k, p)))
            .collect();
        let mut notes = timeouts.violations();
        if let Some(stop) = &run.backend_stopped {
            notes.push(format!("the run stopped early: {}", stop.reason));
        }
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
            certification: Certification {
                requested_level,
                met_level: overall.met,
                conformant,
            },
            result,
            backend_stopped: run.backend_stopped.clone(),
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
            if let Some(profile) = self.profiles.iter().find(|r| r.profile == p) {
                let met = profile.level.met.map(|l| l.as_str()).unwrap_or("none");
                suite.add_property((
                    "conformance.level.requested",
                    self.certification.requested_level.as_str(),
                ));
                suite.add_property(("conformance.level.met", met));
                suite.add_property((
                    "conformance.extension.score",
                    profile.level.extension_score.to_string().as_str(),
                ));
                suite.add_property(("conformance.headline", profile.headline.as_str()));
            }
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

    /// The certificate line of the whole run, e.g. `CERTIFIED: baseline (requested baseline)`.
    pub fn verdict_line(&self) -> String {
        let c = &self.certification;
        if self.backend_stopped.is_some() {
            return format!(
                "NOT CERTIFIED at {}: the backend was not running",
                c.requested_level
            );
        }
        match (c.conformant, c.met_level) {
            (true, Some(met)) => format!("CERTIFIED: {met} (requested {})", c.requested_level),
            (false, Some(met)) => format!("NOT CERTIFIED at {} (met: {met})", c.requested_level),
            (_, None) => format!("NOT CERTIFIED at {} (met: none)", c.requested_level),
        }
    }

    /// The Markdown summary printed at the end of a run.
    pub fn to_markdown(&self) -> String {
        let mut md = String::new();
        md.push_str(&format!(
            "# SBC conformance {}: {} {} — {}\n\n",
            self.contract_version,
            self.implementation.name,
            self.implementation.version,
            self.verdict_line()
        ));
        if let Some(stop) = &self.backend_stopped {
            md.push_str(&format!(
                "**BACKEND NOT RUNNING** at {:.1}s: {}\n\n",
                stop.at_seconds, stop.reason
            ));
            if !stop.log_tail.is_empty() {
                md.push_str("Last lines of backend.log:\n\n```\n");
                for line in &stop.log_tail {
                    md.push_str(line);
                    md.push('\n');
                }
                md.push_str("```\n\n");
            }
        }
        for p in self.profiles.iter().filter(|p| p.requested) {
            md.push_str(&format!("- **{}**\n", p.headline));
        }
        md.push('\n');
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
            needs_reconciling_backend: false,
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
            backend_stopped: None,
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
            ConformanceLevel::Baseline,
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
