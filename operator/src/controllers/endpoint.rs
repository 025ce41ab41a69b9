//! The (deprecated) Endpoint reconciler: look the MAC up in the MAC prefix database, check the
//! default credentials against the BMC, then create/patch a BMCSecret and a BMC named like the
//! Endpoint (no owner references, as upstream since #1107).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use futures::StreamExt as _;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::finalizer::{Event as FinalizerEvent, finalizer};
use metal_api::{BMC, BMCSecret, BMCSecretFields, BMCSpec, ConsoleProtocol, Endpoint, Protocol};
use serde::Deserialize;
use serde_json::json;

use super::{error_policy, instrumented, is_ignored, name_of, watch};
use crate::context::{Context, endpoint_url};
use crate::error::{Error, Result};
use crate::keys;
use crate::redfish::Credentials;

pub const CONTROLLER: &str = "endpoint";

/// The MAC prefix database (`--mac-prefixes-file`), upstream's `macdb.yaml` shape.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MacDb {
    #[serde(default)]
    pub mac_prefixes: Vec<MacPrefix>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MacPrefix {
    /// A string prefix of the colon-less MAC (YAML may give it as a number, e.g. `23`).
    #[serde(deserialize_with = "string_or_number")]
    pub mac_prefix: String,
    #[serde(default)]
    pub manufacturer: String,
    #[serde(default)]
    pub protocol: String,
    #[serde(default)]
    pub protocol_scheme: Option<String>,
    #[serde(default)]
    pub port: i32,
    #[serde(rename = "type", default)]
    pub type_: String,
    #[serde(default)]
    pub default_credentials: Vec<DefaultCredential>,
    #[serde(default)]
    pub console: Option<Console>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct DefaultCredential {
    pub username: String,
    pub password: String,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct Console {
    #[serde(rename = "type")]
    pub type_: String,
    pub port: i32,
}

fn string_or_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        S(String),
        N(u64),
    }
    Ok(match Raw::deserialize(d)? {
        Raw::S(s) => s,
        Raw::N(n) => n.to_string(),
    })
}

impl MacDb {
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
        serde_saphyr::from_str(&text)
            .map_err(|e| anyhow::anyhow!("parsing {}: {e}", path.display()))
    }

    /// The first `type: bmc` entry whose prefix starts the colon-less MAC (case-insensitive).
    pub fn lookup(&self, mac: &str) -> Option<&MacPrefix> {
        let mac = mac.replace([':', '-'], "").to_lowercase();
        self.mac_prefixes
            .iter()
            .find(|p| p.type_ == "bmc" && mac.starts_with(&p.mac_prefix.to_lowercase()))
    }
}

pub fn controller(client: kube::Client) -> Controller<Endpoint> {
    watch::controller(Api::<Endpoint>::all(client))
}

pub async fn run(
    controller: Controller<Endpoint>,
    ctx: Arc<Context>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    controller
        .graceful_shutdown_on(shutdown)
        .run(
            |obj, ctx| instrumented(CONTROLLER, obj, ctx, reconcile),
            error_policy,
            ctx,
        )
        .for_each(super::log_outcome)
        .await;
}

async fn reconcile(endpoint: Arc<Endpoint>, ctx: Arc<Context>) -> Result<Action> {
    if is_ignored(&*endpoint) {
        return Ok(Action::await_change());
    }
    let api = Api::<Endpoint>::all(ctx.client.clone());
    finalizer(&api, keys::ENDPOINT_FINALIZER, endpoint, |event| async {
        match event {
            FinalizerEvent::Apply(endpoint) => apply(endpoint, &ctx).await,
            FinalizerEvent::Cleanup(_) => Ok(Action::await_change()),
        }
    })
    .await
    .map_err(|e| match e {
        kube::runtime::finalizer::Error::ApplyFailed(e)
        | kube::runtime::finalizer::Error::CleanupFailed(e) => e,
        other => Error::Finalizer(other.to_string()),
    })
}

