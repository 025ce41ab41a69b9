//! `--data-dir` durability: restart restores objects and the resourceVersion; watchers and a Controller survive
//! the restart; a kill -9 of the binary in the middle of a write load loses no acknowledged write; the watch
//! history window bound after a restart and after eviction.

mod common;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use apiserver::{Options, Server};
use common::*;
use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::{Controller, watcher};
use serde_json::json;

/// Options of a server that keeps its data in `dir`.
fn on_disk(dir: &std::path::Path) -> Options {
    Options {
        data_dir: Some(dir.to_path_buf()),
        ..Default::default()
    }
}

fn cm(name: &str) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name}, "data": {"k": name}})).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_restores_state_and_clients_recover() {
    let dir = tempfile::tempdir().unwrap();
    let opts = on_disk(dir.path());
    let h = Server::start(opts.clone()).await.unwrap();
    let addr = h.addr();
    h.install_crds(&[<Widget as kube::CustomResourceExt>::crd()])
        .await
        .unwrap();
    let client = h.client();
    let widgets: Api<Widget> = Api::namespaced(client.clone(), "default");
    widgets
        .create(&PostParams::default(), &widget("before", 1))
        .await
        .unwrap();
    let rv_before = h.resource_version();

    // A controller that marks widgets Ready, and a plain watcher, both across the restart.
    let api = widgets.clone();
    let controller = Controller::new(widgets.clone(), watcher::Config::default()).run(
        move |w: Arc<Widget>, _ctx: Arc<()>| {
            let api = api.clone();
            async move {
                let status = json!({"status": {"state": "Ready"}});
                api.patch_status(
                    &w.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(&status),
                )
                .await?;
                Ok::<_, kube::Error>(Action::await_change())
            }
        },
        |_, _, _| Action::requeue(Duration::from_millis(200)),
        Arc::new(()),
    );
    let controller = tokio::spawn(controller.for_each(|_| async {}));
    let (seen, watch) = names_seen_by_a_watcher(widgets.clone());
    eventually(20, "reconciled before restart", || async {
        let w = widgets.get("before").await.ok()?;
        (w.status?.state.as_deref() == Some("Ready")).then_some(())
    })
    .await;

    h.shutdown().await;
    let h = Server::start(Options { bind: addr, ..opts }).await.unwrap();
    assert!(
        h.resource_version() >= rv_before,
        "resourceVersion is restored"
    );
    // One-shot calls use a new client: the old one may still hold a pooled connection the stopped server has
    // just closed (a plain HTTP keep-alive race that kube's client does not retry). The long-lived controller
    // and watcher keep the old client: their recovery is what this test is about.
    let widgets: Api<Widget> = Api::namespaced(h.client(), "default");
    let restored = widgets.get("before").await.unwrap();
    assert_eq!(restored.status.unwrap().state.as_deref(), Some("Ready"));
    let created = widgets
        .create(&PostParams::default(), &widget("after", 2))
        .await
        .unwrap();
    let rv_after: u64 = created.metadata.resource_version.unwrap().parse().unwrap();
    assert!(rv_after > rv_before, "new writes continue the counter");
    eventually(30, "reconciled after restart", || async {
        let w = widgets.get("after").await.ok()?;
        (w.status?.state.as_deref() == Some("Ready")).then_some(())
    })
    .await;
    eventually(30, "watcher saw the post-restart object", || async {
        seen.lock().unwrap().contains("after").then_some(())
    })
    .await;
    controller.abort();
    watch.abort();
    h.shutdown().await;
}

/// A kube-runtime watcher (with its default backoff, as controllers use it) recording every name it applies.
fn names_seen_by_a_watcher<K>(
    api: Api<K>,
) -> (Arc<Mutex<BTreeSet<String>>>, tokio::task::JoinHandle<()>)
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
{
    let seen = Arc::new(Mutex::new(BTreeSet::new()));
    let record = seen.clone();
    let watch = tokio::spawn(
        kube::runtime::WatchStreamExt::applied_objects(
            kube::runtime::WatchStreamExt::default_backoff(watcher::watcher(
                api,
                watcher::Config::default(),
            )),
        )
        .for_each(move |object| {
            if let Ok(object) = object {
                record.lock().unwrap().insert(object.name_any());
            }
            async {}
        }),
    );
    (seen, watch)
}

/// Starts the binary on a random port with a data dir; returns the child and its URL.
async fn spawn_binary(dir: &std::path::Path) -> (tokio::process::Child, String) {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_apiserver"));
    command.args(["--port", "0", "--data-dir"]).arg(dir);
    common::spawn_announcing(command).await
}

