//! sim-boot against the embedded API server: readiness, errors and convergence, updates while Ready.

mod common;

use std::time::Duration;

use common::*;
use kube::Api;
use kube::runtime::{reflector, watcher};
use metal_api::{Server, ServerBootConfiguration};
use sim_boot::Misbehaviour;
use sim_boot::oci::names;
use sim_boot::serve::BootServer;

const UUID: &str = "2C4A1E5B-0000-4000-8000-000000000001";
const OTHER_UUID: &str = "2C4A1E5B-0000-4000-8000-000000000002";

#[tokio::test]
async fn ready_only_after_everything_is_served() {
    let env = env(Misbehaviour::None).await;
    let sbc = env.ready_machine("m1", UUID).await;
    for type_ in [
        "ServerResolved",
        "ImageResolved",
        "IgnitionReady",
        "ArtifactsServed",
    ] {
        let c = condition(&sbc, type_).unwrap();
        assert_eq!(
            (c.status.as_str(), c.observed_generation),
            ("True", sbc.metadata.generation),
            "{c:?}"
        );
    }
    assert_eq!(
        condition(&sbc, "ArtifactsServed").unwrap().reason,
        "ArtifactsServed"
    );
    assert!(condition(&sbc, "ImageValidation").is_none());
    // UUIDs match in any letter case.
    let script = env.get(&format!("/ipxe/{}", UUID.to_lowercase())).await;
    assert_eq!(script.status, 200);
    let text = String::from_utf8_lossy(&script.body).to_string();
    assert!(text.starts_with("#!ipxe"), "{text}");
    assert!(
        text.contains("ignition.config.url=${boot-server}/ignition/${uuid}"),
        "{text}"
    );
    let ignition = env.get(&format!("/ignition/{UUID}")).await;
    let json: serde_json::Value = serde_json::from_slice(&ignition.body).unwrap();
    assert_eq!(json["ignition"]["version"], "3.2.0");
    assert_eq!(json["passwd"]["users"][0]["name"], "core");
    let unknown = env.get("/ipxe/00000000-0000-0000-0000-000000000000").await;
    assert_eq!(unknown.status, 404);
}

#[tokio::test]
async fn pending_until_the_server_references_the_configuration() {
    let env = env(Misbehaviour::None).await;
    let pending = env.unreferenced_machine("m2", UUID).await;
    assert_eq!(state_of(&pending), "Pending");
    assert_eq!(
        env.get(&format!("/ipxe/{UUID}")).await.status,
        404,
        "an unreferenced configuration is not served"
    );
    env.reference("m2", "m2").await;
    let ready = env.wait_state("m2", "Ready").await;
    assert_eq!(
        condition(&ready, "IgnitionReady").unwrap().reason,
        "NoIgnitionConfigured"
    );
    let script = String::from_utf8_lossy(&env.get(&format!("/ipxe/{UUID}")).await.body).to_string();
    assert!(
        !script.contains("ignition.config.url"),
        "no ignition configured: {script}"
    );
}

async fn expect_error(env: &Env, name: &str, type_: &str, reason: &str, needle: &str) {
    let sbc = env
        .wait(name, Duration::from_secs(20), |s| {
            state_of(s) == "Error"
                && fresh(s)
                && condition(s, type_)
                    .is_some_and(|c| c.reason == reason && c.message.contains(needle))
        })
        .await;
    let c =
        condition(&sbc, type_).unwrap_or_else(|| panic!("{name}: no {type_}: {:#?}", sbc.status));
    assert_eq!(
        (c.status.as_str(), c.reason.as_str()),
        ("False", reason),
        "{name}: {c:?}"
    );
    assert!(
        c.message.contains(needle),
        "{name}: {:?} lacks {needle:?}",
        c.message
    );
}