async fn apply(endpoint: Arc<Endpoint>, ctx: &Context) -> Result<Action> {
    let name = name_of(&*endpoint);
    let invalid = |reason: String| Error::Invalid {
        kind: "Endpoint",
        name: name.clone(),
        reason,
    };
    let mac = endpoint.spec.mac_address.clone().unwrap_or_default();
    let ip = endpoint
        .spec
        .ip
        .clone()
        .filter(|ip| !ip.is_empty())
        .ok_or_else(|| invalid("spec.ip is empty".into()))?;
    let entry = ctx.mac_db.lookup(&mac).cloned().ok_or_else(|| {
        invalid(format!(
            "no BMC entry for MAC {mac} in the MAC prefix database"
        ))
    })?;
    let credential = entry.default_credentials.first().cloned().ok_or_else(|| {
        invalid(format!(
            "MAC prefix {} has no default credentials",
            entry.mac_prefix
        ))
    })?;
    let scheme = entry
        .protocol_scheme
        .clone()
        .unwrap_or_else(|| ctx.config.default_bmc_scheme.clone());
    let credentials = Credentials {
        username: credential.username.clone(),
        password: credential.password.clone(),
    };
    let redfish = ctx
        .connector
        .client(&endpoint_url(&scheme, &ip, entry.port), credentials)?;
    redfish.connect().await?;
    // As upstream: a BMC that already names its Manager keeps it; otherwise the Manager with a
    // graphical console, and none (the BMC then uses the first Manager) when there is no such
    // Manager or the Managers cannot be read.
    let known = Api::<BMC>::all(ctx.client.clone())
        .get_opt(&name)
        .await?
        .and_then(|b| b.spec.bmc_uuid)
        .filter(|u| !u.is_empty());
    let bmc_uuid = match known {
        Some(uuid) => Some(uuid),
        None => match redfish.console_manager().await {
            Ok(manager) => manager.and_then(|m| m.uuid),
            Err(error) => {
                tracing::debug!(endpoint = %name, %error, "no Manager UUID; the BMC uses the first Manager");
                None
            }
        },
    };
    ensure_secret(&name, &credential, ctx).await?;
    ensure_bmc(&name, &entry, &scheme, bmc_uuid, ctx).await?;
    Ok(Action::requeue(ctx.config.server_resync_interval))
}

async fn ensure_secret(name: &str, credential: &DefaultCredential, ctx: &Context) -> Result<()> {
    let api = Api::<BMCSecret>::all(ctx.client.clone());
    let data = BTreeMap::from([
        (
            keys::BMC_SECRET_USERNAME_KEY.to_owned(),
            k8s_openapi::ByteString(credential.username.clone().into_bytes()),
        ),
        (
            keys::BMC_SECRET_PASSWORD_KEY.to_owned(),
            k8s_openapi::ByteString(credential.password.clone().into_bytes()),
        ),
    ]);
    match api.get_opt(name).await? {
        None => {
            let secret = BMCSecret::new(
                name,
                BMCSecretFields {
                    data: Some(data),
                    ..BMCSecretFields::default()
                },
            );
            api.create(&PostParams::default(), &secret).await?;
        }
        Some(existing)
            if existing.spec.data.as_ref() != Some(&data)
                && existing.spec.immutable != Some(true) =>
        {
            api.patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({ "data": data })),
            )
            .await?;
        }
        Some(_) => {}
    }
    Ok(())
}

async fn ensure_bmc(
    name: &str,
    entry: &MacPrefix,
    scheme: &str,
    bmc_uuid: Option<String>,
    ctx: &Context,
) -> Result<()> {
    let api = Api::<BMC>::all(ctx.client.clone());
    let spec = BMCSpec {
        bmc_uuid,
        endpoint_ref: Some(k8s_openapi::api::core::v1::LocalObjectReference { name: name.into() }),
        access: None,
        bmc_secret_ref: k8s_openapi::api::core::v1::LocalObjectReference { name: name.into() },
        protocol: Protocol {
            name: entry.protocol.as_str().into(),
            port: entry.port,
            scheme: Some(scheme.into()),
        },
        console_protocol: entry.console.as_ref().map(|c| ConsoleProtocol {
            name: c.type_.as_str().into(),
            port: c.port,
        }),
        hostname: None,
    };
    match api.get_opt(name).await? {
        None => drop(
            api.create(&PostParams::default(), &BMC::new(name, spec))
                .await?,
        ),
        Some(existing) if existing.spec != spec => {
            // endpointRef and access are immutable: only the mutable fields are patched.
            let patch = json!({ "spec": {
                "bmcUUID": spec.bmc_uuid, "bmcSecretRef": spec.bmc_secret_ref,
                "protocol": spec.protocol, "consoleProtocol": spec.console_protocol,
            }});
            api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                .await?;
        }
        Some(_) => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_macdb_parses_and_matches() {
        let db: MacDb = serde_saphyr::from_str(include_str!("../../config/macdb.yaml")).unwrap();
        let entry = db.lookup("23:11:8a:33:cf:ea").expect("prefix 23 matches");
        assert_eq!(entry.protocol, "RedfishWithRegistryPatch");
        assert_eq!(entry.port, 8000);
        assert_eq!(entry.default_credentials[0].username, "foo");
        assert!(db.lookup("aa:bb:cc:dd:ee:ff").is_none());
    }
}
