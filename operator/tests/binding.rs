//! Claim binding rules (taints/tolerations, unclaimable, selectors), ServerReadinessRules, and the
//! deprecated Endpoint flow with the MAC prefix database.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use metal_api::{
    BMC, BMCSecret, Endpoint, EndpointSpec, Server, ServerClaim, ServerReadinessRule, Toleration,
};
use operator::macdb::{DefaultCredential, MacDb, MacPrefix};
use serde_json::json;

const T: Duration = Duration::from_secs(30);

fn phase(c: &ServerClaim) -> Option<String> {
    c.status
        .as_ref()
        .and_then(|s| s.phase.as_ref())
        .map(|p| p.as_str().to_owned())
}

#[tokio::test]
async fn nobind_taint_and_unclaimable_block_binding_until_tolerated() {
    let mut h = Harness::start(HarnessOptions::new(1)).await;
    let (server, _) = h.discovered().await;
    let taint = json!({"spec": {"taints": [{"key": "maintenance", "value": "true", "effect": "NoBind"}], "unclaimable": true}});
    h.servers()
        .patch(&server, &PatchParams::default(), &Patch::Merge(&taint))
        .await
        .unwrap();
    let claims = Api::<ServerClaim>::namespaced(h.client.clone(), NS);
    let mut claim = new_claim("tolerant", None, "Off", "img:1");
    claim.spec.tolerations = vec![Toleration {
        key: "maintenance".into(),
        operator: Some("Equal".into()),
        value: Some("true".into()),
        effect: None,
    }];
    h.claim("plain", None, "Off", "img:1").await;
    claims.create(&PostParams::default(), &claim).await.unwrap();
    h.wait_for(&claims, "plain", T, "Unbound", |c| {
        phase(c).as_deref() == Some("Unbound")
    })
    .await;
    h.wait_for(&claims, "tolerant", T, "Unbound", |c| {
        phase(c).as_deref() == Some("Unbound")
    })
    .await;
    h.reconciles(3).await;
    assert!(
        h.claim_ref_of(&server).await.is_none(),
        "unclaimable server was bound"
    );
    // Uncordon: only the claim tolerating the NoBind taint may bind.
    h.merge_server(&server, json!({"spec": {"unclaimable": false}}))
        .await;
    h.wait_for(&claims, "tolerant", T, "Bound", |c| {
        phase(c).as_deref() == Some("Bound")
    })
    .await;
    assert_eq!(claims.get("plain").await.unwrap().spec.server_ref, None);
    assert_eq!(h.claim_ref_of(&server).await.unwrap(), "tolerant");
}

#[tokio::test]
async fn selector_claims_bind_distinct_servers_and_surplus_stays_unbound() {
    let mut h = Harness::start(HarnessOptions::new(2)).await;
    let bmcs = h.create_bmcs_and_start().await;
    let servers: Vec<String> = bmcs.iter().map(|b| format!("{b}-system-0")).collect();
    for server in &servers {
        h.wait_sbc(server, "discovery SBC").await;
        h.backend_set(NS, server, "Ready", vec![]).await;
    }
    for server in &servers {
        h.wait_state(server, "Available").await;
        h.wait_power(server, "Off").await;
    }
    h.merge_server(
        &servers[0],
        json!({"metadata": {"labels": {"pool": "gold"}}}),
    )
    .await;
    let claims = Api::<ServerClaim>::namespaced(h.client.clone(), NS);
    for name in ["gold-a", "gold-b"] {
        let mut claim = new_claim(name, None, "Off", "img:1");
        claim.spec.server_selector = Some(LabelSelector {
            match_labels: Some(BTreeMap::from([("pool".to_owned(), "gold".to_owned())])),
            ..Default::default()
        });
        claims.create(&PostParams::default(), &claim).await.unwrap();
    }
    h.until("one gold claim bound", || async {
        let list = claims.list(&Default::default()).await.unwrap().items;
        list.iter()
            .filter(|c| phase(c).as_deref() == Some("Bound"))
            .count()
            == 1
    })
    .await;
    h.reconciles(3).await;
    let list = claims.list(&Default::default()).await.unwrap().items;
    assert_eq!(
        list.iter()
            .filter(|c| phase(c).as_deref() == Some("Bound"))
            .count(),
        1,
        "two claims on one server"
    );
    let bound = list
        .iter()
        .find(|c| phase(c).as_deref() == Some("Bound"))
        .unwrap();
    assert_eq!(bound.spec.server_ref.as_ref().unwrap().name, servers[0]);
    assert!(
        h.claim_ref_of(&servers[1]).await.is_none(),
        "unlabelled server taken"
    );
}

