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
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", content_type)
        .body(Body::from(body))
        .unwrap();
    let resp = router.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn assert_status(got: &(StatusCode, Value), code: u16, reason: &str) {
    assert_eq!(got.0.as_u16(), code, "{}", got.1);
    assert_eq!(got.1["kind"], "Status", "{}", got.1);
    assert_eq!(got.1["code"], code);
    assert_eq!(got.1["reason"], reason, "{}", got.1);
}

const CMS: &str = "/api/v1/namespaces/default/configmaps";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_real_status_codes_and_server_keeps_serving() {
    let h = start().await;
    let r = h.router();
    let json_ct = "application/json";
    assert_status(
        &call(&r, Method::POST, CMS, json_ct, b"{not json".to_vec()).await,
        400,
        "BadRequest",
    );
    assert_status(
        &call(
            &r,
            Method::POST,
            CMS,
            "application/yaml",
            b"a: [unclosed".to_vec(),
        )
        .await,
        400,
        "BadRequest",
    );
    let wrong_version = json!({"apiVersion": "v2", "kind": "ConfigMap", "metadata": {"name": "a"}});
    assert_status(
        &call(
            &r,
            Method::POST,
            CMS,
            json_ct,
            wrong_version.to_string().into_bytes(),
        )
        .await,
        400,
        "BadRequest",
    );
    let wrong_kind = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "a"}});
    assert_status(
        &call(
            &r,
            Method::POST,
            CMS,
            json_ct,
            wrong_kind.to_string().into_bytes(),
        )
        .await,
        400,
        "BadRequest",
    );
    let bad_name =
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "Not_DNS"}});
    let got = call(
        &r,
        Method::POST,
        CMS,
        json_ct,
        bad_name.to_string().into_bytes(),
    )
    .await;
    assert_status(&got, 422, "Invalid");
    assert_eq!(got.1["details"]["causes"][0]["field"], "metadata.name");
    let huge = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "big"}, "data": {"x": "y".repeat(3 * 1024 * 1024 + 1)}});
    assert_status(
        &call(
            &r,
            Method::POST,
            CMS,
            json_ct,
            huge.to_string().into_bytes(),
        )
        .await,
        413,
        "RequestEntityTooLarge",
    );
    let ok = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ok"}});
    assert_eq!(
        call(&r, Method::POST, CMS, json_ct, ok.to_string().into_bytes())
            .await
            .0,
        StatusCode::CREATED
    );
    let obj = format!("{CMS}/ok");
    assert_status(
        &call(&r, Method::PATCH, &obj, "application/foo", b"{}".to_vec()).await,
        415,
        "UnsupportedMediaType",
    );
    assert_status(
        &call(
            &r,
            Method::PATCH,
            &obj,
            "application/json-patch+json",
            b"{\"op\":1}".to_vec(),
        )
        .await,
        400,
        "BadRequest",
    );
    assert_status(
        &call(&r, Method::POST, &obj, json_ct, b"{}".to_vec()).await,
        405,
        "MethodNotAllowed",
    );
    assert_status(
        &call(
            &r,
            Method::GET,
            "/api/v1/namespaces/default/nonsense",
            json_ct,
            vec![],
        )
        .await,
        404,
        "NotFound",
    );
    assert_status(
        &call(
            &r,
            Method::GET,
            &format!("{CMS}?limit=abc"),
            json_ct,
            vec![],
        )
        .await,
        400,
        "BadRequest",
    );
    assert_status(
        &call(
            &r,
            Method::GET,
            &format!("{CMS}?labelSelector=a%20b%20c"),
            json_ct,
            vec![],
        )
        .await,
        400,
        "BadRequest",
    );
    assert_status(
        &call(
            &r,
            Method::GET,
            &format!("{CMS}?watch=true&resourceVersion=xyz"),
            json_ct,
            vec![],
        )
        .await,
        400,
        "BadRequest",
    );
    assert_status(
        &call(
            &r,
            Method::PUT,
            &obj,
            json_ct,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "other"}})
                .to_string()
                .into_bytes(),
        )
        .await,
        400,
        "BadRequest",
    );
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
