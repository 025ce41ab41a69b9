//! Redfish protocol rules and every error path, through the in-process tower Service; insta snapshots of
//! representative payloads (under a paused clock with a fixed epoch, so timestamps are stable).

mod common;

use common::{Client, fleet};
use http::{Method, StatusCode};
use sim_bmc::FleetOptions;

const FLEET: &str = r#"
seed: 5
defaults:
  credentials: {username: admin, password: secret}
  accounts:
    - {username: viewer, password: view, role: ReadOnly}
    - {username: op, password: op, role: Operator}
  latencies: {powerOnMs: 100, powerOffMs: 100, gracefulShutdownMs: 100, postMs: 10}
bmcs:
  - {name: dell, vendor: dell}
  - {name: hpe, vendor: hpe}
  - {name: ami, vendor: ami}
  - {name: smc, vendor: supermicro}
  - {name: xcc, vendor: lenovo}
"#;

const DELL_SYS: &str = "/redfish/v1/Systems/System.Embedded.1";

fn opts() -> FleetOptions {
    let epoch = "2026-01-02T03:04:05Z".parse().unwrap();
    FleetOptions {
        clock: Some(clock::Clock::simulated(epoch)),
        ..Default::default()
    }
}

#[tokio::test(start_paused = true)]
async fn authentication_and_authorization_errors() {
    let f = fleet(FLEET, opts()).await;
    let mut c = Client::new(&f, "dell");
    // Service root is public; everything else needs credentials.
    c.auth = None;
    assert_eq!(c.get("/redfish/v1/").await.status, StatusCode::OK);
    assert_eq!(
        c.get("/redfish").await.json,
        serde_json::json!({"v1": "/redfish/v1/"})
    );
    let r = c.get(DELL_SYS).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.header("www-authenticate").unwrap().starts_with("Basic"));
    assert!(r.message_id().ends_with("NoValidSession"));
    c.auth = Some(("admin".into(), "wrong".into()));
    assert_eq!(c.get(DELL_SYS).await.status, StatusCode::UNAUTHORIZED);
    // ReadOnly may read, not write.
    c.auth = Some(("viewer".into(), "view".into()));
    assert_eq!(c.get(DELL_SYS).await.status, StatusCode::OK);
    let r = c.patch(DELL_SYS, r#"{"IndicatorLED":"Lit"}"#).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.message_id().ends_with("InsufficientPrivilege"));
    // Operator may reset a system but not create accounts.
    c.auth = Some(("op".into(), "op".into()));
    assert_eq!(
        c.post(
            &format!("{DELL_SYS}/Actions/ComputerSystem.Reset"),
            r#"{"ResetType":"On"}"#
        )
        .await
        .status,
        StatusCode::NO_CONTENT
    );
    let r = c
        .post(
            "/redfish/v1/AccountService/Accounts",
            r#"{"UserName":"x","Password":"y","RoleId":"ReadOnly"}"#,
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

#[tokio::test(start_paused = true)]
async fn sessions_login_use_logout_and_expire() {
    let f = fleet(FLEET, opts()).await;
    let mut c = Client::new(&f, "dell");
    c.auth = None;
    let r = c
        .post(
            "/redfish/v1/SessionService/Sessions",
            r#"{"UserName":"admin","Password":"secret"}"#,
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let token = r.header("x-auth-token").expect("token");
    let location = r.header("location").expect("location");
    assert_eq!(r.json["UserName"], "admin");
    c.token = Some(token.clone());
    assert_eq!(c.get(DELL_SYS).await.status, StatusCode::OK);
    assert_eq!(c.get(&location).await.json["Id"], r.json["Id"]);
    assert_eq!(
        c.send(Method::DELETE, &location, None, &[]).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(c.get(DELL_SYS).await.status, StatusCode::UNAUTHORIZED);
    // Wrong password: 401; idle sessions expire after SessionTimeout.
    let r = c
        .post(
            "/redfish/v1/SessionService/Sessions",
            r#"{"UserName":"admin","Password":"nope"}"#,
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = c
        .post(
            "/redfish/v1/SessionService/Sessions",
            r#"{"UserName":"admin","Password":"secret"}"#,
        )
        .await;
    c.token = r.header("x-auth-token");
    tokio::time::advance(std::time::Duration::from_secs(1799)).await;
    assert_eq!(
        c.get(DELL_SYS).await.status,
        StatusCode::OK,
        "use refreshes the idle timer"
    );
    tokio::time::advance(std::time::Duration::from_secs(1800)).await;
    assert_eq!(c.get(DELL_SYS).await.status, StatusCode::UNAUTHORIZED);
    let r = c
        .post(
            "/redfish/v1/SessionService/Sessions",
            r#"{"UserName":"admin"}"#,
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.message_id().ends_with("PropertyMissing"));
}

#[tokio::test(start_paused = true)]
async fn bad_requests_carry_base_registry_messages() {
    let f = fleet(FLEET, opts()).await;
    let c = Client::new(&f, "dell");
    let reset = format!("{DELL_SYS}/Actions/ComputerSystem.Reset");
    let cases: Vec<(Method, &str, &str, StatusCode, &str)> = vec![
        (
            Method::GET,
            "/redfish/v1/Nope",
            "",
            StatusCode::NOT_FOUND,
            "ResourceMissingAtURI",
        ),
        (
            Method::GET,
            "/redfish/v1/Systems/1",
            "",
            StatusCode::NOT_FOUND,
            "ResourceMissingAtURI",
        ),
        (
            Method::PATCH,
            DELL_SYS,
            "{not json",
            StatusCode::BAD_REQUEST,
            "MalformedJSON",
        ),
        (
            Method::PATCH,
            DELL_SYS,
            r#"{"Colour":"red"}"#,
            StatusCode::BAD_REQUEST,
            "PropertyUnknown",
        ),
        (
            Method::PATCH,
            DELL_SYS,
            r#"{"UUID":"x"}"#,
            StatusCode::BAD_REQUEST,
            "PropertyNotWritable",
        ),
        (
            Method::PATCH,
            DELL_SYS,
            r#"{"Boot":{"BootSourceOverrideTarget":"Floppy"}}"#,
            StatusCode::BAD_REQUEST,
            "PropertyValueNotInList",
        ),
        (
            Method::PATCH,
            DELL_SYS,
            r#"{"Boot":{"BootSourceOverrideEnabled":1}}"#,
            StatusCode::BAD_REQUEST,
            "PropertyValueTypeError",
        ),
        (
            Method::PATCH,
            DELL_SYS,
            r#"{"Boot":{"BootOrder":["Boot9999"]}}"#,
            StatusCode::BAD_REQUEST,
            "PropertyValueNotInList",
        ),
        (
            Method::POST,
            &reset,
            r#"{"ResetType":"Explode"}"#,
            StatusCode::BAD_REQUEST,
            "ActionParameterValueNotInList",
        ),
        (
            Method::POST,
            &reset,
            r#"{}"#,
            StatusCode::BAD_REQUEST,
            "ActionParameterMissing",
        ),
        (
            Method::POST,
            &reset,
            r#"{"ResetType":"On","Force":true}"#,
            StatusCode::BAD_REQUEST,
            "ActionParameterUnknown",
        ),
        (
            Method::PATCH,
            "/redfish/v1/",
            "{}",
            StatusCode::METHOD_NOT_ALLOWED,
            "OperationNotAllowed",
        ),
        (
            Method::DELETE,
            DELL_SYS,
            "",
            StatusCode::METHOD_NOT_ALLOWED,
            "OperationNotAllowed",
        ),
        (
            Method::PATCH,
            "/redfish/v1/AccountService/Roles/Administrator",
            "{}",
            StatusCode::METHOD_NOT_ALLOWED,
            "OperationNotAllowed",
        ),
        (
            Method::GET,
            "/redfish/v1/Systems?$expand=.",
            "",
            StatusCode::NOT_IMPLEMENTED,
            "QueryNotSupported",
        ),
    ];
    for (method, path, body, status, id) in cases {
        let body = (!body.is_empty()).then_some(body);
        let r = c.send(method.clone(), path, body, &[]).await;
        assert_eq!(r.status, status, "{method} {path}: {}", r.json);
        assert!(r.message_id().ends_with(id), "{method} {path}: {}", r.json);
        if status == StatusCode::METHOD_NOT_ALLOWED {
            assert!(
                r.header("allow").is_some_and(|a| a.contains("GET")),
                "Allow on 405"
            );
        }
    }
    let r = c
        .send(Method::GET, DELL_SYS, None, &[("OData-Version", "4.1")])
        .await;
    assert_eq!(r.status, StatusCode::PRECONDITION_FAILED);
    let r = c
        .send(
            Method::PATCH,
            DELL_SYS,
            Some("{}"),
            &[("Content-Type", "text/plain")],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

#[tokio::test(start_paused = true)]
async fn etags_guard_patches() {
    let f = fleet(FLEET, opts()).await;
    let c = Client::new(&f, "dell");
    let r = c.get(DELL_SYS).await;
    let etag = r.header("etag").unwrap();
    assert_eq!(r.json["@odata.etag"], etag.as_str());
    let r = c
        .send(Method::GET, DELL_SYS, None, &[("If-None-Match", &etag)])
        .await;
    assert_eq!(r.status, StatusCode::NOT_MODIFIED);
    let patch = r#"{"Boot":{"BootSourceOverrideTarget":"Pxe","BootSourceOverrideEnabled":"Once"}}"#;
    let r = c
        .send(
            Method::PATCH,
            DELL_SYS,
            Some(patch),
            &[("If-Match", "W/\"0000\"")],
        )
        .await;
    assert_eq!(r.status, StatusCode::PRECONDITION_FAILED);
    assert!(r.message_id().ends_with("PreconditionFailed"));
    let r = c
        .send(Method::PATCH, DELL_SYS, Some(patch), &[("If-Match", &etag)])
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_ne!(
        r.json["@odata.etag"],
        etag.as_str(),
        "the change produced a new ETag"
    );
    // The old ETag is now stale.
    let r = c
        .send(Method::PATCH, DELL_SYS, Some(patch), &[("If-Match", &etag)])
        .await;
    assert_eq!(r.status, StatusCode::PRECONDITION_FAILED);
}

/// Concurrent writers carrying the same ETag: exactly one wins, the others get 412 (the DMTF protocol
/// validator's SEC_ACCOUNTS_SUPPORT_ETAGS check found two winners when the check and the write could interleave).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_patches_with_one_etag_have_one_winner() {
    let f = fleet(FLEET, opts()).await;
    let reset =
        r#"{"Boot":{"BootSourceOverrideTarget":"None","BootSourceOverrideEnabled":"Disabled"}}"#;
    for round in 0..10 {
        // Every writer changes the resource from this state, so the first write moves the ETag.
        let c = Client::new(&f, "dell");
        let r = c.send(Method::PATCH, DELL_SYS, Some(reset), &[]).await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.json);
        let etag = c.get(DELL_SYS).await.header("etag").unwrap();
        let writers: Vec<_> = ["Pxe", "Hdd", "Cd", "BiosSetup", "Pxe", "Hdd"]
            .into_iter()
            .map(|target| {
                let client = Client::new(&f, "dell");
                let etag = etag.clone();
                tokio::spawn(async move {
                    let patch = format!(
                        r#"{{"Boot":{{"BootSourceOverrideTarget":"{target}","BootSourceOverrideEnabled":"Once"}}}}"#
                    );
                    client
                        .send(Method::PATCH, DELL_SYS, Some(&patch), &[("If-Match", &etag)])
                        .await
                        .status
                })
            })
            .collect();
        let mut statuses = Vec::new();
        for writer in writers {
            statuses.push(writer.await.unwrap());
        }
        let won = statuses.iter().filter(|s| **s == StatusCode::OK).count();
        let lost = statuses
            .iter()
            .filter(|s| **s == StatusCode::PRECONDITION_FAILED)
            .count();
        assert_eq!(
            (won, lost),
            (1, statuses.len() - 1),
            "round {round}: {statuses:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn vendor_flavours_differ_like_real_bmcs() {
    let f = fleet(FLEET, opts()).await;
    let ids: Vec<(String, String)> = f
        .bmcs()
        .iter()
        .map(|b| (b.name.clone(), b.systems[0].id.clone()))
        .collect();
    assert_eq!(
        ids,
        [
            ("dell", "System.Embedded.1"),
            ("hpe", "1"),
            ("ami", "Self"),
            ("smc", "1"),
            ("xcc", "1")
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    // HPE answers a reset with 200 and a message; Dell with 204.
    let hpe = Client::new(&f, "hpe");
    let r = hpe
        .post(
            "/redfish/v1/Systems/1/Actions/ComputerSystem.Reset",
            r#"{"ResetType":"On"}"#,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.json["@Message.ExtendedInfo"][0]["MessageId"]
            .as_str()
            .unwrap()
            .ends_with("Success")
    );
    let r = hpe
        .post(
            "/redfish/v1/Systems/1/Actions/ComputerSystem.Reset",
            r#"{"ResetType":"PowerCycle"}"#,
        )
        .await;
    assert!(
        r.message_id().ends_with("ActionParameterValueNotInList"),
        "HPE does not offer PowerCycle"
    );
    // AMI has no BootSourceOverrideMode; Supermicro reports Legacy.
    let ami = Client::new(&f, "ami");
    let sys = ami.get("/redfish/v1/Systems/Self").await.json;
    assert!(sys["Boot"].get("BootSourceOverrideMode").is_none());
    let r = ami
        .patch(
            "/redfish/v1/Systems/Self",
            r#"{"Boot":{"BootSourceOverrideMode":"UEFI"}}"#,
        )
        .await;
    assert!(r.message_id().ends_with("PropertyUnknown"), "{}", r.json);
    let smc = Client::new(&f, "smc")
        .get("/redfish/v1/Systems/1")
        .await
        .json;
    assert_eq!(smc["Boot"]["BootSourceOverrideMode"], "Legacy");
    assert_eq!(smc["Manufacturer"], "Supermicro");
    // A mode-only change is visible on the next GET (the rendered-payload cache is keyed by machine state).
    let smc_client = Client::new(&f, "smc");
    let r = smc_client
        .patch(
            "/redfish/v1/Systems/1",
            r#"{"Boot":{"BootSourceOverrideMode":"UEFI"}}"#,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        smc_client.get("/redfish/v1/Systems/1").await.json["Boot"]["BootSourceOverrideMode"],
        "UEFI"
    );
    let xcc = Client::new(&f, "xcc")
        .get("/redfish/v1/Managers/1")
        .await
        .json;
    assert_eq!(xcc["Model"], "XCC2");
}

#[tokio::test(start_paused = true)]
async fn representative_payloads() {
    let f = fleet(FLEET, opts()).await;
    let dell = Client::new(&f, "dell");
    insta::assert_json_snapshot!("dell_system", dell.get(DELL_SYS).await.json);
    insta::assert_json_snapshot!("dell_service_root", dell.get("/redfish/v1/").await.json);
    let hpe = Client::new(&f, "hpe");
    insta::assert_json_snapshot!("hpe_manager", hpe.get("/redfish/v1/Managers/1").await.json);
    let ami = Client::new(&f, "ami");
    insta::assert_json_snapshot!("ami_system", ami.get("/redfish/v1/Systems/Self").await.json);
    let bad = dell
        .post(
            &format!("{DELL_SYS}/Actions/ComputerSystem.Reset"),
            r#"{"ResetType":"Explode"}"#,
        )
        .await;
    insta::assert_json_snapshot!("error_action_parameter_value_not_in_list", bad.json);
}
