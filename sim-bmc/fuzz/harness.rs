//! One fuzz input → requests against a fresh in-process BMC, with the properties every answer must
//! have. Shared by the cargo-fuzz target (`fuzz_targets/redfish_request.rs`) and the bounded run in
//! the test suite (`sim-bmc/tests/fuzz.rs`), so both check the same things.
//!
//! Input: one control byte, then requests separated by a line `%%`. The control byte picks the
//! vendor (`b % 5`), whether the body stream ends in an error instead of its end (bit 3: a
//! truncated body or broken chunking on the wire) and the body chunk size (`1 << (b >> 4)` bytes).
//! Each request is HTTP/1.1 text: `METHOD PATH`, header lines, a blank line, the body. Basic
//! credentials of the administrator are added unless the request carries `Authorization` or
//! `X-Auth-Token`, so inputs reach the handlers behind authentication.

use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use sim_bmc::{BindMode, Fleet, FleetOptions, FleetSpec};
use tower::ServiceExt;

/// Vendors in control-byte order.
pub const VENDORS: [&str; 5] = ["dell", "hpe", "lenovo", "supermicro", "ami"];
/// Requests per input at most (more are ignored): bounds one input's run time.
pub const MAX_REQUESTS: usize = 16;
/// A request answered later than this (virtual time) is a hang.
pub const ANSWER_DEADLINE: Duration = Duration::from_secs(120);
/// The largest answer any request may get ($metadata is the biggest, well under this).
pub const MAX_ANSWER_BYTES: usize = 4 << 20;

/// One request decoded from fuzz input.
#[derive(Debug)]
pub struct FuzzRequest {
    pub method: Method,
    pub uri: String,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Vec<u8>,
}

/// The decoded input.
#[derive(Debug)]
pub struct FuzzInput {
    pub vendor: &'static str,
    pub body_error: bool,
    pub chunk: usize,
    pub requests: Vec<FuzzRequest>,
}

fn split<'a>(data: &'a [u8], sep: &[u8]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut rest = data;
    while let Some(i) = rest.windows(sep.len()).position(|w| w == sep) {
        out.push(&rest[..i]);
        rest = &rest[i + sep.len()..];
    }
    out.push(rest);
    out
}

/// Decodes an input; lines that are not a valid method, URI or header are skipped (hyper rejects
/// those on the wire before the router sees them).
pub fn decode(data: &[u8]) -> Option<FuzzInput> {
    let (&control, rest) = data.split_first()?;
    let requests = split(rest, b"\n%%\n")
        .into_iter()
        .take(MAX_REQUESTS)
        .filter_map(decode_request)
        .collect();
    Some(FuzzInput {
        vendor: VENDORS[usize::from(control) % VENDORS.len()],
        body_error: control & 0x08 != 0,
        chunk: 1 << (control >> 4),
        requests,
    })
}

fn decode_request(text: &[u8]) -> Option<FuzzRequest> {
    let (head, body) = match text.windows(2).position(|w| w == b"\n\n") {
        Some(i) => (&text[..i], text[i + 2..].to_vec()),
        None => (text, Vec::new()),
    };
    let mut lines = head.split(|b| *b == b'\n');
    let first = lines.next()?;
    let mut words = first.splitn(2, |b| *b == b' ');
    let method = Method::from_bytes(words.next()?).ok()?;
    let uri = std::str::from_utf8(words.next()?)
        .ok()?
        .trim_end_matches('\r');
    let uri = uri.strip_suffix(" HTTP/1.1").unwrap_or(uri).to_string();
    http::Uri::try_from(uri.as_str()).ok()?;
    let headers = lines
        .filter_map(|line| {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let colon = line.iter().position(|b| *b == b':')?;
            let name = HeaderName::from_bytes(&line[..colon]).ok()?;
            let value = HeaderValue::from_bytes(line[colon + 1..].trim_ascii()).ok()?;
            Some((name, value))
        })
        .collect();
    Some(FuzzRequest {
        method,
        uri,
        headers,
        body,
    })
}

