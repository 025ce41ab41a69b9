//! A simulated run replays: the same seed and `Clock::simulated(epoch)` on a paused current-thread runtime give
//! byte-identical Server, BMC, Endpoint, ServerBootConfiguration and Secret objects (uids, resourceVersions, timestamps), and another seed gives
//! other uids.

use std::time::Duration;

use clock::Clock;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams};
use metal_api::{BMC, Endpoint, Server, ServerBootConfiguration};
use sim_bmc::fleet::FleetSpec;

const EPOCH: &str = "2026-06-01T08:00:00Z";
/// Virtual time the fleet lives before its objects are compared: past the 30-minute discovery timeout, so
/// discovery (with no backend to make its SBC Ready) times out and starts again with fresh SSH material.
const LIFETIME: Duration = Duration::from_secs(2400);

/// Every Server, BMC, Endpoint, SBC and Secret as JSON, one object a line, after [`LIFETIME`] of virtual time.
fn run(seed: u64) -> String {
    let runtime = testbed::simulated_runtime(seed).expect("a current-thread runtime");
    runtime.block_on(async move {
        let start = tokio::time::Instant::now();
        let fleet = FleetSpec::uniform(3, sim_bmc::vendor::Vendor::Lenovo, 5);
        let bed = testbed::sim::fleet_and_operator(fleet, operator::config::Config::default())
            .clock(Clock::simulated(EPOCH.parse().expect("an RFC 3339 epoch")))
            .seed(seed)
            .start()
            .await
            .expect("the testbed starts on a paused clock");
        let servers = Api::<Server>::all(bed.client.clone());
        while servers
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len()
            < 3
        {
            assert!(
                start.elapsed() < LIFETIME,
                "no 3 Servers within {LIFETIME:?} of virtual time"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tokio::time::sleep_until(start + LIFETIME).await;
        let mut lines = Vec::new();
        for item in servers.list(&ListParams::default()).await.unwrap().items {
            lines.push(serde_json::to_string(&item).unwrap());
        }
        let bmcs = Api::<BMC>::all(bed.client.clone());
        for item in bmcs.list(&ListParams::default()).await.unwrap().items {
            lines.push(serde_json::to_string(&item).unwrap());
        }
        let endpoints = Api::<Endpoint>::all(bed.client.clone());
        for item in endpoints.list(&ListParams::default()).await.unwrap().items {
            lines.push(serde_json::to_string(&item).unwrap());
        }
        // The discovery boot: its SBCs and the ignition and SSH Secrets (keys and passwords drawn from the seed).
        let sbcs = Api::<ServerBootConfiguration>::all(bed.client.clone());
        for item in sbcs.list(&ListParams::default()).await.unwrap().items {
            lines.push(serde_json::to_string(&item).unwrap());
        }
        let secrets = Api::<Secret>::namespaced(bed.client.clone(), "default");
        for item in secrets.list(&ListParams::default()).await.unwrap().items {
            lines.push(serde_json::to_string(&item).unwrap());
        }
        bed.shutdown().await;
        lines.join("\n")
    })
}

/// Which objects differ between two runs (kind/name and both resourceVersions), and the first in full.
fn differences(a: &str, b: &str) -> String {
    let id = |line: &str| {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let m = &v["metadata"];
        format!("{}/{} rv {}", v["kind"], m["name"], m["resourceVersion"])
    };
    let differing: Vec<_> = a.lines().zip(b.lines()).filter(|(x, y)| x != y).collect();
    let mut out = format!(
        "{} objects against {}; differing: {:?}",
        a.lines().count(),
        b.lines().count(),
        differing
            .iter()
            .map(|(x, y)| format!("{} / {}", id(x), id(y)))
            .collect::<Vec<_>>()
    );
    if let Some((x, y)) = differing.first() {
        out += &format!("\n  first:  {x}\n  second: {y}");
    }
    out
}

fn uids(objects: &str) -> Vec<String> {
    objects
        .lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            v["metadata"]["uid"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

/// `objects` with every resourceVersion taken out, and those resourceVersions sorted.
fn without_resource_versions(objects: &str) -> (String, Vec<u64>) {
    let mut versions = Vec::new();
    let lines: Vec<String> = objects
        .lines()
        .map(|line| {
            let mut v: serde_json::Value = serde_json::from_str(line).unwrap();
            let rv = v["metadata"]["resourceVersion"].take();
            versions.push(rv.as_str().and_then(|s| s.parse().ok()).unwrap_or(0));
            serde_json::to_string(&v).unwrap()
        })
        .collect();
    versions.sort_unstable();
    (lines.join("\n"), versions)
}

/// Everything but which object got which resourceVersion: the API server, fleet and operator write the same
/// objects with the same uids, timestamps and contents, and the same number of writes.
#[test]
fn the_same_seed_on_a_simulated_clock_writes_the_same_objects() {
    let first = run(7);
    let second = run(7);
    assert!(
        first.contains(EPOCH),
        "timestamps come from the simulated epoch"
    );
    assert!(
        first.contains("2026-06-01T08:3"),
        "something was written after the discovery timeout"
    );
    assert!(
        first.contains("\"kind\":\"Secret\""),
        "the discovery Secrets are compared"
    );
    let (first_objects, first_versions) = without_resource_versions(&first);
    let (second_objects, second_versions) = without_resource_versions(&second);
    assert!(
        first_objects == second_objects,
        "two runs with seed 7 differ: {}",
        differences(&first_objects, &second_objects)
    );
    assert_eq!(
        first_versions, second_versions,
        "the runs made different numbers of writes"
    );
}

/// Byte for byte, resourceVersions included: which reconcile commits first at one virtual instant is decided
/// by the seed too (reconciles start in key order, tokio's draws are seeded).
#[test]
fn the_same_seed_on_a_simulated_clock_writes_byte_identical_objects() {
    if !cfg!(tokio_unstable) {
        eprintln!(
            "skipped: built without `--cfg tokio_unstable`, so tokio's own random draws are not seeded"
        );
        return;
    }
    let (first, second) = (run(7), run(7));
    assert!(
        first == second,
        "two runs with seed 7 differ: {}",
        differences(&first, &second)
    );
}

#[test]
fn another_seed_gives_other_uids() {
    let (a, b) = (uids(&run(7)), uids(&run(8)));
    assert!(!a.is_empty() && a.iter().all(|u| !u.is_empty()));
    assert!(
        a.iter().all(|u| !b.contains(u)),
        "seeds 7 and 8 share uids: {a:?} / {b:?}"
    );
}
