//! The command-line surface: argument types and what each subcommand does, with its exit codes.

use std::path::{Path, PathBuf};

use clap::Args;

use crate::spec::{self, Scenario};

pub use crate::exit;
pub use crate::explore::ExploreArgs;

#[derive(Args, Clone, Debug)]
pub struct RunArgs {
    /// The scenario file.
    pub file: PathBuf,
    /// Seed for identities and fault draws (overrides the file's).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Write report.json and timeline.html here.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Run against this cluster instead of starting the embedded API server (the metal CRDs must
    /// be installed there; API server faults need the embedded one).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// No live progress display.
    #[arg(long)]
    pub quiet: bool,
    /// `wall` or `simulated` (overrides the file's `clock`): simulated runs the whole stack in this process
    /// on a virtual clock, hours of fleet life in seconds.
    #[arg(long, value_enum)]
    pub clock: Option<spec::ClockMode>,
}

/// Loads a file, printing each located error on its own line.
fn load(path: &Path) -> Result<Scenario, u8> {
    spec::load_file(path).map_err(|e| {
        for line in e.to_string().lines() {
            eprintln!("error: {line}");
        }
        exit::INVALID
    })
}

pub fn validate(files: &[PathBuf]) -> u8 {
    let mut code = exit::OK;
    for file in files {
        match load(file) {
            Ok(s) => println!("{}: ok ({})", file.display(), s.name),
            Err(c) => code = c,
        }
    }
    code
}

pub fn run(args: RunArgs) -> u8 {
    let scenario = match load(&args.file) {
        Ok(s) => s,
        Err(c) => return c,
    };
    run_blocking(scenario, args)
}

/// Runs a scenario on a fresh tokio runtime, prints the summary and returns the exit code.
fn run_blocking(scenario: Scenario, args: RunArgs) -> u8 {
    let seed = scenario.effective_seed(args.seed);
    let clock = args.clock.unwrap_or(scenario.clock);
    println!(
        "scenario {} · seed {seed} · {} clock",
        scenario.name,
        clock.as_str()
    );
    let runtime = match crate::runner::runtime(clock, seed) {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return exit::HARNESS;
        }
    };
    let options = crate::runner::RunOptions {
        seed,
        kubeconfig: args.kubeconfig.clone(),
        progress: !args.quiet,
        bmcs_in_process: false,
        clock,
    };
    match runtime.block_on(crate::runner::run(&scenario, options)) {
        Ok(outcome) => {
            print!("{}", outcome.report.summary());
            if let Some(dir) = &args.out {
                match outcome.report.write(dir, &outcome.evidence) {
                    Ok(()) => println!(
                        "report: {0}/report.json, {0}/timeline.html, {0}/evidence.jsonl",
                        dir.display()
                    ),
                    Err(e) => eprintln!("error: writing the report to {}: {e}", dir.display()),
                }
            }
            let clock_flag = if clock == scenario.clock {
                String::new()
            } else {
                format!(" --clock {}", clock.as_str())
            };
            println!(
                "seed {seed} (rerun: metal-harness run {} --seed {seed}{clock_flag})",
                args.file.display()
            );
            if outcome.report.passed {
                exit::OK
            } else {
                exit::VIOLATION
            }
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            exit::HARNESS
        }
    }
}

pub fn explore(args: ExploreArgs) -> u8 {
    crate::explore::explore(args)
}

pub fn print_schema() -> u8 {
    println!(
        "{}",
        serde_json::to_string_pretty(&Scenario::json_schema()).expect("schema is JSON")
    );
    exit::OK
}

pub fn print_invariants() -> u8 {
    for (name, description) in crate::invariants::catalog() {
        println!("{name}\n    {description}\n");
    }
    exit::OK
}
