//! Hostile and careless input over real HTTP (issue #14): every class gets the status code and reason
//! kube-apiserver gives, nothing is stored or deleted that should not be, the server's peak RSS stays under the
//! ceiling the README states, and a normal client (kube-rs) is served afterwards.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The peak RSS the server may reach under the whole hostile batch (README, "Limits").
const RSS_CEILING_MIB: u64 = 256;

struct Http {
    client: Client<HttpConnector, Full<Bytes>>,
    base: String,
}

impl Http {
    fn new(base: &str) -> Http {
        Http {
            client: Client::builder(TokioExecutor::new()).build_http(),
            base: base.trim_end_matches('/').to_string(),
        }
    }

    async fn call(&self, method: Method, path: &str, ct: &str, body: Vec<u8>) -> (u16, Value) {
        let req = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("content-type", ct)
            .body(Full::new(Bytes::from(body)))
            .unwrap();
        // A server that died or hangs answers 0: the batch goes on and reports every check.
        let Ok(Ok(resp)) =
            tokio::time::timeout(Duration::from_secs(60), self.client.request(req)).await
        else {
            return (0, Value::Null);
        };
        let status = resp.status().as_u16();
        let Ok(body) = resp.into_body().collect().await else {
            return (0, Value::Null);
        };
        let bytes = body.to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }
}

/// The checks of a batch: every failure is collected, so one run against another build lists all it gets wrong.
#[derive(Default)]
struct Checks {
    run: usize,
    failed: Vec<String>,
}

impl Checks {
    fn check(&mut self, ok: bool, what: impl FnOnce() -> String) {
        self.run += 1;
        if !ok {
            self.failed.push(what());
        }
    }

    fn expect(&mut self, got: &(u16, Value), code: u16, reason: &str, what: &str) {
        let ok = got.0 == code && got.1["kind"] == "Status" && got.1["reason"] == reason;
        self.check(ok, || {
            format!(
                "{what}: want {code} {reason}, got {} {}",
                got.0,
                cut(&got.1)
            )
        });
    }
}

fn cut(v: &Value) -> String {
    v.to_string().chars().take(300).collect()
}

const CMS: &str = "/api/v1/namespaces/default/configmaps";
const JSON: &str = "application/json";
const JSON_PATCH: &str = "application/json-patch+json";
const MERGE_PATCH: &str = "application/merge-patch+json";

/// The 3 KB patch of the issue: add a value, then double it with a few dozen copies.
fn copy_bomb() -> Vec<u8> {
    let mut ops = vec![json!({"op": "add", "path": "/data/x0", "value": "y".repeat(1024)})];
    ops.push(json!({"op": "add", "path": "/metadata/annotations", "value": {}}));
    let mut doubling = vec![json!({"op": "add", "path": "/metadata/labels", "value": {}})];
    doubling.push(json!({"op": "add", "path": "/spec", "value": {"a": "y".repeat(1024)}}));
    for i in 0..40 {
        doubling.push(json!({"op": "copy", "from": "/spec", "path": format!("/spec/c{i}")}));
    }
    ops.extend(doubling);
    serde_json::to_vec(&ops).unwrap()
}

