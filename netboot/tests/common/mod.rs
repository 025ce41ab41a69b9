//! A boot backend (sim-boot) on an embedded API server, and machines booting from it through [`Netboot`].
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{LocalObjectReference, Secret};
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use metal_api::{
    ObjectReference, Server, ServerBootConfiguration, ServerBootConfigurationSpec, ServerSpec,
};
use netboot::{Netboot, NetbootOptions};
use serde_json::json;
use sim_bmc::boot::{BootOutcome, BootTarget, BootedOs, NetworkBoot, NetworkBootRequest};
use sim_boot::{BackendHandle, BackendOptions, Misbehaviour, MisbehaviourOptions};

pub const NS: &str = "default";

pub struct Stack {
    pub api: apiserver::Handle,
    pub client: Client,
    pub backend: BackendHandle,
    pub netboot: Netboot,
}

pub fn backend_options(mode: Misbehaviour) -> BackendOptions {
    let mut options = BackendOptions::default();
    options.controller.misbehaviour = mode;
    options.controller.misbehaviour_options = MisbehaviourOptions {
        slow_delay: Duration::from_secs(2),
        lie_window: Duration::from_secs(60),
        flap_interval: Duration::from_millis(200),
        ..Default::default()
    };
    options.controller.max_backoff = Duration::from_secs(2);
    options
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

impl Stack {
    pub fn sbcs(&self) -> Api<ServerBootConfiguration> {
        Api::namespaced(self.client.clone(), NS)
    }

    pub async fn secret(&self, name: &str, user: &str) {
        let butane =
            format!("variant: fcos\nversion: 1.3.0\npasswd:\n  users:\n    - name: {user}\n");
        let data: BTreeMap<String, ByteString> =
            [("ignition", butane.as_str()), ("format", "fcos")]
                .iter()
                .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
                .collect();
        let secret = Secret {
            metadata: kube::api::ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            data: Some(data),
            ..Default::default()
        };
        Api::<Secret>::namespaced(self.client.clone(), NS)
            .patch(
                name,
                &PatchParams::apply("test").force(),
                &Patch::Apply(&secret),
            )
            .await
            .expect("Secret applied");
    }

    /// Creates the Server, SBC (and optionally its Secret), then references the SBC from the Server — the
    /// order metal-operator uses.
    pub async fn configure(&self, name: &str, uuid: &str, image: &str, secret: Option<&str>) {
        let server = Server::new(
            name,
            ServerSpec {
                system_uuid: uuid.into(),
                ..Default::default()
            },
        );
        Api::<Server>::all(self.client.clone())
            .create(&PostParams::default(), &server)
            .await
            .expect("Server created");
        let spec = ServerBootConfigurationSpec {
            server_ref: LocalObjectReference { name: name.into() },
            image: Some(image.into()),
            ignition_secret_ref: secret.map(|s| LocalObjectReference { name: s.into() }),
        };
        self.sbcs()
            .create(
                &PostParams::default(),
                &ServerBootConfiguration::new(name, spec),
            )
            .await
            .expect("SBC created");
        let patch = json!({"spec": {"bootConfigurationRef": ObjectReference::new(NS, name)}});
        Api::<Server>::all(self.client.clone())
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .expect("Server patched");
    }

    pub async fn set_image(&self, name: &str, image: &str) {
        let patch = json!({"spec": {"image": image}});
        self.sbcs()
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
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
        let mac = mac_of(uuid);
        let boot_url = match target {
            BootTarget::Pxe => format!("{}/ipxe?uuid={uuid}&mac={mac}", self.backend.url()),
            BootTarget::UefiHttp => format!("{}/httpboot?uuid={uuid}", self.backend.url()),
        };
        NetworkBootRequest {
            system_uuid: uuid.into(),
            macs: vec![mac],
            architecture: arch.into(),
            target,
            boot_url: Some(boot_url),
        }
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
