//! HTTPS on the BMC's own port (TLS is sniffed from the first byte) with the fleet's self-signed
//! certificate, and the optional redirect of credentials sent over plain HTTP.

use std::sync::Arc;

use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, ServerName};
use sim_bmc::{Fleet, FleetOptions, FleetSpec};

async fn get(
    io: impl hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    host: &str,
    path: &str,
    auth: bool,
) -> http::Response<bytes::Bytes> {
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
    tokio::spawn(conn);
    let mut req = http::Request::get(path).header("host", host);
    if auth {
        req = req.header("authorization", "Basic YWRtaW46cGFzc3dvcmQ=");
    }
    let resp = sender
        .send_request(req.body(Empty::<bytes::Bytes>::new()).unwrap())
        .await
        .unwrap();
    let (parts, body) = resp.into_parts();
    http::Response::from_parts(parts, body.collect().await.unwrap().to_bytes())
}

#[tokio::test]
async fn https_with_the_fleet_certificate_and_redirect_of_plain_credentials() {
    let spec = FleetSpec::from_yaml("seed: 1\ncount: 1\nnetwork: {httpsOnly: true}\n").unwrap();
    let fleet = Fleet::start(
        spec,
        FleetOptions {
            tls: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let info = fleet.bmcs()[0].clone();
    let https_url = info.https_url.clone().expect("https url");
    let host = https_url.trim_start_matches("https://").to_string();

    // A verifying client that trusts only the fleet's certificate.
    let pem = fleet.certificate_pem().expect("certificate").to_string();
    let der = pem_to_der(&pem);
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from(der)).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(&host).await.unwrap();
    let ip = host.split(':').next().unwrap().to_string();
    let tls = connector
        .connect(ServerName::try_from(ip).unwrap(), tcp)
        .await
        .expect("TLS handshake verifies");
    let resp = get(TokioIo::new(tls), &host, "/redfish/v1/Systems", true).await;
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value = serde_json::from_slice(resp.body()).unwrap();
    assert_eq!(body["Members@odata.count"], 1);

    // Plain HTTP on the same port: public resources answer, credentials are redirected to HTTPS.
    let plain = TokioIo::new(tokio::net::TcpStream::connect(&host).await.unwrap());
    assert_eq!(get(plain, &host, "/redfish/v1/", false).await.status(), 200);
    let plain = TokioIo::new(tokio::net::TcpStream::connect(&host).await.unwrap());
    let resp = get(plain, &host, "/redfish/v1/Systems", true).await;
    assert_eq!(resp.status(), 308);
    assert_eq!(
        resp.headers()["location"],
        format!("{https_url}/redfish/v1/Systems").as_str()
    );
    fleet.shutdown().await;
}

fn pem_to_der(pem: &str) -> Vec<u8> {
    use base64::Engine;
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap()
}
