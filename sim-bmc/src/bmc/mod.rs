//! One simulated BMC: identity, its systems (each with a machine), accounts, sessions, tasks and subscriptions.
//! The Redfish HTTP layer (`crate::redfish`) renders and mutates this state.

pub mod accounts;
pub mod events;
pub mod tasks;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::fault::FaultHandle;
use crate::machine::MachineHandle;
use crate::metrics::Metrics;
use crate::vendor::Vendor;
use clock::Clock;

pub use accounts::{AccountStore, Principal, Privilege, Role, SessionStore};

/// Hardware inventory of a simulated system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hardware {
    pub cpu_sockets: u32,
    pub cores_per_socket: u32,
    pub memory_gib: u32,
    pub disks: u32,
    pub disk_bytes: u64,
}

/// A Redfish ComputerSystem and the machine behind it.
#[derive(Debug, Clone)]
pub struct SystemEntry {
    pub id: String,
    pub chassis_id: String,
    pub uuid: String,
    pub serial: String,
    pub sku: String,
    pub macs: Vec<String>,
    pub hardware: Hardware,
    pub machine: MachineHandle,
    /// The last rendered System payload and the state it was rendered from.
    pub payload_cache: Arc<Mutex<Option<CachedPayload>>>,
}

/// A serialized payload with its ETag, valid while `key` is unchanged.
#[derive(Debug, Clone)]
pub struct CachedPayload {
    pub key: (u64, u64, u64),
    pub body: bytes::Bytes,
    pub etag: String,
    pub link: Option<String>,
}

/// Mutable manager (BMC firmware) state.
#[derive(Debug, Clone)]
pub struct ManagerState {
    pub firmware_version: String,
    pub bios_version: String,
    pub last_reset: DateTime<Utc>,
    /// While set and in the future, the BMC is rebooting and answers 503.
    pub rebooting_until: Option<tokio::time::Instant>,
}

/// Identity of a BMC.
#[derive(Debug, Clone)]
pub struct BmcIdentity {
    pub name: String,
    pub index: usize,
    pub vendor: Vendor,
    pub manager_uuid: String,
    pub service_uuid: String,
    pub manager_mac: String,
    pub manager_serial: String,
}

pub struct Bmc {
    pub identity: BmcIdentity,
    pub systems: Vec<SystemEntry>,
    pub accounts: AccountStore,
    pub sessions: SessionStore,
    pub subscriptions: events::SubscriptionStore,
    pub tasks: tasks::TaskStore,
    pub faults: FaultHandle,
    pub clock: Clock,
    pub manager: Mutex<ManagerState>,
    pub metrics: Arc<Metrics>,
    /// How long a `Manager.Reset` keeps the BMC away.
    pub manager_reset_time: Duration,
    /// Like real BMCs: requests with credentials over plain HTTP are redirected to HTTPS.
    pub https_only: AtomicBool,
    /// Bumped when manager state (firmware versions) changes.
    pub manager_version: AtomicU64,
    etag_salt: AtomicU64,
    /// Held from an `If-Match` check through the write it guards, so that of concurrent writers
    /// carrying the same ETag only the first succeeds (the others see the new ETag: 412).
    conditional_writes: Mutex<()>,
}

impl Bmc {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        identity: BmcIdentity,
        systems: Vec<SystemEntry>,
        accounts: AccountStore,
        faults: FaultHandle,
        clock: Clock,
        metrics: Arc<Metrics>,
        events: events::EventSender,
        seed: u64,
    ) -> Arc<Self> {
        let vendor = identity.vendor;
        let now = clock.now_chrono();
        let bmc = Arc::new(Self {
            identity,
            systems,
            accounts,
            sessions: SessionStore::new(seed),
            subscriptions: events::SubscriptionStore::new(events),
            tasks: tasks::TaskStore::default(),
            faults,
            clock,
            manager: Mutex::new(ManagerState {
                firmware_version: vendor.manager_firmware().to_string(),
                bios_version: vendor.bios_version().to_string(),
                last_reset: now,
                rebooting_until: None,
            }),
            metrics,
            manager_reset_time: Duration::from_millis(500),
            https_only: AtomicBool::new(false),
            manager_version: AtomicU64::new(0),
            etag_salt: AtomicU64::new(0),
            conditional_writes: Mutex::new(()),
        });
        for system in &bmc.systems {
            let weak = Arc::downgrade(&bmc);
            let system_id = system.id.clone();
            system.machine.set_event_hook(Arc::new(move |event| {
                if let Some(bmc) = weak.upgrade() {
                    bmc.metrics.machine_event(&event.kind);
                    bmc.subscriptions.publish(&bmc, &system_id, event);
                }
            }));
        }
        bmc
    }

    pub fn vendor(&self) -> Vendor {
        self.identity.vendor
    }

    pub fn system(&self, id: &str) -> Option<&SystemEntry> {
        self.systems.iter().find(|s| s.id == id)
    }

    pub fn chassis(&self, id: &str) -> Option<&SystemEntry> {
        self.systems.iter().find(|s| s.chassis_id == id)
    }

    pub fn manager_state(&self) -> ManagerState {
        self.manager
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Whether the BMC is in the middle of its own reboot.
    pub fn rebooting(&self) -> bool {
        let mut m = self.manager.lock().unwrap_or_else(|e| e.into_inner());
        match m.rebooting_until {
            Some(until) if tokio::time::Instant::now() < until => true,
            Some(_) => {
                m.rebooting_until = None;
                false
            }
            None => false,
        }
    }

    /// Starts a BMC reboot: sessions are dropped and requests fail until it is back.
    pub fn reboot_manager(&self) {
        let mut m = self.manager.lock().unwrap_or_else(|e| e.into_inner());
        m.rebooting_until = Some(tokio::time::Instant::now() + self.manager_reset_time);
        m.last_reset = self.clock.now_chrono();
        drop(m);
        self.manager_version.fetch_add(1, Ordering::Relaxed);
        for s in self.sessions.list() {
            self.sessions.delete(&s.id);
        }
    }

    /// Serialises this BMC's writes (see `conditional_writes`). A poisoned lock guards no data: keep going.
    pub fn lock_writes(&self) -> std::sync::MutexGuard<'_, ()> {
        self.conditional_writes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A fresh salt per call when ETag churn is injected, zero otherwise.
    pub fn etag_salt(&self, churn: bool) -> u64 {
        if churn {
            self.etag_salt.fetch_add(1, Ordering::Relaxed) + 1
        } else {
            0
        }
    }
}
