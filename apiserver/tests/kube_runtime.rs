//! kube-runtime against the embedded server: watcher (incl. 410 recovery and streaming lists), every patch type,
//! finalizers, garbage collection, and a Controller reconciling a CRD with a finalizer. All but the 410 test
//! also run against a real cluster with METAL_HARNESS_KUBECONFIG (see `common`).

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::runtime::watcher::{self, Event};
use kube::runtime::{Controller, WatchStreamExt};
use kube::{Resource, ResourceExt};
use serde_json::json;

const FINALIZER: &str = "widgets.test.metal.dev/cleanup";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watcher_sees_changes_and_recovers_from_410() {
    let h = start_with_widgets().await;
    let api: Api<Widget> = Api::namespaced(h.client(), "default");
    api.create(&PostParams::default(), &widget("before", 1))
        .await
        .unwrap();
    for streaming in [false, true] {
        let cfg = if streaming {
            watcher::Config::default().streaming_lists()
        } else {
            watcher::Config::default()
        };
        let mut stream = watcher::watcher(api.clone(), cfg).boxed();
        // Initial state: the existing object arrives in the init phase.
        let mut saw_before = false;
        loop {
            match tokio::time::timeout(Duration::from_secs(10), stream.try_next())
                .await
                .unwrap()
                .unwrap()
                .unwrap()
            {
                Event::InitApply(w) if w.name_any() == "before" => saw_before = true,
                Event::InitDone => break,
                _ => {}
            }
        }
        assert!(saw_before);
        let name = format!("live-{streaming}");
        create_and_see(&api, &mut stream, &name, 2).await;
        // Forced 410 Gone: the watcher relists and keeps going.
        h.faults().expire_watches();
        let after = format!("after-410-{streaming}");
        create_and_see(&api, &mut stream, &after, 3).await;
        // Dropped connections are resumed from the last resourceVersion.
        h.faults().drop_watches();
        let dropped = format!("after-drop-{streaming}");
        create_and_see(&api, &mut stream, &dropped, 4).await;
    }
    h.shutdown().await;
}

/// Creates widget `name` and waits until the watcher stream delivers it.
async fn create_and_see<S>(api: &Api<Widget>, stream: &mut S, name: &str, size: i64)
where
    S: futures::Stream<Item = Result<Event<Widget>, watcher::Error>> + Unpin,
{
    api.create(&PostParams::default(), &widget(name, size))
        .await
        .unwrap();
    next_apply(stream, name).await;
}

