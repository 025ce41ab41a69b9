//! A Ready SBC reacts only to the Server fields sim-boot renders from: the operator rewrites a Server's
//! status, labels and annotations all the time, and none of that may touch the SBC's status (nor, at
//! fleet scale, wake a reconcile at all).

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use futures::StreamExt;
use kube::Api;
use kube::api::{Patch, PatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use metal_api::{Server, ServerBootConfiguration};
use serde_json::json;
use sim_boot::Misbehaviour;

const UUID: &str = "2C4A1E5B-0000-4000-8000-0000000000a1";
const NEW_UUID: &str = "2C4A1E5B-0000-4000-8000-0000000000a2";

/// One observed SBC version: its resourceVersion, state and `ServerResolved` message.
#[derive(Clone, Debug)]
struct Seen {
    resource_version: String,
    state: String,
    server_resolved: String,
}

/// Every version of the named SBC a watch delivers, in order.
fn watch_versions(env: &Env, name: &str) -> Arc<Mutex<Vec<Seen>>> {
    let seen = Arc::new(Mutex::new(Vec::<Seen>::new()));
    let sink = seen.clone();
    let name = name.to_string();
    let mut stream = watcher(env.sbcs(), watcher::Config::default())
        .applied_objects()
        .boxed();
    tokio::spawn(async move {
        while let Some(Ok(sbc)) = stream.next().await {
            if sbc.metadata.name.as_deref() != Some(name.as_str()) {
                continue;
            }
            let entry = Seen {
                resource_version: sbc.metadata.resource_version.clone().unwrap_or_default(),
                state: state_of(&sbc),
                server_resolved: condition(&sbc, "ServerResolved")
                    .map(|c| c.message.clone())
                    .unwrap_or_default(),
            };
            let mut entries = sink.lock().unwrap();
            if entries.last().map(|e| &e.resource_version) != Some(&entry.resource_version) {
                entries.push(entry);
            }
        }
    });
    seen
}

/// Waits until a reconcile that started after `before` was read has finished and none is running.
async fn wait_reconciled_since(env: &Env, before: u64) {
    let counts = env.backend.reconciles();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while counts.started() <= before || counts.finished() < counts.started() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no reconcile after a Server change: started {}, finished {}",
            counts.started(),
            counts.finished()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Rewrites the Server's system UUID in `uuid`'s case: a field sim-boot reads, so it looks again, but one
/// that leaves what it serves as it was (machines are matched case-insensitively), so it writes nothing.
/// Returns once a reconcile since has finished; the Server's earlier writes passed the same watch first.
async fn look_again(env: &Env, name: &str, uuid: &str) {
    let servers: Api<Server> = Api::all(env.client.clone());
    let before = env.backend.reconciles().started();
    let patch = json!({"spec": {"systemUUID": uuid}});
    let (params, merge) = (PatchParams::default(), Patch::Merge(&patch));
    until_ok("rewrite the UUID's case", || {
        servers.patch(name, &params, &merge)
    })
    .await;
    wait_reconciled_since(env, before).await;
}

/// The kinds of Server writes metal-operator makes while a machine is reserved or boots.
fn unrelated_changes(round: usize) -> Vec<(bool, serde_json::Value)> {
    let even = round.is_multiple_of(2);
    let status = json!({"status": {
        "state": if even { "Reserved" } else { "Available" },
        "powerState": if even { "On" } else { "Off" },
        "networkInterfaces": [{
            "name": "eth0",
            "macAddress": format!("02:00:00:00:01:{round:02x}"),
            "ips": [format!("198.51.100.{}", 10 + round)],
        }],
        "processors": [{"id": "CPU0", "instructionSet": "x86-64", "totalCores": 8 + round}],
    }});
    let metadata = json!({"metadata": {
        "labels": {"metal.ironcore.dev/round": round.to_string()},
        "annotations": {"example.com/last-seen": format!("round {round}")},
    }});
    vec![(true, status), (false, metadata)]
}

#[tokio::test]
async fn ready_survives_unrelated_server_writes_and_follows_used_fields() {
    let env = env(Misbehaviour::None).await;
    let seen = watch_versions(&env, "steady");
    env.ready_machine("steady", UUID).await;
    let servers: Api<Server> = Api::all(env.client.clone());
    look_again(&env, "steady", &UUID.to_ascii_lowercase()).await;
    let before = env.backend.reconciles().started();
    for round in 0..4 {
        for (status, patch) in unrelated_changes(round) {
            let params = PatchParams::default();
            if status {
                servers
                    .patch_status("steady", &params, &Patch::Merge(&patch))
                    .await
                    .expect("Server status patched");
            } else {
                servers
                    .patch("steady", &params, &Patch::Merge(&patch))
                    .await
                    .expect("Server metadata patched");
            }
        }
    }
    look_again(&env, "steady", UUID).await;
    // Eight writes, one reconcile for the UUID's case (and at most one more the Ready write woke late).
    let woken = env.backend.reconciles().started() - before;
    assert!(
        woken <= 2,
        "the operator's Server writes woke {woken} reconciles"
    );
    // A field sim-boot renders from: the machine's identity moves, so the SBC re-verifies and is served
    // under the new UUID only.
    let patch = json!({"spec": {"systemUUID": NEW_UUID}});
    servers
        .patch("steady", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("Server UUID patched");
    let ready = env
        .wait("steady", Duration::from_secs(30), |s| {
            state_of(s) == "Ready"
                && fresh(s)
                && condition(s, "ServerResolved").is_some_and(|c| c.message.contains(NEW_UUID))
        })
        .await;
    assert_eq!(env.get(&format!("/ipxe/{NEW_UUID}")).await.status, 200);
    assert_eq!(env.get(&format!("/ipxe/{UUID}")).await.status, 404);
    let entries = seen.lock().unwrap().clone();
    let first_ready = entries
        .iter()
        .position(|e| e.state == "Ready")
        .expect("a Ready was watched");
    let after: Vec<_> = entries[first_ready + 1..]
        .iter()
        .take_while(|e| e.resource_version != *ready.metadata.resource_version.as_ref().unwrap())
        .collect();
    // The first write after Ready is the Pending for the new identity: nothing was written in between.
    let first = after.first().expect("a Pending before the new Ready");
    assert_eq!(first.state, "Pending", "{entries:#?}");
    assert!(first.server_resolved.contains(NEW_UUID), "{entries:#?}");
    assert!(
        after.iter().all(|e| e.state == "Pending"),
        "only Pending between the two Readys: {entries:#?}"
    );
}

#[tokio::test]
async fn a_server_that_drops_its_reference_takes_the_configuration_out_of_service() {
    let env = env(Misbehaviour::None).await;
    env.ready_machine("unref", UUID).await;
    let patch = json!({"spec": {"bootConfigurationRef": null}});
    Api::<Server>::all(env.client.clone())
        .patch("unref", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("reference removed");
    let pending: ServerBootConfiguration = env
        .wait("unref", Duration::from_secs(20), |s| {
            condition(s, "ArtifactsServed").is_some_and(|c| c.reason == "NotReferencedByServer")
        })
        .await;
    assert_eq!(state_of(&pending), "Pending");
    assert_eq!(env.get(&format!("/ipxe/{UUID}")).await.status, 404);
}

/// Retries a request the fault injection may fail; the test's own requests are not under test.
async fn until_ok<T, F, Fut>(what: &str, request: F) -> T
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T, kube::Error>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        match request().await {
            Ok(value) => return value,
            Err(error) => assert!(tokio::time::Instant::now() < deadline, "{what}: {error}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn ready_survives_failing_api_reads() {
    let env = env(Misbehaviour::None).await;
    let ready = env.ready_machine("steady", UUID).await;
    let servers: Api<Server> = Api::all(env.client.clone());
    // Every other API request fails with 500 while the operator keeps touching the Server.
    env.api.faults().set_error_rate(0.5, 500);
    for round in 0..6 {
        let patch =
            json!({"metadata": {"labels": {"metal.ironcore.dev/round": round.to_string()}}});
        let (params, merge) = (PatchParams::default(), Patch::Merge(&patch));
        until_ok("label the Server", || {
            servers.patch("steady", &params, &merge)
        })
        .await;
        // A change sim-boot must look at, made while half its requests would fail: it reads its
        // caches, finds nothing it serves changed, and neither writes nor stops serving.
        let uuid = if round % 2 == 0 {
            UUID.to_ascii_lowercase()
        } else {
            UUID.to_string()
        };
        look_again(&env, "steady", &uuid).await;
    }
    env.api.faults().clear();
    // Nothing else writes the SBC: an unchanged resourceVersion means no status write at all.
    let sbcs = env.sbcs();
    let after = until_ok("read the SBC", || sbcs.get("steady")).await;
    assert_eq!(
        after.metadata.resource_version, ready.metadata.resource_version,
        "status written while reads failed: {:#?}",
        after.status
    );
    assert_eq!(env.get(&format!("/ipxe/{UUID}")).await.status, 200);
}
