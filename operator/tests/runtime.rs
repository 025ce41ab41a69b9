//! Process-level behaviour: the registry HTTP API, the binary (kubeconfig, probes, metrics, leader
//! Lease, graceful shutdown) and leader election hand-over.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use http_body_util::Full;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::Api;
use operator::leader::{LeaderElector, LeaseConfig};
use operator::redfish::{HttpService, TlsVerification, hyper_transport};
use tower::ServiceExt as _;

const T: Duration = Duration::from_secs(30);

/// Only the status code of [`call`].
async fn status_code(service: &HttpService, method: &str, uri: &str, body: &str) -> u16 {
    call(service, method, uri, body).await.0
}

async fn call(service: &HttpService, method: &str, uri: &str, body: &str) -> (u16, String) {
    let request = http::Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_owned())))
        .unwrap();
    match service.clone().oneshot(request).await {
        Ok(response) => (
            response.status().as_u16(),
            String::from_utf8_lossy(response.body()).into_owned(),
        ),
        Err(_) => (0, String::new()),
    }
}

#[tokio::test]
async fn registry_http_api_matches_upstream() {
    let mut options = HarnessOptions::new(1);
    options.probe = false;
    let mut h = Harness::start(options).await;
    let bmcs = h.create_bmcs_and_start().await;
    let server = format!("{}-system-0", bmcs[0]);
    let uuid = h.wait_state(&server, "Discovery").await.spec.system_uuid;
    let registry =
        operator::redfish::service_transport(h.operator.as_ref().unwrap().registry.router());
    let base = "http://registry.test";
    // Unknown system, malformed registration, wrong method.
    for (method, uri, body, expected) in [
        ("GET", format!("{base}/systems/{uuid}"), "", 404),
        ("POST", format!("{base}/register"), "{not json", 400),
        ("PUT", format!("{base}/register"), "{}", 405),
    ] {
        let got = status_code(&registry, method, &uri, body).await;
        assert_eq!(got, expected, "{method} {uri}");
    }
    let payload = format!(
        r#"{{"systemUUID":"{uuid}","data":{{"timestamp":"2026-01-01T00:00:00Z","networkInterfaces":[{{"name":"eth0","ipAddresses":["10.1.1.1"],"macAddress":"aa:bb:cc:dd:ee:ff","carrierStatus":"up"}}]}}}}"#
    );
    assert_eq!(
        status_code(&registry, "POST", &format!("{base}/register"), &payload).await,
        201
    );
    let (status, body) = call(&registry, "GET", &format!("{base}/systems/{uuid}"), "").await;
    assert_eq!(status, 200);
    assert!(body.contains("10.1.1.1"), "{body}");
    // Deleting twice: the second finds nothing.
    let delete = format!("{base}/delete/{uuid}");
    for expected in [200, 404] {
        let got = status_code(&registry, "DELETE", &delete, "").await;
        assert_eq!(got, expected, "DELETE {delete}");
    }
    // The booted OS reports back: the Server's current SBC gets BootStateReceived.
    let unknown = r#"{"systemUUID":"00000000-0000-0000-0000-000000000000","booted":true}"#;
    assert_eq!(
        status_code(&registry, "POST", &format!("{base}/bootstate"), unknown).await,
        404
    );
    let booted = format!(r#"{{"systemUUID":"{uuid}","booted":true}}"#);
    assert_eq!(
        status_code(&registry, "POST", &format!("{base}/bootstate"), &booted).await,
        200
    );
    let sbc = h.sbcs(NS).get(&server).await.unwrap();
    let condition = sbc.condition("BootStateReceived").unwrap();
    assert_eq!(
        (condition.status.as_str(), condition.reason.as_str()),
        ("True", "BootStateReceived")
    );
    assert_eq!(condition.observed_generation, sbc.metadata.generation);
    // The metrics endpoint exports upstream's server gauges from the live cache.
    let handle = h.operator.as_ref().unwrap();
    let probes = operator::probes::Probes {
        ready: std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true)),
        metrics: handle.metrics.clone(),
        servers: Some(handle.stores.servers.clone()),
    };
    let probes = operator::redfish::service_transport(operator::probes::router(probes));
    let (status, text) = call(&probes, "GET", "http://probes.test/metrics", "").await;
    assert_eq!(status, 200);
    assert!(
        text.contains(r#"metal_server_state{state="Discovery"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(
            r#"controller_runtime_reconcile_total{controller="server",result="success"}"#
        ),
        "{text}"
    );
    assert_eq!(
        status_code(&probes, "GET", "http://probes.test/readyz", "").await,
        200
    );
}

