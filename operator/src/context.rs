//! The shared context of all controllers: API client, configuration, BMC connector, caches,
//! metrics, event recorder and clock.

use std::sync::Arc;

use crate::events::EventRecorder;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::reflector::Store;
use metal_api::{
    BMC, BMCSecret, Endpoint, Server, ServerBootConfiguration, ServerClaim, ServerReadinessRule,
};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::probe_registry::RegistryClient;
use crate::redfish::{
    ClientOptions, Credentials, HttpService, RedfishClient, TlsVerification, hyper_transport,
};
use clock::Clock;

/// Picks the HTTP transport for a BMC endpoint (`scheme://host:port`).
pub type TransportResolver = Arc<dyn Fn(&str) -> HttpService + Send + Sync>;

/// Builds Redfish clients for BMCs. Sockets by default; tests plug in in-process services.
#[derive(Clone)]
pub struct BmcConnector {
    resolver: TransportResolver,
    pub options: ClientOptions,
}

impl BmcConnector {
    /// hyper + rustls for every endpoint.
    pub fn sockets(tls: TlsVerification, options: ClientOptions) -> Self {
        let transport = hyper_transport(tls);
        Self {
            resolver: Arc::new(move |_| transport.clone()),
            options,
        }
    }

    pub fn with_resolver(resolver: TransportResolver, options: ClientOptions) -> Self {
        Self { resolver, options }
    }

    pub fn client(&self, endpoint: &str, credentials: Credentials) -> Result<RedfishClient> {
        let http = (self.resolver)(endpoint);
        Ok(RedfishClient::new(
            http,
            endpoint,
            credentials,
            self.options.clone(),
        )?)
    }
}

/// Reflector caches shared by all controllers (one watch per kind).
#[derive(Clone)]
pub struct Stores {
    pub servers: Store<Server>,
    /// The Server controller's claim watch (see `controllers::server::ServerController`).
    pub claims: Store<ServerClaim>,
    /// The Server controller's SBC watch: the gate's cached verdict reads it.
    pub boot_configs: Store<ServerBootConfiguration>,
    pub bmcs: Store<BMC>,
    pub bmc_secrets: Store<BMCSecret>,
    pub endpoints: Store<Endpoint>,
    pub readiness_rules: Store<ServerReadinessRule>,
}

pub struct Context {
    pub client: kube::Client,
    pub config: Config,
    pub connector: BmcConnector,
    pub registry: RegistryClient,
    pub metrics: Arc<Metrics>,
    pub recorder: EventRecorder,
    pub clock: Clock,
    /// Draws the discovery SSH keys and passwords.
    pub entropy: clock::Entropy,
    pub stores: Stores,
    pub mac_db: crate::macdb::MacDb,
    /// Claim bindings whose second half (the claim's `spec.serverRef`) is not written yet.
    pub bindings: crate::bindings::BindingsInFlight,
    /// When to look again at Servers whose readiness gate is closed.
    pub gate_backoff: crate::gate::RecheckBackoff,
    /// The Servers this process last wrote, until the watch cache shows those writes.
    pub server_writes: watches::OwnWrites<Server>,
}

/// Where and how to reach one BMC.
#[derive(Clone, Debug)]
pub struct BmcAccess {
    pub endpoint: String,
    pub credentials: Credentials,
}

impl Context {
    pub fn new_recorder(client: kube::Client, clock: Clock) -> EventRecorder {
        let instance = std::env::var("POD_NAME").ok();
        EventRecorder::new(client, "metal-operator", instance, clock)
    }

    /// Publishes an Event; failures are logged, never fatal.
    pub async fn event(
        &self,
        regarding: ObjectReference,
        warning: bool,
        reason: &str,
        action: &str,
        note: String,
    ) {
        let type_ = if warning { "Warning" } else { "Normal" };
        if let Err(error) = self
            .recorder
            .publish(&regarding, type_, reason, action, Some(note))
            .await
        {
            tracing::warn!(%error, reason, "failed to publish event");
        }
    }

    /// Credentials from a BMCSecret (cache first, then the API).
    pub async fn bmc_credentials(&self, secret_name: &str) -> Result<Credentials> {
        let key = kube::runtime::reflector::ObjectRef::<BMCSecret>::new(secret_name);
        let secret = match self.stores.bmc_secrets.get(&key) {
            Some(secret) => secret,
            None => {
                let api = kube::Api::<BMCSecret>::all(self.client.clone());
                match api.get_opt(secret_name).await? {
                    Some(s) => Arc::new(s),
                    None => {
                        return Err(Error::Missing {
                            kind: "BMCSecret",
                            name: secret_name.into(),
                        });
                    }
                }
            }
        };
        let (username, password) = secret.credentials().ok_or_else(|| Error::Invalid {
            kind: "BMCSecret",
            name: secret_name.into(),
            reason: "needs keys username and password".into(),
        })?;
        Ok(Credentials { username, password })
    }

    /// The endpoint of a BMC object (inline `access` or the deprecated Endpoint).
    pub async fn bmc_access(&self, bmc: &BMC) -> Result<BmcAccess> {
        let name = kube::ResourceExt::name_any(bmc);
        let ip = match (&bmc.spec.access, &bmc.spec.endpoint_ref) {
            (Some(access), _) => access.ip.clone(),
            (None, Some(endpoint_ref)) => {
                let key = kube::runtime::reflector::ObjectRef::<Endpoint>::new(&endpoint_ref.name);
                let endpoint = self
                    .stores
                    .endpoints
                    .get(&key)
                    .ok_or_else(|| Error::Missing {
                        kind: "Endpoint",
                        name: endpoint_ref.name.clone(),
                    })?;
                endpoint.spec.ip.clone()
            }
            (None, None) => None,
        };
        let ip = ip
            .filter(|ip| !ip.is_empty())
            .ok_or_else(|| Error::Invalid {
                kind: "BMC",
                name: name.clone(),
                reason: "no IP in spec.access or the referenced Endpoint".into(),
            })?;
        let scheme = bmc
            .spec
            .protocol
            .scheme
            .as_ref()
            .map(|s| s.as_str().to_owned());
        let endpoint = endpoint_url(
            scheme.as_deref().unwrap_or(&self.config.default_bmc_scheme),
            &ip,
            bmc.spec.protocol.port,
        );
        let credentials = self.bmc_credentials(&bmc.spec.bmc_secret_ref.name).await?;
        Ok(BmcAccess {
            endpoint,
            credentials,
        })
    }

    pub fn redfish(&self, access: &BmcAccess) -> Result<RedfishClient> {
        self.connector
            .client(&access.endpoint, access.credentials.clone())
    }
}

/// `scheme://ip:port`, bracketing IPv6 literals.
pub fn endpoint_url(scheme: &str, ip: &str, port: i32) -> String {
    if ip.contains(':') && !ip.starts_with('[') {
        format!("{scheme}://[{ip}]:{port}")
    } else {
        format!("{scheme}://{ip}:{port}")
    }
}
