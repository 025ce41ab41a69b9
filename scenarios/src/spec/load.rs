//! Reading scenario files: YAML syntax and type errors come from serde-saphyr with their line and
//! column; semantic errors (a step naming an unknown claim) are located through a second, span-only parse.

use std::collections::BTreeSet;
use std::path::Path;

use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_saphyr::Spanned;

use super::{Action, Backend, BmcFault, BmcTarget, Fault, Scenario, WaitFor};
use crate::invariants::INVARIANT_NAMES;

/// Why a scenario file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{file}: cannot read: {source}")]
    Io {
        file: String,
        source: std::io::Error,
    },
    #[error("{file}:{line}:{column}: {message}")]
    Invalid {
        file: String,
        line: u64,
        column: u64,
        message: String,
    },
}

impl LoadError {
    /// Line and column (1-based) when known.
    pub fn location(&self) -> Option<(u64, u64)> {
        match self {
            LoadError::Invalid { line, column, .. } => Some((*line, *column)),
            LoadError::Io { .. } => None,
        }
    }
}

/// Reads and validates a scenario file.
pub fn load_file(path: &Path) -> Result<Scenario, LoadError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Io {
        file: file.clone(),
        source,
    })?;
    parse(&file, &text)
}

/// Parses and validates scenario text; `file` names it in errors.
pub fn parse(file: &str, text: &str) -> Result<Scenario, LoadError> {
    let scenario: Scenario = serde_saphyr::from_str(text).map_err(|e| {
        let (line, column) = e
            .location()
            .map(|l| (l.line(), l.column()))
            .unwrap_or((0, 0));
        LoadError::Invalid {
            file: file.to_string(),
            line,
            column,
            message: first_line(&e.to_string()),
        }
    })?;
    if let Err((place, message)) = check(&scenario) {
        let (line, column) = locate(text, place);
        return Err(LoadError::Invalid {
            file: file.to_string(),
            line,
            column,
            message,
        });
    }
    Ok(scenario)
}

/// serde-saphyr renders a source snippet after the message; the report needs only the message.
fn first_line(rendered: &str) -> String {
    let line = rendered.lines().next().unwrap_or(rendered).trim();
    let line = line.strip_prefix("error: ").unwrap_or(line);
    // The location is reported separately.
    match line.split_once(": ") {
        Some((place, rest)) if place.starts_with("line ") && place.contains(" column ") => {
            rest.to_string()
        }
        _ => line.to_string(),
    }
}

/// Where in the file a semantic error is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Place {
    Root,
    Fleet,
    Backend,
    Step(usize),
    Fault(usize),
    Expect,
}

type Check = Result<(), (Place, String)>;

fn fail(place: Place, message: impl Into<String>) -> Check {
    Err((place, message.into()))
}

fn check(s: &Scenario) -> Check {
    if s.name.trim().is_empty() {
        return fail(Place::Root, "name must not be empty");
    }
    let bmcs = check_fleet(s)?;
    if let Backend::SimBoot { mode, .. } = &s.backend {
        let modes = super::sim_boot_modes();
        if !modes.contains(&mode.as_str()) {
            return fail(
                Place::Backend,
                format!(
                    "unknown sim-boot mode {mode:?}; known modes: {}",
                    modes.join(", ")
                ),
            );
        }
    }
    let claims = check_workload(s, &bmcs)?;
    check_faults(s, &bmcs)?;
    check_expect(s, claims.len())
}

fn check_fleet(s: &Scenario) -> Result<Vec<String>, (Place, String)> {
    let bmcs = s.fleet.resolve();
    if bmcs.is_empty() {
        fail(Place::Fleet, "the fleet needs at least one BMC")?;
    }
    let mut seen = BTreeSet::new();
    for b in &bmcs {
        if !is_dns_label(&b.name) {
            fail(
                Place::Fleet,
                format!("BMC name {:?} is not a DNS label", b.name),
            )?;
        }
        if !seen.insert(b.name.clone()) {
            fail(Place::Fleet, format!("BMC name {:?} appears twice", b.name))?;
        }
        if b.systems == 0 {
            fail(
                Place::Fleet,
                format!("BMC {:?} needs at least one system", b.name),
            )?;
        }
    }
    Ok(bmcs.into_iter().map(|b| b.name).collect())
}

