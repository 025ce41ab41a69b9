//! sim-boot, the reference backend, run in-process on the embedded environment: what `cargo test -p conformance`
//! certifies, in its correct mode and in every misbehaviour mode (the self-test).

use crate::embedded::EmbeddedEnv;
use crate::target::BackendControl;
use futures::future::BoxFuture;
use sim_boot::{
    Backend, BackendHandle, BackendOptions, ControllerOptions, Misbehaviour, MisbehaviourOptions,
};
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

/// `conformance reference-backend`: sim-boot as a process, until killed.
pub async fn run_reference_backend(args: &crate::cli::ReferenceBackendArgs) -> anyhow::Result<()> {
    let mode: Misbehaviour = args
        .misbehave
        .parse()
        .map_err(|e: String| anyhow::anyhow!(e))?;
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
            ..Default::default()
        },
    };
    let handle = Backend::start(client, options).await?;
    eprintln!("reference backend ({mode}) serving on {}", handle.url());
    tokio::signal::ctrl_c().await?;
    handle.shutdown().await;
    Ok(())
}

/// A restartable in-process sim-boot; restarts keep the boot server's address.
pub struct InProcessSimBoot {
    client: kube::Client,
    options: BackendOptions,
    handle: tokio::sync::Mutex<Option<BackendHandle>>,
    /// Controller panics of instances already shut down.
    past_crashes: Mutex<u64>,
    addr: SocketAddr,
}

impl InProcessSimBoot {
    /// Starts sim-boot against `env` in `mode`, allowing only the environment's "allowed" registry.
    pub async fn start(
        env: &EmbeddedEnv,
        mode: Misbehaviour,
        slow_delay: Duration,
    ) -> anyhow::Result<InProcessSimBoot> {
        let registries = &env.registries;
        let options = BackendOptions {
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
        };
        let client = env.api.client().await?;
        let handle = Backend::start(client.clone(), options.clone()).await?;
        let addr: SocketAddr = handle.url().trim_start_matches("http://").parse()?;
        let options = BackendOptions {
            listen: addr,
            ..options
        };
        Ok(InProcessSimBoot {
            client,
            options,
            handle: tokio::sync::Mutex::new(Some(handle)),
            past_crashes: Mutex::new(0),
            addr,
        })
    }

    /// Where machines fetch their iPXE scripts: `http://ADDR/ipxe/{uuid}`.
    pub fn boot_url_template(&self) -> String {
        format!("http://{}/ipxe/{{uuid}}", self.addr)
    }

    pub async fn shutdown(&self) {
        if let Some(h) = self.handle.lock().await.take() {
            *self.past_crashes.lock().unwrap_or_else(|p| p.into_inner()) += h.controller_crashes();
            h.shutdown().await;
        }
    }

    fn crashes(&self) -> u64 {
        let live = self
            .handle
            .try_lock()
            .ok()
            .and_then(|h| h.as_ref().map(|h| h.controller_crashes()))
            .unwrap_or(0);
        live + *self.past_crashes.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl BackendControl for InProcessSimBoot {
    fn restart(&self) -> Option<BoxFuture<'_, anyhow::Result<()>>> {
        Some(Box::pin(async move {
            self.shutdown().await;
            let handle = Backend::start(self.client.clone(), self.options.clone()).await?;
            *self.handle.lock().await = Some(handle);
            Ok(())
        }))
    }

    fn unexpected_exits(&self) -> Vec<String> {
        match self.crashes() {
            0 => Vec::new(),
            n => vec![format!(
                "the controller panicked {n} time(s) and was restarted by its supervisor"
            )],
        }
    }
}
