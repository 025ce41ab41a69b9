//! Fuzzing of the request path on the stable toolchain (no nightly here for cargo-fuzz's sanitizers): each target
//! mutates its committed seed corpus (`fuzz/corpus/<target>/`) with a seeded RNG and sends the results through
//! the real router (decoding, query options, patch engines of every type, apply, validation, selectors, storage).
//! Oracles: no panic, no 5xx, an answer within a deadline, every acknowledged write stored in a form the server
//! accepts back (GET then PUT round-trips), and the process's peak RSS under the stated ceiling.
//!
//! `cargo test -p apiserver --test fuzz` runs 2,000 inputs per target from a fixed seed, replaying
//! `fuzz/regressions/<target>/` first. Long runs: `FUZZ_SECONDS=600 FUZZ_TARGET=patch nice -n 10 cargo test
//! --release -p apiserver --test fuzz -- --nocapture`; a failing input is printed and written to
//! `target/fuzz-failures/`, from where it belongs in `fuzz/regressions/<target>/`. `FUZZ_SEED=N` replays a run.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use http::Method;
use http_body_util::BodyExt;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use tower::ServiceExt;

/// The test process's peak RSS may not pass this (README, "Limits").
const RSS_CEILING_MIB: u64 = 1024;
/// The default run: this many mutated inputs per target from this seed.
const DEFAULT_INPUTS: u64 = 2000;
const DEFAULT_SEED: u64 = 0x00a9_15e2;
/// One request's answer, however hostile: well under the header timeout.
const ANSWER_DEADLINE: Duration = Duration::from_secs(10);

const TOKENS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "\"",
    "null",
    "true",
    "0",
    "-1",
    "1e309",
    "\"op\"",
    "\"add\"",
    "\"copy\"",
    "\"move\"",
    "\"remove\"",
    "\"replace\"",
    "\"test\"",
    "\"from\"",
    "\"path\"",
    "\"value\"",
    "\"/data\"",
    "\"/metadata/labels\"",
    "\"/spec\"",
    "\"/-\"",
    "\"$patch\"",
    "\"delete\"",
    "\"$deleteFromPrimitiveList/finalizers\"",
    "\"metadata\"",
    "\"finalizers\"",
    "\"ownerReferences\"",
    "\"annotations\"",
    "\"immutable\"",
    "\"binaryData\"",
    "\"apiVersion\"",
    "\"kind\"",
    "\"name\"",
    " in ",
    " notin ",
    "!",
    "=",
    "==",
    "!=",
    "(",
    ")",
    "/",
    "%",
    "\\u0000",
    "\u{7f}",
    "é",
    "..",
    "~1",
    "~0",
];