#[tokio::test]
async fn unservable_images_are_errors_with_reasons() {
    let env = env(Misbehaviour::None).await;
    let cases = [
        (
            "disallowed",
            "quay.io/ironcore/os:1.0".to_string(),
            "is not allowed",
        ),
        (
            "unknown-tag",
            env.backend.image("ironcore/os:9.9"),
            "not found",
        ),
        (
            "no-kernel",
            env.backend.image(names::NO_KERNEL),
            "application/vnd.ironcore.image.kernel",
        ),
        (
            "pxe-only",
            env.backend.image(names::PXE_ONLY),
            "application/vnd.ironcore.image.uki",
        ),
        (
            "missing-blob",
            env.backend.image(names::MISSING_BLOB),
            "could not be downloaded",
        ),
        (
            "bad-ref",
            "Not A Reference".to_string(),
            "not a valid OCI reference",
        ),
    ];
    for (i, (name, image, _)) in cases.iter().enumerate() {
        env.server(name, &format!("2C4A1E5B-0000-4000-8000-00000000010{i}"))
            .await;
        env.sbc(name, name, image, None).await;
        env.reference(name, name).await;
    }
    for (name, _, needle) in &cases {
        expect_error(&env, name, "ImageResolved", "ImageValidationFailed", needle).await;
        expect_error(&env, name, "ImageValidation", "ValidationFailed", needle).await;
    }
    // Fixing the image converges to Ready and removes boot-operator's ImageValidation condition.
    env.set_image("no-kernel", &env.backend.image(names::OS_V1))
        .await;
    let ready = env.wait_state("no-kernel", "Ready").await;
    assert!(condition(&ready, "ImageValidation").is_none());
}

#[tokio::test]
async fn architecture_comes_from_the_servers_processors() {
    let env = env(Misbehaviour::None).await;
    env.server("arm", UUID).await;
    let patch = serde_json::json!({"status": {"processors": [{"id": "CPU0", "instructionSet": "ARM-A64"}]}});
    env.merge_server_status("arm", patch).await;
    env.sbc("arm", "arm", &env.backend.image(names::AMD64_ONLY), None)
        .await;
    env.reference("arm", "arm").await;
    expect_error(
        &env,
        "arm",
        "ImageResolved",
        "ImageValidationFailed",
        "no manifest for architecture arm64",
    )
    .await;
    env.set_image("arm", &env.backend.image(names::OS_V1)).await;
    env.wait_state("arm", "Ready").await;
    let record = env
        .backend
        .records()
        .get(&sim_boot::records::SbcKey::new(NS, "arm"))
        .unwrap();
    assert_eq!(record.architecture, "arm64");
}

#[tokio::test]
async fn missing_server_secret_or_key_is_an_error_until_fixed() {
    let env = env(Misbehaviour::None).await;
    env.sbc(
        "late",
        "late",
        &env.backend.image(names::OS_V1),
        Some("late"),
    )
    .await;
    expect_error(
        &env,
        "late",
        "ServerResolved",
        "ServerNotFound",
        "does not exist",
    )
    .await;
    env.server("late", UUID).await;
    env.reference("late", "late").await;
    expect_error(
        &env,
        "late",
        "IgnitionReady",
        "IgnitionMissing",
        "Secret default/late",
    )
    .await;
    env.secret("late", &[("format", "fcos")]).await;
    expect_error(
        &env,
        "late",
        "IgnitionReady",
        "IgnitionMissing",
        "no key `ignition`",
    )
    .await;
    env.secret(
        "late",
        &[
            ("ignition", "variant: fcos\nversion: 1.3.0\nnope: 1\n"),
            ("format", "fcos"),
        ],
    )
    .await;
    expect_error(&env, "late", "IgnitionReady", "IgnitionInvalid", "nope").await;
    env.butane_secret("late", "core").await;
    env.wait_state("late", "Ready").await;
}

