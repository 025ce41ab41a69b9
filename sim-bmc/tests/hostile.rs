//! Hostile input: bodies that cannot be read, too large or malformed; huge headers; wrong types and
//! unknown properties; collections a client could grow without end; invalid faults on the control
//! API. Each gets the DMTF status and a Base message, and nothing is stored without a bound.

mod common;

use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use common::{Client, fleet};
use http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use sim_bmc::fault::{FaultKind, FaultSpec, MAX_FAULTS, MAX_LATENCY_MS};
use sim_bmc::{Fleet, FleetOptions, FleetSpec};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower::ServiceExt;

const SYS: &str = "/redfish/v1/Systems/System.Embedded.1";
const ADMIN: &str = "Basic YWRtaW46cGFzc3dvcmQ="; // admin:password

async fn dell() -> (sim_bmc::FleetHandle, Client) {
    let f = fleet("seed: 1\ncount: 1\n", FleetOptions::default()).await;
    let c = Client::new(&f, "bmc-0");
    (f, c)
}

/// Sends a body stream that ends in an error (what hyper hands over for a truncated body or broken
/// chunking) and returns status and JSON.
async fn send_broken_body(router: axum::Router) -> (StatusCode, Value) {
    let frames: Vec<Result<hyper::body::Frame<Bytes>, std::io::Error>> = vec![
        Ok(hyper::body::Frame::data(Bytes::from_static(
            b"{\"AssetTag\":",
        ))),
        Err(std::io::Error::other(
            "connection closed before the body ended",
        )),
    ];
    let body = Body::new(http_body_util::StreamBody::new(futures::stream::iter(
        frames,
    )));
    let req = Request::builder()
        .method(Method::PATCH)
        .uri(SYS)
        .header("Authorization", ADMIN)
        .header("Content-Type", "application/json")
        .body(body)
        .unwrap();
    status_and_json(router.oneshot(req).await.unwrap()).await
}