/// A request built from an input: method, URI, content type, body.
type Built = (Method, String, &'static str, Vec<u8>);

/// One fuzz target: how an input becomes a request.
struct Target {
    name: &'static str,
    /// Builds (method, uri, content type, body) from an input.
    request: fn(&[u8]) -> Built,
}

const CMS: &str = "/api/v1/namespaces/default/configmaps";
const WIDGETS: &str = "/apis/test.metal.dev/v1/namespaces/default/widgets";

/// The first byte picks the variant; the rest is the payload.
fn split(input: &[u8]) -> (u8, &[u8]) {
    match input.split_first() {
        Some((b, rest)) => (*b, rest),
        None => (0, &[]),
    }
}

fn patch_request(input: &[u8]) -> Built {
    let (sel, body) = split(input);
    let (ct, uri) = match sel % 8 {
        0 => ("application/json-patch+json", format!("{CMS}/seed")),
        1 => ("application/merge-patch+json", format!("{CMS}/seed")),
        2 => (
            "application/strategic-merge-patch+json",
            format!("{CMS}/seed"),
        ),
        3 => (
            "application/apply-patch+yaml",
            format!("{CMS}/seed?fieldManager=fuzz&force=true"),
        ),
        4 => ("application/json-patch+json", format!("{WIDGETS}/seed")),
        5 => (
            "application/merge-patch+json",
            format!("{WIDGETS}/seed/status"),
        ),
        6 => (
            "application/apply-patch+yaml",
            format!("{WIDGETS}/seed?fieldManager=fuzz"),
        ),
        _ => (
            "application/json-patch+json",
            format!("{CMS}/seed?dryRun=All"),
        ),
    };
    (Method::PATCH, uri, ct, body.to_vec())
}

fn validate_request(input: &[u8]) -> Built {
    let (sel, body) = split(input);
    let uri = match sel % 8 {
        0 => CMS.to_string(),
        1 => "/api/v1/namespaces/default/secrets".into(),
        2 => "/api/v1/namespaces".into(),
        3 => "/apis/coordination.k8s.io/v1/namespaces/default/leases".into(),
        4 => "/apis/events.k8s.io/v1/namespaces/default/events".into(),
        5 => WIDGETS.into(),
        6 => "/apis/apps/v1/namespaces/default/deployments".into(),
        _ => "/apis/apiextensions.k8s.io/v1/customresourcedefinitions".into(),
    };
    let ct = if sel & 0x80 != 0 {
        "application/yaml"
    } else {
        "application/json"
    };
    (Method::POST, uri, ct, body.to_vec())
}

fn selectors_request(input: &[u8]) -> Built {
    let (sel, body) = split(input);
    let text = String::from_utf8_lossy(body);
    let q: String = url_escape(&text);
    let uri = match sel % 4 {
        0 => format!("{CMS}?labelSelector={q}"),
        1 => format!("{CMS}?fieldSelector={q}"),
        2 => format!("/api/v1/namespaces/default/events?fieldSelector={q}"),
        _ => format!("{CMS}?watch=true&timeoutSeconds=0&labelSelector={q}"),
    };
    (Method::GET, uri, "application/json", vec![])
}

fn query_request(input: &[u8]) -> Built {
    let (sel, body) = split(input);
    let text = String::from_utf8_lossy(body);
    // The query is sent as given (only what would break the URI is escaped): `&` and `=` stay meaningful.
    let q: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.~!$&'()*+,;=:@/?%".contains(c) {
                c.to_string()
            } else {
                url_escape(&c.to_string())
            }
        })
        .collect();
    // A watch the mutation asked for ends at once (the last timeoutSeconds wins).
    let (method, uri, body) = match sel % 5 {
        0 => (Method::GET, format!("{CMS}?{q}&timeoutSeconds=0"), vec![]),
        1 => (Method::DELETE, format!("{CMS}/seed?{q}&dryRun=All"), vec![]),
        2 => (
            Method::POST,
            format!("{CMS}?{q}"),
            br#"{"metadata":{"generateName":"q-"}}"#.to_vec(),
        ),
        3 => (
            Method::PATCH,
            format!("{CMS}/seed?{q}"),
            br#"{"data":{"q":"1"}}"#.to_vec(),
        ),
        _ => (Method::GET, format!("{CMS}/seed?{q}"), vec![]),
    };
    let ct = if method == Method::PATCH {
        "application/merge-patch+json"
    } else {
        "application/json"
    };
    (method, uri, ct, body)
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn url_escape(s: &str) -> String {
    const UNRESERVED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(s, UNRESERVED).to_string()
}

const TARGETS: &[Target] = &[
    Target {
        name: "patch",
        request: patch_request,
    },
    Target {
        name: "validate",
        request: validate_request,
    },
    Target {
        name: "selectors",
        request: selectors_request,
    },
    Target {
        name: "query",
        request: query_request,
    },
];

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

fn read_dir(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return vec![];
    };
    let mut files: Vec<(String, Vec<u8>)> = entries
        .filter_map(|e| {
            let e = e.ok()?;
            Some((
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).ok()?,
            ))
        })
        .collect();
    files.sort();
    files
}