/// Sends every class of bad input of the issue, each with its expected answer.
async fn hostile_batch(h: &Http, c: &mut Checks) {
    let cm = |name: &str, data: Value| {
        serde_json::to_vec(&json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}))
            .unwrap()
    };
    let target = h
        .call(Method::POST, CMS, JSON, cm("target", json!({"k": "v"})))
        .await;
    c.check(target.0 == 201 || target.0 == 409, || {
        format!("create target: {}", cut(&target.1))
    });
    let obj = format!("{CMS}/target");

    // Patches that would grow the server: refused, with and without dryRun. (HOSTILE_SKIP_COPY_BOMB=1 leaves them
    // out, to see what else a build that dies on them gets wrong.)
    let bombs: &[&str] = if std::env::var("HOSTILE_SKIP_COPY_BOMB").is_ok() {
        &[]
    } else {
        &["", "?dryRun=All"]
    };
    for q in bombs {
        let got = h
            .call(Method::PATCH, &format!("{obj}{q}"), JSON_PATCH, copy_bomb())
            .await;
        c.expect(&got, 422, "Invalid", "copy bomb");
        c.check(
            got.1["message"]
                .as_str()
                .is_some_and(|m| m.contains("accumulated size")),
            || format!("copy bomb{q} names the copy limit: {}", cut(&got.1)),
        );
    }
    let many: Vec<Value> = (0..10_001)
        .map(|_| json!({"op": "test", "path": "/kind", "value": "ConfigMap"}))
        .collect();
    let got = h
        .call(
            Method::PATCH,
            &obj,
            JSON_PATCH,
            serde_json::to_vec(&many).unwrap(),
        )
        .await;
    c.expect(
        &got,
        413,
        "RequestEntityTooLarge",
        "10,001 JSON patch operations",
    );
    // The stored object counts, not the request: two 1 MiB merge patches make a 2 MiB object.
    for (key, code) in [("a", 200), ("b", 413)] {
        let patch = json!({"metadata": {"annotations": {key: "z".repeat(1024 * 1024)}}});
        let got = h
            .call(
                Method::PATCH,
                &obj,
                MERGE_PATCH,
                serde_json::to_vec(&patch).unwrap(),
            )
            .await;
        c.check(got.0 == code, || {
            format!(
                "object size after merge patch {key}: want {code}, got {} {}",
                got.0,
                cut(&got.1)
            )
        });
    }
    let got = h
        .call(
            Method::PATCH,
            &obj,
            MERGE_PATCH,
            br#"{"metadata":{"annotations":{"a":null}}}"#.to_vec(),
        )
        .await;
    c.check(got.0 == 200, || {
        format!("annotation removed: {} {}", got.0, cut(&got.1))
    });
    // Nesting: a 120-deep value fits serde_json's parser but not the stored-object bound (a schemaless kind keeps
    // unknown fields, so only the bound refuses it).
    let sas = "/api/v1/namespaces/default/serviceaccounts";
    let got = h
        .call(
            Method::POST,
            sas,
            JSON,
            br#"{"metadata":{"name":"sa"}}"#.to_vec(),
        )
        .await;
    c.check(got.0 == 201 || got.0 == 409, || {
        format!("create sa: {}", cut(&got.1))
    });
    let mut deep = json!("leaf");
    for _ in 0..120 {
        deep = json!([deep]);
    }
    let add_deep = json!([{"op": "add", "path": "/deep", "value": deep}]);
    let got = h
        .call(
            Method::PATCH,
            &format!("{sas}/sa"),
            JSON_PATCH,
            serde_json::to_vec(&add_deep).unwrap(),
        )
        .await;
    c.expect(&got, 422, "Invalid", "120-deep value");
    let mut deeper = String::new();
    for _ in 0..100_000 {
        deeper.push('[');
    }
    let got = h.call(Method::POST, CMS, JSON, deeper.into_bytes()).await;
    c.expect(&got, 400, "BadRequest", "100,000-deep body");
    let got = h
        .call(Method::POST, CMS, JSON, vec![b' '; 3 * 1024 * 1024 + 1])
        .await;
    c.expect(&got, 413, "RequestEntityTooLarge", "body over 3 MiB");

    // Built-in kinds decoded and validated as kube-apiserver does.
    let got = h
        .call(Method::POST, CMS, JSON, cm("num", json!({"k": 1})))
        .await;
    c.expect(&got, 400, "BadRequest", "ConfigMap data not a string");
    let got = h
        .call(Method::POST, CMS, JSON, cm("badkey", json!({"a b": "v"})))
        .await;
    c.expect(&got, 422, "Invalid", "ConfigMap key");
    c.check(
        got.1["details"]["causes"][0]["field"] == "data[a b]",
        || format!("ConfigMap key cause: {}", cut(&got.1)),
    );
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"k": "not base64!"}});
    let got = h
        .call(
            Method::POST,
            "/api/v1/namespaces/default/secrets",
            JSON,
            serde_json::to_vec(&secret).unwrap(),
        )
        .await;
    c.expect(&got, 400, "BadRequest", "Secret data not base64");
    let lease = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "l"}, "spec": {"leaseDurationSeconds": "long"}});
    let got = h
        .call(
            Method::POST,
            "/apis/coordination.k8s.io/v1/namespaces/default/leases",
            JSON,
            serde_json::to_vec(&lease).unwrap(),
        )
        .await;
    c.expect(&got, 400, "BadRequest", "Lease with a string duration");

    // Query options parsed strictly; a refused DELETE deletes nothing.
    for (q, code, reason) in [
        ("propagationPolicy=Bogus", 422, "Invalid"),
        ("dryRun=Bogus", 422, "Invalid"),
        ("gracePeriodSeconds=abc", 400, "BadRequest"),
    ] {
        let got = h
            .call(Method::DELETE, &format!("{obj}?{q}"), JSON, vec![])
            .await;
        c.expect(&got, code, reason, q);
        let still = h.call(Method::GET, &obj, JSON, vec![]).await.0;
        c.check(still == 200, || {
            format!("DELETE ?{q} deleted the object (GET answers {still})")
        });
    }
    let got = h
        .call(
            Method::DELETE,
            &obj,
            JSON,
            br#"{"propagationPolicy":"Sideways"}"#.to_vec(),
        )
        .await;
    c.expect(&got, 422, "Invalid", "DeleteOptions body");
    for (q, code, reason) in [
        ("labelSelector=app%3Dwe%20b", 400, "BadRequest"),
        ("labelSelector=a%2Fb%2Fc", 400, "BadRequest"),
        ("labelSelector=app%20in%20()", 400, "BadRequest"),
        ("fieldSelector=metadata.name%3Da%3Db", 400, "BadRequest"),
        ("resourceVersion=abc", 400, "BadRequest"),
        (
            "resourceVersion=1&resourceVersionMatch=Bogus",
            422,
            "Invalid",
        ),
        ("resourceVersionMatch=Exact", 422, "Invalid"),
    ] {
        let got = h
            .call(Method::GET, &format!("{CMS}?{q}"), JSON, vec![])
            .await;
        c.expect(&got, code, reason, q);
    }
    for q in [
        "fieldValidation=Bogus",
        "dryRun=Bogus",
        &format!("fieldManager={}", "m".repeat(129)),
    ] {
        let got = h
            .call(
                Method::POST,
                &format!("{CMS}?{q}"),
                JSON,
                cm("opts", json!({})),
            )
            .await;
        c.expect(&got, 422, "Invalid", q);
    }
    // Nothing refused above was stored.
    let list = h.call(Method::GET, CMS, JSON, vec![]).await;
    let names: Vec<&str> = list.1["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["metadata"]["name"].as_str())
        .collect();
    c.check(names == ["target"], || {
        format!("refused objects were stored: {names:?}")
    });
}

