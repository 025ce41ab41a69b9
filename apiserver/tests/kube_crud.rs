//! kube-rs CRUD, status subresource, generation, selectors and paging against the embedded server (or, with
//! METAL_HARNESS_KUBECONFIG, a real cluster: see `common`).

mod common;

use common::*;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

fn code(e: kube::Error) -> u16 {
    match e {
        kube::Error::Api(status) => status.code,
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// The status code with which `api` refuses to create an empty ConfigMap `name`.
async fn refused_create(api: &Api<ConfigMap>, name: &str) -> u16 {
    let created = api
        .create(&PostParams::default(), &cm(name, json!({})))
        .await;
    code(created.unwrap_err())
}

/// Discovery over the legacy endpoints and over the aggregated ones.
async fn both_discoveries(client: &kube::Client) -> [kube::Discovery; 2] {
    let legacy = kube::Discovery::new(client.clone()).run().await.unwrap();
    let aggregated = kube::Discovery::new(client.clone()).run_aggregated().await;
    [legacy, aggregated.unwrap()]
}

fn cm(name: &str, labels: serde_json::Value) -> ConfigMap {
    serde_json::from_value(
        json!({"metadata": {"name": name, "labels": labels}, "data": {"k": "v"}}),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configmap_crud_and_error_statuses() {
    let h = TestApi::start().await;
    let api: Api<ConfigMap> = Api::namespaced(h.client(), h.ns());
    let created = api
        .create(&PostParams::default(), &cm("a", json!({})))
        .await
        .unwrap();
    let meta = &created.metadata;
    assert!(meta.uid.is_some() && meta.creation_timestamp.is_some());
    let rv: u64 = meta.resource_version.as_ref().unwrap().parse().unwrap();
    assert!(rv > 0);
    assert_eq!(refused_create(&api, "a").await, 409);
    assert_eq!(code(api.get("missing").await.unwrap_err()), 404);
    assert_eq!(refused_create(&api, "Bad_Name").await, 422);

    let mut fresh = api.get("a").await.unwrap();
    fresh.data = Some([("k".to_string(), "w".to_string())].into());
    let updated = api
        .replace("a", &PostParams::default(), &fresh)
        .await
        .unwrap();
    let rv2: u64 = updated
        .metadata
        .resource_version
        .as_ref()
        .unwrap()
        .parse()
        .unwrap();
    assert!(rv2 > rv, "resourceVersion grows");
    // Stale resourceVersion: 409 Conflict.
    assert_eq!(
        code(
            api.replace("a", &PostParams::default(), &fresh)
                .await
                .unwrap_err()
        ),
        409
    );

    api.delete("a", &DeleteParams::default()).await.unwrap();
    assert_eq!(code(api.get("a").await.unwrap_err()), 404);
    // Creating in a missing namespace is 404, like the NamespaceLifecycle admission plugin.
    let nowhere: Api<ConfigMap> = Api::namespaced(h.client(), "nowhere");
    assert_eq!(refused_create(&nowhere, "b").await, 404);
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generate_name_labels_and_paging() {
    let h = TestApi::start().await;
    let api: Api<ConfigMap> = Api::namespaced(h.client(), h.ns());
    for i in 0..25 {
        let mut c = cm(
            "",
            json!({"idx": i.to_string(), "tier": if i % 2 == 0 { "even" } else { "odd" }}),
        );
        c.metadata.name = None;
        c.metadata.generate_name = Some("gen-".into());
        let made = api.create(&PostParams::default(), &c).await.unwrap();
        assert!(made.metadata.name.unwrap().starts_with("gen-"));
    }
    let even = api
        .list(&ListParams::default().labels("tier=even"))
        .await
        .unwrap();
    assert_eq!(even.items.len(), 13);
    let some = api
        .list(&ListParams::default().labels("idx in (1,2,3),tier!=odd"))
        .await
        .unwrap();
    assert_eq!(some.items.len(), 1);
    let mut seen = 0;
    let mut lp = ListParams::default().labels("idx").limit(10);
    let mut pages = 0;
    loop {
        let page = api.list(&lp).await.unwrap();
        seen += page.items.len();
        pages += 1;
        assert!(page.metadata.resource_version.is_some());
        match page.metadata.continue_ {
            Some(c) if !c.is_empty() => lp = lp.continue_token(&c),
            _ => break,
        }
    }
    assert_eq!((seen, pages), (25, 3));
    let one = api
        .list(&ListParams::default().fields("metadata.name=nope"))
        .await
        .unwrap();
    assert!(one.items.is_empty());
    h.shutdown().await;
}

fn names(list: &kube::core::ObjectList<ConfigMap>) -> Vec<String> {
    list.items
        .iter()
        .map(|c| c.metadata.name.clone().unwrap())
        .collect()
}

/// Every page of a `limit`/`continue` list shows the state at the first page's resourceVersion, whatever
/// changes in between (kube-apiserver reads later pages from etcd at that revision).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paged_lists_see_one_snapshot() {
    let h = TestApi::start().await;
    let api: Api<ConfigMap> = Api::namespaced(h.client(), h.ns());
    let mut want = Vec::new();
    for i in 0..30 {
        let name = format!("snap-{i:02}");
        api.create(&PostParams::default(), &cm(&name, json!({"snap": "1"})))
            .await
            .unwrap();
        want.push(name);
    }
    let lp = ListParams::default().labels("snap").limit(10);
    let first = api.list(&lp).await.unwrap();
    let snapshot_rv = first.metadata.resource_version.clone();
    let mut seen = names(&first);
    // Changes after the first page, all in the later pages: a delete, a create and an update.
    api.delete("snap-25", &DeleteParams::default())
        .await
        .unwrap();
    api.create(
        &PostParams::default(),
        &cm("snap-15a", json!({"snap": "1"})),
    )
    .await
    .unwrap();
    let changed = json!({"data": {"k": "changed"}});
    api.patch("snap-20", &PatchParams::default(), &Patch::Merge(&changed))
        .await
        .unwrap();
    let mut token = first.metadata.continue_.clone();
    while let Some(t) = token.filter(|t| !t.is_empty()) {
        let page = api.list(&lp.clone().continue_token(&t)).await.unwrap();
        assert_eq!(page.metadata.resource_version, snapshot_rv);
        for c in &page.items {
            if c.metadata.name.as_deref() == Some("snap-20") {
                assert_eq!(
                    c.data.as_ref().unwrap()["k"],
                    "v",
                    "snap-20 as of the snapshot"
                );
            }
        }
        seen.extend(names(&page));
        token = page.metadata.continue_;
    }
    assert_eq!(seen, want);
    // A new list sees the changes.
    let now = names(
        &api.list(&ListParams::default().labels("snap"))
            .await
            .unwrap(),
    );
    assert!(now.contains(&"snap-15a".to_string()) && !now.contains(&"snap-25".to_string()));
    h.shutdown().await;
}

/// A continue token whose snapshot the history no longer covers is refused with 410 Expired.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn continue_past_the_history_is_gone() {
    let h = start().await;
    let api: Api<ConfigMap> = Api::namespaced(h.client(), "default");
    for i in 0..3 {
        api.create(&PostParams::default(), &cm(&format!("c{i}"), json!({})))
            .await
            .unwrap();
    }
    let lp = ListParams::default().limit(1);
    let first = api.list(&lp).await.unwrap();
    let token = first.metadata.continue_.clone().unwrap();
    // Unchanged since the first page: the current state is that snapshot.
    assert_eq!(
        api.list(&lp.clone().continue_token(&token))
            .await
            .unwrap()
            .items
            .len(),
        1
    );
    api.create(&PostParams::default(), &cm("later", json!({})))
        .await
        .unwrap();
    h.faults().expire_watches();
    match api.list(&lp.clone().continue_token(&token)).await {
        Err(kube::Error::Api(e)) => {
            assert_eq!((e.code, e.reason.as_str()), (410, "Expired"), "{e:?}")
        }
        other => panic!("expected 410 Expired, got {other:?}"),
    }
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_resource_generation_and_status_subresource() {
    let h = TestApi::with_widgets().await;
    let api: Api<Widget> = Api::namespaced(h.client(), h.ns());
    let mut w = widget("w1", 1);
    w.status = Some(WidgetStatus {
        state: Some("ignored".into()),
        observed_generation: None,
    });
    let created = api.create(&PostParams::default(), &w).await.unwrap();
    assert_eq!(created.metadata.generation, Some(1));
    assert!(
        created.status.is_none(),
        "status is dropped on create when the status subresource is on"
    );

    let status = json!({"status": {"state": "Ready", "observedGeneration": 1}});
    let after_status = api
        .patch_status("w1", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
    assert_eq!(after_status.status.unwrap().state.as_deref(), Some("Ready"));
    assert_eq!(
        after_status.metadata.generation,
        Some(1),
        "status writes do not bump generation"
    );

    let labels = json!({"metadata": {"labels": {"x": "y"}}});
    let after_meta = api
        .patch("w1", &PatchParams::default(), &Patch::Merge(&labels))
        .await
        .unwrap();
    assert_eq!(
        after_meta.metadata.generation,
        Some(1),
        "metadata writes do not bump generation"
    );

    let spec = json!({"spec": {"size": 2}, "status": {"state": "Hacked"}});
    let after_spec = api
        .patch("w1", &PatchParams::default(), &Patch::Merge(&spec))
        .await
        .unwrap();
    assert_eq!(after_spec.metadata.generation, Some(2));
    assert_eq!(
        after_spec.status.unwrap().state.as_deref(),
        Some("Ready"),
        "main resource writes ignore status"
    );
    let got = api.get_status("w1").await.unwrap();
    assert_eq!(got.spec.size, 2);
    // Strategic merge patch is refused for custom resources, as upstream does.
    let smp = api
        .patch(
            "w1",
            &PatchParams::default(),
            &Patch::Strategic(&json!({"spec": {"size": 3}})),
        )
        .await;
    assert_eq!(code(smp.unwrap_err()), 415);
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespace_deletion_removes_contents() {
    let h = TestApi::start().await;
    let client = h.client();
    let nss: Api<Namespace> = Api::all(client.clone());
    let scratch = format!("{}-scratch", h.ns());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": scratch}})).unwrap();
    nss.create(&PostParams::default(), &ns).await.unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &scratch);
    cms.create(&PostParams::default(), &cm("c", json!({})))
        .await
        .unwrap();
    nss.delete(&scratch, &DeleteParams::default())
        .await
        .unwrap();
    eventually(60, "namespace gone", || async {
        nss.get_opt(&scratch).await.unwrap().is_none().then_some(())
    })
    .await;
    assert!(cms.get_opt("c").await.unwrap().is_none());
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_and_aggregated_discovery_agree() {
    let h = TestApi::with_widgets().await;
    let client = h.client();
    let version = client.apiserver_version().await.unwrap();
    assert_eq!(version.major, "1");
    for discovery in both_discoveries(&client).await {
        let (ar, caps) = discovery
            .resolve_gvk(&kube::core::GroupVersionKind::gvk(
                "test.metal.dev",
                "v1",
                "Widget",
            ))
            .expect("Widget discovered");
        assert_eq!(ar.plural, "widgets");
        assert_eq!(caps.scope, kube::discovery::Scope::Namespaced);
        assert!(
            caps.subresources.iter().any(|(s, _)| s.plural == "status"),
            "{:?}",
            caps.subresources
        );
        let (cm, _) = discovery
            .resolve_gvk(&kube::core::GroupVersionKind::gvk("", "v1", "ConfigMap"))
            .expect("ConfigMap discovered");
        assert_eq!(cm.plural, "configmaps");
        assert!(discovery.has_group("coordination.k8s.io") && discovery.has_group("events.k8s.io"));
    }
    h.shutdown().await;
}

/// `stringData` is write-only: create, update and patch fold it into `data` (base64) and never store it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_string_data_is_folded_into_data() {
    use k8s_openapi::ByteString;
    use k8s_openapi::api::core::v1::Secret;
    let h = TestApi::start().await;
    let secrets: Api<Secret> = Api::namespaced(h.client(), h.ns());
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "creds"},
        "data": {"user": "b2xk", "keep": "a2VlcA=="},
        "stringData": {"user": "admin", "password": "s3cret"},
    }))
    .unwrap();
    let created = secrets
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    assert!(
        created.string_data.is_none(),
        "the response has no stringData"
    );
    let got = secrets.get("creds").await.unwrap();
    assert!(got.string_data.is_none(), "stringData is never stored");
    let data = got.data.unwrap();
    assert_eq!(
        data["user"],
        ByteString(b"admin".to_vec()),
        "stringData wins"
    );
    assert_eq!(data["password"], ByteString(b"s3cret".to_vec()));
    assert_eq!(data["keep"], ByteString(b"keep".to_vec()));

    let patch = json!({"stringData": {"token": "t0k"}});
    secrets
        .patch("creds", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let mut got = secrets.get("creds").await.unwrap();
    assert!(got.string_data.is_none());
    assert_eq!(
        got.data.as_ref().unwrap()["token"],
        ByteString(b"t0k".to_vec())
    );

    got.string_data = Some([("password".to_string(), "n3w".to_string())].into());
    let replaced = secrets
        .replace("creds", &PostParams::default(), &got)
        .await
        .unwrap();
    assert!(replaced.string_data.is_none());
    assert_eq!(
        replaced.data.unwrap()["password"],
        ByteString(b"n3w".to_vec())
    );

    let raw: Api<kube::api::DynamicObject> = Api::namespaced_with(
        h.client(),
        h.ns(),
        &kube::api::ApiResource::erase::<Secret>(&()),
    );
    let bad: kube::api::DynamicObject = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "bad"}, "stringData": {"n": 1},
    }))
    .unwrap();
    match raw.create(&PostParams::default(), &bad).await {
        Err(kube::Error::Api(e)) => assert_eq!(e.code, 400, "{e:?}"),
        other => panic!("a non-string stringData value is refused, got {other:?}"),
    }
    h.shutdown().await;
}

