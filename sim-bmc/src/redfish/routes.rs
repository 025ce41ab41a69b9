//! URI → resource resolution and the methods each resource allows.

use http::{HeaderValue, Method};

use crate::bmc::Bmc;

/// A resolved Redfish resource. Indices point into `Bmc::systems`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Versions,
    Root,
    Metadata,
    OData,
    Systems,
    System(usize),
    SystemReset(usize),
    ResetActionInfo(usize),
    Processors(usize),
    Processor(usize, usize),
    Memory(usize),
    Dimm(usize, usize),
    Storages(usize),
    Storage(usize),
    Drive(usize, usize),
    Volumes(usize),
    Volume(usize),
    SimpleStorages(usize),
    SimpleStorage(usize),
    EthernetInterfaces(usize),
    EthernetInterface(usize, usize),
    Bios(usize),
    BiosSettings(usize),
    BootOptions(usize),
    BootOption(usize, usize),
    Managers,
    Manager,
    ManagerReset,
    ManagerNetworkProtocol,
    ManagerEthernetInterfaces,
    ManagerEthernetInterface,
    ChassisCollection,
    Chassis(usize),
    SessionService,
    Sessions,
    Session(String),
    AccountService,
    Accounts,
    Account(String),
    Roles,
    Role(String),
    TaskService,
    Tasks,
    Task(String),
    TaskMonitor(String),
    EventService,
    Subscriptions,
    Subscription(String),
    SubmitTestEvent,
    UpdateService,
    SimpleUpdate,
    FirmwareInventory,
    Firmware(String),
}

/// Names of the firmware inventory members.
pub const FIRMWARE_ITEMS: &[&str] = &["BMC", "BIOS"];

fn index_in(n: usize, s: &str) -> Option<usize> {
    let i: usize = s.parse().ok()?;
    (i < n).then_some(i)
}

/// Resolves `/redfish[/v1/...]`; `None` is a 404.
pub fn resolve(bmc: &Bmc, path: &str) -> Option<Route> {
    let path = path.trim_end_matches('/');
    if path == "/redfish" {
        return Some(Route::Versions);
    }
    let rest = path.strip_prefix("/redfish/v1")?;
    let segs: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    let manager_id = bmc.vendor().manager_id();
    use Route as R;
    Some(match segs.as_slice() {
        [] => R::Root,
        ["$metadata"] => R::Metadata,
        ["odata"] => R::OData,
        ["Systems"] => R::Systems,
        ["Systems", id, rest @ ..] => {
            let i = bmc.systems.iter().position(|s| s.id == *id)?;
            resolve_system(bmc, i, rest)?
        }
        ["Managers"] => R::Managers,
        ["Managers", id] if *id == manager_id => R::Manager,
        ["Managers", id, "Actions", "Manager.Reset"] if *id == manager_id => R::ManagerReset,
        ["Managers", id, "NetworkProtocol"] if *id == manager_id => R::ManagerNetworkProtocol,
        ["Managers", id, "EthernetInterfaces"] if *id == manager_id => R::ManagerEthernetInterfaces,
        ["Managers", id, "EthernetInterfaces", "1"] if *id == manager_id => {
            R::ManagerEthernetInterface
        }
        ["Chassis"] => R::ChassisCollection,
        ["Chassis", id] => R::Chassis(bmc.systems.iter().position(|s| s.chassis_id == *id)?),
        ["SessionService"] => R::SessionService,
        ["SessionService", "Sessions"] | ["SessionService", "Sessions", "Members"] => R::Sessions,
        ["SessionService", "Sessions", id] => R::Session(id.to_string()),
        ["AccountService"] => R::AccountService,
        ["AccountService", "Accounts"] | ["AccountService", "Accounts", "Members"] => R::Accounts,
        ["AccountService", "Accounts", id] => R::Account(id.to_string()),
        ["AccountService", "Roles"] => R::Roles,
        ["AccountService", "Roles", id] => R::Role(id.to_string()),
        ["TaskService"] => R::TaskService,
        ["TaskService", "Tasks"] => R::Tasks,
        ["TaskService", "Tasks", id] => R::Task(id.to_string()),
        ["TaskService", "TaskMonitors", id] => R::TaskMonitor(id.to_string()),
        ["EventService"] => R::EventService,
        ["EventService", "Subscriptions"] | ["EventService", "Subscriptions", "Members"] => {
            R::Subscriptions
        }
        ["EventService", "Subscriptions", id] => R::Subscription(id.to_string()),
        ["EventService", "Actions", "EventService.SubmitTestEvent"] => R::SubmitTestEvent,
        ["UpdateService"] => R::UpdateService,
        ["UpdateService", "Actions", "UpdateService.SimpleUpdate"] => R::SimpleUpdate,
        ["UpdateService", "FirmwareInventory"] => R::FirmwareInventory,
        ["UpdateService", "FirmwareInventory", id] if FIRMWARE_ITEMS.contains(id) => {
            R::Firmware(id.to_string())
        }
        _ => return None,
    })
}

