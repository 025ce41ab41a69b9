//! Structural-schema and CEL validation with the upstream metal-operator CRDs: every upstream
//! `x-kubernetes-validations` rule is exercised with one accepted and one rejected write, and schema violations
//! come back as 422 with one cause per field.

mod common;

use apiserver::Handle;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::GroupVersionKind;
use serde_json::{Value, json};

fn upstream_crds() -> Vec<CustomResourceDefinition> {
    let dir = format!(
        "{}/../../shared/upstream/metal-operator/crds",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut crds = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            crds.push(serde_saphyr::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap());
        }
    }
    assert_eq!(crds.len(), 8);
    crds
}

async fn start() -> Handle {
    let h = common::start().await;
    h.install_crds(&upstream_crds()).await.unwrap();
    h
}

fn api(h: &Handle, kind: &str, namespaced: bool) -> Api<DynamicObject> {
    let ar = ApiResource::from_gvk(&GroupVersionKind::gvk(
        "metal.ironcore.dev",
        "v1alpha1",
        kind,
    ));
    if namespaced {
        Api::namespaced_with(h.client(), "default", &ar)
    } else {
        Api::all_with(h.client(), &ar)
    }
}

fn obj(kind: &str, name: &str, spec: Value) -> DynamicObject {
    serde_json::from_value(json!({"apiVersion": "metal.ironcore.dev/v1alpha1", "kind": kind, "metadata": {"name": name}, "spec": spec})).unwrap()
}

/// The 422 causes of a rejected write, as (field, message).
fn causes(e: kube::Error) -> Vec<(String, String)> {
    let kube::Error::Api(status) = e else {
        panic!("expected an API error, got {e:?}")
    };
    assert_eq!(
        (status.code, status.reason.as_str()),
        (422, "Invalid"),
        "{status:?}"
    );
    status
        .details
        .unwrap()
        .causes
        .into_iter()
        .map(|c| (c.field, c.message))
        .collect()
}

async fn patch(a: &Api<DynamicObject>, name: &str, p: Value) -> Result<DynamicObject, kube::Error> {
    a.patch(name, &PatchParams::default(), &Patch::Merge(&p))
        .await
}

