//! Two read-only OCI registries with sim-boot's standard images — one a backend must allow, one it must refuse —
//! over HTTPS with a CA made for the run (or plain HTTP), optionally demanding the bearer-token flow of public
//! registries: what a backend under test resolves boot images from when there is no real registry. In-process
//! ([`BuiltinRegistries::in_process`]) they are hosts of an [`InProcessNet`] over plain HTTP: no socket, and no
//! TLS, which nothing outside the process could check anyway.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use http_client::InProcessNet;
use tokio::task::JoinHandle;

/// The allowed built-in registry's host on an in-process network.
pub const REGISTRY_HOST: &str = "registry.sim.invalid";
/// The disallowed one's.
pub const DISALLOWED_REGISTRY_HOST: &str = "disallowed-registry.sim.invalid";

/// Seed of the built-in registry's generated images (any fixed value: digests are stable across runs).
const REGISTRY_SEED: u64 = 7;

/// Image references by role. Missing optional entries turn the conformance checks that need them into Skips.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ImageSet {
    /// A bootable image the backend resolves and serves.
    pub valid: String,
    /// A second bootable image with different artifacts (spec-change checks).
    pub valid_alt: Option<String>,
    /// A reference that does not resolve (unknown tag or repository in an allowed registry).
    pub unresolvable: Option<String>,
    /// An image that lacks a required boot layer (e.g. no kernel).
    pub missing_layer: Option<String>,
    /// An image in a registry outside the backend's allowlist.
    pub disallowed_registry: Option<String>,
}

impl ImageSet {
    /// The image `role` picks, or the valid image where the set has none for that role.
    pub fn or_valid(&self, role: impl Fn(&ImageSet) -> &Option<String>) -> String {
        role(self).clone().unwrap_or_else(|| self.valid.clone())
    }
}

/// How the built-in registries are reached.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum RegistryScheme {
    /// TLS with a certificate from a CA generated per run (what real registries and boot-operator expect).
    #[default]
    Https,
    /// Plain HTTP (a backend must then treat the registries as insecure).
    Http,
}

impl RegistryScheme {
    pub fn as_str(self) -> &'static str {
        match self {
            RegistryScheme::Https => "https",
            RegistryScheme::Http => "http",
        }
    }
}

/// Whether the built-in registries demand the bearer-token flow of public registries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum RegistryAuthMode {
    /// Anonymous access without tokens.
    #[default]
    None,
    /// `401` + `WWW-Authenticate: Bearer realm=…/token,service=…,scope=…`; anonymous pull tokens from `/token`.
    Token,
}

/// How to start the built-in registries. The default (plain HTTP, no auth) is what the in-process tests use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RegistryOptions {
    pub scheme: RegistryScheme,
    pub auth: RegistryAuthMode,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        Self {
            scheme: RegistryScheme::Http,
            auth: RegistryAuthMode::None,
        }
    }
}

/// Two read-only OCI registries with sim-boot's standard images: `allowed` (the backend's allowlist) and
/// `disallowed` (same content, a host the backend must refuse). Over HTTPS both present a certificate for
/// 127.0.0.1/localhost signed by one CA generated for this run ([`BuiltinRegistries::ca_pem`]).
pub struct BuiltinRegistries {
    /// The bound addresses over sockets; in-process, where nothing is bound, the unspecified `0.0.0.0:0`
    /// (use [`BuiltinRegistries::allowed_host`] and [`BuiltinRegistries::images`], which name the hosts).
    pub allowed: SocketAddr,
    pub disallowed: SocketAddr,
    pub options: RegistryOptions,
    ca_pem: Option<String>,
    tasks: Vec<JoinHandle<()>>,
    /// In-process: the network serving both hosts.
    net: Option<InProcessNet>,
}

impl BuiltinRegistries {
    /// sim-boot's standard images, as the built-in registries serve them by default.
    pub fn standard_catalog() -> sim_boot::oci::catalog::Catalog {
        sim_boot::oci::catalog::Catalog::standard(
            REGISTRY_SEED,
            sim_boot::oci::catalog::BlobSizes::default(),
        )
    }

    /// The standard images over plain HTTP without auth.
    pub async fn start() -> anyhow::Result<BuiltinRegistries> {
        Self::start_with(RegistryOptions::default(), Self::standard_catalog()).await
    }

