//! The memory one hostile request can cost, measured with a counting allocator (its own test binary,
//! so no other test allocates meanwhile): the worst 1 MiB bodies stay under the ceiling the README
//! states, and a body over the limit costs no more than the limit.

use axum::body::Body;
use http::{Method, Request, StatusCode};
use peak_alloc::PeakAlloc;
use sim_bmc::{BindMode, Fleet, FleetOptions, FleetSpec};
use tower::ServiceExt;

#[global_allocator]
static ALLOCATOR: PeakAlloc = PeakAlloc;

/// The README's ceiling for one request in flight.
const CEILING: usize = 32 << 20;

#[tokio::test(flavor = "current_thread")]
async fn one_hostile_request_stays_under_the_ceiling() {
    let spec = FleetSpec::from_yaml("seed: 5\ncount: 1\n").unwrap();
    let in_process = FleetOptions {
        bind: BindMode::InProcess,
        ..Default::default()
    };
    let fleet = Fleet::start(spec, in_process).await.unwrap();
    let router = fleet.router("bmc-0").unwrap();
    let limit = sim_bmc::redfish::MAX_BODY;
    let fill = |unit: &str, open: &str, close: &str| {
        let n = (limit - open.len() - close.len()) / unit.len();
        let mut s = String::with_capacity(limit);
        s.push_str(open);
        s.push_str(unit.repeat(n).trim_end_matches(','));
        s.push_str(close);
        s
    };
    let bodies = [
        ("numbers", fill("0,", "[", "]")),
        ("empty objects", fill("{},", "[", "]")),
        ("empty arrays", fill("[],", "[", "]")),
        ("short strings", fill("\"\",", "[", "]")),
        ("object keys", {
            let mut s = String::from("{");
            let mut i = 0;
            while s.len() < limit - 32 {
                s.push_str(&format!("\"{i:x}\":0,"));
                i += 1;
            }
            s.pop();
            s.push('}');
            s
        }),
        ("over the limit", "0".repeat(limit * 4)),
    ];
    let mut report = Vec::new();
    for (what, body) in bodies {
        let req = Request::builder()
            .method(Method::PATCH)
            .uri("/redfish/v1/Systems/System.Embedded.1")
            .header("Authorization", "Basic YWRtaW46cGFzc3dvcmQ=")
            .header("Content-Type", "application/json")
            .body(Body::from(body))
            .unwrap();
        let before = ALLOCATOR.current_usage();
        ALLOCATOR.reset_peak_usage();
        let resp = router.clone().oneshot(req).await.unwrap();
        let cost = ALLOCATOR.peak_usage().saturating_sub(before);
        assert!(
            resp.status() == StatusCode::BAD_REQUEST
                || resp.status() == StatusCode::PAYLOAD_TOO_LARGE,
            "{what}: {}",
            resp.status()
        );
        report.push(format!(
            "{what}: {:.1} MiB",
            cost as f64 / f64::from(1 << 20)
        ));
        assert!(cost < CEILING, "{what}: one request cost {cost} bytes");
    }
    // The figures behind the README's ceiling (the request body itself is counted in each).
    eprintln!("peak allocation per request: {}", report.join(", "));
}
