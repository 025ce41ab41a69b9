//! After the API server expires every watch (410 Gone, history compacted, as etcd compaction does), each
//! controller must see the next change within a fraction of a second: its watches relist at once instead
//! of sitting out kube-runtime's default backoff (800 ms doubling towards 30 s, compounded when several
//! watches of one controller fail together).

mod common;

use std::time::Duration;

use common::*;
use kube::api::{Api, PostParams};
use kube::{Resource, ResourceExt as _};
use metal_api::constants::{
    BMC_FINALIZER, ENDPOINT_FINALIZER, SERVER_CLAIM_FINALIZER, SERVER_FINALIZER,
    SERVER_READINESS_RULE_FINALIZER,
};
use metal_api::{BMC, Endpoint, ServerClaim, ServerReadinessRule};
use serde_json::json;

/// How long a controller may take to react after the expiry. The default backoff needs at least
/// 0.8 + 1.6 s before a controller with two failed watches relists again (more with jitter or more watches).
const REACT: Duration = Duration::from_millis(1500);
/// How long to keep looking, so that a slow reaction is measured rather than merely reported missing.
const GIVE_UP: Duration = Duration::from_secs(60);

/// Polls `check` every 20 ms; returns how long it took to hold, or `None` after [`GIVE_UP`].
async fn time_until<F, Fut>(mut check: F) -> Option<Duration>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = tokio::time::Instant::now();
    loop {
        if check().await {
            return Some(start.elapsed());
        }
        if start.elapsed() > GIVE_UP {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn object<K: serde::de::DeserializeOwned>(value: serde_json::Value) -> K {
    serde_json::from_value(value).expect("test object deserializes")
}

async fn has_finalizer<K>(api: &Api<K>, name: &str, finalizer: &str) -> bool
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.get_opt(name)
        .await
        .unwrap()
        .is_some_and(|o| o.finalizers().iter().any(|f| f == finalizer))
}

/// Creates the object `manifest` describes through `api`.
async fn create<K>(api: &Api<K>, manifest: serde_json::Value)
where
    K: Resource + Clone + serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.create(&PostParams::default(), &object::<K>(manifest))
        .await
        .unwrap();
}

