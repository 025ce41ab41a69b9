//! The Redfish client against sim-bmc (in-process): session auth, ETag/If-Match, vendor boot-mode
//! handling, bounded retries (idempotent requests only), timeouts and typed errors.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use operator::redfish::{
    AuthMode, ClientOptions, Credentials, RedfishClient, RedfishError, ResetType, service_transport,
};
use sim_bmc::fault::{FaultKind, FaultSpec};
use sim_bmc::fleet::{BindMode, FleetHandle, FleetOptions, FleetSpec};
use sim_bmc::vendor::Vendor;
use tower::ServiceExt as _;

async fn fleet(vendor: Vendor) -> FleetHandle {
    let options = FleetOptions {
        bind: BindMode::InProcess,
        ..FleetOptions::default()
    };
    sim_bmc::Fleet::start(FleetSpec::uniform(1, vendor, 3), options)
        .await
        .unwrap()
}

/// A client whose transport counts the requests that reach the BMC.
fn client(
    fleet: &FleetHandle,
    auth: AuthMode,
    timeout: Duration,
) -> (RedfishClient, Arc<AtomicU64>) {
    let info = &fleet.bmcs()[0];
    let router = fleet.router(&info.name).unwrap();
    let count = Arc::new(AtomicU64::new(0));
    let counter = count.clone();
    let counted = tower::service_fn(move |req: http::Request<operator::redfish::RequestBody>| {
        counter.fetch_add(1, Ordering::Relaxed);
        router.clone().oneshot(req)
    });
    let options = ClientOptions {
        auth,
        request_timeout: timeout,
        max_attempts: 3,
        backoff_base: Duration::from_millis(5),
        backoff_max: Duration::from_millis(20),
        ..ClientOptions::default()
    };
    let creds = Credentials {
        username: info.username.clone(),
        password: info.password.clone(),
    };
    (
        RedfishClient::new(service_transport(counted), &info.url, creds, options).unwrap(),
        count,
    )
}

/// A client with default options over `router` standing in for a BMC.
fn router_client(router: axum::Router) -> RedfishClient {
    let creds = Credentials {
        username: "u".into(),
        password: "p".into(),
    };
    let transport = service_transport(router);
    RedfishClient::new(
        transport,
        "http://bmc.test",
        creds,
        ClientOptions::default(),
    )
    .unwrap()
}

#[tokio::test]
async fn session_auth_connects_and_reads_inventory() {
    let fleet = fleet(Vendor::Lenovo).await;
    let (redfish, _) = client(&fleet, AuthMode::Session, Duration::from_secs(2));
    redfish.connect().await.unwrap();
    let systems = redfish.systems().await.unwrap();
    assert_eq!(
        systems[0].uuid.as_deref().map(str::to_lowercase),
        Some(fleet.bmcs()[0].systems[0].uuid.to_lowercase())
    );
    assert!(!redfish.processors(&systems[0]).await.unwrap().is_empty());
    assert!(!redfish.storages(&systems[0]).await.unwrap().is_empty());
    let manager = redfish.manager(None).await.unwrap();
    assert!(manager.firmware_version.is_some());
    redfish.logout().await.unwrap();
}

#[tokio::test]
async fn pxe_once_and_reset_reach_the_machine_with_etags() {
    for vendor in [Vendor::Dell, Vendor::Supermicro, Vendor::Ami] {
        let fleet = fleet(vendor).await;
        fleet
            .faults(&fleet.bmcs()[0].name)
            .unwrap()
            .set(vec![FaultSpec::new(FaultKind::EtagChurn)]);
        let (redfish, _) = client(&fleet, AuthMode::Basic, Duration::from_secs(2));
        let info = &fleet.bmcs()[0].systems[0];
        let system = redfish.system(&info.odata_id).await.unwrap();
        redfish
            .set_pxe_once(&system)
            .await
            .unwrap_or_else(|e| panic!("{vendor:?}: {e}"));
        redfish.reset_system(&system, ResetType::On).await.unwrap();
        let machine = fleet.machine(&info.uuid).unwrap();
        let settings = machine.boot_settings();
        assert!(
            format!("{settings:?}").contains("Pxe"),
            "{vendor:?}: {settings:?}"
        );
        let after = redfish.system(&info.odata_id).await.unwrap();
        let mode = after.boot.and_then(|b| b.boot_source_override_mode);
        match vendor {
            // Supermicro reports Legacy until told otherwise: UEFI is added whenever a mode is reported.
            Vendor::Supermicro => assert_eq!(mode.as_deref(), Some("UEFI")),
            // AMI reports no mode: none is sent.
            Vendor::Ami => assert_eq!(mode, None),
            _ => {}
        }
    }
}