fn fleet_yaml(vendor: &str) -> String {
    format!(
        "seed: 7\nbmcs:\n  - {{name: fuzz, vendor: {vendor}, systems: 2}}\n\
         defaults:\n  credentials: {{username: admin, password: password}}\n  \
         accounts: [{{username: viewer, password: v, role: ReadOnly}}]\n  \
         latencies: {{powerOnMs: 0, powerOffMs: 0, gracefulShutdownMs: 0, postMs: 0}}\n"
    )
}

/// Runs one input against a fresh BMC; panics (a finding) when an answer breaks a property.
pub fn run(data: &[u8]) {
    let Some(input) = decode(data) else {
        return;
    };
    // A fresh runtime and BMC per input: findings reproduce from the input alone. Paused time
    // makes machine latencies and the deadline cost nothing.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let spec = FleetSpec::from_yaml(&fleet_yaml(input.vendor)).expect("fuzz fleet is valid");
        let fleet = Fleet::start(
            spec,
            FleetOptions {
                bind: BindMode::InProcess,
                ..Default::default()
            },
        )
        .await
        .expect("fleet starts");
        let router = fleet.router("fuzz").expect("router");
        for req in input.requests {
            let head = req.method == Method::HEAD;
            let request = build(req, input.body_error, input.chunk);
            let answer = tokio::time::timeout(ANSWER_DEADLINE, router.clone().oneshot(request))
                .await
                .expect("every request is answered before the deadline")
                .expect("the router is infallible");
            check_answer(answer, head).await;
        }
    });
}

fn build(req: FuzzRequest, body_error: bool, chunk: usize) -> Request<Body> {
    let mut builder = Request::builder().method(req.method).uri(req.uri);
    let has_auth = req
        .headers
        .iter()
        .any(|(n, _)| n == http::header::AUTHORIZATION || n.as_str() == "x-auth-token");
    if !has_auth {
        // admin:password
        builder = builder.header("Authorization", "Basic YWRtaW46cGFzc3dvcmQ=");
    }
    for (name, value) in req.headers {
        builder = builder.header(name, value);
    }
    let chunks: Vec<Result<hyper::body::Frame<Bytes>, std::io::Error>> = req
        .body
        .chunks(chunk.max(1))
        .map(|c| Ok(hyper::body::Frame::data(Bytes::copy_from_slice(c))))
        .chain(body_error.then(|| Err(std::io::Error::other("connection reset mid-body"))))
        .collect();
    let body = Body::new(http_body_util::StreamBody::new(futures::stream::iter(
        chunks,
    )));
    builder.body(body).expect("parts were validated")
}

/// The properties of every answer.
async fn check_answer(answer: http::Response<Body>, head: bool) {
    let status = answer.status();
    assert!(
        (200..=599).contains(&status.as_u16()),
        "status {status} is outside 200-599"
    );
    assert_ne!(
        status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "the simulator has no internal errors"
    );
    let json = answer
        .headers()
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    let body = http_body_util::Limited::new(answer.into_body(), MAX_ANSWER_BYTES)
        .collect()
        .await
        .expect("answers are bounded and readable")
        .to_bytes();
    if head || body.is_empty() {
        return;
    }
    if json {
        let value: Value = serde_json::from_slice(&body).expect("a JSON answer parses");
        if status.is_client_error() || status.is_server_error() {
            check_error_body(status, &value);
        }
    }
}

/// A Redfish error: `error.code` and a non-empty `@Message.ExtendedInfo` of Base messages.
fn check_error_body(status: StatusCode, v: &Value) {
    let code = v["error"]["code"].as_str().unwrap_or_default();
    assert!(code.starts_with("Base.1."), "{status}: error.code {code:?}");
    let infos = v["error"]["@Message.ExtendedInfo"]
        .as_array()
        .unwrap_or_else(|| panic!("{status}: no @Message.ExtendedInfo in {v}"));
    assert!(!infos.is_empty(), "{status}: empty @Message.ExtendedInfo");
    for info in infos {
        let id = info["MessageId"].as_str().unwrap_or_default();
        assert!(id.starts_with("Base.1."), "{status}: MessageId {id:?}");
        for field in ["Message", "Resolution", "MessageSeverity"] {
            assert!(info[field].is_string(), "{status}: {id} lacks {field}");
        }
    }
}
