//! `apiserver` binary: serves the embedded Kubernetes API for people and kubectl.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use clap::Parser;

#[derive(Parser, Debug)]
#[command(about = "Embedded Kubernetes-API-compatible server (metal-harness)")]
struct Args {
    /// Port to listen on.
    #[arg(long, default_value_t = 6443)]
    port: u16,
    /// Address to bind (loopback by default).
    #[arg(long, default_value = "127.0.0.1")]
    bind_address: IpAddr,
    /// Write a kubeconfig for this server here.
    #[arg(long)]
    kubeconfig_out: Option<PathBuf>,
    /// Persist objects in this directory (restored on restart).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Do not run the garbage-collection and namespace-deletion controllers.
    #[arg(long)]
    no_controllers: bool,
    /// Serve TLS with a self-signed certificate and require a bearer token (always on for non-loopback binds).
    #[arg(long)]
    secure: bool,
    /// Bearer token for secure serving (random if not given; written into the kubeconfig).
    #[arg(long, env = "APISERVER_TOKEN")]
    token: Option<String>,
    /// Repair the data log in --data-dir (keep its intact records, drop damaged ones, back up the damaged file)
    /// and exit. A server never does this on its own: it refuses to start on a damaged log.
    #[arg(long, requires = "data_dir")]
    repair_data_log: bool,
    /// Watch history length (events); older resourceVersions get 410 Gone.
    #[arg(long, default_value_t = 10_000)]
    watch_history: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let args = Args::parse();
    if args.repair_data_log {
        let dir = args.data_dir.as_deref().expect("clap requires --data-dir");
        match apiserver::repair_data_log(dir, &apiserver::Clock::wall()) {
            Ok(report) => {
                println!("repaired {}: {report}", dir.display());
                return Ok(());
            }
            Err(e) => {
                eprintln!("could not repair {}: {e}", dir.display());
                std::process::exit(1);
            }
        }
    }
    let opts = apiserver::Options {
        bind: SocketAddr::new(args.bind_address, args.port),
        data_dir: args.data_dir,
        controllers: !args.no_controllers,
        watch_history: args.watch_history,
        secure: args.secure,
        token: args.token,
        ..Default::default()
    };
    let handle = apiserver::Server::start(opts).await?;
    if let Some(path) = &args.kubeconfig_out {
        handle.write_kubeconfig(path)?;
        eprintln!("kubeconfig written to {}", path.display());
    }
    println!("serving the Kubernetes API at {}", handle.url());
    tokio::signal::ctrl_c().await?;
    handle.shutdown().await;
    Ok(())
}
