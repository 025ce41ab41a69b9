//! Reading scenario files: YAML syntax and type errors come from serde-saphyr with their line and
//! column; semantic errors (a step naming an unknown claim) are located through a second, span-only parse.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_saphyr::Spanned;

use super::{Action, Backend, BmcFault, BmcSet, BmcTarget, Fault, ObjectKind, Scenario, WaitFor};
use crate::invariants::INVARIANT_NAMES;

/// Bounds on what one scenario may ask of one process on this machine (2 cores, 24 GiB): the
/// 10,000-server benchmark peaks at 3.4 GiB (0.34 MiB per server) and takes 10 minutes, so twice
/// that fleet (about 7 GiB) is the most a run may ask for; each claim costs about what a server does.
pub mod limits {
    /// Servers (BMCs × systems) in the whole fleet.
    pub const MAX_SERVERS: u64 = 20_000;
    /// Systems behind one BMC (blade chassis have 16 or so).
    pub const MAX_SYSTEMS_PER_BMC: u32 = 64;
    /// Claims the whole workload creates.
    pub const MAX_CLAIMS: u64 = 20_000;
    /// Workload steps (each is an action with its own wait).
    pub const MAX_STEPS: usize = 10_000;
    /// Fault steps (BMC faults all may land on one BMC, which holds at most sim-bmc's limit).
    pub const MAX_FAULT_STEPS: usize = sim_bmc::fault::MAX_FAULTS;
    /// Scenario file size: a 20,000-BMC explicit list is under 1 MiB.
    pub const MAX_FILE_BYTES: u64 = 16 << 20;
}

use limits::*;

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
    /// Several semantic errors, each located; the first is the one `location` reports.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Many(Vec<LoadError>),
}

impl LoadError {
    /// Line and column (1-based) when known.
    pub fn location(&self) -> Option<(u64, u64)> {
        match self {
            LoadError::Invalid { line, column, .. } => Some((*line, *column)),
            LoadError::Io { .. } => None,
            LoadError::Many(all) => all.first().and_then(LoadError::location),
        }
    }
}

