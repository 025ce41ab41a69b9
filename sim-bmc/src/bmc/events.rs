//! EventService subscriptions and the push of machine events (power, boot) to subscribers' destinations.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_client::HttpClient;
use serde_json::json;

use super::Bmc;
use crate::machine::{MachineEvent, MachineEventKind};

/// One `EventDestination`.
#[derive(Debug, Clone, PartialEq)]
pub struct Subscription {
    pub id: String,
    pub destination: String,
    pub context: String,
    pub protocol: String,
    pub event_format_type: String,
    pub event_types: Vec<String>,
    pub retry_policy: String,
}

/// Delivers event payloads over HTTP (one shared client for the whole fleet): real sockets, or an in-process
/// network's client so events reach an in-process receiver.
#[derive(Clone)]
pub struct EventSender {
    client: HttpClient,
    /// Deliveries are spawned here, so events raised outside the runtime (e.g. a test thread) still go out.
    runtime: tokio::runtime::Handle,
    delivered: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
}

/// Per-delivery bound; a slow receiver must not pile up tasks.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(5);
const DELIVERY_ATTEMPTS: u32 = 3;

impl EventSender {
    /// Sends through `client` (its timeout is replaced by the per-delivery bound).
    pub fn new(runtime: tokio::runtime::Handle, client: HttpClient) -> Self {
        Self {
            client: client.with_timeout(DELIVERY_TIMEOUT),
            runtime,
            delivered: Arc::default(),
            failed: Arc::default(),
        }
    }

    pub fn delivered(&self) -> u64 {
        self.delivered.load(Ordering::Relaxed)
    }

    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }

    /// POSTs `body` to `destination` in the background, retrying a few times.
    pub fn deliver(&self, destination: String, body: Bytes) {
        let this = self.clone();
        self.runtime.spawn(async move {
            for attempt in 0..DELIVERY_ATTEMPTS {
                match this.client.post_json(&destination, body.clone()).await {
                    Ok(response) if response.status.is_success() => {
                        this.delivered.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                    _ => tokio::time::sleep(Duration::from_millis(200 << attempt)).await,
                }
            }
            this.failed.fetch_add(1, Ordering::Relaxed);
        });
    }
}

pub struct SubscriptionStore {
    subs: Mutex<Vec<Subscription>>,
    next_id: AtomicU64,
    next_event: AtomicU64,
    sender: EventSender,
}

impl SubscriptionStore {
    pub fn new(sender: EventSender) -> Self {
        Self {
            subs: Mutex::new(Vec::new()),
            next_id: AtomicU64::new(0),
            next_event: AtomicU64::new(0),
            sender,
        }
    }

    pub fn list(&self) -> Vec<Subscription> {
        self.subs.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn get(&self, id: &str) -> Option<Subscription> {
        self.list().into_iter().find(|s| s.id == id)
    }

    /// Adds a subscription, or returns the existing one with the same destination and context as `Err`.
    pub fn create(&self, mut sub: Subscription) -> Result<Subscription, Subscription> {
        let mut subs = self.subs.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(existing) = subs
            .iter()
            .find(|s| s.destination == sub.destination && s.context == sub.context)
        {
            return Err(existing.clone());
        }
        sub.id = (self.next_id.fetch_add(1, Ordering::Relaxed) + 1).to_string();
        subs.push(sub.clone());
        Ok(sub)
    }

    pub fn delete(&self, id: &str) -> bool {
        let mut subs = self.subs.lock().unwrap_or_else(|e| e.into_inner());
        let before = subs.len();
        subs.retain(|s| s.id != id);
        before != subs.len()
    }

    pub fn update_context(&self, id: &str, context: &str) {
        let mut subs = self.subs.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = subs.iter_mut().find(|s| s.id == id) {
            s.context = context.to_string();
        }
    }

    /// Turns a machine event into a Redfish Event and sends it to every matching subscriber.
    pub fn publish(&self, bmc: &Bmc, system_id: &str, event: &MachineEvent) {
        let subs = self.list();
        if subs.is_empty() {
            return;
        }
        let Some((message_id, message, severity)) = describe(&event.kind) else {
            return;
        };
        let origin = format!("/redfish/v1/Systems/{system_id}");
        for sub in subs.iter().filter(|s| s.event_format_type == "Event") {
            let event_id = self.next_event.fetch_add(1, Ordering::Relaxed) + 1;
            let body = json!({
                "@odata.type": "#Event.v1_7_0.Event",
                "Id": event_id.to_string(),
                "Name": "Event Array",
                "Context": sub.context,
                "Events": [{
                    "EventType": "Alert",
                    "EventId": event_id.to_string(),
                    "EventTimestamp": event.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    "Severity": severity,
                    "MessageSeverity": severity,
                    "Message": message,
                    "MessageId": message_id,
                    "MessageArgs": [origin.clone()],
                    "OriginOfCondition": {"@odata.id": origin.clone()},
                    "Oem": {"SimBmc": {"Bmc": bmc.identity.name, "SystemUUID": event.system_uuid, "Seq": event.seq}},
                }],
            });
            self.sender
                .deliver(sub.destination.clone(), Bytes::from(body.to_string()));
        }
    }
}

fn describe(kind: &MachineEventKind) -> Option<(&'static str, String, &'static str)> {
    Some(match kind {
        MachineEventKind::PowerStateChanged { from, to } => (
            "ResourceEvent.1.0.ResourceChanged",
            format!(
                "Power state changed from {} to {}.",
                from.as_str(),
                to.as_str()
            ),
            "OK",
        ),
        MachineEventKind::BootAttempt { target, .. } => (
            "ResourceEvent.1.0.ResourceChanged",
            format!("Boot attempt from {target}."),
            "OK",
        ),
        MachineEventKind::BootSucceeded { os } => (
            "ResourceEvent.1.0.ResourceChanged",
            format!("Booted {} from {}.", os.image, os.booted_from),
            "OK",
        ),
        MachineEventKind::BootFailed { reason } => (
            "ResourceEvent.1.0.ResourceErrorsDetected",
            format!("Boot failed: {reason}."),
            "Warning",
        ),
        MachineEventKind::NoBootDevice => (
            "ResourceEvent.1.0.ResourceErrorsDetected",
            "No boot device available.".to_string(),
            "Critical",
        ),
        _ => return None,
    })
}