/// A response's status and JSON body (`Null` when the body is not JSON).
async fn status_and_json<B>(resp: http::Response<B>) -> (StatusCode, Value)
where
    B: hyper::body::Body,
    B::Error: std::fmt::Debug,
{
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn message_ids(v: &Value) -> Vec<String> {
    v["error"]["@Message.ExtendedInfo"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| m["MessageId"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// A fleet of one BMC listening on a real socket, from `seed`.
async fn one_bmc_on_a_socket(seed: u64) -> sim_bmc::FleetHandle {
    let spec = FleetSpec::from_yaml(&format!("seed: {seed}\ncount: 1\n")).unwrap();
    Fleet::start(spec, FleetOptions::default()).await.unwrap()
}

#[tokio::test]
async fn a_body_that_cannot_be_read_is_400_malformed_json() {
    let (f, _) = dell().await;
    let (status, json) = send_broken_body(f.router("bmc-0").unwrap()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{json}");
    assert_eq!(message_ids(&json), ["Base.1.16.MalformedJSON"]);
}

/// Writes raw bytes to a BMC listener and returns the status line and body of its answer.
async fn raw_exchange(addr: &str, request: &[u8], close_write: bool) -> (String, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(request).await.unwrap();
    if close_write {
        s.shutdown().await.unwrap();
    }
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await;
    assert!(read.is_ok(), "the BMC answers and closes within 10 s");
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text.lines().next().unwrap_or_default().to_string();
    let body = text
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_string();
    (status, body)
}

#[tokio::test]
async fn truncated_and_badly_chunked_bodies_on_the_wire_are_400_malformed_json() {
    let f = one_bmc_on_a_socket(3).await;
    let addr = f.bmcs()[0].url.trim_start_matches("http://").to_string();
    let head = format!(
        "PATCH {SYS} HTTP/1.1\r\nHost: bmc\r\nAuthorization: {ADMIN}\r\nContent-Type: application/json\r\n"
    );
    let truncated = format!("{head}Content-Length: 100\r\n\r\n{{\"AssetTag\":");
    let (status, body) = raw_exchange(&addr, truncated.as_bytes(), true).await;
    assert!(status.contains(" 400 "), "{status}\n{body}");
    assert!(body.contains("Base.1.16.MalformedJSON"), "{body}");

    let bad_chunks = format!("{head}Transfer-Encoding: chunked\r\n\r\nZZ\r\n{{}}\r\n0\r\n\r\n");
    let (status, body) = raw_exchange(&addr, bad_chunks.as_bytes(), false).await;
    assert!(status.contains(" 400 "), "{status}\n{body}");
    assert!(body.contains("Base.1.16.MalformedJSON"), "{body}");
    f.shutdown().await;
}

#[tokio::test]
async fn an_oversized_body_is_413_with_the_limit_in_the_resolution() {
    let (_f, c) = dell().await;
    let big = format!(
        "{{\"AssetTag\":\"{}\"}}",
        "a".repeat(sim_bmc::redfish::MAX_BODY)
    );
    let r = c.patch(SYS, &big).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(r.message_id(), "Base.1.16.GeneralError");
    let resolution = r.json["error"]["@Message.ExtendedInfo"][0]["Resolution"]
        .as_str()
        .unwrap_or_default();
    assert!(resolution.contains("1048576 bytes"), "{resolution}");
}

#[tokio::test]
async fn huge_header_sections_are_431_with_a_redfish_message() {
    let (_f, c) = dell().await;
    let big = "a".repeat(sim_bmc::redfish::MAX_HEADER_BYTES + 1);
    let r = c
        .send(Method::GET, "/redfish/v1/", None, &[("X-Big", &big)])
        .await;
    assert_eq!(r.status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    assert_eq!(r.message_id(), "Base.1.16.GeneralError");
    let names: Vec<String> = (0..=sim_bmc::redfish::MAX_HEADERS)
        .map(|i| format!("X-H{i}"))
        .collect();
    let many: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "1")).collect();
    let r = c.send(Method::GET, "/redfish/v1/", None, &many).await;
    assert_eq!(r.status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    // Ordinary requests are untouched.
    assert_eq!(c.get("/redfish/v1/").await.status, StatusCode::OK);
}

#[tokio::test]
async fn deep_nesting_and_invalid_utf8_are_400_malformed_json() {
    let (_f, c) = dell().await;
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let r = c.patch(SYS, &deep).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.message_id(), "Base.1.16.MalformedJSON");
    let deep_object = format!("{}1{}", "{\"a\":".repeat(50_000), "}".repeat(50_000));
    let r = c.patch(SYS, &deep_object).await;
    assert_eq!(r.message_id(), "Base.1.16.MalformedJSON");

    let req = Request::builder()
        .method(Method::PATCH)
        .uri(SYS)
        .header("Authorization", ADMIN)
        .header("Content-Type", "application/json")
        .body(Body::from(&b"{\"AssetTag\":\"\xff\xfe\"}"[..]))
        .unwrap();
    let resp = c.router.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let json: Value =
        serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(message_ids(&json), ["Base.1.16.MalformedJSON"]);
}

#[tokio::test]
async fn wrong_types_and_unknown_properties_get_their_own_messages() {
    let (_f, c) = dell().await;
    let reset = format!("{SYS}/Actions/ComputerSystem.Reset");
    let r = c.post(&reset, r#"{"ResetType": 5}"#).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.message_id(), "Base.1.16.ActionParameterValueTypeError");
    let r = c.post(&reset, r#"{"ResetType": "Explode"}"#).await;
    assert_eq!(r.message_id(), "Base.1.16.ActionParameterValueNotInList");

    let manager = "/redfish/v1/Managers/iDRAC.Embedded.1/Actions/Manager.Reset";
    let r = c.post(manager, r#"{"ResetType": true}"#).await;
    assert_eq!(r.message_id(), "Base.1.16.ActionParameterValueTypeError");
    let r = c
        .post(
            manager,
            r#"{"ResetType": "GracefulRestart", "When": "now"}"#,
        )
        .await;
    assert_eq!(r.message_id(), "Base.1.16.ActionParameterUnknown");

    let subs = "/redfish/v1/EventService/Subscriptions";
    let r = c
        .post(
            subs,
            r#"{"Destination": "https://x.example/e", "Context": 7}"#,
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.message_id(), "Base.1.16.PropertyValueTypeError");
    let r = c.patch(SYS, r#"{"Colour": "red"}"#).await;
    assert_eq!(r.message_id(), "Base.1.16.PropertyUnknown");
    let r = c
        .patch(SYS, r#"{"Boot": {"BootSourceOverrideTarget": "Floppy"}}"#)
        .await;
    assert_eq!(r.message_id(), "Base.1.16.PropertyValueNotInList");

    let update = "/redfish/v1/UpdateService/Actions/UpdateService.SimpleUpdate";
    let r = c.post(update, r#"{"ImageURI": ["a"]}"#).await;
    assert_eq!(r.message_id(), "Base.1.16.ActionParameterValueTypeError");
}

#[tokio::test]
async fn echoed_input_is_clipped() {
    let (_f, c) = dell().await;
    let name = "P".repeat(100_000);
    let r = c.patch(SYS, &format!("{{\"{name}\": 1}}")).await;
    assert_eq!(r.message_id(), "Base.1.16.PropertyUnknown");
    let text = r.json.to_string();
    assert!(
        text.len() < 4096,
        "a 100 kB property name is echoed in {} bytes",
        text.len()
    );
}

#[tokio::test]
async fn clients_cannot_grow_accounts_or_subscriptions_without_bound() {
    let (_f, c) = dell().await;
    let mut limited = None;
    for i in 0..200 {
        let r = c
            .post(
                "/redfish/v1/EventService/Subscriptions",
                &format!(r#"{{"Destination": "https://l.example/{i}"}}"#),
            )
            .await;
        if r.status != StatusCode::CREATED {
            limited = Some((i, r.status, r.message_id()));
            break;
        }
    }
    let (at, status, id) = limited.expect("subscriptions are limited");
    assert!(at <= 64, "{at} subscriptions accepted");
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(id, "Base.1.16.CreateLimitReachedForResource");

    let mut limited = None;
    for i in 0..200 {
        let r = c
            .post(
                "/redfish/v1/AccountService/Accounts",
                &format!(
                    r#"{{"UserName": "u{i}", "Password": "p4ssw0rd{i}", "RoleId": "ReadOnly"}}"#
                ),
            )
            .await;
        if r.status != StatusCode::CREATED {
            limited = Some((i, r.message_id()));
            break;
        }
    }
    let (at, id) = limited.expect("accounts are limited");
    assert!(at <= 64, "{at} accounts accepted");
    assert_eq!(id, "Base.1.16.CreateLimitReachedForResource");
    let long = "u".repeat(10_000);
    let r = c
        .post(
            "/redfish/v1/AccountService/Accounts",
            &format!(r#"{{"UserName": "{long}", "Password": "p", "RoleId": "ReadOnly"}}"#),
        )
        .await;
    assert_eq!(r.message_id(), "Base.1.16.StringValueTooLong");
}

#[test]
fn faults_outside_their_bounds_are_rejected() {
    let bad = [
        FaultKind::ServerErrors {
            rate: 0.5,
            status: 999,
        },
        FaultKind::ServerErrors {
            rate: 0.5,
            status: 200,
        },
        FaultKind::ServerErrors {
            rate: 1.5,
            status: 503,
        },
        FaultKind::ServerErrors {
            rate: f64::NAN,
            status: 503,
        },
        FaultKind::Latency {
            ms: MAX_LATENCY_MS + 1,
        },
        FaultKind::SessionLimit { max: usize::MAX },
    ];
    for kind in bad {
        let err = FaultSpec::new(kind.clone()).validate();
        assert!(err.is_err(), "{kind:?} accepted");
    }
    let mut endpoint = FaultSpec::new(FaultKind::AuthFailure);
    endpoint.endpoint = Some("redfish".into());
    assert!(endpoint.validate().is_err());
    let handle = sim_bmc::fault::FaultHandle::new(1, Vec::new());
    let too_many = vec![FaultSpec::new(FaultKind::AuthFailure); MAX_FAULTS + 1];
    assert!(handle.try_set(too_many).is_err());
    assert!(handle.list().is_empty(), "a rejected set changes nothing");
    // Two maximal latencies add up without overflow.
    let slow = FaultSpec::new(FaultKind::Latency { ms: MAX_LATENCY_MS });
    handle.try_set(vec![slow.clone(), slow]).unwrap();
    assert_eq!(
        handle.for_request("/").latency,
        Duration::from_millis(2 * MAX_LATENCY_MS)
    );
    let err = FleetSpec::from_yaml(
        "count: 1\ndefaults:\n  faults: [{kind: serverErrors, rate: 1, status: 999}]\n",
    )
    .unwrap_err();
    assert!(err.to_string().contains("999"), "{err}");
}

async fn control_request(method: Method, url: &str, body: &str) -> (StatusCode, Value) {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<Bytes>>();
    let req = Request::builder()
        .method(method)
        .uri(url)
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(Bytes::from(body.to_string())))
        .unwrap();
    status_and_json(client.request(req).await.unwrap()).await
}

#[tokio::test]
async fn the_control_api_rejects_invalid_faults_with_a_clear_error() {
    let f = one_bmc_on_a_socket(4).await;
    let name = f.bmcs()[0].name.clone();
    let url = format!("{}/bmcs/{name}/faults", f.control_url());
    for (method, body, wanted) in [
        (
            Method::PUT,
            r#"[{"kind":"serverErrors","rate":1,"status":999}]"#,
            "999",
        ),
        (Method::POST, r#"{"kind":"serverErrors","rate":2}"#, "rate"),
        (
            Method::POST,
            r#"{"kind":"latency","ms":18446744073709551615}"#,
            "latency",
        ),
        (Method::POST, r#"{"kind":"explode"}"#, "explode"),
        (Method::PUT, r#"{"kind":"authFailure"}"#, "invalid fault"),
    ] {
        let (status, json) = control_request(method.clone(), &url, body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{method} {body}: {json}");
        let error = json["error"].as_str().unwrap_or_default();
        assert!(error.contains(wanted), "{body}: {error}");
    }
    assert!(f.faults(&name).unwrap().list().is_empty());
    // The BMC never sends an invalid status, and a valid fault still goes in.
    let (status, _) = control_request(
        Method::PUT,
        &url,
        r#"[{"kind":"serverErrors","rate":1,"status":502}]"#,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let c = Client::new(&f, &name);
    assert_eq!(c.get("/redfish/v1/").await.status, StatusCode::BAD_GATEWAY);
    f.shutdown().await;
}
