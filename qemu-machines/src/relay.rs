//! The guest's view of the host's loopback. A VM on QEMU user-mode networking reaches the host only as
//! `10.0.2.2`, which maps to `127.0.0.1`; backends on loopback write their own loopback URLs into iPXE
//! scripts (`http://127.0.0.1:PORT/...`), which inside the guest point at the guest itself. The relay sits
//! on the host, fetches `http://10.0.2.2:RELAY/m/<vm>/h/<loopback host:port>/<path>` from the loopback
//! host, and in iPXE scripts (and nothing else) rewrites loopback URLs to relay URLs — the address
//! translation a NAT would do; the script's text is otherwise passed as served, so real iPXE judges it.
//! Each VM has its own path prefix, so the relay tells which machine fetched its script and kernel.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use bytes::Bytes;
use http_client::HttpClient;
use tokio::task::JoinHandle;

use crate::lock;

/// The host as the guest sees it (QEMU user-mode networking).
pub const GUEST_HOST: &str = "10.0.2.2";
/// Boot artifacts larger than this are refused (a kernel plus initramfs is tens of MiB).
const MAX_BODY: usize = 512 * 1024 * 1024;
/// iPXE scripts are rewritten only up to this size; larger "scripts" pass unchanged.
const MAX_SCRIPT: usize = 1024 * 1024;
const FETCH_TIMEOUT: Duration = Duration::from_secs(60);

/// What the relay saw a VM fetch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fetch {
    pub url: String,
    pub status: u16,
    pub bytes: usize,
    /// The body was an iPXE script.
    pub script: bool,
    /// `sha256:<hex>` of what the VM received (successful non-script answers).
    pub sha256: Option<String>,
    /// What the bytes are, by their magic: `kernel` (a bzImage), `initrd` (cpio or compressed), or `other`.
    pub content: &'static str,
}

/// A Linux bzImage carries `HdrS` at 0x202; an initramfs is a newc cpio or a compressed stream.
fn content_of(body: &[u8]) -> &'static str {
    if body.get(0x202..0x206) == Some(b"HdrS") {
        return "kernel";
    }
    let compressed: [&[u8]; 5] = [
        b"\x1f\x8b",
        b"\x28\xb5\x2f\xfd",
        b"\xfd7zXZ",
        b"\x02\x21\x4c\x18",
        b"BZh",
    ];
    if body.starts_with(b"070701")
        || body.starts_with(b"070702")
        || compressed.iter().any(|m| body.starts_with(m))
    {
        return "initrd";
    }
    "other"
}

/// Called for every request a VM makes through the relay.
pub type FetchHook = Arc<dyn Fn(Fetch) + Send + Sync>;

#[derive(Clone)]
struct RelayState {
    port: u16,
    http: HttpClient,
    vms: Arc<Mutex<HashMap<String, FetchHook>>>,
    loopback_url: Arc<regex::Regex>,
}

/// A running relay; dropping it stops it.
pub struct Relay {
    state: RelayState,
    task: JoinHandle<()>,
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Relay {
    /// Binds `127.0.0.1:0` (what the guest reaches as `10.0.2.2:<port>`).
    pub async fn start() -> std::io::Result<Relay> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let port = listener.local_addr()?.port();
        let state = RelayState {
            port,
            http: HttpClient::hyper()
                .with_timeout(FETCH_TIMEOUT)
                .with_max_body(MAX_BODY),
            vms: Arc::default(),
            loopback_url: Arc::new(
                regex::Regex::new(r"http://(127\.\d{1,3}\.\d{1,3}\.\d{1,3}|localhost)(:\d{1,5})?")
                    .expect("static regex"),
            ),
        };
        let app = axum::Router::new()
            .route("/m/{vm}/h/{host}/{*rest}", any(relay))
            .route("/m/{vm}/h/{host}/", any(relay_root))
            .with_state(state.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Relay { state, task })
    }

    pub fn port(&self) -> u16 {
        self.state.port
    }

    /// Registers a VM; its fetches go to `hook` until [`Relay::forget`].
    pub fn register(&self, vm: &str, hook: FetchHook) {
        lock(&self.state.vms).insert(vm.to_string(), hook);
    }

    pub fn forget(&self, vm: &str) {
        lock(&self.state.vms).remove(vm);
    }

    /// `url` as VM `vm` must fetch it: loopback URLs through the relay, others unchanged.
    pub fn guest_url(&self, vm: &str, url: &str) -> String {
        rewrite(&self.state.loopback_url, self.state.port, vm, url)
    }
}