#[tokio::test]
async fn readiness_rule_taints_until_conditions_hold_and_cleans_up() {
    let mut h = Harness::start(HarnessOptions::new(1)).await;
    let (server, _) = h.discovered().await;
    let rules = Api::<ServerReadinessRule>::all(h.client.clone());
    let taint = json!({"key": "readiness/network", "effect": "NoBind"});
    let rule = readiness_rule("network", "NetworkReady", "BootstrapOnly", taint, json!({}));
    rules.create(&PostParams::default(), &rule).await.unwrap();
    let has_taint = |s: &Server| s.spec.taints.iter().any(|t| t.key == "readiness/network");
    h.wait_for(&h.servers(), &server, T, "tainted", has_taint)
        .await;
    // An external actor reports the condition: the taint goes and bootstrap is recorded.
    let s = h.servers().get(&server).await.unwrap();
    let mut conditions = s.status.unwrap().conditions;
    conditions.push(condition("NetworkReady", "True", "LinkUp", "", None));
    h.merge_server_status(&server, json!({"status": {"conditions": conditions}}))
        .await;
    let s = h
        .wait_for(&h.servers(), &server, T, "untainted", |s: &Server| {
            !has_taint(s)
        })
        .await;
    let key = "readiness.metal.ironcore.dev/bootstrap-completed-network";
    let s = if s
        .metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(key))
    {
        s
    } else {
        h.wait_for(
            &h.servers(),
            &server,
            T,
            "bootstrap annotation",
            |s: &Server| {
                s.metadata
                    .annotations
                    .as_ref()
                    .is_some_and(|a| a.contains_key(key))
            },
        )
        .await
    };
    assert!(!has_taint(&s));
    // Deleting a Continuous rule removes its taints (finalizer).
    let taint = json!({"key": "readiness/disks"});
    let continuous = readiness_rule("disks", "DisksHealthy", "Continuous", taint, json!({}));
    rules
        .create(&PostParams::default(), &continuous)
        .await
        .unwrap();
    h.wait_for(&h.servers(), &server, T, "disk taint", |s: &Server| {
        s.spec.taints.iter().any(|t| t.key == "readiness/disks")
    })
    .await;
    rules
        .delete("disks", &DeleteParams::default())
        .await
        .unwrap();
    h.wait_for(
        &h.servers(),
        &server,
        T,
        "disk taint removed",
        |s: &Server| !s.spec.taints.iter().any(|t| t.key == "readiness/disks"),
    )
    .await;
    h.until("rule gone", || async {
        rules.get_opt("disks").await.unwrap().is_none()
    })
    .await;
}

#[tokio::test]
async fn endpoint_with_known_mac_prefix_becomes_bmc_and_secret() {
    let mut options = HarnessOptions::new(1);
    options.probe = false;
    let mut h = Harness::start(options).await;
    let info = h.fleet.bmcs()[0].clone();
    let prefix: String = info.mac.replace(':', "").chars().take(6).collect();
    h.config.default_bmc_scheme = "http".into();
    let mac_db = MacDb {
        mac_prefixes: vec![MacPrefix {
            mac_prefix: prefix,
            manufacturer: "Sim".into(),
            protocol: "Redfish".into(),
            protocol_scheme: Some("http".into()),
            port: 80,
            type_: "bmc".into(),
            default_credentials: vec![DefaultCredential {
                username: info.username.clone(),
                password: info.password.clone(),
            }],
            console: None,
        }],
    };
    h.set_mac_db(mac_db);
    h.start_operator().await;
    let host = info.url.trim_start_matches("http://").to_owned();
    let endpoint = Endpoint::new(
        "ep-1",
        EndpointSpec {
            mac_address: Some(info.mac.clone()),
            ip: Some(host),
        },
    );
    Api::<Endpoint>::all(h.client.clone())
        .create(&PostParams::default(), &endpoint)
        .await
        .unwrap();
    let secrets = Api::<BMCSecret>::all(h.client.clone());
    let secret = h.wait_for(&secrets, "ep-1", T, "BMCSecret", |_| true).await;
    assert_eq!(
        secret.credentials(),
        Some((info.username.clone(), info.password.clone()))
    );
    let bmcs = Api::<BMC>::all(h.client.clone());
    let bmc = h
        .wait_for(&bmcs, "ep-1", T, "BMC Ready", |b: &BMC| {
            b.status.as_ref().is_some_and(|s| {
                s.conditions
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == "True")
            })
        })
        .await;
    assert_eq!(bmc.spec.endpoint_ref.unwrap().name, "ep-1");
    assert_eq!(
        bmc.status.unwrap().mac_address.as_deref(),
        Some(info.mac.as_str())
    );
    // An Endpoint whose MAC is not in the database is reported, not retried in a loop.
    let unknown = Endpoint::new(
        "ep-2",
        EndpointSpec {
            mac_address: Some("ff:ff:ff:00:00:01".into()),
            ip: Some("127.0.0.1".into()),
        },
    );
    Api::<Endpoint>::all(h.client.clone())
        .create(&PostParams::default(), &unknown)
        .await
        .unwrap();
    h.until("InvalidObject event", || async {
        !h.events_for("ep-2", "InvalidObject").await.is_empty()
    })
    .await;
}