/// The server's peak RSS, or u64::MAX when it is gone (it died under the batch).
fn peak_rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(u64::MAX, |kib| kib / 1024)
}

/// The address space the server may reserve: far above the RSS ceiling, but a build that grows without bound
/// (main did to tens of GB on one JSON patch) dies here instead of taking the machine with it.
const ADDRESS_SPACE_LIMIT: &str = "--as=8589934592";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_batch_gets_kube_answers_under_the_rss_ceiling() {
    // APISERVER_BIN runs the batch against another build (e.g. main's) and lists every check it fails.
    let bin =
        std::env::var("APISERVER_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_apiserver").into());
    let mut command = tokio::process::Command::new("prlimit");
    command
        .args([ADDRESS_SPACE_LIMIT, "--"])
        .arg(&bin)
        .args(["--port", "0"]);
    let (child, url) = common::spawn_announcing(command).await;
    let pid = child.id().unwrap();
    let h = Http::new(&url);
    let before = peak_rss_mib(pid);
    let mut checks = Checks::default();
    hostile_batch(&h, &mut checks).await;
    let peak = peak_rss_mib(pid);
    println!(
        "server peak RSS: {before} MiB at start, {peak} MiB after the hostile batch (ceiling {RSS_CEILING_MIB} MiB)"
    );
    checks.check(peak < RSS_CEILING_MIB, || {
        format!("peak RSS {peak} MiB over the {RSS_CEILING_MIB} MiB ceiling")
    });
    // A normal client is served afterwards.
    let api: Api<ConfigMap> = Api::namespaced(
        kube::Client::try_from(kube::Config::new(url.parse().unwrap())).unwrap(),
        "default",
    );
    let mut ok = ConfigMap::default();
    ok.metadata.name = Some("after".into());
    ok.data = Some([("k".to_string(), "v".to_string())].into());
    let created = api.create(&PostParams::default(), &ok).await;
    checks.check(created.is_ok(), || {
        format!("kube-rs create afterwards: {created:?}")
    });
    let listed = api.list(&Default::default()).await.map(|l| l.items.len());
    checks.check(matches!(listed, Ok(2)), || {
        format!("kube-rs list afterwards: {listed:?}")
    });
    for f in &checks.failed {
        println!("FAILED: {f}");
    }
    assert!(
        checks.failed.is_empty(),
        "{} of {} checks failed against {bin}",
        checks.failed.len(),
        checks.run
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_maybe_is_a_watch_as_apimachinery_reads_booleans() {
    let h = start().await;
    let http = Http::new(&h.url());
    let got = http
        .call(
            Method::POST,
            CMS,
            JSON,
            br#"{"metadata":{"name":"w"}}"#.to_vec(),
        )
        .await;
    assert_eq!(got.0, 201, "{}", got.1);
    // Only "false" and "0" are false (Convert_Slice_string_To_bool); a watch answers with events, a list with a List.
    let req = Request::builder()
        .uri(format!("{}{CMS}?watch=maybe&timeoutSeconds=1", h.url()))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = http.client.request(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let first: Value = serde_json::from_slice(body.split(|b| *b == b'\n').next().unwrap()).unwrap();
    assert_eq!(first["type"], "ADDED", "{first}");
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_oversized_request_heads_are_cut_off() {
    let h = apiserver::Server::start(apiserver::Options {
        header_read_timeout: Duration::from_millis(500),
        ..Default::default()
    })
    .await
    .unwrap();
    // A connection that sends nothing is closed, as Go's ReadHeaderTimeout closes it for kube-apiserver.
    let mut idle = tokio::net::TcpStream::connect(h.addr()).await.unwrap();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(10), idle.read(&mut buf))
        .await
        .expect("the idle connection is closed by the server")
        .unwrap_or(0);
    assert_eq!(n, 0, "no answer to a request never sent");
    // A request head over 1 MiB is refused with 431.
    let mut big = tokio::net::TcpStream::connect(h.addr()).await.unwrap();
    let head = format!(
        "GET /version HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(2 * 1024 * 1024)
    );
    let _ = big.write_all(head.as_bytes()).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), big.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    // Normal requests still work.
    let http = Http::new(&h.url());
    assert_eq!(
        http.call(Method::GET, "/api/v1/namespaces", JSON, vec![])
            .await
            .0,
        200
    );
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_per_client_are_bounded_and_freed() {
    let h = apiserver::Server::start(apiserver::Options {
        max_watches_per_client: 3,
        ..Default::default()
    })
    .await
    .unwrap();
    let http = Http::new(&h.url());
    let open = |ua: &'static str| {
        let req = Request::builder()
            .uri(format!("{}{CMS}?watch=true", h.url()))
            .header("user-agent", ua)
            .body(Full::new(Bytes::new()))
            .unwrap();
        http.client.request(req)
    };
    let mut held = Vec::new();
    for _ in 0..3 {
        let resp = open("greedy/1").await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        held.push(resp);
    }
    let refused = open("greedy/1").await.unwrap();
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    // Another client is not affected.
    assert_eq!(open("polite/1").await.unwrap().status(), StatusCode::OK);
    // A watch that ends frees its slot.
    drop(held.pop());
    eventually(10, "the dropped watch frees its slot", || async {
        let resp = open("greedy/1").await.unwrap();
        (resp.status() == StatusCode::OK).then_some(())
    })
    .await;
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_custom_resource_without_kind_is_refused_as_the_unstructured_decoder_does() {
    let h = start_with_widgets().await;
    let http = Http::new(&h.url());
    let widgets = "/apis/test.metal.dev/v1/namespaces/default/widgets";
    let got = http
        .call(
            Method::POST,
            widgets,
            JSON,
            br#"{"apiVersion":"test.metal.dev/v1","metadata":{"name":"nokind"},"spec":{"size":1}}"#
                .to_vec(),
        )
        .await;
    let mut c = Checks::default();
    c.expect(&got, 400, "BadRequest", "custom resource without kind");
    assert!(c.failed.is_empty(), "{:?}", c.failed);
    assert!(
        got.1["message"]
            .as_str()
            .unwrap()
            .contains("Object 'Kind' is missing")
    );
    // A built-in kind takes the endpoint's kind, as kube-apiserver's typed decoder does.
    let got = http
        .call(
            Method::POST,
            CMS,
            JSON,
            br#"{"metadata":{"name":"nokind"}}"#.to_vec(),
        )
        .await;
    assert_eq!(got.0, 201, "{}", got.1);
    assert_eq!(got.1["kind"], "ConfigMap");
    h.shutdown().await;
}