fn check_workload(s: &Scenario, bmcs: &[String]) -> Result<BTreeSet<String>, (Place, String)> {
    let servers: BTreeSet<String> = s.fleet.server_names().into_iter().collect();
    let mut claims = BTreeSet::new();
    for (i, step) in s.workload.steps.iter().enumerate() {
        let place = Place::Step(i);
        let known = |name: &String| -> Check {
            if claims.contains(name) {
                Ok(())
            } else {
                fail(
                    place,
                    format!("claim {name:?} is not created by an earlier step"),
                )
            }
        };
        match &step.wait_for {
            Some(WaitFor::ClaimsBound(names) | WaitFor::ClaimsBooted(names)) => {
                names.iter().try_for_each(known)?
            }
            Some(WaitFor::ServersInState(_)) | None => {}
        }
        match &step.action {
            Action::CreateClaims {
                name,
                count,
                server_ref,
                ..
            } => {
                if count == &Some(0) {
                    fail(place, "count must be at least 1")?;
                }
                if let Some(server) = server_ref
                    && !servers.contains(server)
                {
                    fail(
                        place,
                        format!("serverRef {server:?} is not a Server of the fleet"),
                    )?;
                }
                for claim in super::expand(name, *count) {
                    if !is_dns_label(&claim) {
                        fail(place, format!("claim name {claim:?} is not a DNS label"))?;
                    }
                    if !claims.insert(claim.clone()) {
                        fail(place, format!("claim {claim:?} is created twice"))?;
                    }
                }
            }
            Action::DeleteClaims { .. }
            | Action::UpdateClaim { .. }
            | Action::SetClaimPower { .. } => {
                step.action.claim_names().iter().try_for_each(known)?
            }
            Action::Park { server }
            | Action::Unpark { server }
            | Action::DeleteServer { server } => {
                if !servers.contains(server) {
                    fail(place, format!("{server:?} is not a Server of the fleet"))?;
                }
            }
            Action::DeleteBmc { bmc } => {
                if !bmcs.contains(bmc) {
                    fail(place, format!("{bmc:?} is not a BMC of the fleet"))?;
                }
            }
            Action::Annotate { .. } | Action::Wait | Action::Pause { .. } => {}
        }
    }
    Ok(claims)
}

fn check_faults(s: &Scenario, bmcs: &[String]) -> Check {
    for (i, step) in s.faults.iter().enumerate() {
        let place = Place::Fault(i);
        match &step.fault {
            Fault::Bmc { bmcs: target, kind } => {
                match target {
                    BmcTarget::Names(names) => {
                        if let Some(unknown) = names.iter().find(|n| !bmcs.contains(n)) {
                            fail(place, format!("{unknown:?} is not a BMC of the fleet"))?;
                        }
                    }
                    BmcTarget::Share(share) if !(0.0..=1.0).contains(share) => {
                        fail(place, "share must be between 0 and 1")?;
                    }
                    _ => {}
                }
                if let BmcFault::ServerErrors { rate, status } = kind {
                    if !(0.0..=1.0).contains(rate) {
                        fail(place, "rate must be between 0 and 1")?;
                    }
                    if !(500..=599).contains(status) {
                        fail(place, "status must be a 5xx code")?;
                    }
                }
            }
            Fault::ApiErrors { rate, code } => {
                if !(0.0..=1.0).contains(rate) {
                    fail(place, "rate must be between 0 and 1")?;
                }
                if ![409, 429, 500].contains(code) {
                    fail(place, "code must be 409, 429 or 500")?;
                }
            }
            _ => {}
        }
        if step.fault.is_instant() && step.duration.is_some() {
            fail(
                place,
                "a restart or watch drop is instantaneous: remove `duration`",
            )?;
        }
    }
    Ok(())
}