async fn next_apply<S>(stream: &mut S, name: &str)
where
    S: futures::Stream<Item = Result<Event<Widget>, watcher::Error>> + Unpin,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let ev = tokio::time::timeout(left, stream.next())
            .await
            .unwrap_or_else(|_| panic!("no event for {name}"));
        match ev {
            Some(Ok(Event::Apply(w) | Event::InitApply(w))) if w.name_any() == name => return,
            Some(_) => continue,
            None => panic!("watch stream ended"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_patch_type() {
    let h = TestApi::with_widgets().await;
    let api: Api<Widget> = Api::namespaced(h.client(), h.ns());
    // Server-side apply creates, then owns fields.
    let applied = json!({"apiVersion": "test.metal.dev/v1", "kind": "Widget", "metadata": {"name": "p"}, "spec": {"size": 1, "color": "red"}});
    let ssa = PatchParams::apply("alice");
    let w = api.patch("p", &ssa, &Patch::Apply(&applied)).await.unwrap();
    assert_eq!(w.spec.color.as_deref(), Some("red"));
    let mf = w.metadata.managed_fields.unwrap();
    assert_eq!(mf[0].manager.as_deref(), Some("alice"));
    assert_eq!(mf[0].operation.as_deref(), Some("Apply"));
    // Another manager changing alice's field conflicts, unless forced.
    let bob = json!({"apiVersion": "test.metal.dev/v1", "kind": "Widget", "metadata": {"name": "p"}, "spec": {"size": 1, "color": "blue"}});
    let err = api
        .patch("p", &PatchParams::apply("bob"), &Patch::Apply(&bob))
        .await
        .unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 409),
        "{err:?}"
    );
    let w = api
        .patch("p", &PatchParams::apply("bob").force(), &Patch::Apply(&bob))
        .await
        .unwrap();
    assert_eq!(w.spec.color.as_deref(), Some("blue"));
    // Alice stops applying color: bob still owns it, so it stays.
    let alice2 = json!({"apiVersion": "test.metal.dev/v1", "kind": "Widget", "metadata": {"name": "p"}, "spec": {"size": 1}});
    let w = api.patch("p", &ssa, &Patch::Apply(&alice2)).await.unwrap();
    assert_eq!(w.spec.color.as_deref(), Some("blue"));
    // Merge patch.
    let w = api
        .patch(
            "p",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"size": 5}})),
        )
        .await
        .unwrap();
    assert_eq!(w.spec.size, 5);
    // JSON patch with a passing and a failing test op.
    let size_from_to = |from: i64, to: i64| {
        let ops = json!([
            {"op": "test", "path": "/spec/size", "value": from},
            {"op": "replace", "path": "/spec/size", "value": to},
        ]);
        Patch::<()>::Json(serde_json::from_value(ops).unwrap())
    };
    let params = PatchParams::default();
    let w = api.patch("p", &params, &size_from_to(5, 6)).await.unwrap();
    assert_eq!(w.spec.size, 6);
    let err = api
        .patch("p", &params, &size_from_to(1, 7))
        .await
        .unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 422),
        "{err:?}"
    );
    // Strategic merge on a built-in kind.
    let cms: Api<ConfigMap> = Api::namespaced(h.client(), h.ns());
    let cm: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "c"}, "data": {"a": "1"}})).unwrap();
    cms.create(&PostParams::default(), &cm).await.unwrap();
    let cm = cms
        .patch(
            "c",
            &PatchParams::default(),
            &Patch::Strategic(json!({"data": {"b": "2"}})),
        )
        .await
        .unwrap();
    assert_eq!(cm.data.unwrap().len(), 2);
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finalizers_block_deletion_and_gc_follows_owners() {
    let h = TestApi::with_widgets().await;
    let client = h.client();
    let api: Api<Widget> = Api::namespaced(client.clone(), h.ns());
    let mut w = widget("held", 1);
    w.metadata.finalizers = Some(vec!["x/hold".into()]);
    let owner = api.create(&PostParams::default(), &w).await.unwrap();
    let pending = api.delete("held", &DeleteParams::default()).await.unwrap();
    let obj = pending.left().expect("deletion pending returns the object");
    assert!(obj.metadata.deletion_timestamp.is_some());
    // No new finalizers once deletion started.
    let add = api
        .patch(
            "held",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": ["x/hold", "y/new"]}})),
        )
        .await;
    assert!(matches!(add.unwrap_err(), kube::Error::Api(ref s) if s.code == 422));
    // A dependent ConfigMap owned by the widget.
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), h.ns());
    let mut dep: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "dep"}})).unwrap();
    dep.metadata.owner_references = Some(vec![owner.controller_owner_ref(&()).unwrap()]);
    cms.create(&PostParams::default(), &dep).await.unwrap();
    api.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    assert!(
        api.get_opt("held").await.unwrap().is_none(),
        "emptied finalizers complete the deletion"
    );
    eventually(10, "dependent collected", || async {
        cms.get_opt("dep").await.unwrap().is_none().then_some(())
    })
    .await;
    h.shutdown().await;
}

struct Ctx {
    api: Api<Widget>,
}

#[derive(Debug, thiserror::Error)]
enum ReconcileError {
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<kube::Error>>),
}

