//! Conformance levels: what a run certifies. `baseline` is every requested baseline MUST rule passing (what
//! upstream relies on today); `extended` adds every requested extension MUST rule. The exit code follows the
//! level the user asked for, and the extension score is shown whatever the level.

use crate::outcome::Verdict;
use crate::rules::{Level, Profile, Tier};
use crate::runner::RuleResult;
use serde::{Deserialize, Serialize};
use std::fmt;

/// The level a run is asked to certify, or met.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum ConformanceLevel {
    /// Every requested baseline MUST rule passes.
    #[default]
    Baseline,
    /// Baseline, plus every requested extension MUST rule passes.
    Extended,
}

impl ConformanceLevel {
    pub const ALL: [ConformanceLevel; 2] = [ConformanceLevel::Baseline, ConformanceLevel::Extended];

    pub fn as_str(self) -> &'static str {
        match self {
            ConformanceLevel::Baseline => "baseline",
            ConformanceLevel::Extended => "extended",
        }
    }

    pub fn parse(s: &str) -> Option<ConformanceLevel> {
        Self::ALL.into_iter().find(|l| l.as_str() == s)
    }

    /// The tiers whose MUST rules this level requires.
    pub fn requires(self, tier: Tier) -> bool {
        match self {
            ConformanceLevel::Baseline => tier == Tier::Baseline,
            ConformanceLevel::Extended => true,
        }
    }
}

impl fmt::Display for ConformanceLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// Passed extension MUST rules out of the requested ones.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Score {
    pub passed: usize,
    pub total: usize,
}

impl fmt::Display for Score {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.passed, self.total)
    }
}

/// A MUST rule that keeps a level from being met, with its verdict (fail, error or skip).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Blocker {
    pub rule: String,
    pub verdict: Verdict,
}

impl fmt::Display for Blocker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.rule, self.verdict)
    }
}

/// The level one profile (or the whole run) met.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LevelResult {
    /// The highest level met; None when not even baseline is.
    pub met: Option<ConformanceLevel>,
    /// Requested baseline MUST rules that did not pass.
    pub baseline_blockers: Vec<Blocker>,
    /// Requested extension MUST rules that did not pass.
    pub extension_blockers: Vec<Blocker>,
    pub extension_score: Score,
}

impl LevelResult {
    /// Evaluates the requested MUST rules among `rules`.
    pub fn of<'a>(rules: impl IntoIterator<Item = &'a RuleResult>) -> LevelResult {
        let mut baseline_blockers = Vec::new();
        let mut extension_blockers = Vec::new();
        let mut score = Score::default();
        for r in rules
            .into_iter()
            .filter(|r| r.requested && r.level == Level::Must)
        {
            let pass = r.verdict == Verdict::Pass;
            let blocker = || Blocker {
                rule: r.id.clone(),
                verdict: r.verdict,
            };
            match r.tier {
                Tier::Baseline if !pass => baseline_blockers.push(blocker()),
                Tier::Baseline => {}
                Tier::Extension => {
                    score.total += 1;
                    if pass {
                        score.passed += 1;
                    } else {
                        extension_blockers.push(blocker());
                    }
                }
            }
        }
        // Failures first: they say the most about the backend; skips and errors about the environment.
        baseline_blockers.sort_by_key(|b| std::cmp::Reverse(b.verdict));
        extension_blockers.sort_by_key(|b| std::cmp::Reverse(b.verdict));
        let met = match (baseline_blockers.is_empty(), extension_blockers.is_empty()) {
            (false, _) => None,
            (true, false) => Some(ConformanceLevel::Baseline),
            (true, true) => Some(ConformanceLevel::Extended),
        };
        LevelResult {
            met,
            baseline_blockers,
            extension_blockers,
            extension_score: score,
        }
    }

    pub fn meets(&self, requested: ConformanceLevel) -> bool {
        self.met.is_some_and(|met| met >= requested)
    }

    /// `core: baseline CONFORMANT · extension 1/3`, the certificate line of one profile.
    pub fn headline(&self, profile: Profile, requested: ConformanceLevel) -> String {
        let status = match self.met {
            Some(met) if met >= requested => format!("{met} CONFORMANT"),
            Some(met) => format!(
                "{met} CONFORMANT, {requested} NOT met ({})",
                list(&self.extension_blockers)
            ),
            None => format!("NOT CONFORMANT ({})", list(&self.baseline_blockers)),
        };
        let extension = if self.extension_score.total == 0 {
            "no extension rules requested".to_string()
        } else {
            format!("extension {}", self.extension_score)
        };
        format!("{profile}: {status} · {extension}")
    }
}

fn list(blockers: &[Blocker]) -> String {
    const SHOWN: usize = 4;
    let mut s: Vec<String> = blockers.iter().take(SHOWN).map(|b| b.to_string()).collect();
    if blockers.len() > SHOWN {
        s.push(format!("and {} more", blockers.len() - SHOWN));
    }
    s.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::RULES;

    fn results(verdict_of: impl Fn(&str) -> Verdict) -> Vec<RuleResult> {
        RULES
            .iter()
            .filter(|r| r.profile == Profile::Core)
            .map(|r| RuleResult {
                id: r.id.into(),
                level: r.level,
                profile: r.profile,
                tier: r.tier,
                requested: true,
                verdict: verdict_of(r.id),
                reasons: vec![],
            })
            .collect()
    }

    #[test]
    fn upstream_like_backend_is_baseline_conformant_with_its_extension_score() {
        // boot-operator main: every baseline MUST passes; SHOULDs and two extension rules fail.
        let rules = results(|id| match id {
            "SBC-GEN-002" | "SBC-GEN-003" | "SBC-IGN-003" | "SBC-SRV-002" => Verdict::Fail,
            _ => Verdict::Pass,
        });
        let level = LevelResult::of(&rules);
        assert_eq!(level.met, Some(ConformanceLevel::Baseline));
        assert!(level.meets(ConformanceLevel::Baseline));
        assert!(!level.meets(ConformanceLevel::Extended));
        assert_eq!(
            level.headline(Profile::Core, ConformanceLevel::Baseline),
            "core: baseline CONFORMANT · extension 1/3"
        );
        assert_eq!(
            level.headline(Profile::Core, ConformanceLevel::Extended),
            "core: baseline CONFORMANT, extended NOT met (SBC-GEN-002 fail, SBC-GEN-003 fail) · extension 1/3"
        );
    }

    #[test]
    fn a_skipped_or_errored_baseline_rule_is_not_a_pass() {
        for verdict in [Verdict::Skip, Verdict::Error, Verdict::Fail] {
            let rules = results(|id| {
                if id == "SBC-IMG-003" {
                    verdict
                } else {
                    Verdict::Pass
                }
            });
            let level = LevelResult::of(&rules);
            assert_eq!(level.met, None, "{verdict}");
            assert_eq!(
                level.headline(Profile::Core, ConformanceLevel::Baseline),
                format!("core: NOT CONFORMANT (SBC-IMG-003 {verdict}) · extension 3/3")
            );
        }
    }

    #[test]
    fn should_and_may_rules_never_decide_the_level() {
        let rules = results(|id| match id {
            "SBC-IGN-003" | "SBC-IGN-005" | "SBC-IMG-004" => Verdict::Fail,
            _ => Verdict::Pass,
        });
        assert_eq!(
            LevelResult::of(&rules).met,
            Some(ConformanceLevel::Extended)
        );
    }
}
