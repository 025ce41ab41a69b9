//! The boot backend of a testbed: sim-boot in-process (restartable on the same addresses, so machines and image
//! references keep pointing at it) or any backend as a supervised child process.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use sim_boot::{BackendHandle, BackendOptions, ResolverKind};

use crate::supervisor::{ChildSpec, ExitObserver, Supervisor};

/// Which backend.
// Built once per testbed: boxing the large variant would only add noise at every call site.
#[allow(clippy::large_enum_variant)]
pub enum Backend {
    /// sim-boot in this process.
    InProcess(SimBoot),
    /// A backend process; `boot_url_template` is where machines fetch their boot script (the child's own URL).
    Child {
        spec: ChildSpec,
        boot_url_template: String,
        /// Told of every exit (deliberate or a crash).
        observer: Option<ExitObserver>,
    },
}

/// How to start the in-process sim-boot.
#[derive(Clone)]
pub struct SimBoot {
    pub options: BackendOptions,
    pub resolver: ResolverKind,
    /// Stamps condition times (the wall clock by default; a simulated run passes its own).
    pub clock: clock::Clock,
}

impl From<BackendOptions> for SimBoot {
    fn from(options: BackendOptions) -> Self {
        SimBoot {
            options,
            resolver: ResolverKind::default(),
            clock: clock::Clock::wall(),
        }
    }
}

/// sim-boot running in-process. Its first start's addresses are kept for every restart.
pub struct InProcessBackend {
    client: kube::Client,
    setup: SimBoot,
    handle: Option<BackendHandle>,
    /// None when served on an in-process network.
    addr: Option<SocketAddr>,
    url: String,
    registry_host: Option<String>,
}

impl InProcessBackend {
    pub async fn start(client: kube::Client, mut setup: SimBoot) -> anyhow::Result<Self> {
        let handle = launch(&client, &setup).await.context("starting sim-boot")?;
        let url = handle.url().to_string();
        let registry_host = handle.registry_host().map(str::to_string);
        let addr = match setup.options.network {
            // In-process hosts keep their names across restarts by themselves.
            Some(_) => None,
            None => {
                let addr: SocketAddr = url
                    .trim_start_matches("http://")
                    .parse()
                    .with_context(|| format!("sim-boot URL {url}"))?;
                setup.options.listen = addr;
                if let (Some(registry), Some(host)) =
                    (setup.options.registry.as_mut(), &registry_host)
                {
                    registry.listen = host.parse().context("registry address")?;
                }
                Some(addr)
            }
        };
        setup.options.public_url = Some(url.clone());
        Ok(InProcessBackend {
            client,
            setup,
            handle: Some(handle),
            addr,
            url,
            registry_host,
        })
    }

    /// `http://ADDR` of the boot server, or `http://boot.sim.invalid` in-process (stable across restarts).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The boot server's socket (None when it is served in-process).
    pub fn addr(&self) -> Option<SocketAddr> {
        self.addr
    }

    /// `127.0.0.1:PORT` (or the in-process host) of sim-boot's embedded registry, when it serves one.
    pub fn registry_host(&self) -> Option<&str> {
        self.registry_host.as_deref()
    }

    /// The running sim-boot (None while stopped).
    pub fn handle(&self) -> Option<&BackendHandle> {
        self.handle.as_ref()
    }

    /// Takes the running sim-boot out (the caller then owns its shutdown).
    pub fn take_handle(&mut self) -> Option<BackendHandle> {
        self.handle.take()
    }

    /// The options a restart uses (the first start's addresses pinned).
    pub fn options(&self) -> &BackendOptions {
        &self.setup.options
    }

    pub async fn shutdown(&mut self) {
        if let Some(h) = self.handle.take() {
            h.shutdown().await;
        }
    }

    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.shutdown().await;
        let handle = launch(&self.client, &self.setup)
            .await
            .context("restarting sim-boot")?;
        self.handle = Some(handle);
        Ok(())
    }
}

async fn launch(client: &kube::Client, setup: &SimBoot) -> anyhow::Result<BackendHandle> {
    sim_boot::Backend::start_with(
        client.clone(),
        setup.options.clone(),
        setup.resolver.clone(),
        setup.clock,
    )
    .await
}

/// A started backend.
#[allow(clippy::large_enum_variant)] // one per testbed
pub enum RunningBackend {
    InProcess(InProcessBackend),
    Child {
        supervisor: Arc<Supervisor>,
        boot_url_template: String,
    },
}

impl RunningBackend {
    /// Where machines fetch their boot script: `…/ipxe?uuid={uuid}&mac={mac}` for sim-boot.
    pub fn boot_url_template(&self) -> String {
        match self {
            RunningBackend::InProcess(b) => format!("{}/ipxe?uuid={{uuid}}&mac={{mac}}", b.url()),
            RunningBackend::Child {
                boot_url_template, ..
            } => boot_url_template.clone(),
        }
    }

    pub fn in_process(&self) -> Option<&InProcessBackend> {
        match self {
            RunningBackend::InProcess(b) => Some(b),
            RunningBackend::Child { .. } => None,
        }
    }

    pub fn supervisor(&self) -> Option<&Arc<Supervisor>> {
        match self {
            RunningBackend::Child { supervisor, .. } => Some(supervisor),
            RunningBackend::InProcess(_) => None,
        }
    }

    pub async fn restart(&mut self) -> anyhow::Result<()> {
        match self {
            RunningBackend::InProcess(b) => b.restart().await,
            RunningBackend::Child { supervisor, .. } => supervisor.restart().await,
        }
    }

    pub async fn shutdown(&mut self) {
        match self {
            RunningBackend::InProcess(b) => b.shutdown().await,
            RunningBackend::Child { supervisor, .. } => supervisor.stop().await,
        }
    }
}
