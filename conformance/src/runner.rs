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
    /// Set when the run stopped early because the backend was not running: nothing is certified then.
    pub backend_stopped: Option<BackendStop>,
}

/// Why the run stopped early: the backend's process exited, or it never showed any sign of reconciling.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BackendStop {
    /// Run time at which the suite noticed.
    pub at_seconds: f64,
    pub reason: String,
    /// The process exited (as opposed to never reconciling).
    pub exited: bool,
    /// The last lines of the backend's log, when the suite has it.
    pub log_tail: Vec<String>,
}

/// How often the watchdog looks at the backend.
const WATCHDOG_INTERVAL: std::time::Duration = std::time::Duration::from_millis(250);

impl RunResult {
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
                needs_reconciling_backend: false,
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

/// Watches the backend while the checks run: an exited process, or no SBC status written within the
/// `first-status` timeout of the suite's first SBC, stops the run.
async fn watchdog(
    target: Arc<Target>,
    done: tokio_util::sync::CancellationToken,
) -> Option<BackendStop> {
    let first_status_deadline = target.timeouts.first_status;
    let mut tick = tokio::time::interval(WATCHDOG_INTERVAL);
    let tail = |target: &Target| {
        target
            .backend
            .as_ref()
            .map(|b| b.log_tail(20))
            .unwrap_or_default()
    };
    loop {
        tokio::select! {
            _ = done.cancelled() => return None,
            _ = tick.tick() => {}
        }
        let now = target.epoch.elapsed();
        if let Some(backend) = target.backend.as_ref().filter(|b| b.observes_process())
            && let Ok(exits) = backend.unexpected_exits().await
            && !exits.is_empty()
        {
            return Some(BackendStop {
                at_seconds: now.as_secs_f64(),
                reason: format!("the backend is not running: it {}", exits.join("; ")),
                exited: true,
                log_tail: tail(&target),
            });
        }
        let activity = &target.activity;
        if let Some(created) = activity.first_sbc_created()
            && activity.first_status_write().is_none()
            && now.saturating_sub(created) > first_status_deadline
        {
            return Some(BackendStop {
                at_seconds: now.as_secs_f64(),
                reason: format!(
                    "the backend wrote no ServerBootConfiguration status within {first_status_deadline:?} of the \
                     suite's first SBC: is it running, connected to this API server, and watching SBCs in every namespace?"
                ),
                exited: false,
                log_tail: tail(&target),
            });
        }
    }
}

/// Runs every selected check. `concurrency` bounds the core/boot phase.
pub async fn run(
    target: Arc<Target>,
    selection: &Selection,
    display: &Display,
    concurrency: usize,
) -> RunResult {
    let start = tokio::time::Instant::now();
    let done = tokio_util::sync::CancellationToken::new();
    let watchdog = tokio::spawn({
        let (target, done) = (target.clone(), done.clone());
        async move {
            let stop = watchdog(target.clone(), done).await;
            if stop.is_some() {
                // The checks stop and clean up as on Ctrl-C; the stop says why.
                target.cancel.cancel();
            }
            stop
        }
    });
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
    done.cancel();
    let backend_stopped = watchdog.await.ok().flatten();
    checks.sort_by_key(|c| CHECKS.iter().position(|k| k.id == c.id));
    credit_never_ready(&mut checks, &target, backend_stopped.as_ref());
    let mut rules = fold_rules(&checks, selection);
    if let Some(stop) = &backend_stopped {
        judge_stopped_run(&mut rules, stop);
    }
    RunResult {
        checks,
        rules,
        seconds: start.elapsed().as_secs_f64(),
        interrupted: target.cancel.is_cancelled() && backend_stopped.is_none(),
        backend_stopped,
    }
}

/// "Never Ready" passes stand only for a backend that showed it reconciles (wrote an SBC status in this run)
/// and did not stop: an idle or dead backend is never Ready either, and earns nothing for it.
fn credit_never_ready(checks: &mut [CheckRecord], target: &Target, stop: Option<&BackendStop>) {
    let why_not = match (stop, target.activity.first_status_write()) {
        (Some(stop), _) => Some(format!(
            "not credited: {} (a 'never Ready' observation says nothing about a backend that is not running)",
            stop.reason
        )),
        (None, None) => Some(
            "not credited: the backend wrote no SBC status in this run, so 'never Ready' says nothing about it"
                .to_string(),
        ),
        (None, Some(_)) => None,
    };
    let Some(why_not) = why_not else { return };
    for o in checks
        .iter_mut()
        .flat_map(|c| c.outcomes.iter_mut())
        .filter(|o| o.needs_reconciling_backend && o.verdict == Verdict::Pass)
    {
        o.verdict = Verdict::Error;
        o.reason = format!("{why_not}; observed: {}", o.reason);
    }
}

/// After an early stop: rules the checks could not finish are errors naming the stop, and a process exit is
/// SBC-RES-005's evidence whichever check was running.
fn judge_stopped_run(rules: &mut [RuleResult], stop: &BackendStop) {
    for r in rules.iter_mut().filter(|r| r.requested) {
        if stop.exited && r.id == "SBC-RES-005" {
            r.verdict = Verdict::Fail;
            r.reasons = vec![stop.reason.clone()];
        } else if r.verdict == Verdict::Error && r.reasons.iter().any(|x| x.contains("interrupted"))
        {
            r.reasons = vec![format!(
                "not judged: the run stopped early because {}",
                stop.reason
            )];
        }
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
            } else if outcomes.is_empty() && HISTORY_RULES.contains(&rule.id) {
                (
                    Verdict::Error,
                    vec![
                        "no SBC status history was recorded by any check: nothing to judge"
                            .to_string(),
                    ],
                )
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
