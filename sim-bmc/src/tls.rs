//! The fleet's self-signed certificate (rcgen) and the rustls server configuration built from it.

use std::net::SocketAddr;
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::TlsAcceptor;

use crate::Error;

/// One certificate for every BMC of a fleet (SANs: localhost and each BMC address).
pub struct FleetTls {
    pub certificate_pem: String,
    config: Arc<rustls::ServerConfig>,
}

impl FleetTls {
    pub fn generate(addrs: &[SocketAddr]) -> Result<Self, Error> {
        let mut names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
        names.extend(addrs.iter().map(|a| a.ip().to_string()));
        names.sort();
        names.dedup();
        let certified =
            rcgen::generate_simple_self_signed(names).map_err(|e| Error::Tls(e.to_string()))?;
        let cert = CertificateDer::from(certified.cert.der().to_vec());
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
            certified.signing_key.serialize_der(),
        ));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Tls(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(vec![cert], key)
            .map_err(|e| Error::Tls(e.to_string()))?;
        Ok(Self {
            certificate_pem: certified.cert.pem(),
            config: Arc::new(config),
        })
    }

    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.config.clone())
    }
}