#[tokio::test]
async fn leader_election_hands_over_on_release() {
    let h = Harness::start(HarnessOptions::new(0)).await;
    let config = |identity: &str| LeaseConfig {
        namespace: NS.into(),
        name: "f26702e4.ironcore.dev".into(),
        identity: identity.into(),
        lease_duration: Duration::from_secs(15),
        retry_period: Duration::from_millis(100),
    };
    let a = LeaderElector::new(h.client.clone(), config("a"));
    let b = LeaderElector::new(h.client.clone(), config("b"));
    tokio::time::timeout(T, a.acquire()).await.expect("a leads");
    assert!(
        tokio::time::timeout(Duration::from_millis(500), b.acquire())
            .await
            .is_err(),
        "b must wait while a holds the lease"
    );
    a.release().await;
    tokio::time::timeout(T, b.acquire())
        .await
        .expect("b takes over");
    let lease = Api::<Lease>::namespaced(h.client.clone(), NS)
        .get("f26702e4.ironcore.dev")
        .await
        .unwrap();
    assert_eq!(lease.spec.unwrap().holder_identity.as_deref(), Some("b"));
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_runs_with_kubeconfig_serves_probes_and_metrics_and_stops_on_sigterm() {
    let h = Harness::start(HarnessOptions::new(0)).await;
    // Something to reconcile, so the reconcile metrics have samples.
    let secret = metal_api::BMCSecret::new(
        "s",
        metal_api::BMCSecretFields {
            string_data: Some(
                [
                    ("username".to_owned(), "u".to_owned()),
                    ("password".to_owned(), "p".to_owned()),
                ]
                .into(),
            ),
            ..Default::default()
        },
    );
    Api::<metal_api::BMCSecret>::all(h.client.clone())
        .create(&Default::default(), &secret)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    h.api.write_kubeconfig(&kubeconfig).unwrap();
    let (health, metrics, registry) = (free_port(), free_port(), free_port());
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_metal-operator"))
        .arg(format!("--kubeconfig={}", kubeconfig.display()))
        .arg(format!("--health-probe-bind-address=127.0.0.1:{health}"))
        .arg(format!("--metrics-bind-address=127.0.0.1:{metrics}"))
        .arg(format!("--registry-port={registry}"))
        .arg("--leader-elect")
        .arg("--log-format=json")
        .arg("--probe-image=probe:test")
        .arg("--probe-os-image=os:test")
        .stdout(std::fs::File::create(dir.path().join("operator.out")).unwrap())
        .stderr(std::fs::File::create(dir.path().join("operator.log")).unwrap())
        .spawn()
        .unwrap();
    let http = hyper_transport(TlsVerification::Verify);
    let deadline = tokio::time::Instant::now() + 2 * T;
    while status_code(
        &http,
        "GET",
        &format!("http://127.0.0.1:{health}/readyz"),
        "",
    )
    .await
        != 200
    {
        let log = || {
            let read = |f: &str| std::fs::read_to_string(dir.path().join(f)).unwrap_or_default();
            read("operator.log") + &read("operator.out")
        };
        let probe = call(
            &http,
            "GET",
            &format!("http://127.0.0.1:{health}/readyz"),
            "",
        )
        .await;
        assert!(
            tokio::time::Instant::now() < deadline,
            "operator never became ready ({probe:?}):\n{}",
            log()
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "operator exited early:\n{}",
            log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        status_code(
            &http,
            "GET",
            &format!("http://127.0.0.1:{health}/healthz"),
            ""
        )
        .await,
        200
    );
    let scrape = || async {
        call(
            &http,
            "GET",
            &format!("http://127.0.0.1:{metrics}/metrics"),
            "",
        )
        .await
        .1
    };
    let wanted = r#"controller_runtime_reconcile_total{controller="bmcsecret",result="success"}"#;
    while !scrape().await.contains(wanted) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{wanted} missing from /metrics:\n{}",
            scrape().await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let text = scrape().await;
    for family in [
        "controller_runtime_reconcile_time_seconds",
        "controller_runtime_active_workers",
    ] {
        assert!(
            text.contains(family),
            "{family} missing from /metrics:\n{text}"
        );
    }
    let registry_status = status_code(
        &http,
        "GET",
        &format!("http://127.0.0.1:{registry}/systems/unknown"),
        "",
    )
    .await;
    assert_eq!(registry_status, 404, "registry served by the binary");
    let lease = Api::<Lease>::namespaced(h.client.clone(), NS)
        .get("f26702e4.ironcore.dev")
        .await
        .unwrap();
    assert!(lease.spec.unwrap().holder_identity.is_some());
    std::process::Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no graceful exit after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(status.success(), "exit status {status}");
    let lease = Api::<Lease>::namespaced(h.client.clone(), NS)
        .get("f26702e4.ironcore.dev")
        .await
        .unwrap();
    assert!(
        lease.spec.unwrap().holder_identity.is_none(),
        "lease released on shutdown"
    );
}

/// `--event-url`: the BMC controller subscribes each BMC to the receiver, and what a BMC pushes to
/// that destination (over loopback HTTP) shows up as upstream's `redfish_event_alert_total`.
#[tokio::test]
async fn bmc_events_pushed_to_the_subscribed_destination_become_metrics() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut options = HarnessOptions::new(1);
    options.probe = false;
    options.config.event_url = format!("http://127.0.0.1:{port}");
    let mut h = Harness::start(options).await;
    h.event_listen = Some(([127, 0, 0, 1], port).into());
    let bmcs = h.create_bmcs_and_start().await;
    let bmc = h
        .wait_for(
            &Api::<metal_api::BMC>::all(h.client.clone()),
            &bmcs[0],
            T,
            "subscriptions",
            |b: &metal_api::BMC| {
                b.status.as_ref().is_some_and(|s| {
                    s.events_subscription_link.is_some()
                        && s.metrics_report_subscription_link.is_some()
                })
            },
        )
        .await;
    // Read the destination back from the BMC, as the BMC itself would use it.
    let info = &h.fleet.bmcs()[0];
    let redfish = operator::redfish::RedfishClient::new(
        operator::redfish::service_transport(h.fleet.router(&info.name).unwrap()),
        &info.url,
        operator::redfish::Credentials {
            username: info.username.clone(),
            password: info.password.clone(),
        },
        Default::default(),
    )
    .unwrap();
    let link = bmc.status.unwrap().events_subscription_link.unwrap();
    let subscription: serde_json::Value = redfish.get(&link).await.unwrap();
    let destination = subscription["Destination"].as_str().unwrap().to_owned();
    assert_eq!(
        destination,
        format!("http://127.0.0.1:{port}/serverevents/alerts/{}", bmcs[0])
    );
    let event = r##"{"@odata.type": "#Event.v1_7_0.Event", "Id": "1", "Name": "Event Array",
        "Events": [{"EventType": "Alert", "EventId": "4711", "MessageId": "EventLog.1.0.FanFailed",
        "MessageSeverity": "Critical", "Message": "Fan 1 failed",
        "OriginOfCondition": {"@odata.id": "/redfish/v1/Chassis/1/Thermal#/Fans/0"}}]}"##;
    let http = hyper_transport(TlsVerification::Verify);
    let (status, _) = call(&http, "POST", &destination, event).await;
    assert_eq!(status, 200);
    let (status, body) = call(&http, "POST", &destination, "{not json").await;
    assert_eq!(status, 400, "{body}");
    let metrics = h.operator.as_ref().unwrap().metrics.encode();
    let expected = format!(
        r#"redfish_event_alert_total{{hostname="{}",severity="Critical",message_id="EventLog.1.0.FanFailed",component="0"}} 1"#,
        bmcs[0]
    );
    assert!(metrics.contains(&expected), "{metrics}");
    h.stop_operator().await;
}