async fn reconcile(w: Arc<Widget>, ctx: Arc<Ctx>) -> Result<Action, ReconcileError> {
    let api = ctx.api.clone();
    finalizer(&api, FINALIZER, w, |event| async {
        match event {
            Finalizer::Apply(w) => {
                let status = json!({"status": {"state": "Ready", "observedGeneration": w.meta().generation}});
                api.patch_status(&w.name_any(), &PatchParams::default(), &Patch::Merge(&status)).await?;
                Ok(Action::requeue(Duration::from_secs(300)))
            }
            Finalizer::Cleanup(_) => Ok(Action::await_change()),
        }
    })
    .await
    .map_err(|e| ReconcileError::Finalizer(Box::new(e)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controller_reconciles_with_finalizer() {
    let h = TestApi::with_widgets().await;
    let api: Api<Widget> = Api::namespaced(h.client(), h.ns());
    let ctx = Arc::new(Ctx { api: api.clone() });
    let controller = Controller::new(api.clone(), watcher::Config::default())
        .run(
            reconcile,
            |_, _, _| Action::requeue(Duration::from_millis(100)),
            ctx,
        )
        .for_each(|r| async move { eprintln!("reconcile: {r:?}") });
    let task = tokio::spawn(controller);
    api.create(&PostParams::default(), &widget("c1", 1))
        .await
        .unwrap();
    let ready = eventually(20, "reconciled", || async {
        let w = api.get("c1").await.unwrap();
        (w.status.as_ref().and_then(|s| s.state.as_deref()) == Some("Ready")).then_some(w)
    })
    .await;
    assert_eq!(ready.finalizers(), [FINALIZER.to_string()]);
    api.delete("c1", &DeleteParams::default()).await.unwrap();
    eventually(20, "finalized and deleted", || async {
        api.get_opt("c1").await.unwrap().is_none().then_some(())
    })
    .await;
    task.abort();
    h.shutdown().await;
}

/// `WatchStreamExt` is what operators chain on watchers; make sure the default backoff path works too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applied_objects_stream() {
    let h = TestApi::with_widgets().await;
    let api: Api<Widget> = Api::namespaced(h.client(), h.ns());
    let mut objs = watcher::watcher(api.clone(), watcher::Config::default())
        .default_backoff()
        .applied_objects()
        .boxed();
    api.create(&PostParams::default(), &widget("s1", 1))
        .await
        .unwrap();
    let first = tokio::time::timeout(Duration::from_secs(10), objs.try_next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(first.name_any(), "s1");
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_side_apply_of_status() {
    let h = TestApi::with_widgets().await;
    let api: Api<Widget> = Api::namespaced(h.client(), h.ns());
    api.create(&PostParams::default(), &widget("s", 1))
        .await
        .unwrap();
    let controller = PatchParams::apply("widget-controller").force();
    let apply_status = async |status: serde_json::Value| {
        let applied =
            json!({"apiVersion": "test.metal.dev/v1", "kind": "Widget", "status": status});
        let patch = Patch::Apply(&applied);
        api.patch_status("s", &controller, &patch).await.unwrap()
    };
    let w = apply_status(json!({"state": "Ready", "observedGeneration": 1})).await;
    assert_eq!(w.status.unwrap().state.as_deref(), Some("Ready"));
    assert_eq!(w.metadata.generation, Some(1));
    let mf = w.metadata.managed_fields.unwrap();
    let entry = mf
        .iter()
        .find(|e| e.manager.as_deref() == Some("widget-controller"))
        .expect("status manager recorded");
    assert_eq!(
        (entry.operation.as_deref(), entry.subresource.as_deref()),
        (Some("Apply"), Some("status"))
    );
    // Dropping a field from the applied status removes it.
    let w = apply_status(json!({"state": "Ready"})).await;
    assert_eq!(w.status.unwrap().observed_generation, None);
    // Status applies never touch spec.
    assert_eq!(w.spec.size, 1);
    h.shutdown().await;
}