/// Resources below `/redfish/v1/Systems/{id}`.
fn resolve_system(bmc: &Bmc, i: usize, rest: &[&str]) -> Option<Route> {
    use Route as R;
    let hw = &bmc.systems[i].hardware;
    Some(match rest {
        [] => R::System(i),
        ["Actions", "ComputerSystem.Reset"] => R::SystemReset(i),
        ["ResetActionInfo"] => R::ResetActionInfo(i),
        ["Processors"] => R::Processors(i),
        ["Processors", p] => R::Processor(
            i,
            index_in(hw.cpu_sockets as usize, p.strip_prefix("CPU")?)?,
        ),
        ["Memory"] => R::Memory(i),
        ["Memory", d] => R::Dimm(
            i,
            index_in(dimm_count(hw.memory_gib), d.strip_prefix("DIMM")?)?,
        ),
        ["Storage"] => R::Storages(i),
        ["Storage", "RAID1"] => R::Storage(i),
        ["Storage", "RAID1", "Drives", d] => {
            R::Drive(i, index_in(hw.disks as usize, d.strip_prefix("Disk")?)?)
        }
        ["Storage", "RAID1", "Volumes"] => R::Volumes(i),
        ["Storage", "RAID1", "Volumes", "1"] => R::Volume(i),
        ["SimpleStorage"] => R::SimpleStorages(i),
        ["SimpleStorage", "1"] => R::SimpleStorage(i),
        ["EthernetInterfaces"] => R::EthernetInterfaces(i),
        ["EthernetInterfaces", n] => R::EthernetInterface(
            i,
            index_in(bmc.systems[i].macs.len(), n.strip_prefix("NIC")?)?,
        ),
        ["Bios"] => R::Bios(i),
        ["Bios", "Settings"] => R::BiosSettings(i),
        ["BootOptions"] => R::BootOptions(i),
        ["BootOptions", o] => R::BootOption(
            i,
            crate::machine::BOOT_OPTIONS
                .iter()
                .position(|(r, _, _)| r == o)?,
        ),
        _ => return None,
    })
}

/// DIMMs of 32 GiB each (at least one).
pub fn dimm_count(memory_gib: u32) -> usize {
    (memory_gib / 32).max(1) as usize
}

impl Route {
    /// The methods this resource supports (HEAD wherever GET is).
    pub fn allowed(&self) -> &'static [Method] {
        self.methods().0
    }

    /// The `Allow` header value, prebuilt for each method set.
    pub fn allow_header(&self) -> HeaderValue {
        HeaderValue::from_static(self.methods().1)
    }

    fn methods(&self) -> (&'static [Method], &'static str) {
        use Route as R;
        const GET: (&[Method], &str) = (&[Method::GET, Method::HEAD], "GET, HEAD");
        const GET_PATCH: (&[Method], &str) = (
            &[Method::GET, Method::HEAD, Method::PATCH],
            "GET, HEAD, PATCH",
        );
        const GET_POST: (&[Method], &str) = (
            &[Method::GET, Method::HEAD, Method::POST],
            "GET, HEAD, POST",
        );
        const GET_DELETE: (&[Method], &str) = (
            &[Method::GET, Method::HEAD, Method::DELETE],
            "GET, HEAD, DELETE",
        );
        const GET_PATCH_DELETE: (&[Method], &str) = (
            &[Method::GET, Method::HEAD, Method::PATCH, Method::DELETE],
            "GET, HEAD, PATCH, DELETE",
        );
        const POST: (&[Method], &str) = (&[Method::POST], "POST");
        match self {
            R::System(_)
            | R::BiosSettings(_)
            | R::SessionService
            | R::EventService
            | R::Chassis(_) => GET_PATCH,
            R::Sessions | R::Accounts | R::Subscriptions => GET_POST,
            R::Session(_) => GET_DELETE,
            R::Account(_) | R::Subscription(_) => GET_PATCH_DELETE,
            R::SystemReset(_) | R::ManagerReset | R::SubmitTestEvent | R::SimpleUpdate => POST,
            _ => GET,
        }
    }

    /// Resources readable without credentials.
    pub fn is_public(&self, method: &Method) -> bool {
        match self {
            Route::Versions | Route::Root | Route::Metadata | Route::OData => true,
            Route::Sessions => method == Method::POST,
            _ => false,
        }
    }
}