/// `--dns-record-template-path`: one object per BMC, rendered from the BMC, owned by it. Any kind
/// works (here a ConfigMap stands in for a DNSRecord).
#[tokio::test]
async fn dns_record_template_renders_one_object_per_bmc() {
    let template = r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Name }}-dns
  namespace: {{ .Namespace }}
data:
  ip: "{{ .IP }}"
  port: "{{ .Protocol.Port }}"
  manufacturer: "{{ .Manufacturer }}"
"#;
    operator::dns::validate(template).unwrap();
    let mut options = HarnessOptions::new(1);
    options.probe = false;
    options.config.dns_record_template = Some(template.into());
    let mut h = Harness::start(options).await;
    let bmcs = h.create_bmcs_and_start().await;
    let config_maps =
        Api::<k8s_openapi::api::core::v1::ConfigMap>::namespaced(h.client.clone(), NS);
    let record = h
        .wait_for(
            &config_maps,
            &format!("{}-dns", bmcs[0]),
            T,
            "DNS record",
            |_| true,
        )
        .await;
    let bmc = Api::<metal_api::BMC>::all(h.client.clone())
        .get(&bmcs[0])
        .await
        .unwrap();
    let status = bmc.status.clone().unwrap();
    let data = record.data.unwrap();
    assert_eq!(data.get("ip"), status.ip.as_ref());
    assert_eq!(data.get("manufacturer"), status.manufacturer.as_ref());
    let owner = &record.metadata.owner_references.unwrap()[0];
    assert_eq!(owner.kind, "BMC");
    assert_eq!(Some(&owner.uid), bmc.metadata.uid.as_ref());
    h.stop_operator().await;
}
