//! A boot backend (sim-boot) on an embedded API server, and machines booting from it through [`Netboot`].
#![allow(dead_code)]

use std::time::Duration;

use kube::{Api, Client};
use metal_api::ServerBootConfiguration;
use netboot::{Netboot, NetbootOptions};
use sim_bmc::boot::{BootOutcome, BootTarget, BootedOs, NetworkBoot, NetworkBootRequest};
use sim_boot::{BackendHandle, BackendOptions, Misbehaviour};
use testbed::objects;

pub const NS: &str = "default";

pub struct Stack {
    pub api: apiserver::Handle,
    pub client: Client,
    pub backend: BackendHandle,
    pub netboot: Netboot,
}

pub fn backend_options(mode: Misbehaviour) -> BackendOptions {
    testbed::objects::quick_sim_boot(mode, Duration::from_secs(60))
}

pub async fn stack(mode: Misbehaviour) -> Stack {
    stack_with(backend_options(mode)).await
}

pub async fn stack_with(options: BackendOptions) -> Stack {
    let mut bed = testbed::Testbed::builder()
        .backend(testbed::Backend::InProcess(options.into()))
        .start()
        .await
        .expect("API server and backend start");
    Stack {
        api: bed.api.take_handle().expect("embedded API server"),
        client: bed.client.clone(),
        backend: bed.take_sim_boot().expect("in-process sim-boot"),
        netboot: Netboot::new(NetbootOptions::default()),
    }
}

pub fn mac_of(uuid: &str) -> String {
    let tail = &uuid.replace('-', "")[20..];
    format!(
        "02:{}:{}:{}:{}:{}",
        &tail[..2],
        &tail[2..4],
        &tail[4..6],
        &tail[6..8],
        &tail[8..10]
    )
}

/// What the machine with `uuid` sends when DHCP points its `target` firmware at `boot_url`.
pub fn boot_request(
    uuid: &str,
    arch: &str,
    target: BootTarget,
    boot_url: String,
) -> NetworkBootRequest {
    NetworkBootRequest {
        system_uuid: uuid.into(),
        macs: vec![mac_of(uuid)],
        architecture: arch.into(),
        target,
        boot_url: Some(boot_url),
    }
}

impl Stack {
    pub fn sbcs(&self) -> Api<ServerBootConfiguration> {
        Api::namespaced(self.client.clone(), NS)
    }

    pub async fn secret(&self, name: &str, user: &str) {
        let butane = objects::butane_with_user(user);
        objects::apply_secret(
            &self.client,
            NS,
            name,
            &[("ignition", &butane), ("format", "fcos")],
        )
        .await
        .expect("Secret applied");
    }

    /// Creates the Server, SBC (and optionally its Secret), then references the SBC from the Server — the
    /// order metal-operator uses.
    pub async fn configure(&self, name: &str, uuid: &str, image: &str, secret: Option<&str>) {
        objects::create_server(&self.client, name, uuid)
            .await
            .expect("Server created");
        objects::create_sbc(&self.client, NS, name, name, image, secret)
            .await
            .expect("SBC created");
        objects::reference_sbc(&self.client, name, NS, name)
            .await
            .expect("Server patched");
    }

    pub async fn set_image(&self, name: &str, image: &str) {
        objects::set_sbc_image(&self.client, NS, name, image)
            .await
            .expect("SBC patched");
    }

    /// Waits, like metal-operator's gate, for `state == Ready` at the current generation (via
    /// observedGeneration on the backend's conditions); returns the SBC, or None after `timeout`.
    pub async fn ready(&self, name: &str, timeout: Duration) -> Option<ServerBootConfiguration> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let sbc = self.sbcs().get(name).await.expect("SBC readable");
            if is_ready(&sbc) {
                return Some(sbc);
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    pub fn request(&self, uuid: &str, arch: &str, target: BootTarget) -> NetworkBootRequest {
        let boot_url = match target {
            BootTarget::Pxe => format!(
                "{}/ipxe?uuid={uuid}&mac={}",
                self.backend.url(),
                mac_of(uuid)
            ),
            BootTarget::UefiHttp => format!("{}/httpboot?uuid={uuid}", self.backend.url()),
        };
        boot_request(uuid, arch, target, boot_url)
    }

    pub async fn boot(&self, uuid: &str) -> BootOutcome {
        self.netboot
            .boot(self.request(uuid, "amd64", BootTarget::Pxe))
            .await
    }
}

pub fn is_ready(sbc: &ServerBootConfiguration) -> bool {
    let status = sbc.status.clone().unwrap_or_default();
    status.state.as_ref().map(|s| s.as_str()) == Some("Ready")
        && !status.conditions.is_empty()
        && status.conditions.iter().all(|c| {
            c.observed_generation == sbc.metadata.generation || c.type_ == "BootStateReceived"
        })
}

pub fn booted(outcome: BootOutcome) -> BootedOs {
    match outcome {
        BootOutcome::Booted(os) => os,
        BootOutcome::Failed { reason } => panic!("boot failed: {reason}"),
    }
}

pub fn failed(outcome: BootOutcome) -> String {
    match outcome {
        BootOutcome::Booted(os) => panic!(
            "expected a boot failure, booted {} ({:?})",
            os.image, os.image_digest
        ),
        BootOutcome::Failed { reason } => reason,
    }
}
