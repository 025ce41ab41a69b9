//! What a harness (scenarios, conformance) needs to run real machines beside simulated ones: the test OS
//! images served from an OCI registry next to the standard generated images (same names, so `${registry}`
//! references and the operator's probe image resolve to bootable images), and the per-machine driver switch.

use std::sync::Arc;

use sim_bmc::boot::NetworkBoot;
use sim_boot::oci::{BlobSizes, Catalog, Registry};
use tokio::task::JoinHandle;

use crate::driver::{DriverSwitch, QemuMachines, QemuOptions};
use crate::testos::{self, RealFiles};

/// The seed sim-boot's own embedded registry uses, so the generated images match it byte for byte.
const REGISTRY_SEED: u64 = 1;

/// Real machines for one run. Dropping it ends every VM.
pub struct RealMachines {
    pub driver: QemuMachines,
    switch: Arc<DriverSwitch>,
    registry_host: String,
    registry: JoinHandle<()>,
}

impl Drop for RealMachines {
    fn drop(&mut self) {
        self.driver.stop_all();
        self.registry.abort();
    }
}

impl RealMachines {
    /// Why real machines cannot run here, or `None`.
    pub fn unavailable(options: &QemuOptions) -> Option<String> {
        if let Some(why) = crate::driver::unavailable(&options.binary.to_string_lossy()) {
            return Some(why);
        }
        RealFiles::find().err()
    }

    /// Builds the test OS, serves the registry on `127.0.0.1:0` and starts the driver; machines not
    /// assigned to QEMU boot through `simulated`.
    pub async fn start(
        options: QemuOptions,
        simulated: Arc<dyn NetworkBoot>,
    ) -> Result<RealMachines, String> {
        if let Some(why) = Self::unavailable(&options) {
            return Err(format!("qemu machines cannot run here: {why}"));
        }
        let files = RealFiles::find()?;
        let catalog = tokio::task::spawn_blocking(move || {
            let mut catalog = Catalog::standard(REGISTRY_SEED, BlobSizes::default());
            testos::add_to_catalog(&mut catalog, &files, &testos::standard_images())?;
            Ok::<_, String>(catalog)
        })
        .await
        .map_err(|e| format!("building the test OS: {e}"))??;
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(|e| format!("binding the test OS registry: {e}"))?;
        let registry_host = listener
            .local_addr()
            .map_err(|e| e.to_string())?
            .to_string();
        let router = Registry::new(catalog).router();
        let registry = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        let driver = QemuMachines::start(options).await?;
        let switch = Arc::new(DriverSwitch::new(driver.clone(), simulated));
        Ok(RealMachines {
            driver,
            switch,
            registry_host,
            registry,
        })
    }

    /// `host:port` of the registry serving the test OS (and the standard images).
    pub fn registry_host(&self) -> &str {
        &self.registry_host
    }

    /// The fleet's network boot: QEMU for assigned machines, the simulated firmware for the rest.
    pub fn network_boot(&self) -> Arc<dyn NetworkBoot> {
        self.switch.clone()
    }

    /// Assigns the QEMU machines (System UUID, memory override), once the fleet exists.
    pub fn assign(&self, machines: impl IntoIterator<Item = (String, Option<u32>)>) {
        let mut uuids = Vec::new();
        for (uuid, memory) in machines {
            if let Some(mib) = memory {
                self.driver.set_memory(&uuid, mib);
            }
            uuids.push(uuid);
        }
        self.switch.set_qemu_machines(uuids);
    }

    /// Boot figures for a report: `qemu.*` keys.
    pub fn figures(&self) -> std::collections::BTreeMap<String, f64> {
        let mut out = std::collections::BTreeMap::new();
        let figures = self.driver.figures();
        let mut ms: Vec<f64> = figures
            .iter()
            .map(|f| f.to_marker.as_secs_f64() * 1000.0)
            .collect();
        ms.sort_by(f64::total_cmp);
        out.insert("qemu.boots".into(), ms.len() as f64);
        if let (Some(max), false) = (ms.last(), ms.is_empty()) {
            out.insert("qemu.powerOnToMarkerP50Ms".into(), ms[ms.len() / 2]);
            out.insert("qemu.powerOnToMarkerMaxMs".into(), *max);
        }
        if let Some(rss) = figures.iter().filter_map(|f| f.rss_kib).max() {
            out.insert("qemu.rssMaxKiB".into(), rss as f64);
        }
        out.insert("qemu.peakRunning".into(), self.driver.peak_running() as f64);
        out
    }
}