/// From now on BMC `name` answers every request with `status`.
fn every_request_fails(fleet: &FleetHandle, name: &str, status: u16) {
    let fault = FaultKind::ServerErrors { rate: 1.0, status };
    fleet.faults(name).unwrap().set(vec![FaultSpec::new(fault)]);
}

#[tokio::test]
async fn idempotent_requests_retry_on_5xx_but_actions_do_not_retry_on_500() {
    let fleet = fleet(Vendor::Dell).await;
    let name = fleet.bmcs()[0].name.clone();
    let (redfish, count) = client(&fleet, AuthMode::Basic, Duration::from_secs(2));
    let info = &fleet.bmcs()[0].systems[0];
    let system = redfish.system(&info.odata_id).await.unwrap();
    every_request_fails(&fleet, &name, 500);
    let before = count.load(Ordering::Relaxed);
    let error = redfish.system(&info.odata_id).await.unwrap_err();
    assert_eq!(error.ready_reason(), "InternalServerError");
    assert_eq!(
        count.load(Ordering::Relaxed) - before,
        3,
        "GET retried up to max_attempts"
    );
    let before = count.load(Ordering::Relaxed);
    assert!(matches!(
        redfish.reset_system(&system, ResetType::On).await,
        Err(RedfishError::Server { status: 500, .. })
    ));
    assert_eq!(
        count.load(Ordering::Relaxed) - before,
        1,
        "a reset the BMC may have acted on is not repeated"
    );
    every_request_fails(&fleet, &name, 503);
    let before = count.load(Ordering::Relaxed);
    assert!(redfish.reset_system(&system, ResetType::On).await.is_err());
    assert_eq!(
        count.load(Ordering::Relaxed) - before,
        3,
        "503 means not acted on: retried"
    );
}

#[tokio::test]
async fn slow_bmc_times_out_and_bad_credentials_are_typed() {
    let fleet = fleet(Vendor::Hpe).await;
    let name = fleet.bmcs()[0].name.clone();
    let (redfish, _) = client(&fleet, AuthMode::Basic, Duration::from_millis(100));
    fleet
        .faults(&name)
        .unwrap()
        .set(vec![FaultSpec::new(FaultKind::Latency { ms: 1000 })]);
    let error = redfish.connect().await.unwrap_err();
    assert!(matches!(error, RedfishError::Timeout(_)), "{error}");
    assert_eq!(error.ready_reason(), "ConnectionFailed");
    fleet
        .faults(&name)
        .unwrap()
        .set(vec![FaultSpec::new(FaultKind::AuthFailure)]);
    let error = redfish.connect().await.unwrap_err();
    assert_eq!(error.ready_reason(), "AuthenticationFailed", "{error}");
    fleet.faults(&name).unwrap().clear();
    let system = redfish.systems().await.unwrap().remove(0);
    // HPE does not list PowerCycle: refused locally with a clear error, nothing sent.
    let error = redfish
        .reset_system(&system, ResetType::PowerCycle)
        .await
        .unwrap_err();
    assert!(matches!(error, RedfishError::Unsupported(_)), "{error}");
}

