//! A BMC reached without sockets: its Redfish router as a tower service that also plays the `unreachable`
//! faults the loopback listener plays with its socket (refused connections, a black hole), so an in-process
//! fleet (and a simulated-time run, which has no sockets) can take BMC outages.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::Router;
use http::{Request, Response};
use tower::{Service, ServiceExt};

use http_client::BoxError;

use crate::bmc::Bmc;
use crate::fault::UnreachableMode;

/// One BMC's Redfish service in-process; see the module documentation.
#[derive(Clone)]
pub struct BmcService {
    bmc: Arc<Bmc>,
    router: Router,
}

impl BmcService {
    pub(crate) fn new(bmc: Arc<Bmc>) -> Self {
        let router = crate::redfish::router(bmc.clone());
        BmcService { bmc, router }
    }
}

impl<B> Service<Request<B>> for BmcService
where
    Router: Service<Request<B>, Response = Response<axum::body::Body>, Error = Infallible>,
    <Router as Service<Request<B>>>::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response<axum::body::Body>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let (bmc, router) = (self.bmc.clone(), self.router.clone());
        Box::pin(async move {
            match bmc.faults.unreachable() {
                Some(UnreachableMode::Refuse) => return Err(refused()),
                Some(UnreachableMode::BlackHole) => {
                    // No answer while the hole lasts (the caller's timeout ends the wait); afterwards the
                    // connection is dropped without a word, as the listener drops a held one.
                    let mut faults = bmc.faults.watch();
                    while bmc.faults.unreachable() == Some(UnreachableMode::BlackHole) {
                        if faults.changed().await.is_err() {
                            break;
                        }
                    }
                    return Err(reset());
                }
                None => {}
            }
            router.oneshot(request).await.map_err(|e| match e {})
        })
    }
}

fn refused() -> BoxError {
    Box::new(std::io::Error::new(
        std::io::ErrorKind::ConnectionRefused,
        "connection refused (BMC unreachable)",
    ))
}

fn reset() -> BoxError {
    Box::new(std::io::Error::new(
        std::io::ErrorKind::ConnectionReset,
        "connection closed without a response (BMC was a black hole)",
    ))
}
