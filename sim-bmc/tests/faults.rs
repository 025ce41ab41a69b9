//! Fault injection: from the fleet file, at run time through FaultHandle and the control API, per endpoint.

mod common;

use std::time::Duration;

use common::{Client, fleet};
use http::StatusCode;
use sim_bmc::fault::{FaultKind, FaultSpec, UnreachableMode};
use sim_bmc::{Fleet, FleetOptions, FleetSpec, PowerState};

const FLEET: &str = r#"
seed: 9
defaults:
  latencies: {powerOnMs: 100, powerOffMs: 100, gracefulShutdownMs: 100, postMs: 10}
bmcs:
  - name: flaky
    faults:
      - {kind: serverErrors, rate: 0.5, endpoint: /redfish/v1/Systems}
  - name: ok
"#;

const SYS: &str = "/redfish/v1/Systems/System.Embedded.1";
const RESET: &str = "/redfish/v1/Systems/System.Embedded.1/Actions/ComputerSystem.Reset";

async fn statuses(c: &Client, n: usize) -> Vec<u16> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(c.get(SYS).await.status.as_u16());
    }
    out
}

#[tokio::test(start_paused = true)]
async fn error_rate_is_scoped_to_the_endpoint_and_deterministic_under_the_seed() {
    let a = fleet(FLEET, FleetOptions::default()).await;
    let b = fleet(FLEET, FleetOptions::default()).await;
    let first = statuses(&Client::new(&a, "flaky"), 40).await;
    let second = statuses(&Client::new(&b, "flaky"), 40).await;
    assert_eq!(first, second, "same seed, same draws");
    let failures = first.iter().filter(|s| **s == 503).count();
    assert!(
        (8..=32).contains(&failures),
        "about half fail: {failures}/40"
    );
    // Other endpoints and other BMCs are unaffected.
    assert_eq!(
        Client::new(&a, "flaky")
            .get("/redfish/v1/Managers")
            .await
            .status,
        StatusCode::OK
    );
    assert!(
        statuses(&Client::new(&a, "ok"), 10)
            .await
            .iter()
            .all(|s| *s == 200)
    );
}

