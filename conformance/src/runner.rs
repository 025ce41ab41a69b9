//! Runs the selected checks: core and boot concurrently (each in its own namespace), then scale alone, then the
//! disruptive resilience checks one at a time; always cleans up; folds outcomes into per-rule verdicts.

use crate::checks::{CHECKS, Check, HISTORY_RULES, history_outcomes};
use crate::ctx::Ctx;
use crate::outcome::{Outcomes, RuleOutcome, Verdict, fold};
use crate::progress::Display;
use crate::rules::{Level, Profile, RULES, Rule};
use crate::target::Target;
use futures::StreamExt;
use serde::Serialize;
use std::collections::BTreeSet;
use std::sync::Arc;

/// Which profiles and rules were requested.
#[derive(Debug, Clone, Serialize)]
pub struct Selection {
    pub profiles: BTreeSet<Profile>,
    /// Only these rule IDs (None: every rule of the selected profiles).
    pub rules: Option<BTreeSet<String>>,
}

impl Selection {
    pub fn profiles(profiles: &[Profile]) -> Self {
        Selection {
            profiles: profiles.iter().copied().collect(),
            rules: None,
        }
    }

    pub fn requests(&self, rule: &Rule) -> bool {
        self.profiles.contains(&rule.profile)
            && self.rules.as_ref().is_none_or(|r| r.contains(rule.id))
    }

    fn runs(&self, check: &Check) -> bool {
        self.profiles.contains(&check.profile)
            && self.rules.as_ref().is_none_or(|sel| {
                check
                    .rules
                    .iter()
                    .chain(HISTORY_RULES.iter())
                    .any(|r| sel.contains(*r))
            })
    }
}

/// What one check did.
#[derive(Debug, Clone, Serialize)]
pub struct CheckRecord {
    pub id: String,
    pub profile: Profile,
    pub seconds: f64,
    pub outcomes: Vec<RuleOutcome>,
    pub latencies: Vec<(String, f64)>,
    /// Objects that could not be deleted afterwards (harness errors; never a Fail).
    pub cleanup_problems: Vec<String>,
}

/// A rule's verdict over the run.
#[derive(Debug, Clone, Serialize)]
pub struct RuleResult {
    pub id: String,
    pub level: Level,
    pub profile: Profile,
    pub tier: crate::rules::Tier,
    pub requested: bool,
    pub verdict: Verdict,
    pub reasons: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunResult {
    pub checks: Vec<CheckRecord>,
    pub rules: Vec<RuleResult>,
    pub seconds: f64,
    pub interrupted: bool,
}

impl RunResult {
    /// Every requested MUST rule passed: the run's exit code is 0 exactly then.
    pub fn must_rules_pass(&self) -> bool {
        self.rules
            .iter()
            .filter(|r| r.requested && r.level == Level::Must)
            .all(|r| r.verdict == Verdict::Pass)
    }

    pub fn rule(&self, id: &str) -> Option<&RuleResult> {
        self.rules.iter().find(|r| r.id == id)
    }