#[tokio::test]
async fn spec_change_while_ready_goes_pending_first_and_serves_the_new_image() {
    let env = env(Misbehaviour::None).await;
    let history = History::record(&env.client);
    env.ready_machine("upd", UUID).await;
    let before = String::from_utf8_lossy(&env.get(&format!("/ipxe/{UUID}")).await.body).to_string();
    env.set_image("upd", &env.backend.image(names::OS_V2)).await;
    let ready = env
        .wait("upd", Duration::from_secs(20), |s| {
            s.metadata.generation == Some(2) && state_of(s) == "Ready" && fresh(s)
        })
        .await;
    let after = String::from_utf8_lossy(&env.get(&format!("/ipxe/{UUID}")).await.body).to_string();
    assert_ne!(before, after);
    assert!(after.contains("version=2.0"), "{after}");
    let entries = history.entries();
    // The first generation-2 entry is the spec write itself, still carrying the old status. After it, the
    // backend never writes Ready stamped with generation 1, and Pending for 2 comes before Ready for 2.
    let at_two: Vec<_> = entries.iter().filter(|(g, _, _)| *g == 2).skip(1).collect();
    assert!(
        at_two
            .iter()
            .all(|(_, state, observed)| state != "Ready" || *observed == 2),
        "{entries:?}"
    );
    let pending = at_two
        .iter()
        .position(|(_, s, o)| s == "Pending" && *o == 2)
        .expect("Pending at generation 2");
    let ready_at = at_two
        .iter()
        .position(|(_, s, o)| s == "Ready" && *o == 2)
        .expect("Ready at generation 2");
    assert!(pending < ready_at, "{entries:?}");
    assert_eq!(ready.metadata.generation, Some(2));
}

