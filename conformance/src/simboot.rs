//! sim-boot, the reference backend, run in-process on the embedded environment: what `cargo test -p conformance`
//! certifies, in its correct mode and in every misbehaviour mode (the self-test).

use crate::embedded::EmbeddedEnv;
use crate::target::BackendControl;
use anyhow::Context as _;
use futures::future::BoxFuture;
use sim_boot::{Backend, BackendOptions, ControllerOptions, Misbehaviour, MisbehaviourOptions};
use std::net::SocketAddr;
use std::time::Duration;
use testbed::InProcessBackend;

/// `conformance reference-backend`: sim-boot as a process, until killed.
pub async fn run_reference_backend(args: &crate::cli::ReferenceBackendArgs) -> anyhow::Result<()> {
    let mode: Misbehaviour = args
        .misbehave
        .parse()
        .map_err(|e: String| anyhow::anyhow!(e))?;
    let boot_modes =
        sim_boot::BootModes::from_names(&args.boot_modes).map_err(anyhow::Error::msg)?;
    let client = kube::Client::try_default().await?;
    let options = BackendOptions {
        listen: args.listen,
        public_url: None,
        registry: None,
        insecure_registries: args.insecure_registries.clone(),
        controller: ControllerOptions {
            allowed_registries: vec![args.registry.clone()],
            misbehaviour: mode,
            max_backoff: Duration::from_secs(2),
            boot_modes,
            ..Default::default()
        },
        network: None,
    };
    let handle = Backend::start(client, options).await?;
    eprintln!("reference backend ({mode}) serving on {}", handle.url());
    // As a process, a controller panic ends the process (as it would a pod's container), so the suite judges
    // crashes through the same exit path as any external backend's.
    let mut crash_poll = tokio::time::interval(Duration::from_millis(50));
    loop {
        tokio::select! {
            r = tokio::signal::ctrl_c() => { r?; break; }
            _ = crash_poll.tick() => {
                if handle.controller_crashes() > 0 {
                    anyhow::bail!("the controller panicked; the process exits as a crashed one would");
                }
            }
        }
    }
    handle.shutdown().await;
    Ok(())
}

/// A restartable in-process sim-boot (testbed's); restarts keep the boot server's address. It has no process for
/// the suite to observe, so SBC-RES-005 is Skip with it: crashes are judged through a child process
/// (`reference-backend`).
pub struct InProcessSimBoot {
    backend: tokio::sync::Mutex<InProcessBackend>,
    addr: SocketAddr,
}

impl InProcessSimBoot {
    /// Starts sim-boot against `env` in `mode`, allowing only the environment's "allowed" registry.
    pub async fn start(
        env: &EmbeddedEnv,
        mode: Misbehaviour,
        slow_delay: Duration,
    ) -> anyhow::Result<InProcessSimBoot> {
        Self::start_with(env, Self::options(env, mode, slow_delay)).await
    }

    /// The options [`Self::start`] uses, for a caller that changes some (say, the boot modes) first.
    pub fn options(env: &EmbeddedEnv, mode: Misbehaviour, slow_delay: Duration) -> BackendOptions {
        let registries = &env.registries;
        BackendOptions {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            public_url: None,
            registry: None,
            insecure_registries: vec![
                registries.allowed.to_string(),
                registries.disallowed.to_string(),
            ],
            controller: ControllerOptions {
                allowed_registries: vec![registries.allowed.to_string()],
                misbehaviour: mode,
                misbehaviour_options: MisbehaviourOptions {
                    slow_delay,
                    ..Default::default()
                },
                max_backoff: Duration::from_secs(2),
                ..Default::default()
            },
            network: None,
        }
    }

    /// Starts sim-boot against `env` with `options`.
    pub async fn start_with(
        env: &EmbeddedEnv,
        options: BackendOptions,
    ) -> anyhow::Result<InProcessSimBoot> {
        let client = env.api.client().await?;
        let backend = InProcessBackend::start(client, options.into()).await?;
        Ok(InProcessSimBoot {
            addr: backend.addr().context("sim-boot serves on a socket here")?,
            backend: tokio::sync::Mutex::new(backend),
        })
    }

    /// Where machines fetch their iPXE scripts: `http://ADDR/ipxe/{uuid}`.
    pub fn boot_url_template(&self) -> String {
        format!("http://{}/ipxe/{{uuid}}", self.addr)
    }

    pub async fn shutdown(&self) {
        self.backend.lock().await.shutdown().await;
    }
}

impl BackendControl for InProcessSimBoot {
    fn restart(&self) -> Option<BoxFuture<'_, anyhow::Result<()>>> {
        Some(Box::pin(async move {
            self.backend.lock().await.restart().await
        }))
    }

    fn unexpected_exits(&self) -> BoxFuture<'_, anyhow::Result<Vec<String>>> {
        Box::pin(async { Ok(Vec::new()) })
    }

    fn observes_process(&self) -> bool {
        false
    }
}
