//! Property-based exploration: proptest generates small fleets, workloads and fault timelines, runs
//! each on the embedded stack, and shrinks a failing one to a minimal scenario written as YAML under
//! `scenarios/regressions/`, which the regression test replays forever after.

use std::path::{Path, PathBuf};

use clap::Args;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestError, TestRng, TestRunner};

use crate::exit;
use crate::runner::{RunOptions, run};
use crate::spec::{
    Action, BmcFault, BmcTarget, ClaimPower, ClockMode, DEFAULT_IMAGE, Dur, Expect, Fault,
    FaultStep, Fleet, Latencies, Scenario, StartAfter, Step, Vendor, Workload,
};

/// The `explore` subcommand's arguments.
#[derive(Args, Clone, Debug)]
pub struct ExploreArgs {
    /// Number of random scenarios to run.
    #[arg(long, default_value_t = 8)]
    pub cases: u32,
    /// Where shrunk failures are written.
    #[arg(long, default_value = "scenarios/regressions")]
    pub regressions: PathBuf,
    /// proptest seed (printed; a failing run prints the one to reuse).
    #[arg(long)]
    pub seed: Option<u64>,
    /// The clock every case runs on (written into the regressions, so they replay on it).
    #[arg(long, value_enum, default_value = "wall")]
    pub clock: ClockMode,
}

/// The second OS image of sim-boot's embedded registry (for image changes).
const OTHER_IMAGE: &str = "${registry}/ironcore/os:2.0";

/// One user action in a generated workload.
#[derive(Clone, Debug)]
pub enum Op {
    Create(u32),
    DeleteOldest,
    UpdateNewest,
    ParkCycle(u32),
    Pause(u64),
}

/// One generated fault.
#[derive(Clone, Debug)]
pub enum FaultPick {
    BmcErrors { at_s: u64 },
    BmcUnreachable { at_s: u64, for_s: u64 },
    WatchDrop { at_s: u64, expire: bool },
    OperatorRestart { at_s: u64 },
    BackendRestart { at_s: u64 },
}

/// What proptest generates and shrinks; [`Plan::scenario`] turns it into a valid scenario.
#[derive(Clone, Debug)]
pub struct Plan {
    pub seed: u64,
    pub bmcs: u32,
    pub systems: u32,
    pub vendors: Vec<Vendor>,
    pub ops: Vec<Op>,
    pub faults: Vec<FaultPick>,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (1u32..=2).prop_map(Op::Create),
        1 => Just(Op::DeleteOldest),
        1 => Just(Op::UpdateNewest),
        1 => (0u32..8).prop_map(Op::ParkCycle),
        1 => (0u64..3000).prop_map(Op::Pause),
    ]
}

fn fault() -> impl Strategy<Value = FaultPick> {
    prop_oneof![
        (1u64..8).prop_map(|at_s| FaultPick::BmcErrors { at_s }),
        (1u64..8, 1u64..6).prop_map(|(at_s, for_s)| FaultPick::BmcUnreachable { at_s, for_s }),
        (1u64..10, any::<bool>()).prop_map(|(at_s, expire)| FaultPick::WatchDrop { at_s, expire }),
        (2u64..10).prop_map(|at_s| FaultPick::OperatorRestart { at_s }),
        (2u64..10).prop_map(|at_s| FaultPick::BackendRestart { at_s }),
    ]
}

/// Small fleets (1–4 BMCs, 1–2 systems each), up to six workload steps and two faults.
pub fn plans() -> impl Strategy<Value = Plan> {
    (
        any::<u64>(),
        1u32..=4,
        1u32..=2,
        proptest::sample::subsequence(Vendor::ALL.to_vec(), 1..=3),
        proptest::collection::vec(op(), 1..6),
        proptest::collection::vec(fault(), 0..=2),
    )
        .prop_map(|(seed, bmcs, systems, vendors, ops, faults)| Plan {
            seed,
            bmcs,
            systems,
            vendors,
            ops,
            faults,
        })
}

