//! `metal-operator`: runs all controllers, the registry and the probe/metrics endpoints.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use clap::Parser as _;
use operator::config::{Flags, LogFormat};
use operator::leader::{LeaderElector, LeaseConfig};
use operator::macdb::MacDb;
use operator::probes::{Probes, router};

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,kube=warn".into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

/// Go-style bind address (`:8080`, `127.0.0.1:8080`); `0` disables.
fn bind_address(flag: &str, value: &str) -> anyhow::Result<Option<SocketAddr>> {
    if value == "0" || value.is_empty() {
        return Ok(None);
    }
    let full = if value.starts_with(':') {
        format!("0.0.0.0{value}")
    } else {
        value.to_owned()
    };
    full.parse()
        .map(Some)
        .map_err(|e| anyhow::anyhow!("--{flag} {value:?}: {e}"))
}

async fn client(flags: &Flags) -> anyhow::Result<kube::Client> {
    let config = match &flags.kubeconfig {
        Some(path) => {
            let kubeconfig = kube::config::Kubeconfig::read_from(path)?;
            kube::Config::from_custom_kubeconfig(
                kubeconfig,
                &kube::config::KubeConfigOptions::default(),
            )
            .await?
        }
        None => kube::Config::infer().await?,
    };
    Ok(kube::Client::try_from(config)?)
}

async fn serve(addr: Option<SocketAddr>, app: axum::Router) -> anyhow::Result<()> {
    if let Some(addr) = addr {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| anyhow::anyhow!("binding {addr}: {e}"))?;
        tokio::spawn(async move { axum::serve(listener, app).await });
    }
    Ok(())
}

async fn terminated() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

async fn main_inner(flags: Flags) -> anyhow::Result<()> {
    let config = flags.to_config()?;
    let mac_db = match &config.mac_prefixes_file {
        Some(path) => MacDb::load(path)?,
        None => MacDb::default(),
    };
    let client = client(&flags).await?;
    let mut options = operator::Options::new(config.clone());
    options.mac_db = mac_db;
    options.registry_listen = Some(SocketAddr::from(([0, 0, 0, 0], flags.registry_port)));
    if !config.event_url.is_empty() {
        // As upstream: the receiver runs only when BMCs are told where to push.
        options.event_listen = Some(SocketAddr::from(([0, 0, 0, 0], flags.event_port)));
    }
    let ready = Arc::new(AtomicBool::new(false));
    let mut probes = Probes {
        ready: ready.clone(),
        metrics: options.metrics.clone(),
        servers: None,
    };
    serve(
        bind_address(
            "health-probe-bind-address",
            &flags.health_probe_bind_address,
        )?,
        router(probes.clone()),
    )
    .await?;
    let elector = flags.leader_elect.then(|| {
        let identity = std::env::var("POD_NAME").unwrap_or_else(|_| {
            format!(
                "metal-operator-{}",
                clock::Entropy::from_seed(
                    options
                        .seed
                        .map(|s| clock::derive_seed(s, "operator/identity"))
                )
                .uuid_v4()
            )
        });
        let namespace = flags
            .leader_election_namespace
            .clone()
            .unwrap_or_else(|| config.manager_namespace.clone());
        let lease = LeaseConfig {
            namespace,
            name: flags.leader_election_id.clone(),
            identity,
            lease_duration: Duration::from_secs(15),
            retry_period: Duration::from_secs(2),
        };
        LeaderElector::new(client.clone(), lease).with_clock(options.clock)
    });
    if let Some(elector) = &elector {
        tokio::select! { _ = elector.acquire() => {}, _ = terminated() => return Ok(()) }
    }
    let handle = operator::run(options, client).await?;
    probes.servers = Some(handle.stores.servers.clone());
    serve(
        bind_address("metrics-bind-address", &flags.metrics_bind_address)?,
        router(probes),
    )
    .await?;
    // Re-poll with a timeout: kube-runtime's readiness latch wakes only its most recent waiter, and
    // the controllers wait on the same latch.
    while tokio::time::timeout(
        Duration::from_millis(200),
        handle.stores.servers.wait_until_ready(),
    )
    .await
    .is_err()
    {}
    ready.store(true, Ordering::Relaxed);
    tracing::info!("metal-operator running");
    let lost = async {
        match &elector {
            Some(elector) => elector.hold().await,
            None => std::future::pending().await,
        }
    };
    let lost_leadership = tokio::select! { _ = terminated() => false, _ = lost => true };
    ready.store(false, Ordering::Relaxed);
    tracing::info!(lost_leadership, "shutting down");
    handle.shutdown().await;
    if let Some(elector) = &elector {
        elector.release().await;
    }
    if lost_leadership {
        anyhow::bail!("lost leader election lease");
    }
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let flags = Flags::parse();
    init_tracing(flags.log_format);
    match main_inner(flags).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("metal-operator: {error:#}");
            ExitCode::FAILURE
        }
    }
}
