//! Secure serving for non-loopback binds: a self-signed certificate generated at start (its PEM goes into the
//! kubeconfig's CA data) and a bearer token every request must carry.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::shutdown::Shutdown;
use crate::status::ApiError;

/// The generated certificate and token clients need.
#[derive(Clone)]
pub struct Credentials {
    pub cert_pem: String,
    pub cert_der: Vec<u8>,
    pub token: String,
    key_der: Vec<u8>,
}

impl Credentials {
    /// A certificate for `localhost`, 127.0.0.1 and the bind address, and a random token (unless given).
    pub fn generate(bind: SocketAddr, token: Option<String>) -> Result<Credentials, String> {
        let mut names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
        if !bind.ip().is_unspecified() && !names.contains(&bind.ip().to_string()) {
            names.push(bind.ip().to_string());
        }
        let ck =
            rcgen::generate_simple_self_signed(names).map_err(|e| format!("certificate: {e}"))?;
        // Stays OS-random even in a seeded run: the token authenticates clients and never reaches an object.
        let token = token.unwrap_or_else(|| {
            use rand::Rng;
            let bytes: [u8; 24] = rand::rng().random();
            hex_encode(&bytes)
        });
        Ok(Credentials {
            cert_pem: ck.cert.pem(),
            cert_der: ck.cert.der().to_vec(),
            token,
            key_der: ck.signing_key.serialize_der(),
        })
    }

    fn server_config(&self) -> Result<ServerConfig, String> {
        let certs = vec![CertificateDer::from(self.cert_der.clone())];
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone()));
        let mut cfg = ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| format!("TLS config: {e}"))?;
        cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(cfg)
    }
}

fn hex_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Rejects requests without the bearer token, as an authenticating server does (401 Unauthorized).
pub fn require_token(router: Router, token: String) -> Router {
    let expected = Arc::new(format!("Bearer {token}"));
    router.layer(axum::middleware::from_fn(
        move |req: Request, next: Next| {
            let expected = expected.clone();
            async move {
                let ok = req
                    .headers()
                    .get(http::header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    == Some(expected.as_str());
                if ok {
                    next.run(req).await
                } else {
                    unauthorized()
                }
            }
        },
    ))
}

fn unauthorized() -> Response {
    ApiError::new(401, "Unauthorized", "Unauthorized").into_response()
}

/// Serves `router` over TLS until shutdown begins; open connections then finish their requests and close.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    creds: &Credentials,
    shutdown: &Shutdown,
    header_timeout: std::time::Duration,
) -> Result<(), String> {
    let acceptor = TlsAcceptor::from(Arc::new(creds.server_config()?));
    let stopping = shutdown.begun();
    tokio::pin!(stopping);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = crate::serve::accept(&listener) => match accepted {
                Some(a) => a,
                None => continue,
            },
            _ = &mut stopping => return Ok(()),
        };
        let acceptor = acceptor.clone();
        let router = router.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            // The handshake is bounded like a request head; a client that fails it only loses its own connection.
            let Ok(Ok(tls)) = tokio::time::timeout(header_timeout, acceptor.accept(tcp)).await
            else {
                return;
            };
            let proto = match tls.get_ref().1.alpn_protocol() {
                Some(b"h2") => crate::serve::Proto::Http2,
                _ => crate::serve::Proto::Http1,
            };
            crate::serve::connection(tls, peer, router, header_timeout, &shutdown, proto).await;
        });
    }
}