fn has(c: &[(String, String)], field: &str, msg: &str) -> bool {
    c.iter().any(|(f, m)| f == field && m.contains(msg))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bmc_rules() {
    let h = start().await;
    let bmcs = api(&h, "BMC", false);
    let base =
        json!({"bmcSecretRef": {"name": "s"}, "protocol": {"name": "Redfish", "port": 8000}});
    let mut with_access = base.clone();
    with_access["access"] = json!({"ip": "10.0.0.1", "macAddress": "aa:bb:cc:dd:ee:ff"});
    let mut with_ref = base.clone();
    with_ref["endpointRef"] = json!({"name": "ep"});
    let mut both = with_access.clone();
    both["endpointRef"] = json!({"name": "ep"});
    // Exactly one of access/endpointRef.
    bmcs.create(&PostParams::default(), &obj("BMC", "a", with_access))
        .await
        .unwrap();
    bmcs.create(&PostParams::default(), &obj("BMC", "r", with_ref))
        .await
        .unwrap();
    let c = causes(
        bmcs.create(&PostParams::default(), &obj("BMC", "both", both))
            .await
            .unwrap_err(),
    );
    assert!(
        has(
            &c,
            "spec",
            "exactly one of access or endpointRef needs to be set"
        ),
        "{c:?}"
    );
    // access is immutable; other fields may change.
    patch(
        &bmcs,
        "a",
        json!({"spec": {"bmcSecretRef": {"name": "s2"}}}),
    )
    .await
    .unwrap();
    let c = causes(
        patch(&bmcs, "a", json!({"spec": {"access": {"ip": "10.0.0.2"}}}))
            .await
            .unwrap_err(),
    );
    assert!(has(&c, "spec.access", "access is immutable"), "{c:?}");
    // endpointRef is immutable.
    patch(&bmcs, "r", json!({"spec": {"endpointRef": {"name": "ep"}}}))
        .await
        .unwrap();
    let c = causes(
        patch(
            &bmcs,
            "r",
            json!({"spec": {"endpointRef": {"name": "other"}}}),
        )
        .await
        .unwrap_err(),
    );
    assert!(
        has(&c, "spec.endpointRef", "endpointRef is immutable"),
        "{c:?}"
    );
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_claim_rules() {
    let h = start().await;
    let claims = api(&h, "ServerClaim", true);
    let by_ref = json!({"image": "os:1", "power": "On", "serverRef": {"name": "srv-1"}});
    let by_sel =
        json!({"image": "os:1", "power": "On", "serverSelector": {"matchLabels": {"a": "b"}}});
    claims
        .create(&PostParams::default(), &obj("ServerClaim", "r", by_ref))
        .await
        .unwrap();
    claims
        .create(&PostParams::default(), &obj("ServerClaim", "s", by_sel))
        .await
        .unwrap();
    // Other spec fields may change.
    patch(&claims, "r", json!({"spec": {"image": "os:2"}}))
        .await
        .unwrap();
    patch(&claims, "s", json!({"spec": {"power": "Off"}}))
        .await
        .unwrap();
    let c = causes(
        patch(
            &claims,
            "r",
            json!({"spec": {"serverRef": {"name": "srv-2"}}}),
        )
        .await
        .unwrap_err(),
    );
    assert!(has(&c, "spec.serverRef", "serverRef is immutable"), "{c:?}");
    let c = causes(
        patch(&claims, "r", json!({"spec": {"serverRef": null}}))
            .await
            .unwrap_err(),
    );
    assert!(has(&c, "spec", "serverRef is required once set"), "{c:?}");
    let c = causes(
        patch(
            &claims,
            "s",
            json!({"spec": {"serverSelector": {"matchLabels": {"a": "c"}}}}),
        )
        .await
        .unwrap_err(),
    );
    assert!(
        has(&c, "spec.serverSelector", "serverSelector is immutable"),
        "{c:?}"
    );
    let c = causes(
        patch(&claims, "s", json!({"spec": {"serverSelector": null}}))
            .await
            .unwrap_err(),
    );
    assert!(
        has(&c, "spec", "serverSelector is required once set"),
        "{c:?}"
    );
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_readiness_rule_rules() {
    let h = start().await;
    let rules = api(&h, "ServerReadinessRule", false);
    let spec = json!({"serverSelector": {"matchLabels": {"foo": "bar"}}, "conditions": [{"type": "C", "requiredStatus": "True"}],
        "enforcementMode": "Continuous", "taint": {"key": "k", "value": "v", "effect": "NoBind"}});
    rules
        .create(
            &PostParams::default(),
            &obj("ServerReadinessRule", "r", spec.clone()),
        )
        .await
        .unwrap();
    let mut long = spec.clone();
    long["taint"]["key"] = json!("k".repeat(254));
    let c = causes(
        rules
            .create(
                &PostParams::default(),
                &obj("ServerReadinessRule", "long", long),
            )
            .await
            .unwrap_err(),
    );
    assert!(
        has(
            &c,
            "spec.taint",
            "taint key length must be at most 253 characters"
        ),
        "{c:?}"
    );
    // Same values are accepted; each immutable field rejects a change.
    patch(&rules, "r", json!({"spec": spec.clone()}))
        .await
        .unwrap();
    let cases = [
        (
            json!({"conditions": [{"type": "D", "requiredStatus": "True"}]}),
            "spec.conditions",
            "conditions is immutable",
        ),
        (
            json!({"enforcementMode": "BootstrapOnly"}),
            "spec.enforcementMode",
            "enforcementMode is immutable",
        ),
        (
            json!({"serverSelector": {"matchLabels": {"foo": "baz"}}}),
            "spec.serverSelector",
            "serverSelector is immutable",
        ),
        (
            json!({"taint": {"key": "k2"}}),
            "spec.taint",
            "taint key is immutable",
        ),
        (
            json!({"taint": {"effect": "Evict"}}),
            "spec.taint",
            "taint effect is immutable",
        ),
        (
            json!({"taint": {"value": "v2"}}),
            "spec.taint",
            "taint value is immutable",
        ),
    ];
    for (change, field, msg) in cases {
        let c = causes(
            patch(&rules, "r", json!({"spec": change}))
                .await
                .unwrap_err(),
        );
        assert!(has(&c, field, msg), "{msg}: {c:?}");
    }
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_rules_and_schema_errors() {
    let h = start().await;
    let servers = api(&h, "Server", false);
    let spec =
        json!({"systemUUID": "u-1", "serverClaimRef": {"name": "c", "namespace": "default"}});
    let created = servers
        .create(&PostParams::default(), &obj("Server", "s", spec))
        .await
        .unwrap();
    // Upstream schema defaults are applied.
    assert_eq!(created.data["spec"]["reclaimPolicy"], "Recycle");
    assert_eq!(created.data["spec"]["unclaimable"], false);
    patch(
        &servers,
        "s",
        json!({"spec": {"serverClaimRef": {"name": "c"}}}),
    )
    .await
    .unwrap();
    let c = causes(
        patch(
            &servers,
            "s",
            json!({"spec": {"serverClaimRef": {"name": "other"}}}),
        )
        .await
        .unwrap_err(),
    );
    assert!(
        has(
            &c,
            "spec.serverClaimRef.name",
            "failed rule: self == oldSelf"
        ),
        "{c:?}"
    );
    let c = causes(
        patch(
            &servers,
            "s",
            json!({"spec": {"serverClaimRef": {"namespace": "other"}}}),
        )
        .await
        .unwrap_err(),
    );
    assert!(
        has(
            &c,
            "spec.serverClaimRef.namespace",
            "failed rule: self == oldSelf"
        ),
        "{c:?}"
    );
    // Schema errors: one cause per field.
    let bad = json!({"reclaimPolicy": "Sideways", "indicatorLED": 7});
    let c = causes(
        servers
            .create(&PostParams::default(), &obj("Server", "bad", bad))
            .await
            .unwrap_err(),
    );
    assert!(has(&c, "spec.systemUUID", "Required value"), "{c:?}");
    assert!(
        has(
            &c,
            "spec.reclaimPolicy",
            "Unsupported value: \"Sideways\": supported values: \"Recycle\", \"Retain\""
        ),
        "{c:?}"
    );
    assert!(
        has(&c, "spec.indicatorLED", "must be of type string"),
        "{c:?}"
    );
    assert_eq!(c.len(), 3, "{c:?}");
    // Unknown fields are pruned, or rejected under fieldValidation=Strict.
    let extra = json!({"systemUUID": "u-2", "bogus": 1});
    let pruned = servers
        .create(&PostParams::default(), &obj("Server", "p", extra.clone()))
        .await
        .unwrap();
    assert!(pruned.data["spec"].get("bogus").is_none());
    let strict = PatchParams {
        field_validation: Some(kube::api::ValidationDirective::Strict),
        ..PatchParams::apply("t")
    };
    let applied = json!({"apiVersion": "metal.ironcore.dev/v1alpha1", "kind": "Server", "metadata": {"name": "q"}, "spec": extra});
    let err = servers
        .patch("q", &strict, &Patch::Apply(&applied))
        .await
        .unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 400 && s.message.contains("unknown field \"spec.bogus\"")),
        "{err:?}"
    );
    h.shutdown().await;
}

/// A namespaced test CRD whose `spec.name` may be at most `max_name` characters; `spec.size` has a CEL rule
/// with a messageExpression, and exactly one of `spec.a`/`spec.b` must be set (oneOf).
fn gadget_crd(max_name: u64) -> CustomResourceDefinition {
    serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "gadgets.test.metal.dev"},
        "spec": {"group": "test.metal.dev", "scope": "Namespaced",
            "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget", "listKind": "GadgetList"},
            "versions": [{"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {
                "type": "object", "properties": {"spec": {"type": "object",
                    "properties": {
                        "name": {"type": "string", "maxLength": max_name},
                        "size": {"type": "integer", "x-kubernetes-validations": [{"rule": "self <= 10",
                            "messageExpression": "'size ' + string(self) + ' is over 10'"}]},
                        "a": {"type": "string"}, "b": {"type": "string"}},
                    "oneOf": [{"required": ["a"]}, {"required": ["b"]}]}}}}}]}
    }))
    .unwrap()
}