/// The losing half of a double bind (a Server naming a claim that holds another Server) used to
/// stay Reserved and Off forever, and the claim that should have had it never bound.
#[tokio::test]
async fn server_reserved_for_a_claim_bound_elsewhere_is_released_and_rebound() {
    let mut h = Harness::start(HarnessOptions::new(2)).await;
    let backend = spawn_burst_backend(&h, Duration::from_millis(100));
    let bmcs = h.create_bmcs_and_start().await;
    let servers: Vec<String> = bmcs.iter().map(|b| format!("{b}-system-0")).collect();
    for server in &servers {
        h.wait_for(
            &h.servers(),
            server,
            T,
            "Available and Off",
            |s: &Server| state_is(s, "Available") && power_is(s, "Off"),
        )
        .await;
    }
    let claims = Api::<ServerClaim>::namespaced(h.client.clone(), NS);
    h.claim("a", Some(&servers[0]), "Off", "img:1").await;
    h.wait_for(&claims, "a", T, "Bound", |c| {
        phase(c).as_deref() == Some("Bound")
    })
    .await;
    let orphan = json!({"spec": {"serverClaimRef": {"namespace": NS, "name": "a"}}});
    h.servers()
        .patch(&servers[1], &PatchParams::default(), &Patch::Merge(&orphan))
        .await
        .unwrap();
    h.until("ClaimBoundElsewhere event", || async {
        !h.events_for(&servers[1], "ClaimBoundElsewhere")
            .await
            .is_empty()
    })
    .await;
    h.wait_for(&h.servers(), &servers[1], T, "released", |s: &Server| {
        s.spec.server_claim_ref.is_none() && state_is(s, "Available") && power_is(s, "Off")
    })
    .await;
    h.claim("b", None, "Off", "img:1").await;
    let b = h
        .wait_for(&claims, "b", T, "Bound", |c| {
            phase(c).as_deref() == Some("Bound")
        })
        .await;
    assert_eq!(b.spec.server_ref.unwrap().name, servers[1]);
    let a = claims.get("a").await.unwrap();
    assert_eq!(a.spec.server_ref.unwrap().name, servers[0]);
    backend.abort();
}

/// Many claims at once against a backend that answers in bursts, with resyncs far away: every
/// claim ends bound to its own Server, powered on once, without any resync to paper over a lost
/// wake-up or a lost binding race.
#[tokio::test]
async fn burst_of_claims_all_bind_distinct_servers_and_power_on_once() {
    const N: usize = 12;
    let mut options = HarnessOptions::new(N);
    options.config.server_resync_interval = Duration::from_secs(600);
    let mut h = Harness::start(options).await;
    let backend = spawn_burst_backend(&h, Duration::from_millis(150));
    h.create_bmcs().await;
    h.start_operator().await;
    h.until("all servers discovered", || async {
        let list = h.servers().list(&Default::default()).await.unwrap().items;
        list.len() == N
            && list
                .iter()
                .all(|s| state_is(s, "Available") && power_is(s, "Off"))
    })
    .await;
    let power_ons_before: usize = uuids(&h).iter().map(|u| h.power_on_requests(u).len()).sum();
    let claims = Api::<ServerClaim>::namespaced(h.client.clone(), NS);
    futures::future::join_all((0..N).map(|i| {
        let claims = claims.clone();
        async move {
            let claim = new_claim(&format!("burst-{i}"), None, "On", "img:1");
            claims.create(&PostParams::default(), &claim).await.unwrap();
        }
    }))
    .await;
    h.until("all servers Reserved and On", || async {
        let list = h.servers().list(&Default::default()).await.unwrap().items;
        list.iter()
            .filter(|s| state_is(s, "Reserved") && power_is(s, "On"))
            .count()
            == N
    })
    .await;
    let mut bound: Vec<String> = Vec::new();
    for claim in claims.list(&Default::default()).await.unwrap().items {
        let server_name = claim.spec.server_ref.clone().expect("claim bound").name;
        let server = h.servers().get(&server_name).await.unwrap();
        let back = server.spec.server_claim_ref.expect("server reserved");
        assert_eq!(back.name, claim.metadata.name.clone().unwrap());
        bound.push(server_name);
    }
    bound.sort();
    bound.dedup();
    assert_eq!(bound.len(), N, "two claims share a server");
    let power_ons: usize = uuids(&h).iter().map(|u| h.power_on_requests(u).len()).sum();
    assert_eq!(
        power_ons - power_ons_before,
        N,
        "one power-on per claimed server"
    );
    backend.abort();
}

fn uuids(h: &Harness) -> Vec<String> {
    h.fleet
        .bmcs()
        .iter()
        .flat_map(|b| b.systems.iter().map(|s| s.uuid.clone()))
        .collect()
}

fn state_is(s: &Server, state: &str) -> bool {
    s.status
        .as_ref()
        .and_then(|st| st.state.as_ref())
        .is_some_and(|st| st.as_str() == state)
}