    /// Both registries serving `catalog` (e.g. the standard one plus images built from real files).
    pub async fn start_with(
        options: RegistryOptions,
        catalog: sim_boot::oci::catalog::Catalog,
    ) -> anyhow::Result<BuiltinRegistries> {
        use sim_boot::oci::{Registry, RegistryCa, registry_tls};
        let mut registry = Registry::new(catalog);
        if options.auth == RegistryAuthMode::Token {
            // Wall-stamped and OS-keyed: the tokens reach only the backend under test, never an object.
            registry =
                registry.with_token_auth(options.scheme.as_str(), clock::Clock::wall(), None);
        }
        let ca = match options.scheme {
            RegistryScheme::Https => Some(RegistryCa::generate().map_err(anyhow::Error::msg)?),
            RegistryScheme::Http => None,
        };
        let mut tasks = Vec::new();
        let mut addrs = Vec::new();
        for _ in 0..2 {
            let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
            addrs.push(listener.local_addr()?);
            let tls = ca.as_ref().map(RegistryCa::acceptor);
            tasks.push(tokio::spawn(registry_tls::serve(
                listener,
                registry.router(),
                tls,
            )));
        }
        Ok(BuiltinRegistries {
            allowed: addrs[0],
            disallowed: addrs[1],
            options,
            ca_pem: ca.map(|c| c.ca_pem().to_string()),
            tasks,
            net: None,
        })
    }

    /// Both registries as [`REGISTRY_HOST`] and [`DISALLOWED_REGISTRY_HOST`] of `net`, over plain HTTP (HTTPS
    /// is refused: in one process there is no wire to protect). Tokens are stamped by `clock` (the wall clock
    /// when None) and keyed from `seed` (the OS when None), so a simulated run hands out the same ones.
    pub fn in_process(
        options: RegistryOptions,
        catalog: sim_boot::oci::catalog::Catalog,
        net: &InProcessNet,
        clock: Option<clock::Clock>,
        seed: Option<u64>,
    ) -> anyhow::Result<BuiltinRegistries> {
        anyhow::ensure!(
            options.scheme == RegistryScheme::Http,
            "in-process registries serve plain HTTP only (TLS needs sockets and has nothing to protect in one process)"
        );
        let mut registry = sim_boot::oci::Registry::new(catalog);
        if options.auth == RegistryAuthMode::Token {
            registry = registry.with_token_auth(
                options.scheme.as_str(),
                clock.unwrap_or_else(clock::Clock::wall),
                seed,
            );
        }
        for host in [REGISTRY_HOST, DISALLOWED_REGISTRY_HOST] {
            net.serve(host, registry.router());
        }
        let unbound = SocketAddr::from(([0, 0, 0, 0], 0));
        Ok(BuiltinRegistries {
            allowed: unbound,
            disallowed: unbound,
            options,
            ca_pem: None,
            tasks: Vec::new(),
            net: Some(net.clone()),
        })
    }

    /// `host:port` (or the in-process host name) of the registry a backend must allow.
    pub fn allowed_host(&self) -> String {
        match self.net {
            Some(_) => REGISTRY_HOST.to_string(),
            None => self.allowed.to_string(),
        }
    }

    /// `host:port` (or the in-process host name) of the registry a backend must refuse.
    pub fn disallowed_host(&self) -> String {
        match self.net {
            Some(_) => DISALLOWED_REGISTRY_HOST.to_string(),
            None => self.disallowed.to_string(),
        }
    }

