//! EventService push, TaskService/UpdateService, BIOS pending settings, Manager.Reset, accounts, and the
//! control API's event log and metrics.

mod common;

use std::time::Duration;

use axum::routing::post;
use common::{Client, fleet, wait_for_event};
use http::StatusCode;
use serde_json::Value;
use sim_bmc::{Fleet, FleetOptions, FleetSpec, MachineEventKind};

const FLEET: &str = r#"
seed: 4
bmcs:
  - name: r1
    vendor: lenovo
    latencies: {powerOnMs: 100, powerOffMs: 100, gracefulShutdownMs: 100, postMs: 10}
"#;
const SYS: &str = "/redfish/v1/Systems/1";

#[tokio::test(start_paused = true)]
async fn firmware_update_runs_as_a_task_behind_a_monitor() {
    let f = fleet(FLEET, FleetOptions::default()).await;
    let c = Client::new(&f, "r1");
    let r = c
        .post(
            "/redfish/v1/UpdateService/Actions/UpdateService.SimpleUpdate",
            r#"{"ImageURI":"http://fw.invalid/4.20.bin"}"#,
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let monitor = r.header("location").unwrap();
    assert_eq!(c.get(&monitor).await.status, StatusCode::ACCEPTED);
    tokio::time::advance(Duration::from_secs(3)).await;
    let done = c.get(&monitor).await;
    assert_eq!(done.status, StatusCode::OK);
    assert_eq!(done.json["TaskState"], "Completed");
    assert_eq!(
        c.get("/redfish/v1/Managers/1").await.json["FirmwareVersion"],
        "4.20"
    );
    let r = c
        .post(
            "/redfish/v1/UpdateService/Actions/UpdateService.SimpleUpdate",
            r#"{"ImageURI":"http://fw.invalid/fail.bin"}"#,
        )
        .await;
    tokio::time::advance(Duration::from_secs(3)).await;
    assert_eq!(
        c.get(&r.header("location").unwrap()).await.json["TaskState"],
        "Exception"
    );
}

#[tokio::test(start_paused = true)]
async fn bios_settings_apply_at_the_next_reset() {
    let f = fleet(FLEET, FleetOptions::default()).await;
    let c = Client::new(&f, "r1");
    let machine = f.machine(&f.bmcs()[0].systems[0].uuid).unwrap();
    let r = c
        .patch(
            &format!("{SYS}/Bios/Settings"),
            r#"{"Attributes":{"ProcVirtualization":"Disabled"}}"#,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_eq!(
        c.get(&format!("{SYS}/Bios")).await.json["Attributes"]["ProcVirtualization"],
        "Enabled"
    );
    let r = c
        .patch(
            &format!("{SYS}/Bios/Settings"),
            r#"{"Attributes":{"Turbo":"On"}}"#,
        )
        .await;
    assert!(r.message_id().ends_with("PropertyUnknown"));
    c.post(
        &format!("{SYS}/Actions/ComputerSystem.Reset"),
        r#"{"ResetType":"On"}"#,
    )
    .await;
    tokio::time::advance(Duration::from_millis(100)).await;
    assert_eq!(
        c.get(&format!("{SYS}/Bios")).await.json["Attributes"]["ProcVirtualization"],
        "Disabled"
    );
    assert!(
        machine
            .events()
            .iter()
            .any(|e| matches!(e.kind, MachineEventKind::BiosSettingsApplied { .. }))
    );
    assert_eq!(
        c.get(&format!("{SYS}/Bios/Settings")).await.json["Attributes"],
        serde_json::json!({})
    );
}

#[tokio::test(start_paused = true)]
async fn manager_reset_takes_the_bmc_away_briefly() {
    let f = fleet(FLEET, FleetOptions::default()).await;
    let c = Client::new(&f, "r1");
    let r = c
        .post(
            "/redfish/v1/Managers/1/Actions/Manager.Reset",
            r#"{"ResetType":"GracefulRestart"}"#,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(c.get(SYS).await.status, StatusCode::SERVICE_UNAVAILABLE);
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(c.get(SYS).await.status, StatusCode::OK);
}

#[tokio::test(start_paused = true)]
async fn accounts_can_be_created_changed_and_deleted() {
    let f = fleet(FLEET, FleetOptions::default()).await;
    let c = Client::new(&f, "r1");
    let r = c
        .post(
            "/redfish/v1/AccountService/Accounts",
            r#"{"UserName":"bob","Password":"pw1","RoleId":"Operator"}"#,
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let location = r.header("location").unwrap();
    let mut bob = Client::new(&f, "r1");
    bob.auth = Some(("bob".into(), "pw1".into()));
    assert_eq!(bob.get(SYS).await.status, StatusCode::OK);
    // Bob may change his own password, not his role.
    assert_eq!(
        bob.patch(&location, r#"{"RoleId":"Administrator"}"#)
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        bob.patch(&location, r#"{"Password":"pw2"}"#).await.status,
        StatusCode::OK
    );
    assert_eq!(
        bob.get(SYS).await.status,
        StatusCode::UNAUTHORIZED,
        "cached credentials are dropped"
    );
    bob.auth = Some(("bob".into(), "pw2".into()));
    assert_eq!(bob.get(SYS).await.status, StatusCode::OK);
    let dup = c
        .post(
            "/redfish/v1/AccountService/Accounts",
            r#"{"UserName":"bob","Password":"x","RoleId":"ReadOnly"}"#,
        )
        .await;
    assert_eq!(dup.status, StatusCode::CONFLICT);
    assert_eq!(
        c.send(http::Method::DELETE, &location, None, &[])
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(bob.get(SYS).await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn power_and_boot_events_are_pushed_to_subscribers() {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Value>();
    let app = axum::Router::new().route(
        "/events/r1",
        post(move |axum::Json(v): axum::Json<Value>| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(v);
                StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sink = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let f = Fleet::start(
        FleetSpec::from_yaml(FLEET).unwrap(),
        FleetOptions::default(),
    )
    .await
    .unwrap();
    let c = Client::new(&f, "r1");
    let body = format!(
        r#"{{"Destination":"http://{sink}/events/r1","Protocol":"Redfish","Context":"metal-operator","EventFormatType":"Event","DeliveryRetryPolicy":"TerminateAfterRetries"}}"#
    );
    let r = c
        .post("/redfish/v1/EventService/Subscriptions", &body)
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
    assert!(
        r.header("location")
            .unwrap()
            .starts_with("/redfish/v1/EventService/Subscriptions/")
    );
    let again = c
        .post("/redfish/v1/EventService/Subscriptions", &body)
        .await;
    assert!(again.message_id().ends_with("ResourceAlreadyExists"));
    let bad = c
        .post(
            "/redfish/v1/EventService/Subscriptions",
            r#"{"Destination":"http://x.invalid/","Protocol":"SNMPv2c"}"#,
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);

    c.post(
        &format!("{SYS}/Actions/ComputerSystem.Reset"),
        r#"{"ResetType":"On"}"#,
    )
    .await;
    let mut messages = Vec::new();
    while messages.len() < 2 {
        let event = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("event pushed")
            .unwrap();
        assert_eq!(event["Context"], "metal-operator");
        messages.push(event["Events"][0]["Message"].as_str().unwrap().to_string());
    }
    assert_eq!(messages[0], "Power state changed from Off to PoweringOn.");
    assert_eq!(messages[1], "Power state changed from PoweringOn to On.");

    // The control API shows the same story.
    let uuid = f.bmcs()[0].systems[0].uuid.clone();
    let machine = f.machine(&uuid).unwrap();
    wait_for_event(&machine, MachineEventKind::NoBootDevice).await;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<bytes::Bytes>>();
    let get = |path: String| {
        let client = client.clone();
        async move {
            let resp = client
                .request(
                    http::Request::get(path)
                        .body(http_body_util::Empty::new())
                        .unwrap(),
                )
                .await
                .unwrap();
            let bytes = http_body_util::BodyExt::collect(resp.into_body())
                .await
                .unwrap()
                .to_bytes();
            String::from_utf8(bytes.to_vec()).unwrap()
        }
    };
    let events: Vec<Value> =
        serde_json::from_str(&get(format!("{}/machines/{uuid}/events", f.control_url())).await)
            .unwrap();
    assert_eq!(events.len(), machine.events().len());
    assert_eq!(events[0]["kind"]["type"], "resetRequested");
    let metrics = get(format!("{}/metrics", f.control_url())).await;
    assert!(
        metrics.contains("simbmc_redfish_requests_total"),
        "{metrics}"
    );
    assert!(
        metrics.contains("kind=\"power_state_changed\""),
        "{metrics}"
    );
    f.shutdown().await;
    server.abort();
}

#[tokio::test(start_paused = true)]
async fn events_reach_an_in_process_receiver_without_sockets() {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Value>();
    let receiver = axum::Router::new().route(
        "/events/r1",
        post(move |axum::Json(v): axum::Json<Value>| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(v);
                StatusCode::NO_CONTENT
            }
        }),
    );
    let net = http_client::InProcessNet::default();
    net.serve("operator.sim.invalid", receiver);
    let f = Fleet::start(
        FleetSpec::from_yaml(FLEET).unwrap(),
        FleetOptions {
            bind: sim_bmc::fleet::BindMode::InProcess,
            events_http: Some(net.client()),
            ..FleetOptions::default()
        },
    )
    .await
    .unwrap();
    let router = f.router("r1").unwrap();
    let http = http_client::HttpClient::from_service(router);
    let auth = format!(
        "Basic {}",
        base64_basic(&f.bmcs()[0].username, &f.bmcs()[0].password)
    );
    let request = |method: http::Method, path: &str, body: &str| {
        http::Request::builder()
            .method(method)
            .uri(format!("http://r1.sim.invalid{path}"))
            .header(http::header::AUTHORIZATION, &auth)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(axum::body::Body::from(body.to_string()))
            .unwrap()
    };
    let subscribe = r#"{"Destination":"http://operator.sim.invalid/events/r1","Protocol":"Redfish","Context":"in-process","EventFormatType":"Event"}"#;
    let created = http
        .send(request(
            http::Method::POST,
            "/redfish/v1/EventService/Subscriptions",
            subscribe,
        ))
        .await
        .unwrap();
    assert_eq!(created.status, StatusCode::CREATED);
    http.send(request(
        http::Method::POST,
        &format!("{SYS}/Actions/ComputerSystem.Reset"),
        r#"{"ResetType":"On"}"#,
    ))
    .await
    .unwrap();
    let event = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("event pushed in virtual time")
        .unwrap();
    assert_eq!(event["Context"], "in-process");
    assert_eq!(
        event["Events"][0]["Message"],
        "Power state changed from Off to PoweringOn."
    );
}

fn base64_basic(user: &str, password: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
}