/// Reads and validates a scenario file.
pub fn load_file(path: &Path) -> Result<Scenario, LoadError> {
    use std::io::Read;
    let file = path.display().to_string();
    let io = |source| LoadError::Io {
        file: file.clone(),
        source,
    };
    // Read at most one byte over the limit, so /dev/zero or a huge file cannot exhaust memory.
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes))
        .map_err(io)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(io(std::io::Error::other(format!(
            "larger than the limit of {} MiB",
            MAX_FILE_BYTES >> 20
        ))));
    }
    let text = String::from_utf8(bytes)
        .map_err(|e| io(std::io::Error::new(std::io::ErrorKind::InvalidData, e)))?;
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
    let errors = check(&scenario);
    if errors.is_empty() {
        return Ok(scenario);
    }
    let skeleton: Skeleton = serde_saphyr::from_str(text).unwrap_or_default();
    let mut located: Vec<LoadError> = errors
        .into_iter()
        .map(|(place, message)| {
            let (line, column) = skeleton.locate(&place);
            LoadError::Invalid {
                file: file.to_string(),
                line,
                column,
                message,
            }
        })
        .collect();
    Err(if located.len() == 1 {
        located.remove(0)
    } else {
        LoadError::Many(located)
    })
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
#[derive(Clone, Debug, PartialEq, Eq)]
enum Place {
    Root,
    Fleet,
    FleetBmcs,
    FleetSystems,
    Backend,
    Workload,
    Step(usize),
    Fault(usize),
    Expect,
    /// A field of `expect` (its YAML name).
    ExpectField(&'static str),
    /// One state under `expect.servers`.
    ExpectServers(String),
}

/// Every semantic error found, in file order as far as the checks go.
type Errors = Vec<(Place, String)>;

fn check(s: &Scenario) -> Errors {
    let mut errors = Errors::new();
    if s.name.trim().is_empty() {
        errors.push((Place::Root, "name must not be empty".into()));
    }
    // Nothing that allocates per server or per claim runs before the sizes are known to be bounded.
    let Some(servers) = check_fleet(s, &mut errors) else {
        return errors;
    };
    if let Backend::SimBoot { mode, .. } = &s.backend {
        let modes = super::sim_boot_modes();
        if !modes.contains(&mode.as_str()) {
            errors.push((
                Place::Backend,
                format!(
                    "unknown sim-boot mode {mode:?}; known modes: {}",
                    modes.join(", ")
                ),
            ));
        }
    }
    let bmcs: Vec<String> = s.fleet.resolve().into_iter().map(|b| b.name).collect();
    let claims = check_workload(s, &bmcs, &servers, &mut errors);
    check_faults(s, &bmcs, &mut errors);
    check_expect(
        s,
        claims.as_ref().map(BTreeSet::len),
        servers.len(),
        &mut errors,
    );
    errors
}

/// Checks sizes first (without building the fleet), then names; returns the Server names.
fn check_fleet(s: &Scenario, errors: &mut Errors) -> Option<BTreeSet<String>> {
    let f = &s.fleet;
    let per_bmc = u64::from(f.systems_per_bmc);
    let mut sizes_ok = true;
    let mut too_many_systems = |place: Place, n: u32, what: &str| {
        if n > MAX_SYSTEMS_PER_BMC {
            errors.push((
                place,
                format!(
                    "{what}: {n} systems behind one BMC exceed the limit of {MAX_SYSTEMS_PER_BMC}"
                ),
            ));
            false
        } else {
            true
        }
    };
    sizes_ok &= too_many_systems(Place::FleetSystems, f.systems_per_bmc, "systemsPerBmc");
    let total: u64 = match &f.bmcs {
        BmcSet::Count(n) => u64::from(*n) * per_bmc,
        BmcSet::List(list) => {
            for b in list {
                if let Some(n) = b.systems {
                    sizes_ok &= too_many_systems(Place::FleetBmcs, n, &format!("BMC {:?}", b.name));
                }
            }
            list.iter()
                .map(|b| b.systems.map_or(per_bmc, u64::from))
                .sum()
        }
    };
    let bmc_count = match &f.bmcs {
        BmcSet::Count(n) => u64::from(*n),
        BmcSet::List(list) => list.len() as u64,
    };
    // Counted apart from servers: with `systemsPerBmc: 0` a billion BMCs are zero servers.
    if bmc_count > MAX_SERVERS {
        errors.push((
            Place::FleetBmcs,
            format!("the fleet has {bmc_count} BMCs; one process holds at most {MAX_SERVERS}"),
        ));
        sizes_ok = false;
    } else if total > MAX_SERVERS {
        errors.push((
            Place::FleetBmcs,
            format!(
                "the fleet has {total} servers; one process holds at most {MAX_SERVERS} \
                 (the 10,000-server benchmark peaks at 3.4 GiB of this machine's 24 GiB)"
            ),
        ));
        sizes_ok = false;
    }
    if !sizes_ok {
        return None;
    }
    let bmcs = s.fleet.resolve();
    if bmcs.is_empty() {
        errors.push((Place::Fleet, "the fleet needs at least one BMC".into()));
    }
    let mut seen = BTreeSet::new();
    for b in &bmcs {
        if !is_dns_label(&b.name) {
            errors.push((
                Place::FleetBmcs,
                format!("BMC name {:?} is not a DNS label", b.name),
            ));
        }
        if !seen.insert(b.name.as_str()) {
            errors.push((
                Place::FleetBmcs,
                format!("BMC name {:?} appears twice", b.name),
            ));
        }
        if b.systems == 0 {
            errors.push((
                Place::Fleet,
                format!("BMC {:?} needs at least one system", b.name),
            ));
        }
    }
    for error in s.fleet.check_machines() {
        errors.push((Place::Fleet, error));
    }
    Some(s.fleet.server_names().into_iter().collect())
}

/// Checks every step; returns the claims the workload creates (None when it would create too many
/// to list).
fn check_workload(
    s: &Scenario,
    bmcs: &[String],
    servers: &BTreeSet<String>,
    errors: &mut Errors,
) -> Option<BTreeSet<String>> {
    let steps = &s.workload.steps;
    if steps.len() > MAX_STEPS {
        errors.push((
            Place::Workload,
            format!("{} steps exceed the limit of {MAX_STEPS}", steps.len()),
        ));
        return None;
    }
    let requested: u64 = steps
        .iter()
        .map(|step| match &step.action {
            Action::CreateClaims { count, .. } => count.map_or(1, u64::from),
            _ => 0,
        })
        .sum();
    if requested > MAX_CLAIMS {
        let first_big = steps
            .iter()
            .position(|st| matches!(&st.action, Action::CreateClaims { count: Some(n), .. } if u64::from(*n) > MAX_CLAIMS))
            .map_or(Place::Workload, Place::Step);
        errors.push((
            first_big,
            format!(
                "the workload creates {requested} claims; one run holds at most {MAX_CLAIMS} \
                 (each claim costs a Secret, a ServerBootConfiguration and its watch events)"
            ),
        ));
        return None;
    }
    let mut claims = BTreeSet::new();
    for (i, step) in steps.iter().enumerate() {
        let place = Place::Step(i);
        let known = |name: &String, errors: &mut Errors| {
            if !claims.contains(name) {
                errors.push((
                    place.clone(),
                    format!("claim {name:?} is not created by an earlier step"),
                ));
            }
        };
        match &step.wait_for {
            Some(WaitFor::ClaimsBound(names) | WaitFor::ClaimsBooted(names)) => {
                names.iter().for_each(|n| known(n, errors))
            }
            Some(WaitFor::ServersInState(state)) => {
                if let Some(e) = unknown_state(state) {
                    errors.push((place.clone(), e));
                }
            }
            None => {}
        }
        match &step.action {
            Action::CreateClaims {
                name,
                count,
                server_ref,
                server_selector,
                ..
            } => {
                if count == &Some(0) {
                    errors.push((place.clone(), "count must be at least 1".into()));
                }
                if let Some(server) = server_ref
                    && !servers.contains(server)
                {
                    errors.push((
                        place.clone(),
                        format!("serverRef {server:?} is not a Server of the fleet"),
                    ));
                }
                if !server_selector.is_empty()
                    && !servers.iter().any(|srv| {
                        let labels = s.fleet.labels_for(srv);
                        server_selector
                            .iter()
                            .all(|(k, v)| labels.get(k) == Some(v))
                    })
                {
                    errors.push((
                        place.clone(),
                        "serverSelector matches no Server of the fleet (see fleet.serverLabels)"
                            .into(),
                    ));
                }
                for claim in super::expand(name, *count) {
                    if !is_dns_label(&claim) {
                        errors.push((
                            place.clone(),
                            format!("claim name {claim:?} is not a DNS label"),
                        ));
                        break;
                    }
                    if !claims.insert(claim.clone()) {
                        errors.push((place.clone(), format!("claim {claim:?} is created twice")));
                        break;
                    }
                }
            }
            Action::DeleteClaims { count, .. }
                if count.is_some_and(|n| u64::from(n) > MAX_CLAIMS) =>
            {
                errors.push((
                    place.clone(),
                    format!("count exceeds the {MAX_CLAIMS} claims a workload may create"),
                ));
            }
            Action::DeleteClaims { .. }
            | Action::UpdateClaim { .. }
            | Action::SetClaimPower { .. } => step
                .action
                .claim_names()
                .iter()
                .for_each(|n| known(n, errors)),
            Action::Park { server }
            | Action::Unpark { server }
            | Action::DeleteServer { server } => {
                if !servers.contains(server) {
                    errors.push((
                        place.clone(),
                        format!("{server:?} is not a Server of the fleet"),
                    ));
                }
            }
            Action::DeleteBmc { bmc } => {
                if !bmcs.contains(bmc) {
                    errors.push((place.clone(), format!("{bmc:?} is not a BMC of the fleet")));
                }
            }
            Action::Annotate { kind, name, .. } => {
                let exists = match kind {
                    ObjectKind::Server => servers.contains(name),
                    ObjectKind::Bmc => bmcs.contains(name),
                    ObjectKind::ServerClaim => claims.contains(name),
                };
                if !exists {
                    errors.push((
                        place.clone(),
                        format!("{kind:?} {name:?} does not exist at this step"),
                    ));
                }
            }
            Action::Wait | Action::Pause { .. } => {}
        }
    }
    Some(claims)
}

/// An error message when `state` is not a Server state the operator writes.
fn unknown_state(state: &str) -> Option<String> {
    let known = metal_api::ServerState::KNOWN;
    (!known.contains(&state)).then(|| {
        format!(
            "{state:?} is not a Server state; known: {}",
            known.join(", ")
        )
    })
}

fn check_faults(s: &Scenario, bmcs: &[String], errors: &mut Errors) {
    if s.faults.len() > MAX_FAULT_STEPS {
        errors.push((
            Place::Fault(MAX_FAULT_STEPS),
            format!(
                "{} faults exceed the limit of {MAX_FAULT_STEPS} (what one simulated BMC holds at once)",
                s.faults.len()
            ),
        ));
        return;
    }
    let max_latency = Duration::from_millis(sim_bmc::fault::MAX_LATENCY_MS);
    for (i, step) in s.faults.iter().enumerate() {
        let place = Place::Fault(i);
        let mut fail = |m: String| errors.push((place.clone(), m));
        match &step.fault {
            Fault::Bmc { bmcs: target, kind } => {
                match target {
                    BmcTarget::Names(names) => {
                        if let Some(unknown) = names.iter().find(|n| !bmcs.contains(n)) {
                            fail(format!("{unknown:?} is not a BMC of the fleet"));
                        }
                    }
                    BmcTarget::Share(share) if !(0.0..=1.0).contains(share) => {
                        fail("share must be between 0 and 1".into());
                    }
                    BmcTarget::First(0) => fail("first must be at least 1".into()),
                    _ => {}
                }
                match kind {
                    BmcFault::ServerErrors { rate, status } => {
                        if !(0.0..=1.0).contains(rate) {
                            fail("rate must be between 0 and 1".into());
                        }
                        if !(500..=599).contains(status) {
                            fail("status must be a 5xx code".into());
                        }
                    }
                    BmcFault::Slow { latency } if latency.0 > max_latency => fail(format!(
                        "latency {latency} exceeds {}m (a BMC that never answers is unreachable with blackHole)",
                        max_latency.as_secs() / 60
                    )),
                    _ => {}
                }
            }
            Fault::ApiErrors { rate, code } => {
                if !(0.0..=1.0).contains(rate) {
                    fail("rate must be between 0 and 1".into());
                }
                if ![409, 429, 500].contains(code) {
                    fail("code must be 409, 429 or 500".into());
                }
            }
            Fault::ApiLatency { latency } if latency.0 > max_latency => fail(format!(
                "latency {latency} exceeds {}m",
                max_latency.as_secs() / 60
            )),
            _ => {}
        }
        if step.fault.is_instant() && step.duration.is_some() {
            fail("a restart or watch drop is instantaneous: remove `duration`".into());
        }
    }
}

fn check_expect(s: &Scenario, claims: Option<usize>, servers: usize, errors: &mut Errors) {
    let e = &s.expect;
    for name in e.violations.iter().chain(&e.tolerate) {
        if !INVARIANT_NAMES.contains(&name.as_str()) {
            errors.push((
                Place::Expect,
                format!(
                    "unknown invariant {name:?}; known: {}",
                    INVARIANT_NAMES.join(", ")
                ),
            ));
        }
    }
    if let Some(both) = e.violations.iter().find(|v| e.tolerate.contains(v)) {
        errors.push((
            Place::Expect,
            format!("{both:?} is both required and tolerated"),
        ));
    }
    let mut total: u64 = 0;
    for (state, n) in &e.servers {
        if let Some(message) = unknown_state(state) {
            errors.push((Place::ExpectServers(state.clone()), message));
        }
        if *n as usize > servers {
            errors.push((
                Place::ExpectServers(state.clone()),
                format!("{n} Servers {state} but the fleet has {servers} Servers"),
            ));
        }
        total += u64::from(*n);
    }
    if total > servers as u64 && e.servers.len() > 1 {
        errors.push((
            Place::ExpectField("servers"),
            format!("the states add up to {total} Servers but the fleet has {servers}"),
        ));
    }
    for (field, n) in [
        ("claimsBound", e.claims_bound),
        ("claimsBooted", e.claims_booted),
    ] {
        let Some(n) = n.map(|n| n as usize) else {
            continue;
        };
        if let Some(claims) = claims
            && n > claims
        {
            errors.push((
                Place::ExpectField(field),
                format!("{field} exceeds the {claims} claims the workload creates"),
            ));
        } else if n > servers {
            errors.push((
                Place::ExpectField(field),
                format!(
                    "{field} {n} exceeds the {servers} Servers of the fleet (a claim binds one)"
                ),
            ));
        }
    }
    if e.within.0.is_zero() {
        errors.push((
            Place::ExpectField("within"),
            "within must be positive".into(),
        ));
    }
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

type Span = Spanned<IgnoredAny>;

/// A span-only view of the file, to point semantic errors at the right line.
#[derive(Deserialize, Default)]
struct Skeleton {
    #[serde(default)]
    fleet: Option<Spanned<SkeletonFleet>>,
    #[serde(default)]
    backend: Option<Span>,
    #[serde(default)]
    workload: Option<Spanned<SkeletonWorkload>>,
    #[serde(default)]
    faults: Vec<Span>,
    #[serde(default)]
    expect: Option<Spanned<SkeletonExpect>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct SkeletonFleet {
    #[serde(default)]
    bmcs: Option<Span>,
    #[serde(default)]
    systems_per_bmc: Option<Span>,
}

#[derive(Deserialize, Default)]
struct SkeletonWorkload {
    #[serde(default)]
    steps: Vec<Span>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct SkeletonExpect {
    #[serde(default)]
    servers: Option<Spanned<BTreeMap<String, Span>>>,
    #[serde(default)]
    claims_bound: Option<Span>,
    #[serde(default)]
    claims_booted: Option<Span>,
    #[serde(default)]
    within: Option<Span>,
}

impl Skeleton {
    fn locate(&self, place: &Place) -> (u64, u64) {
        fn at<T>(s: &Spanned<T>) -> (u64, u64) {
            (s.referenced.line(), s.referenced.column())
        }
        let fleet = self.fleet.as_ref();
        let expect = self.expect.as_ref();
        let found = match place {
            Place::Root => None,
            Place::Fleet => fleet.map(at),
            Place::FleetBmcs => fleet
                .and_then(|f| f.value.bmcs.as_ref().map(at))
                .or(fleet.map(at)),
            Place::FleetSystems => fleet
                .and_then(|f| f.value.systems_per_bmc.as_ref().map(at))
                .or(fleet.map(at)),
            Place::Backend => self.backend.as_ref().map(at),
            Place::Workload => self.workload.as_ref().map(at),
            Place::Step(i) => self
                .workload
                .as_ref()
                .and_then(|w| w.value.steps.get(*i).map(at)),
            Place::Fault(i) => self.faults.get(*i).map(at),
            Place::Expect => expect.map(at),
            Place::ExpectField(field) => expect
                .and_then(|e| {
                    let v = &e.value;
                    match *field {
                        "servers" => v.servers.as_ref().map(at),
                        "claimsBound" => v.claims_bound.as_ref().map(at),
                        "claimsBooted" => v.claims_booted.as_ref().map(at),
                        "within" => v.within.as_ref().map(at),
                        _ => None,
                    }
                })
                .or(expect.map(at)),
            Place::ExpectServers(state) => expect
                .and_then(|e| e.value.servers.as_ref())
                .and_then(|m| m.value.get(state).map(at))
                .or(expect.map(at)),
        };
        found.unwrap_or((1, 1))
    }
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
