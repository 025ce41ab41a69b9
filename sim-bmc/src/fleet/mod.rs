//! A fleet: N simulated BMCs built from a [`FleetSpec`], each listening on its own loopback address,
//! plus the control and observation API.

mod build;
// The fleet's control port: started by `Fleet::start`, it serves the fleet's own `BmcInfo`s.
mod control;
mod identity;
mod in_process;
mod listener;
pub mod spec;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use serde::Serialize;

pub use in_process::BmcService;
pub use spec::{BmcSpec, BootNetwork, FleetSpec, LatencySpec, NetworkSpec};

use crate::Error;
use crate::bmc::Bmc;
use crate::boot::NetworkBoot;
use crate::fault::FaultHandle;
use crate::machine::MachineHandle;
use crate::metrics::Metrics;
use crate::vendor::Vendor;
use clock::Clock;

/// How BMCs are reachable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BindMode {
    /// Each BMC listens on its own 127.x.y.z address, as real BMCs have their own IPs.
    #[default]
    Loopback,
    /// No sockets: reach BMCs through [`FleetHandle::service`] (which plays `unreachable` faults too).
    InProcess,
}

/// Run-time options that do not belong in the fleet file.
#[derive(Clone, Default)]
pub struct FleetOptions {
    /// The network boot machines use for `Pxe`/`UefiHttp`; `None` means no boot server answers.
    pub network_boot: Option<Arc<dyn NetworkBoot>>,
    /// Also answer TLS (same port: the first byte tells TLS from plain HTTP).
    pub tls: bool,
    /// Address of the control API; defaults to 127.0.0.1 on a free port (Loopback mode only).
    pub control_addr: Option<SocketAddr>,
    pub bind: BindMode,
    /// Clock for timestamps; `Clock::wall()` at start when None.
    pub clock: Option<Clock>,
    /// How events reach subscribers' destinations; real sockets when None (an in-process network's client
    /// reaches an in-process receiver).
    pub events_http: Option<http_client::HttpClient>,
}

/// One system as clients see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SystemInfo {
    /// Redfish member id.
    pub id: String,
    pub odata_id: String,
    pub uuid: String,
    pub serial: String,
    pub macs: Vec<String>,
}

/// One BMC as clients see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BmcInfo {
    pub name: String,
    /// `http://127.x.y.z:port` (or `http://{name}.sim.invalid` in-process).
    pub url: String,
    pub https_url: Option<String>,
    pub username: String,
    pub password: String,
    pub vendor: Vendor,
    /// MAC of the BMC's own network interface.
    pub mac: String,
    pub systems: Vec<SystemInfo>,
}

/// Starts fleets.
pub struct Fleet;

impl Fleet {
    /// Builds every BMC and machine, binds listeners and the control API.
    pub async fn start(spec: FleetSpec, opts: FleetOptions) -> Result<FleetHandle, Error> {
        let resolved = spec.resolve()?;
        let (bmcs, metrics) = build_bmcs(&spec, &resolved, &opts);
        let shutdown = tokio::sync::watch::channel(false).0;
        let tls = match (opts.tls, opts.bind) {
            (true, BindMode::Loopback) => Some(crate::tls::FleetTls::generate(
                &listener::addresses(&spec, bmcs.len()),
            )?),
            _ => None,
        };
        let (infos, tasks) = match opts.bind {
            BindMode::Loopback => listen(&spec, &bmcs, &resolved, tls.as_ref(), &shutdown).await?,
            BindMode::InProcess => {
                let infos = bmcs
                    .iter()
                    .zip(&resolved)
                    .map(|(b, r)| build::info(b, r, None, false));
                (infos.collect(), Vec::new())
            }
        };
        let machines = bmcs
            .iter()
            .flat_map(|b| {
                b.systems
                    .iter()
                    .map(|s| (s.uuid.clone(), s.machine.clone()))
            })
            .collect::<HashMap<_, _>>();
        let by_name = bmcs
            .iter()
            .enumerate()
            .map(|(i, b)| (b.identity.name.clone(), i))
            .collect();
        let mut handle = FleetHandle {
            bmcs,
            infos,
            by_name,
            machines,
            metrics,
            control_url: String::new(),
            shutdown,
            tasks,
            certificate_pem: tls.map(|t| t.certificate_pem),
        };
        let control_addr = match (opts.control_addr, opts.bind) {
            (Some(a), _) => Some(a),
            (None, BindMode::Loopback) => Some(SocketAddr::from(([127, 0, 0, 1], 0))),
            (None, BindMode::InProcess) => None,
        };
        if let Some(addr) = control_addr {
            let (bound, task) =
                control::spawn(handle.control_state(), addr, handle.shutdown.subscribe()).await?;
            handle.control_url = format!("http://{bound}");
            handle.tasks.push(task);
        }
        Ok(handle)
    }
}

