//! An in-process BMC plays the `unreachable` faults its loopback listener plays with a socket: refused while
//! `refuse` holds, no answer while a black hole holds (on a paused clock: for as long as the hole lasts), and
//! Redfish again once the fault is cleared.

use std::time::Duration;

use http::{Request, StatusCode};
use sim_bmc::fault::{FaultKind, FaultSpec, UnreachableMode};
use sim_bmc::fleet::{BindMode, FleetOptions, FleetSpec};
use tower::ServiceExt;

fn root() -> Request<axum::body::Body> {
    Request::get("/redfish/v1/")
        .body(axum::body::Body::empty())
        .expect("a request")
}

fn unreachable(mode: UnreachableMode) -> FaultSpec {
    FaultSpec {
        kind: FaultKind::Unreachable { mode },
        endpoint: None,
    }
}

#[tokio::test(start_paused = true)]
async fn in_process_bmcs_refuse_and_black_hole_like_their_sockets() {
    let fleet = sim_bmc::Fleet::start(
        FleetSpec::uniform(1, sim_bmc::vendor::Vendor::Dell, 1),
        FleetOptions {
            bind: BindMode::InProcess,
            ..FleetOptions::default()
        },
    )
    .await
    .expect("an in-process fleet");
    let name = fleet.bmcs()[0].name.clone();
    let service = fleet.service(&name).expect("the BMC's service");
    let faults = fleet.faults(&name).expect("its faults");

    let answered = service.clone().oneshot(root()).await.expect("an answer");
    assert_eq!(answered.status(), StatusCode::OK);

    faults.set(vec![unreachable(UnreachableMode::Refuse)]);
    let refused = service.clone().oneshot(root()).await.expect_err("refused");
    let io = refused
        .downcast_ref::<std::io::Error>()
        .expect("an I/O error");
    assert_eq!(io.kind(), std::io::ErrorKind::ConnectionRefused);

    faults.set(vec![unreachable(UnreachableMode::BlackHole)]);
    let held =
        tokio::time::timeout(Duration::from_secs(3600), service.clone().oneshot(root())).await;
    assert!(held.is_err(), "a black hole answered: {held:?}");
    // A request held when the hole closes is dropped without a response, as a held connection is.
    let pending = tokio::spawn(service.clone().oneshot(root()));
    tokio::time::sleep(Duration::from_secs(1)).await;
    faults.clear();
    let dropped = pending
        .await
        .expect("the request task")
        .expect_err("dropped");
    assert_eq!(
        dropped.downcast_ref::<std::io::Error>().map(|e| e.kind()),
        Some(std::io::ErrorKind::ConnectionReset)
    );

    let answered = service
        .oneshot(root())
        .await
        .expect("an answer after the outage");
    assert_eq!(answered.status(), StatusCode::OK);
}