    /// IDs of requested rules whose verdict is Fail.
    pub fn failed(&self) -> BTreeSet<String> {
        self.rules
            .iter()
            .filter(|r| r.verdict == Verdict::Fail)
            .map(|r| r.id.clone())
            .collect()
    }
}

/// Runs one check in its own namespace and cleans up after it, also when cancelled.
async fn run_check(
    target: Arc<Target>,
    check: &'static Check,
    display: Display,
    selection: Selection,
) -> CheckRecord {
    let start = tokio::time::Instant::now();
    let mut rules: Vec<&str> = check.rules.to_vec();
    rules.extend(HISTORY_RULES);
    let progress = display.check(check.id, check.rules);
    let mut record = CheckRecord {
        id: check.id.into(),
        profile: check.profile,
        seconds: 0.0,
        outcomes: Vec::new(),
        latencies: Vec::new(),
        cleanup_problems: Vec::new(),
    };
    let error_all = |record: &mut CheckRecord, reason: String| {
        for r in &rules {
            record.outcomes.push(RuleOutcome {
                rule: (*r).into(),
                verdict: Verdict::Error,
                reason: reason.clone(),
            });
        }
    };
    match Ctx::new(target.clone(), check.id, progress).await {
        Err(e) => error_all(&mut record, format!("harness: {e:#}")),
        Ok(ctx) => {
            let result = tokio::select! {
                r = (check.run)(&ctx) => Some(r),
                _ = target.cancel.cancelled() => None,
            };
            match result {
                Some(Ok(outcomes)) => {
                    let history = history_outcomes(&ctx.all_histories());
                    let Outcomes {
                        outcomes: mut found,
                        latencies,
                    } = outcomes;
                    found.extend(history.outcomes);
                    record.outcomes = found;
                    record.latencies = latencies;
                }
                Some(Err(e)) => error_all(&mut record, format!("harness or API error: {e:#}")),
                None => error_all(&mut record, "interrupted".into()),
            }
            record.cleanup_problems = ctx.cleanup().await;
        }
    }
    record.outcomes.retain(|o| {
        selection
            .rules
            .as_ref()
            .is_none_or(|sel| sel.contains(&o.rule))
    });
    record.seconds = start.elapsed().as_secs_f64();
    let verdicts: BTreeSet<String> = record
        .outcomes
        .iter()
        .map(|o| o.verdict.to_string())
        .collect();
    display.println(&format!(
        "{:<34} {:>6.1}s  {}",
        check.id,
        record.seconds,
        verdicts.into_iter().collect::<Vec<_>>().join("/")
    ));
    record
}

/// Runs every selected check. `concurrency` bounds the core/boot phase.
pub async fn run(
    target: Arc<Target>,
    selection: &Selection,
    display: &Display,
    concurrency: usize,
) -> RunResult {
    let start = tokio::time::Instant::now();
    let selected: Vec<&'static Check> = CHECKS.iter().filter(|c| selection.runs(c)).collect();
    let (parallel, serial): (Vec<_>, Vec<_>) = selected
        .into_iter()
        .partition(|c| matches!(c.profile, Profile::Core | Profile::Boot));
    let mut checks: Vec<CheckRecord> = futures::stream::iter(parallel)
        .map(|c| run_check(target.clone(), c, display.clone(), selection.clone()))
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    // Scale first, then the disruptive resilience checks, the API server restart last (see CHECKS order).
    let (scale, resilience): (Vec<_>, Vec<_>) = serial
        .into_iter()
        .partition(|c| c.profile == Profile::Scale);
    for c in scale.into_iter().chain(resilience) {
        if target.cancel.is_cancelled() {
            break;
        }
        checks.push(run_check(target.clone(), c, display.clone(), selection.clone()).await);
    }
    checks.sort_by_key(|c| CHECKS.iter().position(|k| k.id == c.id));
    let rules = fold_rules(&checks, selection);
    RunResult {
        checks,
        rules,
        seconds: start.elapsed().as_secs_f64(),
        interrupted: target.cancel.is_cancelled(),
    }
}

/// One verdict per rule of the contract, with the reasons behind it.
pub fn fold_rules(checks: &[CheckRecord], selection: &Selection) -> Vec<RuleResult> {
    RULES
        .iter()
        .map(|rule| {
            let requested = selection.requests(rule);
            let outcomes: Vec<(&str, &RuleOutcome)> = checks
                .iter()
                .flat_map(|c| {
                    c.outcomes
                        .iter()
                        .filter(|o| o.rule == rule.id)
                        .map(move |o| (c.id.as_str(), o))
                })
                .collect();
            let (verdict, reasons) = if !requested {
                let why = if selection.profiles.contains(&rule.profile) {
                    "rule not selected"
                } else {
                    "profile not requested"
                };
                (Verdict::Skip, vec![why.to_string()])
            } else if outcomes.is_empty() {
                (
                    Verdict::Error,
                    vec!["no check decided this rule (interrupted or not run)".to_string()],
                )
            } else {
                let verdict = fold(&outcomes.iter().map(|(_, o)| *o).collect::<Vec<_>>());
                // Reasons matching the verdict first: they explain it.
                let mut reasons: Vec<String> = outcomes
                    .iter()
                    .filter(|(_, o)| o.verdict == verdict)
                    .map(|(c, o)| format!("{c}: {}", o.reason))
                    .collect();
                reasons.dedup();
                (verdict, reasons)
            };
            RuleResult {
                id: rule.id.into(),
                level: rule.level,
                profile: rule.profile,
                tier: rule.tier,
                requested,
                verdict,
                reasons,
            }
        })
        .collect()
}

/// Default parallelism of the core/boot phase.
pub const DEFAULT_CONCURRENCY: usize = 8;
