//! Verdicts: Fail (the backend broke a rule) vs Error (the harness or environment broke) vs Skip (not requested
//! or capability not declared), always with a reason; and how per-check outcomes fold into per-rule results.

use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Pass,
    Skip,
    Error,
    Fail,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::Error => "error",
            Verdict::Skip => "skip",
        })
    }
}

/// The verdict of one check on one rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleOutcome {
    pub rule: String,
    pub verdict: Verdict,
    pub reason: String,
    /// A "never Ready" pass: it stands only if the backend showed in this run that it reconciles (it wrote
    /// some SBC status) and stayed up; otherwise the runner turns it into an Error.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub needs_reconciling_backend: bool,
}

/// What a check found, rule by rule, plus figures it measured.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Outcomes {
    pub outcomes: Vec<RuleOutcome>,
    /// Named latencies in seconds (e.g. `time_to_ready`), reported as measured.
    pub latencies: Vec<(String, f64)>,
}

impl Outcomes {
    pub fn record(&mut self, rule: &str, verdict: Verdict, reason: impl Into<String>) -> &mut Self {
        self.outcomes.push(RuleOutcome {
            rule: rule.into(),
            verdict,
            reason: reason.into(),
            needs_reconciling_backend: false,
        });
        self
    }

    /// A "never Ready" observation held: Pass, credited only if the backend is shown to reconcile (see
    /// [`RuleOutcome::needs_reconciling_backend`]). An idle or dead backend is never Ready either.
    pub fn pass_never_ready(&mut self, rule: &str, reason: impl Into<String>) -> &mut Self {
        self.outcomes.push(RuleOutcome {
            rule: rule.into(),
            verdict: Verdict::Pass,
            reason: reason.into(),
            needs_reconciling_backend: true,
        });
        self
    }

    pub fn pass(&mut self, rule: &str, reason: impl Into<String>) -> &mut Self {
        self.record(rule, Verdict::Pass, reason)
    }

    pub fn fail(&mut self, rule: &str, reason: impl Into<String>) -> &mut Self {
        self.record(rule, Verdict::Fail, reason)
    }

    pub fn skip(&mut self, rule: &str, reason: impl Into<String>) -> &mut Self {
        self.record(rule, Verdict::Skip, reason)
    }

    /// Pass when `problem` is None, otherwise Fail with the problem as the reason.
    pub fn expect(
        &mut self,
        rule: &str,
        problem: Option<String>,
        ok: impl Into<String>,
    ) -> &mut Self {
        match problem {
            None => self.pass(rule, ok),
            Some(p) => self.fail(rule, p),
        }
    }

    pub fn latency(&mut self, name: &str, seconds: f64) -> &mut Self {
        self.latencies.push((name.into(), seconds));
        self
    }
}

/// Folds several outcomes for the same rule: any Fail wins, then Error, then Pass; all Skip stays Skip.
pub fn fold(outcomes: &[&RuleOutcome]) -> Verdict {
    let verdicts = outcomes.iter().map(|o| o.verdict);
    if outcomes.is_empty() {
        return Verdict::Skip;
    }
    let worst = verdicts.clone().max().unwrap_or(Verdict::Skip);
    match worst {
        Verdict::Fail | Verdict::Error => worst,
        _ if verdicts.clone().any(|v| v == Verdict::Pass) => Verdict::Pass,
        _ => Verdict::Skip,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn o(v: Verdict) -> RuleOutcome {
        RuleOutcome {
            rule: "X".into(),
            verdict: v,
            reason: String::new(),
            needs_reconciling_backend: false,
        }
    }

    #[test]
    fn fold_prefers_fail_then_error_then_pass() {
        let (p, f, e, s) = (
            o(Verdict::Pass),
            o(Verdict::Fail),
            o(Verdict::Error),
            o(Verdict::Skip),
        );
        assert_eq!(fold(&[&p, &f, &e]), Verdict::Fail);
        assert_eq!(fold(&[&p, &e]), Verdict::Error);
        assert_eq!(fold(&[&p, &s]), Verdict::Pass);
        assert_eq!(fold(&[&s]), Verdict::Skip);
        assert_eq!(fold(&[]), Verdict::Skip);
    }
}