/// Every BMC with its machines, sharing one metrics registry and one event sender.
fn build_bmcs(
    spec: &FleetSpec,
    resolved: &[spec::ResolvedBmc],
    opts: &FleetOptions,
) -> (Vec<Arc<Bmc>>, Arc<Metrics>) {
    let clock = opts.clock.unwrap_or_else(Clock::wall);
    let metrics = Arc::new(Metrics::new());
    let sender = crate::bmc::events::EventSender::new(
        tokio::runtime::Handle::current(),
        opts.events_http
            .clone()
            .unwrap_or_else(http_client::HttpClient::hyper),
    );
    let https_only = opts.tls && spec.network.https_only;
    let bmcs: Vec<Arc<Bmc>> = resolved
        .iter()
        .map(|r| {
            let bmc = build::bmc(spec, r, opts, clock, metrics.clone(), sender.clone());
            bmc.https_only
                .store(https_only, std::sync::atomic::Ordering::Relaxed);
            bmc
        })
        .collect();
    metrics.bmcs.set(bmcs.len() as i64);
    metrics
        .systems
        .set(bmcs.iter().map(|b| b.systems.len() as i64).sum());
    (bmcs, metrics)
}

/// Binds every BMC's own loopback address and starts its accept loop.
async fn listen(
    spec: &FleetSpec,
    bmcs: &[Arc<Bmc>],
    resolved: &[spec::ResolvedBmc],
    tls: Option<&crate::tls::FleetTls>,
    shutdown: &tokio::sync::watch::Sender<bool>,
) -> Result<(Vec<BmcInfo>, Vec<tokio::task::JoinHandle<()>>), Error> {
    listener::raise_nofile_limit(bmcs.len() as u64 * 2 + 256);
    let mut infos = Vec::with_capacity(bmcs.len());
    let mut tasks = Vec::with_capacity(bmcs.len());
    for (i, bmc) in bmcs.iter().enumerate() {
        let addr = listener::address(spec, i);
        let acceptor = tls.map(|t| t.acceptor());
        let (bound, task) =
            listener::spawn(bmc.clone(), addr, acceptor, shutdown.subscribe()).await?;
        infos.push(build::info(bmc, &resolved[i], Some(bound), tls.is_some()));
        tasks.push(task);
    }
    Ok((infos, tasks))
}

impl Drop for FleetHandle {
    /// A dropped handle stops listening too (without waiting), so ports and addresses are freed.
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

/// A running fleet.
pub struct FleetHandle {
    bmcs: Vec<Arc<Bmc>>,
    infos: Vec<BmcInfo>,
    by_name: HashMap<String, usize>,
    machines: HashMap<String, MachineHandle>,
    metrics: Arc<Metrics>,
    control_url: String,
    shutdown: tokio::sync::watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    certificate_pem: Option<String>,
}

impl FleetHandle {
    pub fn bmcs(&self) -> Vec<BmcInfo> {
        self.infos.clone()
    }

    pub fn bmc_info(&self, name: &str) -> Option<&BmcInfo> {
        self.by_name.get(name).map(|i| &self.infos[*i])
    }

    pub fn machine(&self, system_uuid: &str) -> Option<MachineHandle> {
        self.machines.get(system_uuid).cloned()
    }

    /// Socket-free access to one BMC (a tower `Service`).
    pub fn router(&self, bmc_name: &str) -> Option<axum::Router> {
        self.bmc(bmc_name)
            .map(|b| crate::redfish::router(b.clone()))
    }

    /// The BMC as an in-process tower service that also plays `unreachable` faults (see [`BmcService`]).
    pub fn service(&self, bmc_name: &str) -> Option<BmcService> {
        self.bmc(bmc_name).map(|b| BmcService::new(b.clone()))
    }

    pub fn faults(&self, bmc_name: &str) -> Option<FaultHandle> {
        self.bmc(bmc_name).map(|b| b.faults.clone())
    }

    /// Base URL of the control and observation API (empty in-process without `control_addr`).
    pub fn control_url(&self) -> String {
        self.control_url.clone()
    }

    /// PEM of the fleet's self-signed certificate when TLS is on (clients that verify trust it).
    pub fn certificate_pem(&self) -> Option<&str> {
        self.certificate_pem.as_deref()
    }

    pub fn metrics_text(&self) -> String {
        self.metrics.encode()
    }

    fn bmc(&self, name: &str) -> Option<&Arc<Bmc>> {
        self.by_name.get(name).map(|i| &self.bmcs[*i])
    }

    fn control_state(&self) -> control::ControlState {
        control::ControlState {
            bmcs: self.bmcs.clone(),
            infos: Arc::new(self.infos.clone()),
            metrics: self.metrics.clone(),
        }
    }

    /// Stops listeners and the control API, and waits for their tasks.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        for task in std::mem::take(&mut self.tasks) {
            let _ = task.await;
        }
    }
}