    /// `https` or `http`.
    pub fn scheme(&self) -> &'static str {
        self.options.scheme.as_str()
    }

    /// The run's CA certificate (PEM) when the registries serve HTTPS.
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    /// A client that reaches these registries: over real sockets (trusting the run's CA when there is one), or
    /// through the in-process network.
    pub fn http_client(&self) -> anyhow::Result<http_client::HttpClient> {
        if let Some(net) = &self.net {
            return Ok(net.client());
        }
        match self.ca_pem() {
            Some(pem) => http_client::HttpClient::hyper_tls(Some(pem)).map_err(anyhow::Error::msg),
            None => Ok(http_client::HttpClient::hyper()),
        }
    }

    /// The standard catalog's references on these registries, by role (what a conformance run checks with).
    pub fn images(&self) -> ImageSet {
        use sim_boot::oci::catalog::names;
        let (allowed, disallowed) = (self.allowed_host(), self.disallowed_host());
        let at = |host: &str, name: &str| format!("{host}/{name}");
        ImageSet {
            valid: at(&allowed, names::OS_V1),
            valid_alt: Some(at(&allowed, names::OS_V2)),
            unresolvable: Some(at(&allowed, "ironcore/os:0.0-does-not-exist")),
            missing_layer: Some(at(&allowed, names::NO_KERNEL)),
            disallowed_registry: Some(at(&disallowed, names::OS_V1)),
        }
    }

    /// Writes `ca.crt` (the run's CA) and `ca-bundle.crt` (the system roots, when present, then the run's CA)
    /// into `dir`; None over plain HTTP. The bundle is what `SSL_CERT_FILE` gets: OpenSSL and Go read that
    /// variable *instead of* the system store, so the CA alone would cut the backend off from every other
    /// TLS server (say, a real registry it also uses).
    pub fn write_ca_files(&self, dir: &Path) -> anyhow::Result<Option<CaFiles>> {
        let Some(pem) = self.ca_pem() else {
            return Ok(None);
        };
        let ca = dir.join("ca.crt");
        std::fs::write(&ca, pem).with_context(|| format!("writing {}", ca.display()))?;
        let mut bundle_text = String::new();
        if let Ok(system) = std::fs::read_to_string(SYSTEM_CA_BUNDLE) {
            bundle_text.push_str(system.trim_end());
            bundle_text.push('\n');
        }
        bundle_text.push_str(pem);
        let bundle = dir.join("ca-bundle.crt");
        std::fs::write(&bundle, bundle_text)
            .with_context(|| format!("writing {}", bundle.display()))?;
        Ok(Some(CaFiles { ca, bundle }))
    }
}

/// Debian's (and most distributions') system bundle.
pub const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// Where the run's CA was written.
#[derive(Clone, Debug)]
pub struct CaFiles {
    /// The run's CA alone (`{ca_file}`).
    pub ca: PathBuf,
    /// System roots plus the run's CA.
    pub bundle: PathBuf,
}

impl CaFiles {
    /// The variables TLS stacks read their trust from: OpenSSL and Go (`SSL_CERT_FILE`, which
    /// rustls-native-certs honours too), Python requests, curl, and Node (which adds to its roots, so it gets
    /// the CA alone).
    pub fn env(&self) -> Vec<(String, String)> {
        let bundle = self.bundle.display().to_string();
        vec![
            ("SSL_CERT_FILE".into(), bundle.clone()),
            ("REQUESTS_CA_BUNDLE".into(), bundle.clone()),
            ("CURL_CA_BUNDLE".into(), bundle),
            ("NODE_EXTRA_CA_CERTS".into(), self.ca.display().to_string()),
        ]
    }
}

impl Drop for BuiltinRegistries {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
        if let Some(net) = &self.net {
            for host in [REGISTRY_HOST, DISALLOWED_REGISTRY_HOST] {
                net.remove(host);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn plain_http_registries_have_no_ca() {
        let registries = BuiltinRegistries::start().await.unwrap();
        assert_eq!(registries.scheme(), "http");
        assert!(registries.ca_pem().is_none());
        let dir = tempfile::tempdir().unwrap();
        assert!(registries.write_ca_files(dir.path()).unwrap().is_none());
        let base = registries
            .http_client()
            .unwrap()
            .get(&format!("http://{}/v2/", registries.allowed))
            .await
            .unwrap();
        assert_eq!(base.status, 200);
    }

    #[tokio::test(start_paused = true)]
    async fn in_process_registries_are_hosts_of_the_network() {
        let net = InProcessNet::default();
        let catalog = BuiltinRegistries::standard_catalog();
        let registries = BuiltinRegistries::in_process(
            RegistryOptions::default(),
            catalog.clone(),
            &net,
            None,
            None,
        )
        .unwrap();
        assert!(
            registries
                .images()
                .valid
                .starts_with("registry.sim.invalid/")
        );
        let base = registries
            .http_client()
            .unwrap()
            .get("http://disallowed-registry.sim.invalid/v2/")
            .await
            .unwrap();
        assert_eq!(base.status, 200);
        drop(registries);
        assert!(net.hosts().is_empty(), "{:?}", net.hosts());
        let https = RegistryOptions {
            scheme: RegistryScheme::Https,
            ..RegistryOptions::default()
        };
        let refused = BuiltinRegistries::in_process(https, catalog, &net, None, None)
            .err()
            .unwrap();
        assert!(refused.to_string().contains("plain HTTP only"), "{refused}");
    }
}
