//! Turns a resolved fleet-file entry into a running BMC with its machines.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::identity;
use super::spec::{FleetSpec, ResolvedBmc};
use super::{BmcInfo, FleetOptions, SystemInfo};
use crate::bmc::events::EventSender;
use crate::bmc::{AccountStore, Bmc, BmcIdentity, Hardware, Role, SystemEntry};
use crate::fault::FaultHandle;
use crate::machine::{BootSettings, Latencies, MachineConfig, MachineHandle};
use crate::metrics::Metrics;
use crate::vendor::Vendor;
use clock::Clock;

/// BIOS attributes a freshly delivered machine has.
pub fn bios_defaults(vendor: Vendor) -> BTreeMap<String, Value> {
    let mut m = BTreeMap::new();
    m.insert(
        "BootMode".into(),
        json!(if vendor == Vendor::Supermicro {
            "Legacy"
        } else {
            "Uefi"
        }),
    );
    m.insert("ProcVirtualization".into(), json!("Enabled"));
    m.insert("LogicalProc".into(), json!("Enabled"));
    m.insert("SriovGlobalEnable".into(), json!("Disabled"));
    m.insert("SecureBoot".into(), json!("Disabled"));
    m.insert("PxeDev1EnDis".into(), json!("Enabled"));
    m.insert("BootSeqRetry".into(), json!("Enabled"));
    m.insert("NumaNodesPerSocket".into(), json!(1));
    m
}

pub fn bmc(
    spec: &FleetSpec,
    r: &ResolvedBmc,
    opts: &FleetOptions,
    clock: Clock,
    metrics: Arc<Metrics>,
    sender: EventSender,
) -> Arc<Bmc> {
    let seed = spec.seed;
    let name = r.name.as_str();
    let faults = FaultHandle::new(
        seed ^ (r.index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
        r.faults.clone(),
    );
    let lat = r.latencies;
    let latencies = Latencies {
        power_on: Duration::from_millis(lat.power_on_ms),
        power_off: Duration::from_millis(lat.power_off_ms),
        graceful_shutdown: Duration::from_millis(lat.graceful_shutdown_ms),
        post: Duration::from_millis(lat.post_ms),
        os_ignores_graceful_shutdown: lat.os_ignores_graceful_shutdown,
    };
    let systems = (0..r.systems)
        .map(|i| system(spec, r, i, latencies, opts, &clock, &faults))
        .collect();
    let mut accounts = vec![(
        r.credentials.username.clone(),
        r.credentials.password.clone(),
        Role::Administrator,
    )];
    accounts.extend(
        r.accounts
            .iter()
            .map(|a| (a.username.clone(), a.password.clone(), a.role)),
    );
    let identity = BmcIdentity {
        name: name.to_string(),
        index: r.index,
        vendor: r.vendor,
        manager_uuid: identity::uuid(seed, &[name, "manager"]),
        service_uuid: identity::uuid(seed, &[name, "service"]),
        manager_mac: identity::mac(seed, &r.mac_prefix, &[name, "bmc-nic"]),
        manager_serial: identity::serial(seed, r.vendor, &[name, "manager-serial"]),
    };
    Bmc::new(
        identity,
        systems,
        AccountStore::new(&accounts),
        faults,
        clock,
        metrics,
        sender,
        seed ^ r.index as u64,
    )
}

/// The `i`-th system of a BMC and its machine.
fn system(
    spec: &FleetSpec,
    r: &ResolvedBmc,
    i: usize,
    latencies: Latencies,
    opts: &FleetOptions,
    clock: &Clock,
    faults: &FaultHandle,
) -> SystemEntry {
    let (seed, name, hw) = (spec.seed, r.name.as_str(), r.hardware);
    let tag = i.to_string();
    let uuid = identity::uuid(seed, &[name, "system", &tag]);
    let macs: Vec<String> = (0..r.nics)
        .map(|n| identity::mac(seed, &r.mac_prefix, &[name, "nic", &tag, &n.to_string()]))
        .collect();
    let cfg = MachineConfig {
        uuid: uuid.clone(),
        macs: macs.clone(),
        architecture: r.architecture.clone(),
        latencies,
        boot_network: spec.boot_network.clone(),
        initial_power: r.initial_power,
        boot: BootSettings::new(
            r.vendor
                .has_boot_mode()
                .then(|| r.vendor.default_boot_mode()),
        ),
    };
    let machine = MachineHandle::new(
        cfg,
        *clock,
        faults.clone(),
        opts.network_boot.clone(),
        bios_defaults(r.vendor),
    );
    SystemEntry {
        id: r.vendor.system_id(i),
        chassis_id: r.vendor.chassis_id(i),
        uuid,
        serial: identity::serial(seed, r.vendor, &[name, "serial", &tag]),
        sku: format!(
            "SKU-{}",
            identity::serial(seed, r.vendor, &[name, "sku", &tag])
        ),
        macs,
        hardware: Hardware {
            cpu_sockets: hw.cpu_sockets,
            cores_per_socket: hw.cores_per_socket,
            memory_gib: hw.memory_gib,
            disks: hw.disks,
            disk_bytes: hw.disk_gb * 1_000_000_000,
        },
        machine,
        payload_cache: Default::default(),
    }
}

pub fn info(bmc: &Arc<Bmc>, r: &ResolvedBmc, addr: Option<SocketAddr>, tls: bool) -> BmcInfo {
    let (url, https_url) = match addr {
        Some(a) => (format!("http://{a}"), tls.then(|| format!("https://{a}"))),
        None => (format!("http://{}.sim.invalid", r.name), None),
    };
    BmcInfo {
        name: r.name.clone(),
        url,
        https_url,
        username: r.credentials.username.clone(),
        password: r.credentials.password.clone(),
        vendor: r.vendor,
        mac: bmc.identity.manager_mac.clone(),
        systems: bmc
            .systems
            .iter()
            .map(|s| SystemInfo {
                id: s.id.clone(),
                odata_id: format!("/redfish/v1/Systems/{}", s.id),
                uuid: s.uuid.clone(),
                serial: s.serial.clone(),
                macs: s.macs.clone(),
            })
            .collect(),
    }
}