fn check_expect(s: &Scenario, claims: usize) -> Check {
    let e = &s.expect;
    for name in e.violations.iter().chain(&e.tolerate) {
        if !INVARIANT_NAMES.contains(&name.as_str()) {
            fail(
                Place::Expect,
                format!(
                    "unknown invariant {name:?}; known: {}",
                    INVARIANT_NAMES.join(", ")
                ),
            )?;
        }
    }
    if let Some(both) = e.violations.iter().find(|v| e.tolerate.contains(v)) {
        fail(
            Place::Expect,
            format!("{both:?} is both required and tolerated"),
        )?;
    }
    for (what, n) in [
        ("claimsBound", e.claims_bound),
        ("claimsBooted", e.claims_booted),
    ] {
        if n.is_some_and(|n| n as usize > claims) {
            fail(
                Place::Expect,
                format!("{what} exceeds the {claims} claims the workload creates"),
            )?;
        }
    }
    if e.within.0.is_zero() {
        fail(Place::Expect, "within must be positive")?;
    }
    Ok(())
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// A span-only view of the file, to point semantic errors at the right line.
#[derive(Deserialize, Default)]
struct Skeleton {
    #[serde(default)]
    fleet: Option<Spanned<IgnoredAny>>,
    #[serde(default)]
    backend: Option<Spanned<IgnoredAny>>,
    #[serde(default)]
    workload: Option<SkeletonWorkload>,
    #[serde(default)]
    faults: Vec<Spanned<IgnoredAny>>,
    #[serde(default)]
    expect: Option<Spanned<IgnoredAny>>,
}

#[derive(Deserialize, Default)]
struct SkeletonWorkload {
    #[serde(default)]
    steps: Vec<Spanned<IgnoredAny>>,
}

fn locate(text: &str, place: Place) -> (u64, u64) {
    let skeleton: Skeleton = serde_saphyr::from_str(text).unwrap_or_default();
    let span =
        |s: Option<&Spanned<IgnoredAny>>| s.map(|s| (s.referenced.line(), s.referenced.column()));
    let found = match place {
        Place::Root => None,
        Place::Fleet => span(skeleton.fleet.as_ref()),
        Place::Backend => span(skeleton.backend.as_ref()),
        Place::Expect => span(skeleton.expect.as_ref()),
        Place::Fault(i) => span(skeleton.faults.get(i)),
        Place::Step(i) => span(skeleton.workload.as_ref().and_then(|w| w.steps.get(i))),
    };
    found.unwrap_or((1, 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = "name: t\nfleet:\n  bmcs: 2\n";

    #[test]
    fn minimal_file_loads_with_defaults() {
        let s = parse("t.yaml", MINIMAL).unwrap();
        assert_eq!(s.fleet.server_names(), ["bmc-0-system-0", "bmc-1-system-0"]);
        assert_eq!(s.backend, Backend::default());
    }

    #[test]
    fn type_error_names_line_and_column() {
        let err = parse(
            "t.yaml",
            "name: t\nfleet:\n  bmcs: 2\n  systemsPerBmc: many\n",
        )
        .unwrap_err();
        assert_eq!(err.location().map(|l| l.0), Some(4), "{err}");
        assert!(err.to_string().starts_with("t.yaml:4:"), "{err}");
    }

    #[test]
    fn unknown_field_is_rejected_with_location() {
        let err = parse("t.yaml", "name: t\nfleet:\n  bmcs: 2\n  colour: red\n").unwrap_err();
        assert_eq!(err.location().map(|l| l.0), Some(4), "{err}");
        assert!(err.to_string().contains("colour"), "{err}");
    }

    #[test]
    fn semantic_error_points_at_the_step() {
        let text = "name: t\nfleet:\n  bmcs: 1\nworkload:\n  steps:\n    - do: {createClaims: {name: a}}\n    - do: {deleteClaims: {name: b}}\n";
        let err = parse("t.yaml", text).unwrap_err();
        assert_eq!(err.location(), Some((7, 7)), "{err}");
        assert!(err.to_string().contains("\"b\" is not created"), "{err}");
    }

    #[test]
    fn unknown_invariant_is_listed() {
        let text = format!("{MINIMAL}expect:\n  violations: [made-up]\n");
        let err = parse("t.yaml", &text).unwrap_err();
        assert_eq!(err.location().map(|l| l.0), Some(5), "{err}");
        assert!(
            err.to_string().contains("power-on-requires-ready-sbc"),
            "{err}"
        );
    }

    #[test]
    fn bad_duration_is_rejected() {
        let text = format!("{MINIMAL}expect:\n  within: soon\n");
        let err = parse("t.yaml", &text).unwrap_err();
        assert_eq!(err.location().map(|l| l.0), Some(5), "{err}");
    }

    #[test]
    fn every_sim_boot_mode_is_accepted() {
        // `none` plus every mode sim-boot knows; listed from sim-boot itself so a new mode is covered.
        let modes = sim_boot::Misbehaviour::BEHAVIOURS
            .into_iter()
            .chain(sim_boot::Misbehaviour::ALL);
        for mode in modes {
            let text = format!("{MINIMAL}backend:\n  simBoot:\n    mode: {}\n", mode.name());
            let s = parse("t.yaml", &text).unwrap_or_else(|e| panic!("{}: {e}", mode.name()));
            let Backend::SimBoot { mode: read, .. } = &s.backend else {
                panic!("{}: not a simBoot backend", mode.name());
            };
            // The runner parses the same string into sim-boot's type.
            assert_eq!(read.parse::<sim_boot::Misbehaviour>(), Ok(mode));
        }
    }

    #[test]
    fn unknown_sim_boot_mode_lists_the_known_ones() {
        let text = format!("{MINIMAL}backend:\n  simBoot:\n    mode: always-ready\n");
        let err = parse("t.yaml", &text).unwrap_err();
        assert_eq!(err.location().map(|l| l.0), Some(5), "{err}");
        let message = err.to_string();
        assert!(message.contains("\"always-ready\""), "{message}");
        for mode in sim_boot::Misbehaviour::ALL {
            assert!(message.contains(mode.name()), "{message} lacks {mode}");
        }
    }
}
