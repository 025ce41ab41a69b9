//! HTTP transport for every outbound client of the operator (Redfish, registry).
//!
//! Everything goes through one boxed tower `Service`, so a test or an in-process fleet can plug an
//! `axum::Router` in place of the socket-based hyper client.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use tower::util::BoxCloneSyncService;
use tower::{BoxError, ServiceExt};

/// Request body used by all operator clients.
pub type RequestBody = Full<Bytes>;

/// A buffered HTTP service: the response body is collected before it is returned.
pub type HttpService =
    BoxCloneSyncService<http::Request<RequestBody>, http::Response<Bytes>, BoxError>;

/// TLS behaviour of the socket transport.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TlsVerification {
    /// Verify server certificates against the platform's native roots.
    #[default]
    Verify,
    /// Accept any certificate (`--skip-cert-validation`); BMCs commonly ship self-signed certificates.
    Skip,
}

/// Builds the default socket transport: hyper-util's pooled client with rustls for `https` URLs.
pub fn hyper_transport(tls: TlsVerification) -> HttpService {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls_config = match tls {
        TlsVerification::Verify => {
            let mut roots = rustls::RootCertStore::empty();
            let native = rustls_native_roots();
            roots.add_parsable_certificates(native);
            rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .expect("ring supports the default protocol versions")
                .with_root_certificates(roots)
                .with_no_client_auth()
        }
        TlsVerification::Skip => rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(insecure::AcceptAnyCertificate(provider)))
            .with_no_client_auth(),
    };
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls_config)
        .https_or_http()
        .enable_http1()
        .build();
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .pool_max_idle_per_host(4)
        .build::<_, RequestBody>(connector);
    let service = tower::service_fn(move |req: http::Request<RequestBody>| {
        let client = client.clone();
        async move {
            let response = client.request(req).await?;
            let (parts, body) = response.into_parts();
            let bytes = body.collect().await?.to_bytes();
            Ok::<_, BoxError>(http::Response::from_parts(parts, bytes))
        }
    });
    BoxCloneSyncService::new(service)
}

fn rustls_native_roots() -> Vec<rustls::pki_types::CertificateDer<'static>> {
    // Native roots are optional: a machine without a CA bundle can still talk to BMCs with
    // `--skip-cert-validation`, so unreadable certificates only shrink the store.
    let loaded = rustls_native_certs::load_native_certs();
    for error in &loaded.errors {
        tracing::debug!(%error, "skipping unreadable native root certificate");
    }
    loaded.certs
}

/// Adapts any axum-style service (e.g. a sim-bmc `Router`) into an [`HttpService`] without sockets.
pub fn service_transport<S, B>(service: S) -> HttpService
where
    S: tower::Service<http::Request<RequestBody>, Response = http::Response<B>>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let adapted = tower::service_fn(move |req: http::Request<RequestBody>| {
        let service = service.clone();
        async move {
            let response = service.oneshot(req).await.map_err(Into::into)?;
            let (parts, body) = response.into_parts();
            let bytes = body.collect().await.map_err(Into::into)?.to_bytes();
            Ok::<_, BoxError>(http::Response::from_parts(parts, bytes))
        }
    });
    BoxCloneSyncService::new(adapted)
}

mod insecure {
    use std::sync::Arc;

    use rustls::DigitallySignedStruct;
    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::crypto::CryptoProvider;
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

    /// Skips chain and name validation but still checks handshake signatures.
    #[derive(Debug)]
    pub struct AcceptAnyCertificate(pub Arc<CryptoProvider>);

    impl ServerCertVerifier for AcceptAnyCertificate {
        fn verify_server_cert(
            &self,
            _end_entity: &CertificateDer<'_>,
            _intermediates: &[CertificateDer<'_>],
            _server_name: &ServerName<'_>,
            _ocsp_response: &[u8],
            _now: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            Ok(ServerCertVerified::assertion())
        }

        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }

        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }
}
