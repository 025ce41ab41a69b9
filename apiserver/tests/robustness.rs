//! Bad input gets the real server's status codes; admission callbacks; fault injection; socket-free clients.

mod common;

use std::time::Duration;

use axum::body::Body;
use common::*;
use http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};
use tower::ServiceExt;

async fn call(
    router: &axum::Router,
    method: Method,
    uri: &str,
    content_type: &str,
    body: Vec<u8>,
) -> (StatusCode, Value) {
    let req = request(method, uri, content_type, body);
    let resp = router.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

const CMS: &str = "/api/v1/namespaces/default/configmaps";

/// One refused request: what is sent and the Status kube-apiserver answers it with.
struct Refused {
    why: &'static str,
    method: Method,
    uri: String,
    content_type: &'static str,
    body: Vec<u8>,
    code: u16,
    reason: &'static str,
}

fn refused(
    why: &'static str,
    method: Method,
    uri: impl Into<String>,
    content_type: &'static str,
    body: impl Into<Vec<u8>>,
    (code, reason): (u16, &'static str),
) -> Refused {
    Refused {
        why,
        method,
        uri: uri.into(),
        content_type,
        body: body.into(),
        code,
        reason,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_real_status_codes_and_server_keeps_serving() {
    let h = start().await;
    let r = h.router();
    let json_ct = "application/json";
    let ok = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ok"}});
    assert_eq!(
        call(&r, Method::POST, CMS, json_ct, ok.to_string().into_bytes())
            .await
            .0,
        StatusCode::CREATED
    );
    let obj = format!("{CMS}/ok");
    let cm = |name: &str| {
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}}).to_string()
    };
    let bad_request = (400, "BadRequest");
    let huge = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "big"}, "data": {"x": "y".repeat(3 * 1024 * 1024 + 1)}});
    let cases = [
        refused(
            "not JSON",
            Method::POST,
            CMS,
            json_ct,
            "{not json",
            bad_request,
        ),
        refused(
            "broken YAML",
            Method::POST,
            CMS,
            "application/yaml",
            "a: [unclosed",
            bad_request,
        ),
        refused(
            "wrong apiVersion",
            Method::POST,
            CMS,
            json_ct,
            json!({"apiVersion": "v2", "kind": "ConfigMap", "metadata": {"name": "a"}}).to_string(),
            bad_request,
        ),
        refused(
            "wrong kind",
            Method::POST,
            CMS,
            json_ct,
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "a"}}).to_string(),
            bad_request,
        ),
        refused(
            "name not DNS",
            Method::POST,
            CMS,
            json_ct,
            cm("Not_DNS"),
            (422, "Invalid"),
        ),
        refused(
            "over 3 MiB",
            Method::POST,
            CMS,
            json_ct,
            huge.to_string(),
            (413, "RequestEntityTooLarge"),
        ),
        refused(
            "unknown patch type",
            Method::PATCH,
            &obj,
            "application/foo",
            "{}",
            (415, "UnsupportedMediaType"),
        ),
        refused(
            "JSON patch not a list",
            Method::PATCH,
            &obj,
            "application/json-patch+json",
            "{\"op\":1}",
            bad_request,
        ),
        refused(
            "POST to an item",
            Method::POST,
            &obj,
            json_ct,
            "{}",
            (405, "MethodNotAllowed"),
        ),
        refused(
            "unknown resource",
            Method::GET,
            "/api/v1/namespaces/default/nonsense",
            json_ct,
            "",
            (404, "NotFound"),
        ),
        refused(
            "limit not a number",
            Method::GET,
            format!("{CMS}?limit=abc"),
            json_ct,
            "",
            bad_request,
        ),
        refused(
            "bad label selector",
            Method::GET,
            format!("{CMS}?labelSelector=a%20b%20c"),
            json_ct,
            "",
            bad_request,
        ),
        refused(
            "resourceVersion not a number",
            Method::GET,
            format!("{CMS}?watch=true&resourceVersion=xyz"),
            json_ct,
            "",
            bad_request,
        ),
        refused(
            "PUT under another name",
            Method::PUT,
            &obj,
            json_ct,
            cm("other"),
            bad_request,
        ),
    ];
    for case in cases {
        let got = call(&r, case.method, &case.uri, case.content_type, case.body).await;
        assert_eq!(got.0.as_u16(), case.code, "{}: {}", case.why, got.1);
        assert_eq!(got.1["kind"], "Status", "{}: {}", case.why, got.1);
        assert_eq!(got.1["code"], case.code, "{}: {}", case.why, got.1);
        assert_eq!(got.1["reason"], case.reason, "{}: {}", case.why, got.1);
        if case.reason == "Invalid" {
            assert_eq!(got.1["details"]["causes"][0]["field"], "metadata.name");
        }
    }
    // Still serving, nothing lost.
    let (code, got) = call(&r, Method::GET, &obj, json_ct, vec![]).await;
    assert_eq!(
        (code, got["metadata"]["name"].as_str()),
        (StatusCode::OK, Some("ok"))
    );
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socket_free_client_and_admission_hooks() {
    let h = start_with_widgets().await;
    h.admission().mutate(
        "mwidget.test.metal.dev",
        "test.metal.dev",
        "Widget",
        |_req, obj| {
            obj["metadata"]["labels"]["mutated"] = json!("yes");
            Ok(())
        },
    );
    h.admission().validate(
        "vwidget.test.metal.dev",
        "test.metal.dev",
        "Widget",
        |req| {
            let size = req
                .object
                .and_then(|o| o.pointer("/spec/size"))
                .and_then(Value::as_i64)
                .unwrap_or(0);
            if size > 100 {
                Err(apiserver::admission::denied("size must be at most 100"))
            } else {
                Ok(())
            }
        },
    );
    // The router is a tower service: no socket involved.
    let client = kube::Client::new(h.router(), "default");
    let api: Api<Widget> = Api::namespaced(client, "default");
    let mut w = widget("ok", 5);
    w.metadata.labels = Some(Default::default());
    let made = api.create(&PostParams::default(), &w).await.unwrap();
    assert_eq!(made.metadata.labels.unwrap()["mutated"], "yes");
    let mut big = widget("big", 500);
    big.metadata.labels = Some(Default::default());
    let err = api.create(&PostParams::default(), &big).await.unwrap_err();
    let kube::Error::Api(s) = err else {
        panic!("expected a Status")
    };
    assert_eq!(s.code, 403);
    assert_eq!(
        s.message,
        "admission webhook \"vwidget.test.metal.dev\" denied the request: size must be at most 100"
    );
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_errors_and_latency() {
    let h = start().await;
    let api: Api<ConfigMap> = Api::namespaced(h.client(), "default");
    h.faults().set_error_rate(0.5, 500);
    let mut failures = 0;
    for _ in 0..10 {
        match api.get_opt("x").await {
            Err(kube::Error::Api(s)) => {
                assert_eq!((s.code, s.reason.as_str()), (500, "InternalError"));
                failures += 1;
            }
            Err(e) => panic!("{e:?}"),
            Ok(_) => {}
        }
    }
    assert_eq!(failures, 5, "exactly the configured share fails");
    // 429 carries its reason (kube's client retries those itself, so look at the raw answer).
    h.faults().set_error_rate(1.0, 429);
    let req = Request::builder().uri(CMS).body(Body::empty()).unwrap();
    let resp = h.router().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    h.faults().clear();
    h.faults().set_latency(Duration::from_millis(150));
    let t = tokio::time::Instant::now();
    api.get_opt("x").await.unwrap();
    assert!(t.elapsed() >= Duration::from_millis(150));
    h.faults().clear();
    h.shutdown().await;
}