fn mutate(rng: &mut StdRng, corpus: &[Vec<u8>], input: &mut Vec<u8>) {
    for _ in 0..rng.random_range(1..=4) {
        match rng.random_range(0..7) {
            0 if !input.is_empty() => {
                let i = rng.random_range(0..input.len());
                input[i] ^= 1 << rng.random_range(0..8);
            }
            1 if !input.is_empty() => {
                let i = rng.random_range(0..input.len());
                let n = rng.random_range(1..=8.min(input.len() - i));
                input.drain(i..i + n);
            }
            2 | 3 => {
                let i = rng.random_range(0..=input.len());
                let t = TOKENS[rng.random_range(0..TOKENS.len())];
                input.splice(i..i, t.bytes());
            }
            4 if !input.is_empty() => {
                // Duplicate a slice: repeated operations, deeper nesting.
                let i = rng.random_range(0..input.len());
                let n = rng.random_range(1..=64.min(input.len() - i));
                let chunk = input[i..i + n].to_vec();
                let at = rng.random_range(0..=input.len());
                input.splice(at..at, chunk);
            }
            5 => {
                // Splice with another corpus entry.
                let other = &corpus[rng.random_range(0..corpus.len())];
                let i = rng.random_range(0..=input.len());
                let j = rng.random_range(0..=other.len());
                input.truncate(i);
                input.extend_from_slice(&other[j..]);
            }
            _ => {
                if !input.is_empty() {
                    input[0] = rng.random();
                }
            }
        }
    }
    input.truncate(64 * 1024);
}

async fn send(
    router: &axum::Router,
    method: Method,
    uri: &str,
    ct: &str,
    body: Vec<u8>,
) -> (u16, Vec<u8>) {
    let req = common::request(method, uri, ct, body);
    // On its own task, so that a panic in a handler is a finding with its input saved, not a lost test.
    let resp = match tokio::spawn(router.clone().oneshot(req)).await {
        Ok(r) => r.unwrap(),
        Err(e) => return (599, format!("the handler panicked: {e}").into_bytes()),
    };
    let status = resp.status().as_u16();
    // Watches end at once (timeoutSeconds=0); bound the read all the same.
    let body = match tokio::time::timeout(ANSWER_DEADLINE, resp.into_body().collect()).await {
        Ok(Ok(b)) => b.to_bytes().to_vec(),
        _ => Vec::new(),
    };
    (status, body)
}

/// Runs one input and checks the oracles; Err says what broke.
async fn run_one(router: &axum::Router, target: &Target, input: &[u8]) -> Result<(), String> {
    let (method, uri, ct, body) = (target.request)(input);
    let is_write = method != Method::GET && method != Method::DELETE && !uri.contains("dryRun");
    let started = Instant::now();
    let (status, answer) =
        tokio::time::timeout(ANSWER_DEADLINE, send(router, method, &uri, ct, body))
            .await
            .map_err(|_| format!("no answer within {ANSWER_DEADLINE:?} for {uri}"))?;
    if status >= 500 {
        return Err(format!(
            "{status} for {uri}: {}",
            String::from_utf8_lossy(&answer)
        ));
    }
    if started.elapsed() > ANSWER_DEADLINE {
        return Err(format!("answer took {:?}", started.elapsed()));
    }
    if is_write && (200..300).contains(&status) {
        // What the server acknowledged, it must accept back unchanged.
        let obj: Value =
            serde_json::from_slice(&answer).map_err(|e| format!("2xx answer is not JSON: {e}"))?;
        let name = obj["metadata"]["name"].as_str().unwrap_or("").to_string();
        let base = uri.split('?').next().unwrap().trim_end_matches("/status");
        let item = if base.ends_with(&format!("/{name}")) {
            base.to_string()
        } else {
            format!("{base}/{name}")
        };
        // The garbage collector runs beside the API, as on a real cluster: an object whose owners do not exist,
        // or whose deletion finished when the write removed its last finalizer, may be changed or gone between
        // the write and this check; such a change is retried, never counted as a finding.
        let mut collectable = may_be_collected(&obj);
        for _attempt in 0..5 {
            let (code, stored) = send(router, Method::GET, &item, "application/json", vec![]).await;
            if code == 404 && collectable {
                return Ok(());
            }
            if code != 200 {
                return Err(format!("acknowledged {item} but GET answers {code}"));
            }
            collectable |=
                serde_json::from_slice::<Value>(&stored).is_ok_and(|o| may_be_collected(&o));
            let (code, again) = send(router, Method::PUT, &item, "application/json", stored).await;
            match code {
                200 => return Ok(()),
                409 | 404 if collectable => continue,
                _ => {
                    return Err(format!(
                        "stored {item} is refused when sent back: {code} {}",
                        String::from_utf8_lossy(&again)
                    ));
                }
            }
        }
        return Err(format!("{item} kept changing under the GET-then-PUT check"));
    }
    Ok(())
}

