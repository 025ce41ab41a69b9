//! The connection layer shared by plain and TLS serving: hyper with kube-apiserver's bounds on a request head
//! (size, and the time a client may take to send it) and the peer address handed to the handlers.
//! Hand-written over hyper-util because axum::serve exposes neither bound.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tower::ServiceExt;

use crate::limits::{IDLE_TIMEOUT, MAX_HEADER_BYTES};
use crate::shutdown::Shutdown;

/// The remote address of a request's connection (absent for in-process requests through `Handle::router`).
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

/// The HTTP version of a connection, when TLS's ALPN already decided it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    /// Sniffed from the first bytes (plain connections, whose first byte is awaited with the header timeout).
    Sniff,
    Http1,
    Http2,
}

/// Serves one accepted connection until it ends or the server stops.
pub async fn connection<IO>(
    io: IO,
    peer: SocketAddr,
    router: Router,
    header_timeout: Duration,
    shutdown: &Shutdown,
    proto: Proto,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let svc = router.map_request(move |mut req: http::Request<Incoming>| {
        req.extensions_mut().insert(Peer(peer));
        req
    });
    let service = TowerToHyperService::new(svc);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        // A head sent byte by byte, or a kept-alive connection left idle, is cut off (kube-apiserver: Go's
        // ReadHeaderTimeout and IdleTimeout); hyper's one timer covers both, so it gets the longer of the two and
        // the first byte of a connection is awaited with the header timeout itself (below).
        .header_read_timeout(header_timeout.max(IDLE_TIMEOUT))
        .max_buf_size(MAX_HEADER_BYTES + 64 * 1024)
        .max_headers(1000);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(MAX_HEADER_BYTES as u32);
    // hyper-util's version sniffing waits for bytes without a timeout; where ALPN decided, skip it.
    let builder = match proto {
        Proto::Sniff => builder,
        Proto::Http1 => builder.http1_only(),
        Proto::Http2 => builder.http2_only(),
    };
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    tokio::pin!(conn);
    let stopping = shutdown.begun();
    // Connections outlive the accept loop: without this they would keep serving a stopped server.
    tokio::select! {
        _ = conn.as_mut() => return,
        _ = stopping => conn.as_mut().graceful_shutdown(),
    }
    let _ = conn.await;
}

/// The next connection; after an accept error (out of file descriptors and the like) None, once a short pause
/// has passed, so that the caller's loop backs off instead of spinning.
pub(crate) async fn accept(
    listener: &TcpListener,
) -> Option<(tokio::net::TcpStream, std::net::SocketAddr)> {
    match listener.accept().await {
        Ok(accepted) => Some(accepted),
        Err(e) => {
            tracing::warn!(error = %e, "accept failed");
            tokio::time::sleep(Duration::from_millis(50)).await;
            None
        }
    }
}

/// Plain HTTP: accepts until the server stops, then waits for its connections to finish (graceful shutdown; the
/// caller bounds the wait and aborting this task drops every connection).
pub async fn plain(
    listener: TcpListener,
    router: Router,
    header_timeout: Duration,
    shutdown: Shutdown,
) {
    let stopping = shutdown.begun();
    tokio::pin!(stopping);
    let mut conns = tokio::task::JoinSet::new();
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = accept(&listener) => match accepted {
                Some(a) => a,
                None => continue,
            },
            // Reaps finished connections so the set holds only live ones.
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
            _ = &mut stopping => break,
        };
        let _ = tcp.set_nodelay(true);
        let router = router.clone();
        let shutdown = shutdown.clone();
        conns.spawn(async move {
            // A client that connects and sends nothing is cut off after the header timeout; hyper's own timer
            // only starts once the version has been sniffed from the first bytes.
            let mut first = [0u8; 1];
            match tokio::time::timeout(header_timeout, tcp.peek(&mut first)).await {
                Ok(Ok(n)) if n > 0 => {}
                _ => return,
            }
            connection(tcp, peer, router, header_timeout, &shutdown, Proto::Sniff).await;
        });
    }
    drop(listener);
    while conns.join_next().await.is_some() {}
}
