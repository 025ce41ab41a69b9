//! `conformance`: certify a boot backend against the ServerBootConfiguration readiness contract.

use clap::Parser;
use conformance::cli::{Cli, Command};

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Contract => {
            print!("{}", conformance::contract::render());
            0
        }
        Command::Rules => {
            for r in conformance::rules::RULES {
                println!(
                    "{:<14} {:<6} {:<10} {:<9} {}",
                    r.id, r.level, r.profile, r.tier, r.requirement
                );
            }
            0
        }
        Command::ReferenceBackend(args) => {
            match conformance::simboot::run_reference_backend(&args).await {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    conformance::certify::EXIT_USAGE_OR_HARNESS
                }
            }
        }
        Command::Certify(args) => {
            conformance::certify::certify(&args, std::env::args().collect()).await
        }
    };
    std::process::exit(code);
}