/// Whether an acknowledged object may be deleted by the server itself right after the write.
fn may_be_collected(obj: &Value) -> bool {
    let meta = &obj["metadata"];
    let has_owners = meta["ownerReferences"]
        .as_array()
        .is_some_and(|refs| !refs.is_empty());
    has_owners || !meta["deletionTimestamp"].is_null()
}

fn peak_rss_mib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        .unwrap_or(0)
        / 1024
}

async fn server() -> apiserver::Handle {
    let h = common::start_with_widgets().await;
    seed_objects(&h.router()).await;
    h
}

/// Creates the objects the inputs patch; one that exists already is left as it is (409).
async fn seed_objects(r: &axum::Router) {
    let seed_cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "seed", "labels": {"a": "b"}, "finalizers": []}, "data": {"k": "v"}});
    let seed_w = json!({"apiVersion": "test.metal.dev/v1", "kind": "Widget", "metadata": {"name": "seed"}, "spec": {"size": 1}});
    for (collection, seed) in [(CMS, seed_cm), (WIDGETS, seed_w)] {
        let body = seed.to_string().into_bytes();
        send(r, Method::POST, collection, "application/json", body).await;
    }
}

/// How long one target runs: a fixed number of inputs (the default: deterministic for a seed) or a wall-time
/// budget (the long runs).
#[derive(Clone, Copy, Debug)]
enum Budget {
    Inputs(u64),
    Seconds(f64),
}

async fn fuzz(target: &Target, budget: Budget, seed: u64) {
    let dir = fuzz_dir();
    // Regressions replay on a server of their own, so what they leave behind (a seed object the garbage collector
    // takes, say) cannot change what the seeded run below sees.
    let h = server().await;
    let router = h.router();
    for (file, input) in read_dir(&dir.join("regressions").join(target.name)) {
        if let Err(e) = run_one(&router, target, &input).await {
            panic!("regression {}/{file}: {e}", target.name);
        }
    }
    h.shutdown().await;
    let h = server().await;
    let router = h.router();
    let corpus: Vec<Vec<u8>> = read_dir(&dir.join("corpus").join(target.name))
        .into_iter()
        .map(|(_, b)| b)
        .collect();
    assert!(
        !corpus.is_empty(),
        "fuzz/corpus/{} has no seeds",
        target.name
    );
    let mut rng = StdRng::seed_from_u64(seed);
    let started = Instant::now();
    let mut execs = 0u64;
    while match budget {
        Budget::Inputs(n) => execs < n,
        Budget::Seconds(s) => started.elapsed() < Duration::from_secs_f64(s),
    } {
        let mut input = corpus[rng.random_range(0..corpus.len())].clone();
        mutate(&mut rng, &corpus, &mut input);
        execs += 1;
        if let Err(e) = run_one(&router, target, &input).await {
            let out = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../target/fuzz-failures")
                .join(target.name);
            let _ = std::fs::create_dir_all(&out);
            let file = out.join(format!("seed-{seed}-exec-{execs}"));
            let _ = std::fs::write(&file, &input);
            panic!(
                "target {} (FUZZ_SEED={seed}) input {:?} (saved as {}): {e}",
                target.name,
                String::from_utf8_lossy(&input),
                file.display()
            );
        }
        let rss = peak_rss_mib();
        assert!(
            rss < RSS_CEILING_MIB,
            "peak RSS {rss} MiB over {RSS_CEILING_MIB} MiB after input {:?}",
            String::from_utf8_lossy(&input)
        );
    }
    println!(
        "fuzz target {}: {execs} executions in {:.1} s (seed {seed}), peak RSS {} MiB",
        target.name,
        started.elapsed().as_secs_f64(),
        peak_rss_mib()
    );
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fuzz_request_path() {
    // By default a fixed seed and input count: the same inputs on every run, as CI needs. FUZZ_SEED and
    // FUZZ_SECONDS make the long exploratory runs.
    let budget = std::env::var("FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .map_or(Budget::Inputs(DEFAULT_INPUTS), Budget::Seconds);
    let seed: u64 = std::env::var("FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_SEED);
    let only = std::env::var("FUZZ_TARGET").ok();
    println!("FUZZ_SEED={seed}");
    for t in TARGETS
        .iter()
        .filter(|t| only.as_deref().is_none_or(|o| o == t.name))
    {
        fuzz(t, budget, seed).await;
    }
}
