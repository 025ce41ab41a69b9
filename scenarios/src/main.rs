//! `metal-harness`: run, validate and replay scenarios.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use scenarios::cli;

#[derive(Parser)]
#[command(
    name = "metal-harness",
    version,
    about = "Play fleet scenarios against the metal operator, sim-bmc and a boot backend"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Play a scenario and check every invariant; exit 1 on an unexpected violation.
    Run(cli::RunArgs),
    /// Check scenario files; exit 2 if one is invalid.
    Validate {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Replay a regression scenario (from scenarios/regressions/) with its recorded seed.
    Replay(cli::RunArgs),
    /// Generate random scenarios, run them, and shrink failures into scenarios/regressions/.
    Explore(cli::ExploreArgs),
    /// Print the JSON Schema of the scenario format.
    Schema,
    /// List the invariants with their descriptions.
    Invariants,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let code = match cli.command {
        Command::Run(args) | Command::Replay(args) => cli::run(args),
        Command::Validate { files } => cli::validate(&files),
        Command::Explore(args) => cli::explore(args),
        Command::Schema => cli::print_schema(),
        Command::Invariants => cli::print_invariants(),
    };
    ExitCode::from(code)
}

/// Component logs go to stderr only when `RUST_LOG` asks for them (e.g. `RUST_LOG=operator=debug`):
/// by default the live progress display and the report are the output.
fn init_logging() {
    let Ok(filter) = tracing_subscriber::EnvFilter::try_from_default_env() else {
        return;
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