#[tokio::test(start_paused = true)]
async fn machine_faults_set_at_run_time() {
    let f = fleet(FLEET, FleetOptions::default()).await;
    let c = Client::new(&f, "ok");
    let faults = f.faults("ok").unwrap();
    let machine = f.machine(&f.bmcs()[1].systems[0].uuid).unwrap();

    faults.set(vec![FaultSpec::new(FaultKind::ResetIgnored)]);
    assert_eq!(
        c.post(RESET, r#"{"ResetType":"On"}"#).await.status,
        StatusCode::NO_CONTENT
    );
    tokio::time::advance(Duration::from_millis(500)).await;
    assert_eq!(
        machine.power_state(),
        PowerState::Off,
        "accepted but ignored"
    );

    faults.set(vec![FaultSpec::new(FaultKind::StuckPoweringOn)]);
    c.post(RESET, r#"{"ResetType":"On"}"#).await;
    tokio::time::advance(Duration::from_secs(5)).await;
    assert_eq!(c.get(SYS).await.json["PowerState"], "PoweringOn");
    faults.clear();
    assert_eq!(
        c.get(SYS).await.json["PowerState"],
        "On",
        "completes once the fault is gone"
    );

    faults.set(vec![FaultSpec::new(FaultKind::WrongPowerState)]);
    assert_eq!(c.get(SYS).await.json["PowerState"], "Off");
    assert_eq!(
        machine.power_state(),
        PowerState::On,
        "the truth is in the machine"
    );
    faults.clear();

    faults.set(vec![FaultSpec::new(FaultKind::AuthFailure)]);
    assert_eq!(c.get(SYS).await.status, StatusCode::UNAUTHORIZED);
    faults.clear();

    faults.set(vec![FaultSpec::new(FaultKind::SessionLimit { max: 1 })]);
    let mut anon = Client::new(&f, "ok");
    anon.auth = None;
    let login = r#"{"UserName":"admin","Password":"password"}"#;
    assert_eq!(
        anon.post("/redfish/v1/SessionService/Sessions", login)
            .await
            .status,
        StatusCode::CREATED
    );
    let r = anon
        .post("/redfish/v1/SessionService/Sessions", login)
        .await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(r.message_id().ends_with("SessionLimitExceeded"));
    faults.clear();

    faults.set(vec![FaultSpec::new(FaultKind::EtagChurn)]);
    let etag = c.get(SYS).await.header("etag").unwrap();
    let r = c
        .send(
            http::Method::PATCH,
            SYS,
            Some(r#"{"IndicatorLED":"Lit"}"#),
            &[("If-Match", &etag)],
        )
        .await;
    assert_eq!(r.status, StatusCode::PRECONDITION_FAILED);
    faults.clear();

    faults.set(vec![FaultSpec::new(FaultKind::Latency { ms: 750 })]);
    let start = tokio::time::Instant::now();
    c.get(SYS).await;
    assert!(start.elapsed() >= Duration::from_millis(750));
}

#[test]
fn fault_kinds_parse_from_the_fleet_file() {
    let spec = FleetSpec::from_yaml(
        "bmcs:\n  - name: a\n    faults:\n      - {kind: unreachable, mode: blackHole}\n      - {kind: latency, ms: 5, endpoint: /redfish/v1/Managers}\n      - {kind: sessionLimit, max: 2}\n",
    )
    .unwrap();
    let faults = spec.resolve().unwrap()[0].faults.clone();
    assert_eq!(
        faults[0].kind,
        FaultKind::Unreachable {
            mode: UnreachableMode::BlackHole
        }
    );
    assert_eq!(faults[1].endpoint.as_deref(), Some("/redfish/v1/Managers"));
    let err =
        FleetSpec::from_yaml("bmcs:\n  - name: a\n    faults:\n      - {kind: meteorStrike}\n")
            .unwrap_err();
    assert!(err.to_string().contains("meteorStrike"), "{err}");
}

async fn http_get(url: &str, timeout: Duration) -> Result<u16, String> {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<bytes::Bytes>>();
    let req = http::Request::get(url)
        .body(http_body_util::Empty::new())
        .unwrap();
    match tokio::time::timeout(timeout, client.request(req)).await {
        Err(_) => Err("timeout".into()),
        Ok(Err(e)) => Err(format!("{e:?}")),
        Ok(Ok(r)) => Ok(r.status().as_u16()),
    }
}

#[tokio::test]
async fn unreachable_bmcs_refuse_or_swallow_connections_and_the_control_api_sets_faults() {
    let spec = FleetSpec::from_yaml("seed: 2\ncount: 2\n").unwrap();
    let f = Fleet::start(spec, FleetOptions::default()).await.unwrap();
    let b = f.bmcs()[0].clone();
    let root = format!("{}/redfish/v1/", b.url);
    assert_eq!(http_get(&root, Duration::from_secs(5)).await, Ok(200));

    // Set through the control API, as a scenario would.
    let control = format!("{}/bmcs/{}/faults", f.control_url(), b.name);
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    let put = http::Request::put(&control)
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(bytes::Bytes::from(
            r#"[{"kind":"unreachable","mode":"refuse"}]"#,
        )))
        .unwrap();
    assert_eq!(client.request(put).await.unwrap().status(), 200);
    let addr = b.url.trim_start_matches("http://").to_string();
    let mut refused = false;
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(&addr).await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(refused, "connections are refused while unreachable");
    assert_eq!(
        http_get(
            &format!("{}/redfish/v1/", f.bmcs()[1].url),
            Duration::from_secs(5)
        )
        .await,
        Ok(200)
    );

    f.faults(&b.name)
        .unwrap()
        .set(vec![FaultSpec::new(FaultKind::Unreachable {
            mode: UnreachableMode::BlackHole,
        })]);
    let mut swallowed = false;
    for _ in 0..100 {
        if http_get(&root, Duration::from_millis(300)).await == Err("timeout".into()) {
            swallowed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(swallowed, "a black-holed BMC never answers");
    f.faults(&b.name).unwrap().clear();
    assert_eq!(http_get(&root, Duration::from_secs(5)).await, Ok(200));
    f.shutdown().await;
}