fn gadget(name: &str, spec: Value) -> DynamicObject {
    serde_json::from_value(json!({"apiVersion": "test.metal.dev/v1", "kind": "Gadget",
        "metadata": {"name": name}, "spec": spec}))
    .unwrap()
}

/// Tightening a CRD's schema leaves stored objects updatable (validation ratcheting: an unchanged invalid field
/// is accepted, a changed one is not); messageExpression and oneOf errors come back as 422 causes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ratcheting_message_expressions_and_quantors() {
    let h = common::TestApi::start().await;
    h.install_crds(&[gadget_crd(20)]).await;
    let ar = ApiResource::from_gvk(&GroupVersionKind::gvk("test.metal.dev", "v1", "Gadget"));
    let gadgets: Api<DynamicObject> = Api::namespaced_with(h.client(), h.ns(), &ar);
    let long_name = json!({"name": "twelve-chars", "size": 1, "a": "x"});
    gadgets
        .create(&PostParams::default(), &gadget("g", long_name))
        .await
        .unwrap();
    h.install_crds(&[gadget_crd(5)]).await;
    // The tightened schema is in force once a new object with a 12-character name is refused.
    let mut probe = 0;
    common::eventually(30, "the tightened schema", || {
        probe += 1;
        let (gadgets, name) = (gadgets.clone(), format!("probe-{probe}"));
        async move {
            let spec = json!({"name": "twelve-chars", "size": 1, "a": "x"});
            match gadgets
                .create(&PostParams::default(), &gadget(&name, spec))
                .await
            {
                Err(e) => {
                    let c = causes(e);
                    assert!(has(&c, "spec.name", "Too long"), "{c:?}");
                    Some(())
                }
                Ok(_) => None,
            }
        }
    })
    .await;
    // Ratcheting: spec.name is unchanged, so changing spec.size is accepted.
    patch(&gadgets, "g", json!({"spec": {"size": 2}}))
        .await
        .unwrap();
    // Changing the invalid field to another invalid value is not.
    let c = causes(
        patch(&gadgets, "g", json!({"spec": {"name": "still-too-long"}}))
            .await
            .unwrap_err(),
    );
    assert!(has(&c, "spec.name", "Too long"), "{c:?}");
    let c = causes(
        patch(&gadgets, "g", json!({"spec": {"size": 11}}))
            .await
            .unwrap_err(),
    );
    assert!(has(&c, "spec.size", "size 11 is over 10"), "{c:?}");
    let c = causes(
        patch(&gadgets, "g", json!({"spec": {"b": "y"}}))
            .await
            .unwrap_err(),
    );
    assert!(
        has(&c, "spec", "must validate one and only one schema (oneOf)"),
        "{c:?}"
    );
    h.shutdown().await;
}