/// A System that keeps `Boot` read-only and takes changes through its `@Redfish.Settings` object,
/// as sushy's samples show for Lenovo SE450 and Nokia BMCs (Dell iDRAC10 likewise): the boot
/// override goes to the settings object, with `If-Match` of its current ETag, as gofish does.
#[tokio::test]
async fn boot_override_falls_back_to_the_settings_object() {
    use axum::routing::get;
    use std::sync::Mutex;
    type Seen = Arc<Mutex<Vec<(String, Option<String>, serde_json::Value)>>>;
    let seen: Seen = Arc::default();
    let record = |seen: Seen, status: http::StatusCode| {
        move |headers: http::HeaderMap, uri: http::Uri, body: bytes::Bytes| {
            let if_match = headers
                .get("if-match")
                .map(|v| v.to_str().unwrap().to_owned());
            let body = serde_json::from_slice(&body).unwrap_or_default();
            seen.lock()
                .unwrap()
                .push((uri.path().to_owned(), if_match, body));
            async move { status }
        }
    };
    let system = serde_json::json!({
        "@odata.id": "/redfish/v1/Systems/1",
        "UUID": "4c4c4544-0000-1000-8000-000000000001",
        "PowerState": "Off",
        "Boot": { "BootSourceOverrideTarget": "None", "BootSourceOverrideEnabled": "Disabled" },
        "@Redfish.Settings": {
            "@odata.type": "#Settings.v1_3_0.Settings",
            "SupportedApplyTimes": ["OnReset"],
            "SettingsObject": { "@odata.id": "/redfish/v1/Systems/1/Pending" }
        }
    });
    let router = axum::Router::new()
        .route(
            "/redfish/v1/Systems/1",
            get(move || async move { axum::Json(system) })
                .patch(record(seen.clone(), http::StatusCode::METHOD_NOT_ALLOWED)),
        )
        .route(
            "/redfish/v1/Systems/1/Pending",
            get(|| async {
                (
                    [("etag", "W/\"42\"")],
                    axum::Json(serde_json::json!({ "@odata.id": "/redfish/v1/Systems/1/Pending" })),
                )
            })
            .patch(record(seen.clone(), http::StatusCode::NO_CONTENT)),
        );
    let redfish = router_client(router);
    let system = redfish.system("/redfish/v1/Systems/1").await.unwrap();
    redfish.set_pxe_once(&system).await.unwrap();
    let seen = seen.lock().unwrap().clone();
    let boot = serde_json::json!({ "Boot": { "BootSourceOverrideEnabled": "Once", "BootSourceOverrideTarget": "Pxe" } });
    assert_eq!(
        seen,
        vec![
            ("/redfish/v1/Systems/1".to_owned(), None, boot.clone()),
            (
                "/redfish/v1/Systems/1/Pending".to_owned(),
                Some("W/\"42\"".to_owned()),
                boot
            ),
        ]
    );
}

/// `Manager.Reset` as gofish sends it: no `ResetType` when the Manager lists neither allowable
/// values nor an ActionInfo (HPE iLO takes none); refused locally when no reset action is advertised.
#[tokio::test]
async fn manager_reset_follows_what_the_manager_advertises() {
    use operator::redfish::types::Manager;
    use std::sync::Mutex;
    let seen: Arc<Mutex<Vec<(String, bytes::Bytes)>>> = Arc::default();
    let log = seen.clone();
    let router = axum::Router::new().fallback(move |uri: http::Uri, body: bytes::Bytes| {
        log.lock().unwrap().push((uri.path().to_owned(), body));
        async { http::StatusCode::NO_CONTENT }
    });
    let redfish = router_client(router);
    let manager = |actions: serde_json::Value| -> Manager {
        serde_json::from_value(serde_json::json!({
            "@odata.id": "/redfish/v1/Managers/1", "Actions": actions
        }))
        .unwrap()
    };
    let bare = manager(
        serde_json::json!({"#Manager.Reset": {"target": "/redfish/v1/Managers/1/Actions/Manager.Reset"}}),
    );
    redfish
        .reset_manager(&bare, ResetType::GracefulRestart)
        .await
        .unwrap();
    let listed = manager(serde_json::json!({"#Manager.Reset": {
        "target": "/redfish/v1/Managers/1/Actions/Manager.Reset",
        "ResetType@Redfish.AllowableValues": ["GracefulRestart"]
    }}));
    redfish
        .reset_manager(&listed, ResetType::GracefulRestart)
        .await
        .unwrap();
    let none = manager(serde_json::json!({}));
    let error = redfish
        .reset_manager(&none, ResetType::GracefulRestart)
        .await
        .unwrap_err();
    assert!(matches!(error, RedfishError::Unsupported(_)), "{error}");
    let seen = seen.lock().unwrap().clone();
    let bodies: Vec<serde_json::Value> = seen
        .iter()
        .map(|(path, body)| {
            assert_eq!(path, "/redfish/v1/Managers/1/Actions/Manager.Reset");
            serde_json::from_slice(body).unwrap()
        })
        .collect();
    assert_eq!(
        bodies,
        vec![
            serde_json::json!({}),
            serde_json::json!({"ResetType": "GracefulRestart"})
        ]
    );
}