#[tokio::test]
async fn ignition_secret_change_while_ready_republishes_through_pending() {
    let env = env(Misbehaviour::None).await;
    let history = History::record(&env.client);
    env.ready_machine("sec", UUID).await;
    let first = env.get(&format!("/ignition/{UUID}")).await.body;
    let ready_before = history
        .entries()
        .iter()
        .filter(|(_, s, _)| s == "Ready")
        .count();
    env.butane_secret("sec", "someone-else").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let now = env.get(&format!("/ignition/{UUID}")).await.body;
        if now != first {
            assert!(String::from_utf8_lossy(&now).contains("someone-else"));
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "ignition never changed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    env.wait_state("sec", "Ready").await;
    let entries = history.entries();
    let after: Vec<_> = entries
        .iter()
        .skip_while(|(_, s, _)| s != "Ready")
        .collect();
    assert!(
        after.iter().any(|(_, s, _)| s == "Pending"),
        "the state went through Pending: {entries:?}"
    );
    assert!(entries.iter().filter(|(_, s, _)| s == "Ready").count() > ready_before);
}

#[tokio::test]
async fn deleted_configuration_is_no_longer_served() {
    let env = env(Misbehaviour::None).await;
    env.ready_machine("del", UUID).await;
    env.sbcs().delete("del", &Default::default()).await.unwrap();
    let ipxe = format!("/ipxe/{UUID}");
    let still_served = "still served after deletion";
    env.wait_for_status(&ipxe, 404, Duration::from_secs(10), still_served)
        .await;
}

#[tokio::test]
async fn http_boot_lookup_by_mac_or_uuid_names_the_uki() {
    let env = env(Misbehaviour::None).await;
    env.ready_machine("hb", UUID).await;
    let patch = serde_json::json!({"status": {"networkInterfaces": [
        {"name": "eth0", "macAddress": "02:00:00:00:00:aa", "ips": ["198.51.100.7"]}
    ]}});
    env.merge_server_status("hb", patch).await;
    let record = env
        .backend
        .records()
        .get(&sim_boot::records::SbcKey::new(NS, "hb"))
        .unwrap();
    let uki = record.uki.as_ref().unwrap();
    let expected = sim_boot::serve::script::uki_url(env.backend.url(), &record, uki);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    for query in ["mac=02:00:00:00:00:AA".to_string(), format!("uuid={UUID}")] {
        let answer = loop {
            let got = env.get(&format!("/httpboot?{query}")).await;
            if got.status == 200 {
                break got;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{query}: {}",
                String::from_utf8_lossy(&got.body)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let json: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
        assert_eq!(json["UKIURL"], expected.as_str(), "{query}");
        assert_eq!(json["SystemUUID"], UUID.to_lowercase());
    }
    let uki_bytes = env
        .get(expected.trim_start_matches(env.backend.url()))
        .await;
    assert_eq!(uki_bytes.headers["content-type"], "application/efi");
    assert_eq!(
        uki_bytes.headers["docker-content-digest"],
        uki.digest.as_str()
    );
    assert_eq!(uki_bytes.body.len() as u64, uki.size);
    assert_eq!(env.get("/httpboot?mac=02:00:00:00:00:ff").await.status, 404);
}

#[tokio::test]
async fn the_tower_based_resolver_reaches_the_embedded_registry_in_process() {
    let env = env_with_resolver(
        options(Misbehaviour::None),
        sim_boot::ResolverKind::Http(None),
    )
    .await;
    env.ready_machine("tower", UUID).await;
    env.server("tower-bad", "2C4A1E5B-0000-4000-8000-0000000000ff")
        .await;
    env.sbc(
        "tower-bad",
        "tower-bad",
        &env.backend.image(names::AMD64_ONLY),
        None,
    )
    .await;
    env.reference("tower-bad", "tower-bad").await;
    env.set_image("tower-bad", &env.backend.image(names::MISSING_BLOB))
        .await;
    expect_error(
        &env,
        "tower-bad",
        "ImageResolved",
        "ImageValidationFailed",
        "BLOB_UNKNOWN",
    )
    .await;
}

/// The boot server's Server and SBC caches follow watches of their own, which can lag behind the
/// controller that published a record: a refusal from the caches is checked with the API server before
/// it is given, and one the API server confirms stays a refusal.
#[tokio::test]
async fn a_refusal_from_lagging_caches_is_checked_with_the_api_server() {
    let env = env(Misbehaviour::None).await;
    let ready = env.ready_machine("m1", UUID).await;
    env.unreferenced_machine("m2", OTHER_UUID).await;

    // The caches as a lagging watch has them: m1 before its bootConfigurationRef, no SBC at all.
    let servers = Api::<Server>::all(env.client.clone());
    let mut stale = servers.get("m1").await.expect("m1 readable");
    stale.spec.boot_configuration_ref = None;
    let (server_cache, mut server_writer) = reflector::store::<Server>();
    server_writer.apply_watcher_event(&watcher::Event::Apply(stale));
    let m2 = servers.get("m2").await.expect("m2 readable");
    server_writer.apply_watcher_event(&watcher::Event::Apply(m2));
    let (sbc_cache, _sbc_writer) = reflector::store::<ServerBootConfiguration>();
    let serving = |client| {
        BootServer::new(
            env.backend.records().clone(),
            server_cache.clone(),
            sbc_cache.clone(),
            client,
            "http://boot.test",
        )
    };

    let refusal = serving(None)
        .lookup(UUID)
        .await
        .expect_err("the lagging caches alone refuse");
    assert!(refusal.contains("has no bootConfigurationRef"), "{refusal}");
    let record = serving(Some(env.client.clone()))
        .lookup(UUID)
        .await
        .expect("the API server's Server and SBC confirm the record");
    assert_eq!(Some(record.uid.as_str()), ready.metadata.uid.as_deref());

    let refusal = serving(Some(env.client.clone()))
        .lookup(OTHER_UUID)
        .await
        .expect_err("the API server confirms m2 references nothing");
    assert!(
        refusal.contains("Server m2 has no bootConfigurationRef"),
        "{refusal}"
    );
}