/// The kinds deploy manifests use are served schemaless with the right scope, in both discoveries, and a dry
/// run of each is answered without storing anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workload_job_and_rbac_kinds_are_served_and_scoped() {
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::batch::v1::Job;
    use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
    use kube::discovery::Scope;
    let h = start().await;
    let client = h.client();
    let expected = [
        ("apps", "Deployment", Scope::Namespaced),
        ("apps", "StatefulSet", Scope::Namespaced),
        ("apps", "DaemonSet", Scope::Namespaced),
        ("batch", "Job", Scope::Namespaced),
        ("rbac.authorization.k8s.io", "Role", Scope::Namespaced),
        (
            "rbac.authorization.k8s.io",
            "RoleBinding",
            Scope::Namespaced,
        ),
        ("rbac.authorization.k8s.io", "ClusterRole", Scope::Cluster),
        (
            "rbac.authorization.k8s.io",
            "ClusterRoleBinding",
            Scope::Cluster,
        ),
    ];
    for discovery in both_discoveries(&client).await {
        for (group, kind, scope) in &expected {
            let gvk = kube::core::GroupVersionKind::gvk(group, "v1", kind);
            let (_, caps) = discovery
                .resolve_gvk(&gvk)
                .unwrap_or_else(|| panic!("{group}/{kind} discovered"));
            assert_eq!(&caps.scope, scope, "{kind}");
        }
    }

    // A permissive schema that still names its kind, so kubectl's apply finds the GVK.
    let req = http::Request::get("/openapi/v3/apis/apps/v1")
        .body(Vec::new())
        .unwrap();
    let doc: serde_json::Value = client.request(req).await.unwrap();
    let schema = doc["components"]["schemas"]
        .as_object()
        .unwrap()
        .values()
        .find(|s| s["x-kubernetes-group-version-kind"][0]["kind"] == "Deployment")
        .expect("a Deployment schema with its GVK");
    assert_eq!(schema["x-kubernetes-preserve-unknown-fields"], json!(true));
    assert!(
        doc["paths"]
            .as_object()
            .unwrap()
            .contains_key("/apis/apps/v1/namespaces/{namespace}/deployments/{name}")
    );

    let deployment: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "op"},
        "spec": {"selector": {"matchLabels": {"app": "op"}},
                 "template": {"metadata": {"labels": {"app": "op"}},
                              "spec": {"containers": [{"name": "op", "image": "op:1"}]}}},
    }))
    .unwrap();
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let dry = PostParams {
        dry_run: true,
        ..Default::default()
    };
    let answered = deployments.create(&dry, &deployment).await.unwrap();
    assert!(
        answered.metadata.uid.is_some(),
        "a dry run answers the object"
    );
    assert!(
        deployments.get_opt("op").await.unwrap().is_none(),
        "dry run stored nothing"
    );
    deployments
        .create(&PostParams::default(), &deployment)
        .await
        .unwrap();
    let patched = deployments
        .patch(
            "op",
            &PatchParams {
                dry_run: true,
                ..Default::default()
            },
            &Patch::Merge(json!({"spec": {"replicas": 3}})),
        )
        .await
        .unwrap();
    assert_eq!(patched.spec.replicas, Some(3));
    let stored = deployments.get("op").await.unwrap();
    assert_ne!(
        stored.spec.replicas,
        Some(3),
        "dry-run patch stored nothing"
    );

    let role: ClusterRole = serde_json::from_value(json!({
        "metadata": {"name": "reader"},
        "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}],
    }))
    .unwrap();
    let roles: Api<ClusterRole> = Api::all(client.clone());
    roles.create(&PostParams::default(), &role).await.unwrap();
    let got = roles.get("reader").await.unwrap();
    assert_eq!(got.metadata.namespace, None, "cluster-scoped");
    assert_eq!(got.rules.unwrap()[0].verbs, vec!["get".to_string()]);
    let binding: ClusterRoleBinding = serde_json::from_value(json!({
        "metadata": {"name": "reader"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "reader"},
        "subjects": [{"kind": "ServiceAccount", "name": "op", "namespace": "default"}],
    }))
    .unwrap();
    Api::<ClusterRoleBinding>::all(client.clone())
        .create(&PostParams::default(), &binding)
        .await
        .unwrap();
    assert!(
        Api::<Role>::namespaced(client.clone(), "default")
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert!(
        Api::<RoleBinding>::all(client.clone())
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    let job: Job = serde_json::from_value(json!({
        "metadata": {"name": "conformance"},
        "spec": {"template": {"spec": {"restartPolicy": "Never",
                                        "containers": [{"name": "c", "image": "c:1"}]}}},
    }))
    .unwrap();
    let jobs: Api<Job> = Api::namespaced(client.clone(), "default");
    jobs.create(&PostParams::default(), &job).await.unwrap();
    assert!(jobs.get("conformance").await.is_ok());
    h.shutdown().await;
}
