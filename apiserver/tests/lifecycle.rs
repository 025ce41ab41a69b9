//! Object lifecycle details: deletion propagation (foreground, orphan, cluster-scoped owners), controllers
//! switched off, CRD deletion, deletecollection, watch selectors/bookmarks/timeouts, managedFields, Events.

mod common;

use std::time::Duration;

use apiserver::{Options, Server};
use common::*;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, ObjectReference};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, PropagationPolicy, WatchEvent,
    WatchParams,
};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Resource, ResourceExt};
use serde_json::json;

fn cm(name: &str, labels: serde_json::Value) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}})).unwrap()
}

fn owned_by(name: &str, owner: OwnerReference) -> ConfigMap {
    let mut c = cm(name, json!({}));
    c.metadata.owner_references = Some(vec![owner]);
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreground_orphan_and_cluster_scoped_owners() {
    let h = start_with_widgets().await;
    let client = h.client();
    let widgets: Api<Widget> = Api::namespaced(client.clone(), "default");
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    // Foreground: the owner stays (with the foregroundDeletion finalizer) until its dependents are gone.
    let fg = widgets
        .create(&PostParams::default(), &widget("fg", 1))
        .await
        .unwrap();
    cms.create(
        &PostParams::default(),
        &owned_by("fg-dep", fg.controller_owner_ref(&()).unwrap()),
    )
    .await
    .unwrap();
    widgets
        .delete(
            "fg",
            &DeleteParams {
                propagation_policy: Some(PropagationPolicy::Foreground),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    eventually(10, "foreground owner and dependent gone", || async {
        (widgets.get_opt("fg").await.unwrap().is_none()
            && cms.get_opt("fg-dep").await.unwrap().is_none())
        .then_some(())
    })
    .await;
    // Orphan: the dependent survives without the owner reference.
    let or = widgets
        .create(&PostParams::default(), &widget("or", 1))
        .await
        .unwrap();
    cms.create(
        &PostParams::default(),
        &owned_by("or-dep", or.controller_owner_ref(&()).unwrap()),
    )
    .await
    .unwrap();
    widgets
        .delete(
            "or",
            &DeleteParams {
                propagation_policy: Some(PropagationPolicy::Orphan),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    eventually(10, "orphaning owner gone", || async {
        widgets.get_opt("or").await.unwrap().is_none().then_some(())
    })
    .await;
    let dep = cms.get("or-dep").await.unwrap();
    assert!(dep.metadata.owner_references.unwrap_or_default().is_empty());
    // A cluster-scoped owner of a namespaced dependent.
    let nss: Api<Namespace> = Api::all(client.clone());
    let owner_ns = nss
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "owner"}})).unwrap(),
        )
        .await
        .unwrap();
    cms.create(
        &PostParams::default(),
        &owned_by("ns-dep", owner_ns.controller_owner_ref(&()).unwrap()),
    )
    .await
    .unwrap();
    nss.delete("owner", &DeleteParams::default()).await.unwrap();
    eventually(
        10,
        "dependent of a cluster-scoped owner collected",
        || async { cms.get_opt("ns-dep").await.unwrap().is_none().then_some(()) },
    )
    .await;
    h.shutdown().await;
}

