//! Objects created the way metal-operator and an admin create them, for tests and benches that play the operator's
//! side against a backend: Servers, ServerBootConfigurations, the reference between them, ignition Secrets.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context as _;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{LocalObjectReference, Secret};
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use metal_api::{
    ObjectReference, Server, ServerBootConfiguration, ServerBootConfigurationSpec, ServerSpec,
};
use sim_boot::{BackendOptions, Misbehaviour, MisbehaviourOptions};

/// sim-boot in `mode` with misbehaviour timings short enough for tests (a lie lasts `lie_window`).
pub fn quick_sim_boot(mode: Misbehaviour, lie_window: Duration) -> BackendOptions {
    let mut options = BackendOptions::default();
    options.controller.misbehaviour = mode;
    options.controller.misbehaviour_options = MisbehaviourOptions {
        slow_delay: Duration::from_secs(2),
        lie_window,
        flap_interval: Duration::from_millis(200),
        ..Default::default()
    };
    options.controller.max_backoff = Duration::from_secs(2);
    options
}

/// A Server for the machine with `uuid`.
pub async fn create_server(
    client: &kube::Client,
    name: &str,
    uuid: &str,
) -> anyhow::Result<Server> {
    let server = Server::new(
        name,
        ServerSpec {
            system_uuid: uuid.into(),
            ..Default::default()
        },
    );
    Api::<Server>::all(client.clone())
        .create(&PostParams::default(), &server)
        .await
        .with_context(|| format!("creating Server {name}"))
}

/// A ServerBootConfiguration `ns/name` for `server` booting `image`, with an optional ignition Secret.
pub async fn create_sbc(
    client: &kube::Client,
    ns: &str,
    name: &str,
    server: &str,
    image: &str,
    secret: Option<&str>,
) -> anyhow::Result<ServerBootConfiguration> {
    let spec = ServerBootConfigurationSpec {
        server_ref: LocalObjectReference {
            name: server.into(),
        },
        image: Some(image.into()),
        ignition_secret_ref: secret.map(|s| LocalObjectReference { name: s.into() }),
    };
    Api::<ServerBootConfiguration>::namespaced(client.clone(), ns)
        .create(
            &PostParams::default(),
            &ServerBootConfiguration::new(name, spec),
        )
        .await
        .with_context(|| format!("creating ServerBootConfiguration {ns}/{name}"))
}

/// Points `Server.spec.bootConfigurationRef` at `ns/sbc`, as metal-operator does after creating the SBC.
pub async fn reference_sbc(
    client: &kube::Client,
    server: &str,
    ns: &str,
    sbc: &str,
) -> anyhow::Result<()> {
    let patch =
        serde_json::json!({"spec": {"bootConfigurationRef": ObjectReference::new(ns, sbc)}});
    Api::<Server>::all(client.clone())
        .patch(server, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .with_context(|| format!("referencing {ns}/{sbc} from Server {server}"))?;
    Ok(())
}

/// Changes the image a ServerBootConfiguration boots (a new generation).
pub async fn set_sbc_image(
    client: &kube::Client,
    ns: &str,
    name: &str,
    image: &str,
) -> anyhow::Result<()> {
    let patch = serde_json::json!({"spec": {"image": image}});
    Api::<ServerBootConfiguration>::namespaced(client.clone(), ns)
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .with_context(|| format!("patching ServerBootConfiguration {ns}/{name}"))?;
    Ok(())
}

/// Applies (server-side) a Secret `ns/name` with these keys.
pub async fn apply_secret(
    client: &kube::Client,
    ns: &str,
    name: &str,
    data: &[(&str, &str)],
) -> anyhow::Result<()> {
    let data: BTreeMap<String, ByteString> = data
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
    Api::<Secret>::namespaced(client.clone(), ns)
        .patch(
            name,
            &PatchParams::apply("test").force(),
            &Patch::Apply(&secret),
        )
        .await
        .with_context(|| format!("applying Secret {ns}/{name}"))?;
    Ok(())
}

/// A Butane (`fcos`) config with one user: the ignition a claim typically carries.
pub fn butane_with_user(user: &str) -> String {
    format!("variant: fcos\nversion: 1.3.0\npasswd:\n  users:\n    - name: {user}\n")
}
