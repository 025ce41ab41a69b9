//! BMC faults (refused, timeout, 5xx, 401, garbage, ignored reset, stuck PoweringOn): the BMC
//! `Ready` condition carries upstream's reason, retries are bounded, nothing panics, and the
//! operator recovers when the fault clears.

mod common;

use std::time::Duration;

use common::*;
use k8s_openapi::api::core::v1::LocalObjectReference;
use kube::api::{Api, PostParams};
use metal_api::{BMC, BMCSpec, InlineEndpoint, Protocol, Server};
use sim_bmc::fault::{FaultKind, FaultSpec, UnreachableMode};
use sim_bmc::fleet::BindMode;

const T: Duration = Duration::from_secs(30);

async fn wait_ready(h: &Harness, bmc: &str, status: &str, reason: &str) -> BMC {
    wait_bmc_condition(h, bmc, "Ready", status, reason).await
}

async fn wait_bmc_condition(
    h: &Harness,
    bmc: &str,
    type_: &str,
    status: &str,
    reason: &str,
) -> BMC {
    let api = Api::<BMC>::all(h.client.clone());
    h.wait_for(
        &api,
        bmc,
        T,
        &format!("{type_}={status}/{reason}"),
        |b: &BMC| {
            b.status.as_ref().is_some_and(|s| {
                s.conditions
                    .iter()
                    .any(|c| c.type_ == type_ && c.status == status && c.reason == reason)
            })
        },
    )
    .await
}

