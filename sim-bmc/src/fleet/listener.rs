//! Per-BMC listeners: accept loop on the BMC's own loopback address, plain HTTP and TLS on one port,
//! and the `unreachable` faults (refuse: stop listening; black hole: accept and never answer).

use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use super::spec::FleetSpec;
use crate::Error;
use crate::bmc::Bmc;
use crate::fault::UnreachableMode;

/// The i-th BMC's address.
pub fn address(spec: &FleetSpec, i: usize) -> SocketAddr {
    let base = u32::from(spec.network.address_base);
    let ip = Ipv4Addr::from(base.wrapping_add(i as u32));
    SocketAddr::from((ip, spec.network.port))
}

pub fn addresses(spec: &FleetSpec, n: usize) -> Vec<SocketAddr> {
    (0..n).map(|i| address(spec, i)).collect()
}

/// Raises the soft RLIMIT_NOFILE towards `wanted` (never above the hard limit).
pub fn raise_nofile_limit(wanted: u64) {
    if let Ok((soft, hard)) = rlimit::Resource::NOFILE.get()
        && soft < wanted
    {
        let _ = rlimit::Resource::NOFILE.set(wanted.min(hard), hard);
    }
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, Error> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Bind { addr, source })
}

/// Binds the BMC's address and spawns its accept loop.
pub async fn spawn(
    bmc: Arc<Bmc>,
    addr: SocketAddr,
    tls: Option<TlsAcceptor>,
    shutdown: watch::Receiver<bool>,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), Error> {
    let listener = bind(addr).await?;
    let bound = listener.local_addr()?;
    let task = tokio::spawn(accept_loop(bmc, listener, bound, tls, shutdown));
    Ok((bound, task))
}

/// Waits for the fault set to change or shutdown; returns false on shutdown.
async fn wait_change(
    faults: &mut watch::Receiver<u64>,
    shutdown: &mut watch::Receiver<bool>,
) -> bool {
    tokio::select! {
        r = faults.changed() => r.is_ok(),
        _ = shutdown.changed() => false,
    }
}

async fn accept_loop(
    bmc: Arc<Bmc>,
    listener: TcpListener,
    bound: SocketAddr,
    tls: Option<TlsAcceptor>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut faults = bmc.faults.watch();
    let mut listener = Some(listener);
    loop {
        if *shutdown.borrow() {
            return;
        }
        if bmc.faults.unreachable() == Some(UnreachableMode::Refuse) {
            listener = None; // closing the socket makes connects fail with ECONNREFUSED
            if !wait_change(&mut faults, &mut shutdown).await {
                return;
            }
            continue;
        }
        let current = match listener.take() {
            Some(l) => l,
            None => match TcpListener::bind(bound).await {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(%bound, error = %e, "cannot re-bind BMC address; retrying");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        tokio::select! {
            accepted = current.accept() => {
                if let Ok((stream, _)) = accepted {
                    let _ = stream.set_nodelay(true);
                    tokio::spawn(serve_connection(bmc.clone(), stream, tls.clone(), shutdown.clone()));
                }
            }
            _ = faults.changed() => {}
            _ = shutdown.changed() => return,
        }
        listener = Some(current);
    }
}

/// A client that says nothing for this long is dropped (also bounds the TLS sniff).
const FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(30);

async fn serve_connection(
    bmc: Arc<Bmc>,
    stream: TcpStream,
    tls: Option<TlsAcceptor>,
    mut shutdown: watch::Receiver<bool>,
) {
    if bmc.faults.unreachable() == Some(UnreachableMode::BlackHole) {
        let mut faults = bmc.faults.watch();
        while bmc.faults.unreachable() == Some(UnreachableMode::BlackHole) {
            if !wait_change(&mut faults, &mut shutdown).await {
                break;
            }
        }
        return; // drop without a word, as a dead host would after recovering
    }
    if let Some(acceptor) = tls {
        let mut first = [0u8; 1];
        let peeked = tokio::time::timeout(FIRST_BYTE_TIMEOUT, stream.peek(&mut first)).await;
        if matches!(peeked, Ok(Ok(1))) && first[0] == 0x16 {
            if let Ok(Ok(tls_stream)) =
                tokio::time::timeout(FIRST_BYTE_TIMEOUT, acceptor.accept(stream)).await
            {
                serve_io(bmc, TokioIo::new(tls_stream), true, shutdown).await;
            }
            return;
        }
    }
    serve_io(bmc, TokioIo::new(stream), false, shutdown).await;
}

async fn serve_io<I>(bmc: Arc<Bmc>, io: I, secure: bool, mut shutdown: watch::Receiver<bool>)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req: http::Request<Incoming>| {
        let bmc = bmc.clone();
        async move {
            let mut req = req.map(Body::new);
            req.extensions_mut()
                .insert(crate::redfish::Transport { secure });
            Ok::<_, Infallible>(crate::redfish::handle(bmc, req).await)
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .serve_connection(io, service);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = shutdown.changed() => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(Duration::from_secs(1), conn).await;
        }
    }
}
