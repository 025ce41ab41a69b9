//! Renders CONTRACT.md from the rule table, the check registry and the published limits.
//! A test compares the committed file with this output, like a CRD drift test.

use crate::checks::{CHECKS, HISTORY_RULES, checks_for};
use crate::rules::{CONTRACT_VERSION, Level, Profile, RULES, Tier};
use crate::timeouts::{ALL_LIMITS, Bound};

const INTRO: &str = "\
The ServerBootConfiguration (SBC, `metal.ironcore.dev/v1alpha1`) is how metal-operator asks a boot backend to
prepare a server's network boot; the backend answers in `status.state`. The root of this contract is one sentence
of metal-operator's design: **servers are not powered on until the boot environment is confirmed ready**. So
`Ready` must be reachable for a valid SBC, and must mean that this server can boot this image with this ignition,
now. Everything below follows from that.

This file is generated from `conformance/src/rules.rs` and `conformance/src/checks/mod.rs`
(`cargo test -p conformance contract` fails when it drifts). Do not edit it by hand.
";

const READING: &str = "\
## How to read the rules

- **Level** — RFC 2119. MUST rules decide conformance; SHOULD and MAY results are reported (and shown in the
  report and JUnit) but never decide the exit code.
- **Tier** — *baseline* rules state what upstream (metal-operator and boot-operator) already relies on. *Extension*
  rules are stricter than upstream states today (generation-aware readiness, no flapping, artifacts really
  servable); they have their own IDs and are reported separately, so a backend can be baseline-conformant and show
  its extension score on its own.
- **Profile** — what the suite needs from the environment:
  - `core`: the Kubernetes API only; runs against any backend on any cluster.
  - `boot`: a simulated machine network-boots from the backend (iPXE script, kernel and initrd with digest checks,
    ignition) and checks Ready against what it actually got.
  - `resilience`: the suite restarts the backend and disturbs the API server (watch drops, 410 Gone, restart).
  - `scale`: many SBCs at once; time-to-Ready percentiles.
- **Verdicts** — *pass*; *fail* (the backend broke the rule); *error* (the harness or environment broke: API
  errors, cleanup problems — never counted as the backend's failure); *skip* (profile or rule not requested, or a
  capability not declared, e.g. no disallowed-registry image given). Every verdict carries a reason.
- **Conformance levels** — a run certifies a level for every requested profile:
  - `baseline`: every requested baseline MUST rule passes. This is what upstream boot-operator can meet today.
  - `extended`: baseline, plus every requested extension MUST rule passes.

  `conformance certify --level baseline|extended` (default `baseline`) says which level to certify. A rule that
  was skipped (say, no disallowed-registry image was given) or errored is not a pass: the level it belongs to is
  not met, and the report says which rules stand in the way. The headline reads like a certificate, one line per
  profile, with the extension score always shown: `core: baseline CONFORMANT · extension 1/3`.
- **Exit code** — 0 exactly when the requested level is met for every requested profile; 1 when it is not; 2 when
  the suite could not run (bad arguments, harness or environment errors); 3 when the backend under test was not
  running (its process exited, or it never wrote any SBC status): nothing is certified then.
- **Evidence** — no rule passes on what the run did not observe. A rule the environment cannot exercise is
  *skip* with what was missing (e.g. SBC-RES-002's boot after a restart needs the `boot` profile); a rule whose
  evidence could not be gathered is *error*. \"Never Ready\" rules are credited only while the backend is alive
  and has shown it reconciles (it wrote some SBC status in the run); history rules need at least one recorded
  history.
- **Oracles** — every check records the *whole* status history of every SBC through a watch opened before the SBC
  exists, so a Ready that lasts one status write is seen. \"Never Ready\" means no Ready in any recorded event.
";

fn limits_section() -> String {
    let mut s = String::from(
        "## Published timeouts\n\nAll are configurable (`--timeout NAME=SECONDS`); a run outside a limit is reported as non-certifying.\n\n\
         | Name | Default | Conformance limit | Meaning |\n|---|---|---|---|\n",
    );
    for l in ALL_LIMITS {
        let bound = match l.bound {
            Bound::AtMost(d) => format!("at most {}s", d.as_secs()),
            Bound::AtLeast(d) => format!("at least {}s", d.as_secs()),
        };
        s.push_str(&format!(
            "| `{}` | {}s | {bound} | {} |\n",
            l.name,
            l.default.as_secs(),
            l.meaning
        ));
    }
    s
}

fn rules_section() -> String {
    let mut s = String::from("## Rules\n");
    for p in Profile::ALL {
        s.push_str(&format!("\n### Profile `{p}`\n\n| ID | Level | Tier | Requirement | Purpose (the failure it prevents) | Checked by |\n|---|---|---|---|---|---|\n"));
        for r in RULES.iter().filter(|r| r.profile == p) {
            let checks: Vec<String> = checks_for(r.id)
                .into_iter()
                .map(|c| format!("`{c}`"))
                .collect();
            s.push_str(&format!(
                "| **{}** | {} | {} | {} | {} | {} |\n",
                r.id,
                r.level,
                r.tier,
                r.requirement,
                r.purpose,
                checks.join(", ")
            ));
        }
    }
    s
}

fn checks_section() -> String {
    let mut s = String::from(
        "## Checks\n\nEach check runs in its own namespace with its own Servers (annotated `metal.ironcore.dev/operation: ignore`), Secrets and SBCs, all labelled `conformance.metal.ironcore.dev/run=<run id>`, and deletes exactly those afterwards.\n\n| Check | Profile | What it does | Rules |\n|---|---|---|---|\n",
    );
    for c in CHECKS {
        let rules: Vec<String> = c.rules.iter().map(|r| format!("`{r}`")).collect();
        s.push_str(&format!(
            "| `{}` | {} | {} | {} |\n",
            c.id,
            c.profile,
            c.summary,
            rules.join(", ")
        ));
    }
    let history: Vec<String> = HISTORY_RULES.iter().map(|r| format!("`{r}`")).collect();
    s.push_str(&format!(
        "\nEvery check also judges {} over every history it recorded (history oracles).\n",
        history.join(", ")
    ));
    s
}

fn summary_line() -> String {
    let count = |f: &dyn Fn(&crate::rules::Rule) -> bool| RULES.iter().filter(|r| f(r)).count();
    format!(
        "{} rules: {} MUST, {} SHOULD, {} MAY; {} baseline, {} extension.\n",
        RULES.len(),
        count(&|r| r.level == Level::Must),
        count(&|r| r.level == Level::Should),
        count(&|r| r.level == Level::May),
        count(&|r| r.tier == Tier::Baseline),
        count(&|r| r.tier == Tier::Extension),
    )
}

/// The full text of CONTRACT.md.
pub fn render() -> String {
    format!(
        "# ServerBootConfiguration readiness contract, {CONTRACT_VERSION}\n\n{INTRO}\n{}\n{READING}\n{}\n{}\n{}",
        summary_line(),
        limits_section(),
        rules_section(),
        checks_section()
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn contract_md_is_up_to_date() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/CONTRACT.md");
        let expected = super::render();
        if std::env::var_os("UPDATE_CONTRACT").is_some() {
            std::fs::write(path, &expected).expect("write CONTRACT.md");
        }
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            committed == expected,
            "conformance/CONTRACT.md is out of date; regenerate with UPDATE_CONTRACT=1 cargo test -p conformance contract"
        );
    }
}
