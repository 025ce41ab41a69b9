//! HTTPS for the generated registry: a certificate authority made per run (rcgen) that signs a leaf for the
//! loopback names, and an accept loop serving a router over TLS. Plain HTTP sent to the TLS port gets the
//! same 400 a Go registry (distribution, zot) answers, so a backend that forgot `https://` learns why.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

/// Names the leaf certificate is valid for: registries are reached on loopback by IP or `localhost`.
pub const LOOPBACK_NAMES: [&str; 3] = ["127.0.0.1", "::1", "localhost"];
/// How long a client may take to send its first byte and finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Go's `net/http` answer to plain HTTP on a TLS port, byte for byte.
const PLAIN_HTTP_ON_TLS_PORT: &[u8] =
    b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n";

/// A per-run certificate authority and the server certificate it signed.
pub struct RegistryCa {
    ca_pem: String,
    leaf_pem: String,
    config: Arc<rustls::ServerConfig>,
}

impl RegistryCa {
    /// A fresh CA (valid only for this process's lifetime in practice: its key is never written anywhere) and a
    /// leaf for [`LOOPBACK_NAMES`].
    pub fn generate() -> Result<RegistryCa, String> {
        let tls = |e: rcgen::Error| format!("generating the registry certificates: {e}");
        let ca_key = KeyPair::generate().map_err(tls)?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(tls)?;
        ca_params.distinguished_name = distinguished_name("metal-harness registry CA (per run)");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca_params.self_signed(&ca_key).map_err(tls)?;
        let issuer = Issuer::new(ca_params, ca_key);

        let leaf_key = KeyPair::generate().map_err(tls)?;
        let names: Vec<String> = LOOPBACK_NAMES.iter().map(|n| n.to_string()).collect();
        let mut leaf_params = CertificateParams::new(names).map_err(tls)?;
        leaf_params.distinguished_name = distinguished_name("metal-harness registry");
        leaf_params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        leaf_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        // OpenSSL's strict mode (Python 3.13's default context) wants the authority key identifier.
        leaf_params.use_authority_key_identifier_extension = true;
        let leaf_cert = leaf_params.signed_by(&leaf_key, &issuer).map_err(tls)?;

        let chain = vec![leaf_cert.der().clone(), ca_cert.der().clone()];
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("registry TLS config: {e}"))?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| format!("registry TLS config: {e}"))?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(RegistryCa {
            ca_pem: ca_cert.pem(),
            leaf_pem: leaf_cert.pem(),
            config: Arc::new(config),
        })
    }

    /// The CA certificate clients must trust (PEM).
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The CA as DER, for root stores built in code.
    pub fn ca_der(&self) -> CertificateDer<'static> {
        use rustls::pki_types::pem::PemObject;
        CertificateDer::from_pem_slice(self.ca_pem.as_bytes()).expect("rcgen writes valid PEM")
    }

    /// The server certificate (PEM), for tests and diagnostics.
    pub fn leaf_pem(&self) -> &str {
        &self.leaf_pem
    }

    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.config.clone())
    }
}

fn distinguished_name(common_name: &str) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::OrganizationName, "metal-harness");
    name.push(DnType::CommonName, common_name);
    name
}

/// Serves `router` on `listener`: over TLS when `tls` is given, else plain HTTP. Runs until the task is
/// dropped or aborted; each connection runs on its own task.
pub async fn serve(listener: TcpListener, router: Router, tls: Option<TlsAcceptor>) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %e, "registry accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        tokio::spawn(serve_connection(stream, router.clone(), tls.clone()));
    }
}

async fn serve_connection(stream: TcpStream, router: Router, tls: Option<TlsAcceptor>) {
    let _ = stream.set_nodelay(true);
    let service = TowerToHyperService::new(router);
    let builder = auto::Builder::new(TokioExecutor::new());
    let Some(acceptor) = tls else {
        let _ = builder
            .serve_connection(TokioIo::new(stream), service)
            .await;
        return;
    };
    let mut first = [0u8; 1];
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, stream.peek(&mut first)).await {
        Ok(Ok(1)) => {}
        _ => return,
    }
    // Every TLS connection starts with a handshake record (content type 22).
    if first[0] != 0x16 {
        let mut stream = stream;
        let _ = stream.write_all(PLAIN_HTTP_ON_TLS_PORT).await;
        let _ = stream.shutdown().await;
        return;
    }
    let Ok(Ok(tls_stream)) = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await
    else {
        return;
    };
    let _ = builder
        .serve_connection(TokioIo::new(tls_stream), service)
        .await;
}

#[cfg(test)]
mod tests {
    use rustls::client::danger::ServerCertVerifier;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    use std::sync::Arc;

    #[test]
    fn the_leaf_verifies_for_loopback_names_only_against_its_own_ca() {
        let ca = super::RegistryCa::generate().unwrap();
        let leaf = CertificateDer::from_pem_slice(ca.leaf_pem().as_bytes()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = |root: CertificateDer<'static>| {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(root).unwrap();
            rustls::client::WebPkiServerVerifier::builder_with_provider(
                Arc::new(roots),
                provider.clone(),
            )
            .build()
            .unwrap()
        };
        let trusting = verifier(ca.ca_der());
        let verify = |v: &dyn ServerCertVerifier, name: &str| {
            let name = ServerName::try_from(name.to_string()).unwrap();
            v.verify_server_cert(&leaf, &[], &name, &[], UnixTime::now())
        };
        for name in super::LOOPBACK_NAMES {
            assert!(verify(trusting.as_ref(), name).is_ok(), "{name}");
        }
        assert!(verify(trusting.as_ref(), "registry.example.com").is_err());
        let other_run = super::RegistryCa::generate().unwrap();
        assert!(verify(verifier(other_run.ca_der()).as_ref(), "127.0.0.1").is_err());
    }
}
