//! The (deprecated) Endpoint reconciler: look the MAC up in the MAC prefix database, check the
//! default credentials against the BMC, then create/patch a BMCSecret and a BMC named like the
//! Endpoint (no owner references, as upstream since #1107).

use std::collections::BTreeMap;
use std::sync::Arc;

use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use metal_api::{BMC, BMCSecret, BMCSecretFields, BMCSpec, ConsoleProtocol, Endpoint, Protocol};
use serde_json::json;
use watches::Fanout;

use super::{Finalized, finalized, name_of};
use crate::context::{Context, endpoint_url};
use crate::error::{Error, Result};
use crate::keys;
use crate::macdb::{DefaultCredential, MacPrefix};
use crate::redfish::Credentials;

pub const CONTROLLER: &str = "endpoint";

/// Builds the Endpoint controller; its watch goes on to `endpoints`' subscribers (the BMC controller).
pub fn controller(client: kube::Client, endpoints: &Fanout<Endpoint>) -> Controller<Endpoint> {
    watches::controller_publishing(Api::<Endpoint>::all(client), None, endpoints)
}

impl Finalized for Endpoint {
    const FINALIZER: &'static str = keys::ENDPOINT_FINALIZER;
}

pub(crate) async fn reconcile(endpoint: Arc<Endpoint>, ctx: Arc<Context>) -> Result<Action> {
    finalized(endpoint, &ctx, apply, async |_, _| {
        Ok(Action::await_change())
    })
    .await
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