impl Plan {
    /// A valid scenario: deletes and updates only touch live claims, parks are undone.
    pub fn scenario(&self) -> Scenario {
        let mut fleet = Fleet::of(self.bmcs);
        fleet.vendors = self.vendors.clone();
        fleet.systems_per_bmc = self.systems;
        fleet.latencies = Some(Latencies {
            power_on: Dur::ZERO,
            power_off: Dur::ZERO,
            graceful_shutdown: Dur::ZERO,
            post: Dur::ZERO,
        });
        let servers = fleet.server_names();
        let mut steps = Vec::new();
        let mut live: Vec<String> = Vec::new();
        let mut next = 0;
        let step = |action: Action| Step {
            at: None,
            wait_for: None,
            timeout: None,
            action,
        };
        for op in &self.ops {
            match op {
                Op::Create(n) => {
                    for _ in 0..*n {
                        let name = format!("c{next}");
                        next += 1;
                        live.push(name.clone());
                        steps.push(step(Action::CreateClaims {
                            name,
                            count: None,
                            image: DEFAULT_IMAGE.into(),
                            ignition: Some(format!(
                                "{{\"ignition\":{{\"version\":\"3.4.0\"}},\"c\":{next}}}"
                            )),
                            server_ref: None,
                            server_selector: Default::default(),
                            power: ClaimPower::On,
                            namespace: None,
                        }));
                    }
                }
                Op::DeleteOldest if !live.is_empty() => {
                    let name = live.remove(0);
                    steps.push(step(Action::DeleteClaims {
                        name,
                        count: None,
                        namespace: None,
                    }));
                }
                Op::UpdateNewest => {
                    if let Some(name) = live.last() {
                        steps.push(step(Action::UpdateClaim {
                            name: name.clone(),
                            image: Some(OTHER_IMAGE.into()),
                            ignition: None,
                            namespace: None,
                        }));
                    }
                }
                Op::ParkCycle(i) => {
                    let server = servers[*i as usize % servers.len()].clone();
                    steps.push(step(Action::Park {
                        server: server.clone(),
                    }));
                    steps.push(step(Action::Unpark { server }));
                }
                Op::Pause(ms) => steps.push(step(Action::Pause {
                    duration: Dur::from_millis(*ms),
                })),
                Op::DeleteOldest => {}
            }
        }
        let bmc_names: Vec<String> = fleet.resolve().into_iter().map(|b| b.name).collect();
        let faults = self
            .faults
            .iter()
            .map(|f| fault_step(f, &bmc_names))
            .collect();
        Scenario {
            name: format!("generated-{:016x}", self.seed),
            description:
                "Generated by `metal-harness explore` and shrunk to a minimal failing case.".into(),
            seed: Some(self.seed),
            clock: ClockMode::Wall,
            fleet,
            backend: Default::default(),
            operator: Default::default(),
            workload: Workload {
                start_after: StartAfter::Discovery,
                namespace: crate::spec::default_namespace(),
                steps,
            },
            faults,
            expect: Expect {
                within: Dur::from_secs(90),
                ..Expect::default()
            },
        }
    }
}

fn fault_step(f: &FaultPick, bmcs: &[String]) -> FaultStep {
    let first = BmcTarget::Names(vec![bmcs[0].clone()]);
    let (at, duration, fault) = match f {
        FaultPick::BmcErrors { at_s } => (
            *at_s,
            Some(5),
            Fault::Bmc {
                bmcs: first,
                kind: BmcFault::ServerErrors {
                    rate: 0.3,
                    status: 503,
                },
            },
        ),
        FaultPick::BmcUnreachable { at_s, for_s } => (
            *at_s,
            Some(*for_s),
            Fault::Bmc {
                bmcs: first,
                kind: BmcFault::Unreachable { black_hole: false },
            },
        ),
        FaultPick::WatchDrop { at_s, expire } => {
            (*at_s, None, Fault::WatchDrop { expire: *expire })
        }
        FaultPick::OperatorRestart { at_s } => (*at_s, None, Fault::OperatorRestart),
        FaultPick::BackendRestart { at_s } => (*at_s, None, Fault::BackendRestart),
    };
    FaultStep {
        at: Dur::from_secs(at),
        duration: duration.map(Dur::from_secs),
        fault,
    }
}

/// Plays one scenario with its own seed on a fresh runtime of its clock; `Err` says why it could not run.
pub fn play(scenario: &Scenario) -> Result<crate::report::Report, String> {
    let runtime = crate::runner::runtime(scenario.clock, scenario.effective_seed(None))
        .map_err(|e| e.to_string())?;
    let options = RunOptions {
        seed: scenario.effective_seed(None),
        kubeconfig: None,
        progress: false,
        bmcs_in_process: false,
        clock: scenario.clock,
    };
    let outcome = runtime
        .block_on(run(scenario, options))
        .map_err(|e| format!("harness error: {e:#}"))?;
    Ok(outcome.report)
}