fn client_for(url: &str) -> kube::Client {
    kube::Client::try_from(kube::Config::new(url.parse().unwrap())).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_load_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, url) = spawn_binary(dir.path()).await;
    let api: Api<ConfigMap> = Api::namespaced(client_for(&url), "default");
    let acked = Arc::new(Mutex::new(Vec::<(String, u64)>::new()));
    let mut writers = Vec::new();
    for w in 0..8 {
        let (api, acked) = (api.clone(), acked.clone());
        writers.push(tokio::spawn(async move {
            for i in 0.. {
                let name = format!("w{w}-{i}");
                match api.create(&PostParams::default(), &cm(&name)).await {
                    Ok(made) => {
                        let rv = made.metadata.resource_version.unwrap().parse().unwrap();
                        acked.lock().unwrap().push((name, rv));
                    }
                    Err(_) => return,
                }
            }
        }));
    }
    eventually(30, "some acknowledged writes", || async {
        (acked.lock().unwrap().len() >= 300).then_some(())
    })
    .await;
    child.start_kill().unwrap();
    child.wait().await.unwrap();
    for w in writers {
        let _ = w.await;
    }
    let acked = acked.lock().unwrap().clone();
    let (_child2, url2) = spawn_binary(dir.path()).await;
    let api2: Api<ConfigMap> = Api::namespaced(client_for(&url2), "default");
    let stored: BTreeSet<String> = api2
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|c| c.name_any())
        .collect();
    let lost: Vec<&String> = acked
        .iter()
        .map(|(n, _)| n)
        .filter(|n| !stored.contains(*n))
        .collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged writes lost: {lost:?}",
        lost.len()
    );
    let max_acked = acked.iter().map(|(_, rv)| *rv).max().unwrap();
    let next = api2
        .create(&PostParams::default(), &cm("after-crash"))
        .await
        .unwrap();
    let next_rv: u64 = next.metadata.resource_version.unwrap().parse().unwrap();
    assert!(
        next_rv > max_acked,
        "resourceVersions never go back after a crash"
    );
}

/// After a restart, a client that lists at the head resourceVersion and watches from it gets a working watch
/// (the restored history window includes its lower bound), and a kube-runtime watcher recovers promptly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_from_list_rv_works_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let opts = on_disk(dir.path());
    let h = Server::start(opts.clone()).await.unwrap();
    let addr = h.addr();
    let cms: Api<ConfigMap> = Api::namespaced(h.client(), "default");
    for i in 0..3 {
        cms.create(&PostParams::default(), &cm(&format!("before-{i}")))
            .await
            .unwrap();
    }
    // A delete as the last write: the head resourceVersion is then no object's resourceVersion.
    cms.delete("before-2", &Default::default()).await.unwrap();
    let (seen, runtime_watch) = names_seen_by_a_watcher(cms.clone());
    eventually(20, "watcher saw the objects before restart", || async {
        seen.lock().unwrap().contains("before-1").then_some(())
    })
    .await;
    h.shutdown().await;

    let h = Server::start(Options { bind: addr, ..opts }).await.unwrap();
    // A new client for the one-shot calls (see restart_restores_state_and_clients_recover).
    let cms: Api<ConfigMap> = Api::namespaced(h.client(), "default");
    let list = cms.list(&ListParams::default()).await.unwrap();
    let list_rv = list.metadata.resource_version.unwrap();
    assert_eq!(list_rv, h.resource_version().to_string());
    let mut events = cms
        .watch(&kube::api::WatchParams::default(), &list_rv)
        .await
        .unwrap()
        .boxed();
    cms.create(&PostParams::default(), &cm("after"))
        .await
        .unwrap();
    let event = tokio::time::timeout(Duration::from_secs(10), events.next())
        .await
        .expect("an event within the deadline")
        .expect("the watch stays open")
        .expect("the watch event decodes");
    match event {
        kube::api::WatchEvent::Added(c) => assert_eq!(c.name_any(), "after"),
        other => panic!("expected ADDED of the new object, got {other:?}"),
    }
    // The watcher reconnects on its own exponential backoff (0.8 s doubling, jittered), which kept growing while
    // the server was down; on a loaded machine the restart alone can take seconds, so allow a full backoff cycle.
    eventually(
        90,
        "kube-runtime watcher saw the post-restart object",
        || async { seen.lock().unwrap().contains("after").then_some(()) },
    )
    .await;
    runtime_watch.abort();
    h.shutdown().await;
}