/// Deletes a Widget that owns a ConfigMap on a server with or without controllers and returns how much
/// (virtual) time the dependent took to go, or None if it was still there after `patience`.
async fn dependent_lifetime(controllers: bool, patience: Duration) -> Option<Duration> {
    let h = Server::start(Options {
        controllers,
        ..Default::default()
    })
    .await
    .unwrap();
    h.install_crds(&[<Widget as kube::CustomResourceExt>::crd()])
        .await
        .unwrap();
    // Socket-free client: with nothing waiting on I/O, the paused clock advances only when every task is idle.
    let client = kube::Client::new(h.router(), "default");
    let widgets: Api<Widget> = Api::namespaced(client.clone(), "default");
    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    let w = widgets
        .create(&PostParams::default(), &widget("w", 1))
        .await
        .unwrap();
    cms.create(
        &PostParams::default(),
        &owned_by("dep", w.controller_owner_ref(&()).unwrap()),
    )
    .await
    .unwrap();
    widgets.delete("w", &DeleteParams::default()).await.unwrap();
    let start = tokio::time::Instant::now();
    while start.elapsed() < patience {
        if cms.get_opt("dep").await.unwrap().is_none() {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    None
}

/// Without controllers the dependent of a deleted owner stays, as on a cluster without kube-controller-manager.
/// The witness is positive: on tokio's paused clock (which only advances when every task is idle), the control
/// run with controllers shows the garbage collector removing the dependent within some virtual time; the run
/// without them waits a hundred times that, and longer than the collector's periodic resync, before concluding.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn controllers_can_be_switched_off() {
    let gc_took = dependent_lifetime(true, Duration::from_secs(60))
        .await
        .expect("the garbage collector removes the dependent");
    let patience = (gc_took * 100).max(Duration::from_secs(10));
    assert_eq!(dependent_lifetime(false, patience).await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crd_deletion_removes_instances_and_stops_serving() {
    let h = start_with_widgets().await;
    let widgets: Api<Widget> = Api::namespaced(h.client(), "default");
    widgets
        .create(&PostParams::default(), &widget("a", 1))
        .await
        .unwrap();
    let crds: Api<CustomResourceDefinition> = Api::all(h.client());
    let crd = crds.get("widgets.test.metal.dev").await.unwrap();
    let established = crd
        .status
        .unwrap()
        .conditions
        .unwrap()
        .iter()
        .any(|c| c.type_ == "Established" && c.status == "True");
    assert!(established);
    crds.delete("widgets.test.metal.dev", &DeleteParams::default())
        .await
        .unwrap();
    eventually(10, "CRD gone", || async {
        crds.get_opt("widgets.test.metal.dev")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    let err = widgets.list(&ListParams::default()).await.unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 404),
        "{err:?}"
    );
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletecollection_watch_selectors_bookmarks_and_timeouts() {
    let h = Server::start(Options {
        bookmark_interval: Duration::from_millis(100),
        ..Default::default()
    })
    .await
    .unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(h.client(), "default");
    let wp = WatchParams::default().labels("app=web").timeout(2);
    let mut selected = cms.watch(&wp, "0").await.unwrap().boxed();
    let mut bookmarks = cms
        .watch(
            &WatchParams::default().timeout(30),
            &h.resource_version().to_string(),
        )
        .await
        .unwrap()
        .boxed();
    cms.create(&PostParams::default(), &cm("a", json!({"app": "web"})))
        .await
        .unwrap();
    cms.create(&PostParams::default(), &cm("b", json!({"app": "db"})))
        .await
        .unwrap();
    // a leaves the selector: the watcher sees DELETED; b enters it: ADDED.
    cms.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"app": "api"}}})),
    )
    .await
    .unwrap();
    cms.patch(
        "b",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"app": "web"}}})),
    )
    .await
    .unwrap();
    let mut seen = Vec::new();
    while seen.len() < 3 {
        match tokio::time::timeout(Duration::from_secs(5), selected.try_next())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
        {
            WatchEvent::Added(c) => seen.push(("ADDED", c.name_any())),
            WatchEvent::Deleted(c) => seen.push(("DELETED", c.name_any())),
            WatchEvent::Modified(c) => seen.push(("MODIFIED", c.name_any())),
            _ => {}
        }
    }
    assert_eq!(
        seen,
        vec![
            ("ADDED", "a".to_string()),
            ("DELETED", "a".to_string()),
            ("ADDED", "b".to_string())
        ]
    );
    // timeoutSeconds=2 closes the stream.
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        while selected.next().await.is_some() {}
    })
    .await;
    assert!(closed.is_ok(), "the watch closes at timeoutSeconds");
    let bookmark = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Some(Ok(WatchEvent::Bookmark(b))) = bookmarks.next().await {
                return b.metadata.resource_version;
            }
        }
    })
    .await
    .unwrap();
    assert!(bookmark.parse::<u64>().unwrap() >= 2);
    // deletecollection with a selector.
    let deleted = cms
        .delete_collection(
            &DeleteParams::default(),
            &ListParams::default().labels("app=web"),
        )
        .await
        .unwrap();
    let names: Vec<String> = deleted
        .left()
        .unwrap()
        .items
        .into_iter()
        .map(|c| c.name_any())
        .collect();
    assert_eq!(names, vec!["b".to_string()]);
    assert!(cms.get_opt("a").await.unwrap().is_some());
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn managed_fields_and_events() {
    let h = start().await;
    let client = h.client();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let pp = PostParams {
        field_manager: Some("metal-operator".into()),
        ..Default::default()
    };
    let c = cms.create(&pp, &cm("m", json!({"a": "b"}))).await.unwrap();
    let mf = &c.metadata.managed_fields.as_ref().unwrap()[0];
    assert_eq!(
        (mf.manager.as_deref(), mf.operation.as_deref()),
        (Some("metal-operator"), Some("Update"))
    );
    assert!(mf.time.is_some());
    assert_eq!(
        mf.fields_v1.as_ref().unwrap().0["f:metadata"]["f:labels"]["f:a"],
        json!({})
    );

    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "test-controller".into(),
            instance: None,
        },
    );
    let reference: ObjectReference = c.object_ref(&());
    let ev = Event {
        type_: EventType::Normal,
        reason: "Probed".into(),
        note: Some("first".into()),
        action: "Probe".into(),
        secondary: None,
    };
    recorder.publish(&ev, &reference).await.unwrap();
    recorder.publish(&ev, &reference).await.unwrap();
    let events: Api<k8s_openapi::api::events::v1::Event> =
        Api::namespaced(client.clone(), "default");
    let listed = events
        .list(&ListParams::default().fields("regarding.name=m"))
        .await
        .unwrap();
    assert_eq!(
        listed.items.len(),
        1,
        "the second publish updates the series"
    );
    assert_eq!(listed.items[0].series.as_ref().map(|s| s.count), Some(2));
    h.shutdown().await;
}