async fn fault_case(bind: BindMode, fault: FaultKind, reason: &str) {
    let mut options = HarnessOptions::new(1);
    options.bind = bind;
    let mut h = Harness::start(options).await;
    let bmcs = h.create_bmcs().await;
    h.fleet
        .faults(&bmcs[0])
        .unwrap()
        .set(vec![FaultSpec::new(fault)]);
    h.start_operator().await;
    let bmc = wait_ready(&h, &bmcs[0], "False", reason).await;
    let conditions = bmc.status.unwrap().conditions;
    let message = &metal_api::find_condition(&conditions, "Ready")
        .unwrap()
        .message;
    assert!(!message.is_empty());
    // Retries are bounded by the error backoff: several failed reconciles take at least that long.
    let metrics = h.operator.as_ref().unwrap().metrics.clone();
    let start = tokio::time::Instant::now();
    let before = metrics.reconcile_count("bmc");
    eventually(T, "bmc retries", || {
        metrics.reconcile_count("bmc") >= before + 3
    })
    .await;
    assert!(
        start.elapsed() >= h.config.error_backoff * 2,
        "retries not spaced by the backoff"
    );
    // No Server is created while the BMC is unusable, and recovery needs no restart.
    assert!(
        h.servers()
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    h.fleet.faults(&bmcs[0]).unwrap().clear();
    wait_ready(&h, &bmcs[0], "True", "Connected").await;
    h.wait_for(
        &h.servers(),
        &format!("{}-system-0", bmcs[0]),
        T,
        "server discovered",
        |_: &Server| true,
    )
    .await;
}

#[tokio::test]
async fn refused_connection_is_connection_failed() {
    fault_case(
        BindMode::Loopback,
        FaultKind::Unreachable {
            mode: UnreachableMode::Refuse,
        },
        "ConnectionFailed",
    )
    .await;
}

#[tokio::test]
async fn unanswered_connection_times_out_as_connection_failed() {
    fault_case(
        BindMode::Loopback,
        FaultKind::Unreachable {
            mode: UnreachableMode::BlackHole,
        },
        "ConnectionFailed",
    )
    .await;
}

#[tokio::test]
async fn internal_server_errors_are_internal_server_error() {
    fault_case(
        BindMode::InProcess,
        FaultKind::ServerErrors {
            rate: 1.0,
            status: 500,
        },
        "InternalServerError",
    )
    .await;
}

#[tokio::test]
async fn service_unavailable_is_connection_failed() {
    fault_case(
        BindMode::InProcess,
        FaultKind::ServerErrors {
            rate: 1.0,
            status: 503,
        },
        "ConnectionFailed",
    )
    .await;
}

#[tokio::test]
async fn rejected_credentials_are_authentication_failed() {
    fault_case(
        BindMode::InProcess,
        FaultKind::AuthFailure,
        "AuthenticationFailed",
    )
    .await;
}

#[tokio::test]
async fn garbage_answers_are_unknown_error() {
    let mut h = Harness::start(HarnessOptions::new(1)).await;
    let bmcs = h.create_bmcs().await;
    let spec = BMCSpec {
        bmc_uuid: None,
        endpoint_ref: None,
        access: Some(InlineEndpoint {
            mac_address: None,
            ip: Some("garbage.sim.invalid".into()),
        }),
        bmc_secret_ref: LocalObjectReference {
            name: bmcs[0].clone(),
        },
        protocol: Protocol {
            name: "Redfish".into(),
            port: 80,
            scheme: Some("http".into()),
        },
        console_protocol: None,
        hostname: None,
    };
    Api::<BMC>::all(h.client.clone())
        .create(&PostParams::default(), &BMC::new("garbage", spec))
        .await
        .unwrap();
    h.start_operator().await;
    wait_ready(&h, "garbage", "False", "UnknownError").await;
    // The healthy BMC next to it is unaffected.
    wait_ready(&h, &bmcs[0], "True", "Connected").await;
}

/// A discovered server whose BMC has `fault`, claimed as `c` with the claim's SBC created (not
/// yet Ready).
async fn claimed_with_fault(h: &mut Harness, fault: FaultKind) -> (String, String) {
    let (server, uuid) = h.discovered().await;
    let bmc = h.fleet.bmcs()[0].name.clone();
    h.fleet
        .faults(&bmc)
        .unwrap()
        .set(vec![FaultSpec::new(fault)]);
    h.claim("c", Some(&server), "On", "img:1").await;
    h.wait_sbc("c", "claim SBC").await;
    (server, uuid)
}

#[tokio::test]
async fn ignored_power_on_is_repeated_only_after_the_polling_timeout() {
    let mut h = Harness::start(HarnessOptions::new(1)).await;
    let (server, uuid) = claimed_with_fault(&mut h, FaultKind::ResetIgnored).await;
    let before = h.power_on_requests(&uuid).len();
    let start = tokio::time::Instant::now();
    h.backend_set(NS, "c", "Ready", vec![]).await;
    h.wait_event(&server, "PowerOnTimedOut").await;
    let elapsed = start.elapsed();
    let sent = h.power_on_requests(&uuid).len() - before;
    let bound =
        1 + (elapsed.as_secs_f64() / h.config.power_polling_timeout.as_secs_f64()).ceil() as usize;
    assert!(
        (2..=bound).contains(&sent),
        "{sent} power-ons in {elapsed:?} (bound {bound})"
    );
    h.fleet.faults(&h.fleet.bmcs()[0].name).unwrap().clear();
    h.wait_power(&server, "On").await;
}

#[tokio::test]
async fn stuck_powering_on_is_waited_for_not_repeated() {
    let mut h = Harness::start(HarnessOptions::new(1)).await;
    let (server, uuid) = claimed_with_fault(&mut h, FaultKind::StuckPoweringOn).await;
    let before = h.power_on_requests(&uuid).len();
    h.backend_set(NS, "c", "Ready", vec![]).await;
    h.wait_power(&server, "PoweringOn").await;
    h.reconciles(5).await;
    assert_eq!(
        h.power_on_requests(&uuid).len(),
        before + 1,
        "a BMC reporting PoweringOn is not asked again"
    );
}

/// The Systems service of a BMC fails (500) while its manager still answers: after
/// `--bmc-failure-reset-delay` the operator sends one `Manager.Reset`, not one per retry, and
/// clears `Reset` once the BMC answers again.
#[tokio::test]
async fn failing_bmc_is_reset_once_through_manager_reset_and_recovers() {
    let mut options = HarnessOptions::new(1);
    options.config.bmc_failure_reset_delay = Duration::from_millis(500);
    options.config.bmc_reset_waiting_interval = Duration::from_millis(500);
    let mut h = Harness::start(options).await;
    let bmcs = h.create_bmcs_and_start().await;
    wait_ready(&h, &bmcs[0], "True", "Connected").await;
    let faults = h.fleet.faults(&bmcs[0]).unwrap();
    faults.set(vec![FaultSpec {
        kind: FaultKind::ServerErrors {
            rate: 1.0,
            status: 500,
        },
        endpoint: Some("/redfish/v1/Systems".into()),
    }]);
    wait_ready(&h, &bmcs[0], "False", "InternalServerError").await;
    wait_bmc_condition(&h, &bmcs[0], "Reset", "True", "AutoResetting").await;
    eventually(T, "Manager.Reset sent", || h.manager_resets(&bmcs[0]) == 1).await;
    // Still failing after the reset window: the outage gets no second reset.
    let metrics = h.operator.as_ref().unwrap().metrics.clone();
    let target = metrics.reconcile_count("bmc") + 6;
    eventually(T, "bmc retries", || {
        metrics.reconcile_count("bmc") >= target
    })
    .await;
    assert_eq!(h.manager_resets(&bmcs[0]), 1, "BMC reset in a loop");
    faults.set(vec![]);
    wait_ready(&h, &bmcs[0], "True", "Connected").await;
    wait_bmc_condition(&h, &bmcs[0], "Reset", "False", "ResetComplete").await;
    assert_eq!(h.manager_resets(&bmcs[0]), 1);
    assert!(!h.events_for(&bmcs[0], "BMCAutoReset").await.is_empty());
}
