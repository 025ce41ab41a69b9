//! The `sim-bmc` command line, shared by `sim-bmc` (machines without a boot server) and netboot's
//! `sim-bmc-netboot` (machines that network-boot): only the boot client differs.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;

use crate::boot::NetworkBoot;
use crate::{Fleet, FleetOptions, FleetSpec};

#[derive(Parser)]
#[command(about = "A fleet of simulated Redfish BMCs on loopback")]
pub struct Args {
    /// Fleet file (YAML).
    #[arg(long)]
    fleet: PathBuf,
    /// Also answer HTTPS on every BMC port (self-signed certificate).
    #[arg(long)]
    tls: bool,
    /// Write the fleet's certificate (PEM) here when --tls is set.
    #[arg(long)]
    cert_out: Option<PathBuf>,
    /// Control and observation API address.
    #[arg(long, default_value = "127.0.0.1:0")]
    control_addr: SocketAddr,
}

/// Parses the command line, serves the fleet until SIGINT or SIGTERM, and maps errors to exit code 2.
pub async fn main(network_boot: Option<Arc<dyn NetworkBoot>>) -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let args = Args::parse();
    match run(args, network_boot).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sim-bmc: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn run(args: Args, network_boot: Option<Arc<dyn NetworkBoot>>) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.fleet)
        .map_err(|e| anyhow::anyhow!("cannot read fleet file {}: {e}", args.fleet.display()))?;
    let spec = FleetSpec::from_yaml(&text)
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.fleet.display()))?;
    let opts = FleetOptions {
        tls: args.tls,
        control_addr: Some(args.control_addr),
        network_boot,
        ..Default::default()
    };
    let fleet = Fleet::start(spec, opts).await?;
    if let (Some(path), Some(pem)) = (&args.cert_out, fleet.certificate_pem()) {
        std::fs::write(path, pem)?;
        println!("certificate: {}", path.display());
    }
    println!("control: {}", fleet.control_url());
    println!(
        "{:<16} {:<11} {:<28} {:<12} {:<12} systems",
        "NAME", "VENDOR", "URL", "USER", "PASSWORD"
    );
    for b in fleet.bmcs() {
        let systems: Vec<String> = b
            .systems
            .iter()
            .map(|s| format!("{}={}", s.id, s.uuid))
            .collect();
        println!(
            "{:<16} {:<11} {:<28} {:<12} {:<12} {}",
            b.name,
            b.vendor.as_str(),
            b.url,
            b.username,
            b.password,
            systems.join(",")
        );
    }
    shutdown_signal().await?;
    fleet.shutdown().await;
    Ok(())
}

/// SIGINT or SIGTERM: in a container sim-bmc is PID 1, and `docker stop`/the kubelet send SIGTERM.
async fn shutdown_signal() -> std::io::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r,
        _ = term.recv() => Ok(()),
    }
}