#[tokio::test]
async fn every_controller_reacts_promptly_after_all_watches_expire() {
    let mut options = HarnessOptions::new(1);
    // No periodic resync may stand in for a watch event during the measurement.
    options.config.server_resync_interval = Duration::from_secs(600);
    let mut h = Harness::start(options).await;
    let (server, uuid) = h.discovered().await;
    let mut timings: Vec<(&str, Option<Duration>)> = Vec::new();
    let claims = Api::<ServerClaim>::namespaced(h.client.clone(), NS);

    // Each step: expire every watch, change something at once, time the operator's reaction.
    // ServerClaim controller (main watch) and Server controller (its ServerClaim watch).
    h.api.faults().expire_watches();
    h.claim("c", Some(&server), "On", "ghcr.io/example/os:1.0")
        .await;
    let took = time_until(|| async {
        has_finalizer(&claims, "c", SERVER_CLAIM_FINALIZER).await
            && h.servers()
                .get(&server)
                .await
                .unwrap()
                .status
                .and_then(|s| s.state)
                .is_some_and(|s| s.as_str() == "Reserved")
    })
    .await;
    timings.push(("claim bound, server Reserved", took));

    // Server controller (its ServerBootConfiguration watch): the claim's SBC turns Ready -> power-on.
    h.wait_for(&h.sbcs(NS), "c", GIVE_UP, "claim SBC", |_| true)
        .await;
    let before = h.power_on_requests(&uuid).len();
    h.api.faults().expire_watches();
    h.backend_set(NS, "c", "Ready", vec![]).await;
    let took = time_until(|| async { h.power_on_requests(&uuid).len() > before }).await;
    timings.push(("SBC Ready -> power-on", took));

    // ServerBootConfiguration controller: a new SBC gets `Pending`.
    h.api.faults().expire_watches();
    let sbcs = h.sbcs(NS);
    create(
        &sbcs,
        json!({
            "apiVersion": "metal.ironcore.dev/v1alpha1", "kind": "ServerBootConfiguration",
            "metadata": {"name": "fresh", "namespace": NS},
            "spec": {"serverRef": {"name": "no-such-server"}, "image": "ghcr.io/example/os:1.0"},
        }),
    )
    .await;
    let took = time_until(|| async {
        sbcs.get("fresh")
            .await
            .unwrap()
            .status
            .and_then(|s| s.state)
            .is_some_and(|s| s.as_str() == "Pending")
    })
    .await;
    timings.push(("new SBC -> Pending", took));

    // Finalizers are each controller's first write on a new object (kube-runtime's finalizer helper).
    let bmcs = Api::<BMC>::all(h.client.clone());
    let endpoints = Api::<Endpoint>::all(h.client.clone());
    let rules = Api::<ServerReadinessRule>::all(h.client.clone());
    let servers = h.servers();

    h.api.faults().expire_watches();
    create(
        &bmcs,
        json!({
            "apiVersion": "metal.ironcore.dev/v1alpha1", "kind": "BMC",
            "metadata": {"name": "fresh"},
            "spec": {
                "access": {"ip": "192.0.2.1", "macAddress": "02:00:00:00:00:01"},
                "bmcSecretRef": {"name": "no-such-secret"},
                "protocol": {"name": "Redfish", "port": 443, "scheme": "https"},
            },
        }),
    )
    .await;
    let took = time_until(|| has_finalizer(&bmcs, "fresh", BMC_FINALIZER)).await;
    timings.push(("new BMC -> finalizer", took));

    h.api.faults().expire_watches();
    create(
        &servers,
        json!({
            "apiVersion": "metal.ironcore.dev/v1alpha1", "kind": "Server",
            "metadata": {"name": "fresh"},
            "spec": {"systemUUID": "00000000-0000-0000-0000-00000000f00d"},
        }),
    )
    .await;
    let took = time_until(|| has_finalizer(&servers, "fresh", SERVER_FINALIZER)).await;
    timings.push(("new Server -> finalizer", took));

    h.api.faults().expire_watches();
    create(
        &endpoints,
        json!({
            "apiVersion": "metal.ironcore.dev/v1alpha1", "kind": "Endpoint",
            "metadata": {"name": "fresh"},
            "spec": {"ip": "192.0.2.2", "macAddress": "02:00:00:00:00:02"},
        }),
    )
    .await;
    let took = time_until(|| has_finalizer(&endpoints, "fresh", ENDPOINT_FINALIZER)).await;
    timings.push(("new Endpoint -> finalizer", took));

    h.api.faults().expire_watches();
    let taint = json!({"key": "example.com/not-ready", "effect": "NoBind"});
    let selector = json!({"matchLabels": {"example.com/nothing": "matches"}});
    let rule = readiness_rule("fresh", "Ready", "Continuous", taint, selector);
    rules.create(&PostParams::default(), &rule).await.unwrap();
    let took = time_until(|| has_finalizer(&rules, "fresh", SERVER_READINESS_RULE_FINALIZER)).await;
    timings.push(("new ServerReadinessRule -> finalizer", took));

    let report: Vec<String> = timings
        .iter()
        .map(|(what, took)| match took {
            Some(took) => format!("{what}: {} ms", took.as_millis()),
            None => format!("{what}: no reaction within {GIVE_UP:?}"),
        })
        .collect();
    eprintln!("reaction after watch expiry:\n  {}", report.join("\n  "));
    let late: Vec<&String> = timings
        .iter()
        .zip(&report)
        .filter(|((_, took), _)| took.is_none_or(|t| t > REACT))
        .map(|(_, line)| line)
        .collect();
    assert!(
        late.is_empty(),
        "controllers reacted later than {REACT:?} after a watch expiry: {late:?}"
    );
}
