//! `sim-boot`: the reference boot backend as a process.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use sim_boot::{
    Backend, BackendOptions, BootModes, ControllerOptions, EmbeddedRegistry, Misbehaviour,
    MisbehaviourOptions,
};

#[derive(Parser, Debug)]
#[command(
    name = "sim-boot",
    about = "Reference ServerBootConfiguration backend (iPXE/HTTP boot server + OCI registry)"
)]
struct Cli {
    /// Kubeconfig to use (default: the usual discovery: $KUBECONFIG, ~/.kube/config, in-cluster).
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// Boot server listen address.
    #[arg(long, default_value = "127.0.0.1:8082")]
    listen: SocketAddr,
    /// Base URL machines reach the boot server at (default: http://<listen>).
    #[arg(long)]
    public_url: Option<String>,
    /// Serve the generated OCI registry on this address ("off" disables it).
    #[arg(long, default_value = "127.0.0.1:5000")]
    registry_listen: String,
    /// Seed of the generated registry content.
    #[arg(long, default_value_t = 1)]
    registry_seed: u64,
    /// Registries images may come from (comma-separated; the embedded registry is always allowed; empty allows any).
    #[arg(long, value_delimiter = ',', default_value = "ghcr.io")]
    allowed_registries: Vec<String>,
    /// Registries reached over plain HTTP (host:port, comma-separated).
    #[arg(long, value_delimiter = ',')]
    insecure_registries: Vec<String>,
    /// Architecture when the Server's processors do not tell.
    #[arg(long, default_value = "amd64")]
    architecture: String,
    /// Boot modes served (and whose layers images must have): ipxe, http.
    #[arg(long, value_delimiter = ',', default_value = "ipxe,http")]
    boot_modes: Vec<String>,
    /// Watch only this namespace.
    #[arg(long)]
    namespace: Option<String>,
    /// Deliberate bug to exhibit (see the crate docs): none, ready-before-serving, never-ready, ...
    #[arg(long, default_value = "none")]
    misbehave: Misbehaviour,
    /// Delay per reconcile for --misbehave=slow, in milliseconds.
    #[arg(long, default_value_t = 5000)]
    slow_delay_ms: u64,
    /// How long each reconcile holds the only worker for --misbehave=single-worker, in milliseconds.
    #[arg(long, default_value_t = 300)]
    serial_delay_ms: u64,
}

fn options(cli: &Cli) -> Result<BackendOptions, String> {
    let registry = match cli.registry_listen.as_str() {
        "off" => None,
        addr => Some(EmbeddedRegistry {
            listen: addr
                .parse()
                .map_err(|e| format!("--registry-listen {addr:?}: {e}"))?,
            seed: cli.registry_seed,
            ..Default::default()
        }),
    };
    let boot_modes = BootModes::from_names(&cli.boot_modes)?;
    Ok(BackendOptions {
        listen: cli.listen,
        public_url: cli.public_url.clone(),
        registry,
        insecure_registries: cli.insecure_registries.clone(),
        controller: ControllerOptions {
            architecture: cli.architecture.clone(),
            allowed_registries: cli
                .allowed_registries
                .iter()
                .filter(|r| !r.is_empty())
                .cloned()
                .collect(),
            boot_modes,
            misbehaviour: cli.misbehave,
            misbehaviour_options: MisbehaviourOptions {
                slow_delay: Duration::from_millis(cli.slow_delay_ms),
                serial_delay: Duration::from_millis(cli.serial_delay_ms),
                ..Default::default()
            },
            namespace: cli.namespace.clone(),
            ..Default::default()
        },
        network: None,
    })
}

async fn client(kubeconfig: Option<&PathBuf>) -> Result<kube::Client, String> {
    let config = match kubeconfig {
        Some(path) => {
            let kubeconfig = kube::config::Kubeconfig::read_from(path)
                .map_err(|e| format!("reading {}: {e}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
                .await
                .map_err(|e| format!("{}: {e}", path.display()))?
        }
        None => kube::Config::infer()
            .await
            .map_err(|e| format!("no Kubernetes configuration found: {e}"))?,
    };
    kube::Client::try_from(config).map_err(|e| format!("building the Kubernetes client: {e}"))
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let cli = Cli::parse();
    let result = async {
        let options = options(&cli)?;
        let client = client(cli.kubeconfig.as_ref()).await?;
        let handle = Backend::start(client, options)
            .await
            .map_err(|e| format!("{e:#}"))?;
        eprintln!(
            "sim-boot: boot server at {}, registry at {}, misbehaviour {}",
            handle.url(),
            handle.registry_url().unwrap_or_else(|| "off".into()),
            cli.misbehave
        );
        tokio::signal::ctrl_c()
            .await
            .map_err(|e| format!("waiting for Ctrl-C: {e}"))?;
        handle.shutdown().await;
        Ok::<_, String>(())
    }
    .await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("sim-boot: {message}");
            ExitCode::from(2)
        }
    }
}