/// After history eviction, a watch from the resourceVersion just before the oldest retained event is served
/// from history; one older than that gets 410 Gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_window_bound_after_eviction() {
    let h = Server::start(Options {
        watch_history: 2,
        ..Default::default()
    })
    .await
    .unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(h.client(), "default");
    let mut rvs = Vec::new();
    for i in 0..3 {
        let c = cms
            .create(&PostParams::default(), &cm(&format!("c{i}")))
            .await
            .unwrap();
        rvs.push(c.metadata.resource_version.unwrap().parse::<u64>().unwrap());
    }
    // History holds c1 and c2; c0's resourceVersion is the bound.
    let mut events = cms
        .watch(&kube::api::WatchParams::default(), &rvs[0].to_string())
        .await
        .unwrap()
        .boxed();
    let first = tokio::time::timeout(Duration::from_secs(10), events.next())
        .await
        .expect("an event within the deadline")
        .expect("the watch stays open")
        .expect("the watch event decodes");
    match first {
        kube::api::WatchEvent::Added(c) => assert_eq!(c.name_any(), "c1"),
        other => panic!("expected ADDED c1 from history, got {other:?}"),
    }
    let mut gone = cms
        .watch(
            &kube::api::WatchParams::default(),
            &(rvs[0] - 1).to_string(),
        )
        .await
        .unwrap()
        .boxed();
    let event = tokio::time::timeout(Duration::from_secs(10), gone.next())
        .await
        .expect("an event within the deadline")
        .expect("an error event")
        .expect("the watch event decodes");
    match event {
        kube::api::WatchEvent::Error(e) => assert_eq!(e.code, 410),
        other => panic!("expected 410 Gone, got {other:?}"),
    }
    h.shutdown().await;
}

/// A watcher that saw resourceVersion R before a restart resumes from R afterwards and gets every change it
/// missed (also changes of other resources in between), across a second restart without writes too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_resumes_across_restarts_from_an_earlier_rv() {
    let dir = tempfile::tempdir().unwrap();
    let opts = on_disk(dir.path());
    let h = Server::start(opts.clone()).await.unwrap();
    let addr = h.addr();
    let cms: Api<ConfigMap> = Api::namespaced(h.client(), "default");
    let a = cms.create(&PostParams::default(), &cm("a")).await.unwrap();
    let seen_rv = a.metadata.resource_version.unwrap();
    cms.create(&PostParams::default(), &cm("b")).await.unwrap();
    cms.delete("a", &Default::default()).await.unwrap();
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(h.client(), "default");
    secrets
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "s"}})).unwrap(),
        )
        .await
        .unwrap();
    h.shutdown().await;

    for restart in 0..2 {
        let h = Server::start(Options {
            bind: addr,
            ..opts.clone()
        })
        .await
        .unwrap();
        // A new client per server (see restart_restores_state_and_clients_recover).
        let cms: Api<ConfigMap> = Api::namespaced(h.client(), "default");
        let mut events = cms
            .watch(&kube::api::WatchParams::default(), &seen_rv)
            .await
            .unwrap()
            .boxed();
        let mut got = Vec::new();
        for _ in 0..2 {
            let event = tokio::time::timeout(Duration::from_secs(10), events.next())
                .await
                .expect("an event within the deadline")
                .expect("the watch stays open")
                .expect("the watch event decodes");
            got.push(match event {
                kube::api::WatchEvent::Added(c) => format!("ADDED {}", c.name_any()),
                kube::api::WatchEvent::Deleted(c) => format!("DELETED {}", c.name_any()),
                other => format!("{other:?}"),
            });
        }
        assert_eq!(got, ["ADDED b", "DELETED a"], "restart {restart}");
        h.shutdown().await;
    }
}

/// A watch whose request is being served while the server stops (here: held by an injected latency, as a
/// client's reconnect on a kept-alive connection can be) still ends: it must not stay attached to the stopped
/// server, or its client never reconnects to the restarted one. Afterwards requests are refused (429 +
/// `Connection: close`) instead of being served by the stopped store.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_watch_opened_while_the_server_stops_ends() {
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    let h = Server::start(Options::default()).await.unwrap();
    let router = h.router();
    let latency = Duration::from_secs(2);
    h.faults().set_latency(latency);
    let get = |uri: &str| {
        ::http::Request::get(uri)
            .body(axum::body::Body::empty())
            .unwrap()
    };
    let watch = tokio::spawn(
        router
            .clone()
            .oneshot(get("/api/v1/namespaces/default/configmaps?watch=true")),
    );
    // Paused clock: time only advances once the request task is parked in the latency, so shutdown begins
    // after the watch request was admitted and before it subscribes.
    tokio::time::sleep(latency / 2).await;
    h.shutdown().await;
    let response = watch.await.unwrap().unwrap();
    assert_eq!(response.status(), 200, "the admitted watch is answered");
    tokio::time::timeout(Duration::from_secs(60), response.into_body().collect())
        .await
        .expect("a watch opened while the server stops ends")
        .unwrap();

    let refused = router
        .oneshot(get("/api/v1/namespaces/default/configmaps"))
        .await
        .unwrap();
    assert_eq!(refused.status(), 429, "a stopped server serves nothing");
    assert_eq!(refused.headers()[::http::header::CONNECTION], "close");
    assert!(refused.headers().contains_key(::http::header::RETRY_AFTER));
}