/// Runs one scenario on a fresh runtime; `Err` carries the report summary of a failed run.
pub fn check(scenario: &Scenario) -> Result<(), String> {
    let report = play(scenario)?;
    if report.passed {
        Ok(())
    } else {
        Err(report.summary())
    }
}

/// Explores `cases` random scenarios from `seed`; writes a shrunk failure to `regressions`.
/// `tolerate` names invariants whose violation does not count as a failure.
pub fn explore_with(
    cases: u32,
    seed: u64,
    regressions: &Path,
    tolerate: &[&str],
    clock: ClockMode,
) -> Result<(), PathBuf> {
    let with_tolerance = |plan: &Plan| {
        let mut s = plan.scenario();
        s.clock = clock;
        s.expect.tolerate = tolerate.iter().map(|t| t.to_string()).collect();
        s
    };
    let config = Config {
        cases,
        max_shrink_iters: 24,
        failure_persistence: None,
        ..Config::default()
    };
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes(seed));
    let mut runner = TestRunner::new_with_rng(config, rng);
    let played = std::sync::atomic::AtomicU32::new(0);
    let result = runner.run(&plans(), |plan| {
        let scenario = with_tolerance(&plan);
        let started = std::time::Instant::now();
        let verdict = check(&scenario);
        // Progress on stderr: a bounded exploration cut short still tells how far it got.
        let n = played.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        eprintln!(
            "run {n}: {} ({} servers, {} steps, {} faults) {} in {:.1}s",
            scenario.name,
            plan.bmcs * plan.systems,
            scenario.workload.steps.len(),
            scenario.faults.len(),
            if verdict.is_ok() { "passed" } else { "FAILED" },
            started.elapsed().as_secs_f64()
        );
        verdict.map_err(TestCaseError::fail)
    });
    match result {
        Ok(()) => Ok(()),
        Err(TestError::Abort(reason)) => {
            eprintln!("exploration aborted: {reason}");
            Ok(())
        }
        Err(TestError::Fail(reason, plan)) => {
            let scenario = with_tolerance(&plan);
            let path = regressions.join(format!("{}.yaml", scenario.name));
            let text = format!(
                "# Shrunk by `metal-harness explore --seed {seed}`; failed with:\n{}\n{}",
                comment(&reason.to_string()),
                scenario.to_yaml()
            );
            if let Err(e) =
                std::fs::create_dir_all(regressions).and_then(|_| std::fs::write(&path, text))
            {
                eprintln!("error: writing {}: {e}", path.display());
            }
            Err(path)
        }
    }
}

fn comment(text: &str) -> String {
    text.lines()
        .map(|l| format!("# {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn seed_bytes(seed: u64) -> [u8; 32] {
    let mut bytes = [0u8; 32];
    for (i, chunk) in bytes.chunks_mut(8).enumerate() {
        chunk.copy_from_slice(&seed.wrapping_add(i as u64).to_le_bytes());
    }
    bytes
}

pub fn explore(args: ExploreArgs) -> u8 {
    let seed = args.seed.unwrap_or_else(rand::random);
    println!(
        "exploring {} cases on the {} clock · proptest seed {seed} (rerun with --seed {seed})",
        args.cases,
        args.clock.as_str()
    );
    match explore_with(args.cases, seed, &args.regressions, &[], args.clock) {
        Ok(()) => {
            println!("{} cases passed", args.cases);
            exit::OK
        }
        Err(path) => {
            println!(
                "failure shrunk to {} (replay: metal-harness replay {})",
                path.display(),
                path.display()
            );
            exit::VIOLATION
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest! {
        #![proptest_config(Config { cases: 64, failure_persistence: None, ..Config::default() })]
        /// Every generated scenario is valid and survives a YAML round trip (what regressions rely on).
        #[test]
        fn generated_scenarios_are_valid(plan in plans()) {
            let scenario = plan.scenario();
            let text = scenario.to_yaml();
            let again = crate::spec::parse("generated", &text).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
            prop_assert_eq!(again, scenario);
        }
    }
}
