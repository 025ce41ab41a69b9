//! Property test: random create/update/replace/delete sequences against the server and a simple model; results,
//! final state and the watch streams must agree (every watcher sees every event, in resourceVersion order).

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use proptest::prelude::*;
use serde_json::json;

#[derive(Debug, Clone)]
enum Op {
    Create(usize, u8),
    Patch(usize, u8),
    /// Replace with the current resourceVersion (or a stale one).
    Replace(usize, u8, bool),
    Delete(usize),
}

fn op() -> impl Strategy<Value = Op> {
    let name = 0usize..4;
    prop_oneof![
        (name.clone(), 0u8..3).prop_map(|(n, v)| Op::Create(n, v)),
        (name.clone(), 0u8..3).prop_map(|(n, v)| Op::Patch(n, v)),
        (name.clone(), 0u8..3, any::<bool>()).prop_map(|(n, v, s)| Op::Replace(n, v, s)),
        name.prop_map(Op::Delete),
    ]
}

/// name -> (value, resourceVersion)
type Model = BTreeMap<String, (u8, u64)>;

fn value_of(c: &ConfigMap) -> u8 {
    c.data
        .as_ref()
        .and_then(|d| d.get("v"))
        .and_then(|v| v.parse().ok())
        .unwrap_or(255)
}

fn cm(name: &str, v: u8, rv: Option<u64>) -> ConfigMap {
    let mut c: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": name}, "data": {"v": v.to_string()}}))
            .unwrap();
    c.metadata.resource_version = rv.map(|r| r.to_string());
    c
}

fn code(r: Result<ConfigMap, kube::Error>) -> Result<ConfigMap, u16> {
    r.map_err(|e| match e {
        kube::Error::Api(s) => s.code,
        other => panic!("transport error: {other:?}"),
    })
}

/// Applies one op to server and model; returns whether the model expects a watch event.
async fn step(api: &Api<ConfigMap>, model: &mut Model, op: &Op) -> bool {
    let name = |n: &usize| format!("cm-{n}");
    match op {
        Op::Create(n, v) => {
            let got = code(
                api.create(&PostParams::default(), &cm(&name(n), *v, None))
                    .await,
            );
            match model.get(&name(n)) {
                Some(_) => assert_eq!(got.unwrap_err(), 409),
                None => {
                    let c = got.unwrap();
                    model.insert(
                        name(n),
                        (*v, c.metadata.resource_version.unwrap().parse().unwrap()),
                    );
                    return true;
                }
            }
        }
        Op::Patch(n, v) => {
            let p = json!({"data": {"v": v.to_string()}});
            let got = code(
                api.patch(&name(n), &PatchParams::default(), &Patch::Merge(&p))
                    .await,
            );
            match model.get_mut(&name(n)) {
                None => assert_eq!(got.unwrap_err(), 404),
                Some((mv, mrv)) => {
                    let c = got.unwrap();
                    let rv: u64 = c.metadata.resource_version.unwrap().parse().unwrap();
                    let changed = *mv != *v;
                    assert_eq!(
                        rv != *mrv,
                        changed,
                        "a no-op patch keeps the resourceVersion"
                    );
                    (*mv, *mrv) = (*v, rv);
                    return changed;
                }
            }
        }
        Op::Replace(n, v, stale) => {
            let current = model.get(&name(n)).map(|(_, rv)| *rv);
            let rv = if *stale { Some(1) } else { current.or(Some(1)) };
            let got = code(
                api.replace(&name(n), &PostParams::default(), &cm(&name(n), *v, rv))
                    .await,
            );
            match model.get_mut(&name(n)) {
                None => assert_eq!(got.unwrap_err(), 404),
                Some(_) if *stale => assert_eq!(got.unwrap_err(), 409),
                Some((mv, mrv)) => {
                    let c = got.unwrap();
                    let new_rv: u64 = c.metadata.resource_version.unwrap().parse().unwrap();
                    let changed = *mv != *v;
                    (*mv, *mrv) = (*v, new_rv);
                    return changed;
                }
            }
        }
        Op::Delete(n) => {
            let got = api.delete(&name(n), &DeleteParams::default()).await;
            match model.remove(&name(n)) {
                None => assert!(matches!(got, Err(kube::Error::Api(ref s)) if s.code == 404)),
                Some(_) => {
                    got.unwrap();
                    return true;
                }
            }
        }
    }
    false
}

async fn run(ops: Vec<Op>) {
    let h = common::start().await;
    let api: Api<ConfigMap> = Api::namespaced(h.client(), "default");
    let start_rv = h.resource_version().to_string();
    let mut watchers = Vec::new();
    for _ in 0..2 {
        watchers.push(
            api.watch(&WatchParams::default().timeout(60), &start_rv)
                .await
                .unwrap()
                .boxed(),
        );
    }
    let mut model = Model::new();
    let mut expected_events = 0;
    for op in &ops {
        if step(&api, &mut model, op).await {
            expected_events += 1;
        }
    }
    let mut streams: Vec<Vec<(String, String, u64, u8)>> = Vec::new();
    for w in watchers.iter_mut() {
        let mut events = Vec::new();
        while events.len() < expected_events {
            let ev = tokio::time::timeout(Duration::from_secs(10), w.try_next())
                .await
                .expect("event in time")
                .unwrap()
                .unwrap();
            let (kind, c) = match ev {
                WatchEvent::Added(c) => ("ADDED", c),
                WatchEvent::Modified(c) => ("MODIFIED", c),
                WatchEvent::Deleted(c) => ("DELETED", c),
                other => panic!("unexpected {other:?}"),
            };
            let rv = c
                .metadata
                .resource_version
                .clone()
                .unwrap()
                .parse()
                .unwrap();
            events.push((
                kind.to_string(),
                c.metadata.name.clone().unwrap(),
                rv,
                value_of(&c),
            ));
        }
        streams.push(events);
    }
    assert_eq!(streams[0], streams[1], "every watcher sees the same events");
    assert!(
        streams[0].windows(2).all(|w| w[0].2 < w[1].2),
        "events in resourceVersion order"
    );
    let mut replay: Model = Model::new();
    for (kind, name, rv, v) in &streams[0] {
        if kind == "DELETED" {
            replay.remove(name);
        } else {
            replay.insert(name.clone(), (*v, *rv));
        }
    }
    assert_eq!(replay, model, "replaying the watch gives the model's state");
    let listed: Model = api
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(|c| {
            (
                c.metadata.name.clone().unwrap(),
                (
                    value_of(c),
                    c.metadata
                        .resource_version
                        .clone()
                        .unwrap()
                        .parse()
                        .unwrap(),
                ),
            )
        })
        .collect();
    assert_eq!(listed, model, "the server's state is the model's");
    h.shutdown().await;
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]
    #[test]
    fn server_matches_model(ops in proptest::collection::vec(op(), 1..40)) {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(run(ops));
    }
}