fn rewrite(re: &regex::Regex, port: u16, vm: &str, text: &str) -> String {
    re.replace_all(text, |c: &regex::Captures| {
        let host = match &c[1] {
            "localhost" => "127.0.0.1",
            ip => ip,
        };
        let host_port = format!("{host}{}", c.get(2).map_or(":80", |m| m.as_str()));
        format!("http://{GUEST_HOST}:{port}/m/{vm}/h/{host_port}")
    })
    .into_owned()
}

async fn relay_root(
    State(s): State<RelayState>,
    Path((vm, host)): Path<(String, String)>,
    request: Request,
) -> Response {
    forward(s, vm, host, String::new(), request).await
}

async fn relay(
    State(s): State<RelayState>,
    Path((vm, host, rest)): Path<(String, String, String)>,
    request: Request,
) -> Response {
    forward(s, vm, host, rest, request).await
}

async fn forward(
    s: RelayState,
    vm: String,
    host: String,
    rest: String,
    request: Request,
) -> Response {
    let hook = lock(&s.vms).get(&vm).cloned();
    let Some(hook) = hook else {
        return (StatusCode::NOT_FOUND, "no such VM").into_response();
    };
    // Only the host's own loopback: the relay is no open proxy.
    let loopback = host
        .parse::<SocketAddr>()
        .is_ok_and(|a| matches!(a.ip(), IpAddr::V4(ip) if ip.is_loopback()));
    if !loopback {
        return (StatusCode::FORBIDDEN, "the relay reaches only 127.0.0.0/8").into_response();
    }
    let query = request
        .uri()
        .query()
        .map(|q| format!("?{q}"))
        .unwrap_or_default();
    let url = format!("http://{host}/{rest}{query}");
    let (parts, body) = request.into_parts();
    let body = match axum::body::to_bytes(body, MAX_SCRIPT).await {
        Ok(b) => b,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("request body: {e}")).into_response(),
    };
    let mut upstream = http::Request::builder()
        .method(parts.method.clone())
        .uri(&url);
    for name in [
        http::header::CONTENT_TYPE,
        http::header::ACCEPT,
        http::header::RANGE,
    ] {
        if let Some(v) = parts.headers.get(&name) {
            upstream = upstream.header(name, v);
        }
    }
    let upstream = match upstream.body(axum_body(body)) {
        Ok(r) => r,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("{url}: {e}")).into_response(),
    };
    let fetched = match s.http.send(upstream).await {
        Ok(f) => f,
        Err(e) => {
            hook(Fetch {
                url: url.clone(),
                status: 502,
                bytes: 0,
                script: false,
                sha256: None,
                content: "other",
            });
            return (StatusCode::BAD_GATEWAY, e).into_response();
        }
    };
    // A byte-order mark is kept (iPXE judges it), but the addresses behind it are still translated.
    let unmarked = fetched
        .body
        .strip_prefix(b"\xef\xbb\xbf".as_slice())
        .unwrap_or(&fetched.body);
    let script = fetched.body.len() <= MAX_SCRIPT && unmarked.starts_with(b"#!ipxe");
    let sha256 = (!script && fetched.status.is_success()).then(|| {
        format!(
            "sha256:{}",
            hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&fetched.body))
        )
    });
    let content = content_of(&fetched.body);
    let body = if script {
        let text = String::from_utf8_lossy(&fetched.body);
        Bytes::from(rewrite(&s.loopback_url, s.port, &vm, &text))
    } else {
        fetched.body
    };
    hook(Fetch {
        url,
        status: fetched.status.as_u16(),
        bytes: body.len(),
        script,
        sha256,
        content,
    });
    let mut response = Response::builder().status(fetched.status);
    if let Some(v) = fetched.headers.get(http::header::CONTENT_TYPE) {
        response = response.header(http::header::CONTENT_TYPE, v);
    }
    response
        .body(Body::from(body))
        .unwrap_or_else(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response())
}

fn axum_body(bytes: Bytes) -> Body {
    Body::from(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_urls_become_relay_urls_and_nothing_else_changes() {
        let re = regex::Regex::new(r"http://(127\.\d{1,3}\.\d{1,3}\.\d{1,3}|localhost)(:\d{1,5})?")
            .unwrap();
        let script = "#!ipxe\nset boot-server http://127.0.0.1:8082\nkernel http://localhost/k x=http://example.com:1/y\nchain http://127.10.0.3:9/z\n";
        let out = rewrite(&re, 4000, "vm1", script);
        assert_eq!(
            out,
            "#!ipxe\nset boot-server http://10.0.2.2:4000/m/vm1/h/127.0.0.1:8082\n\
             kernel http://10.0.2.2:4000/m/vm1/h/127.0.0.1:80/k x=http://example.com:1/y\n\
             chain http://10.0.2.2:4000/m/vm1/h/127.10.0.3:9/z\n"
        );
    }
}
