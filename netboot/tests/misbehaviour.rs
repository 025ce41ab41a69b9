//! Every sim-boot misbehaviour mode produces an observable failure for a consumer that trusts Ready:
//! a machine that fails to boot (with the reason), boots the wrong thing, or a status that lies.

mod common;

use std::time::Duration;

use common::*;
use kube::Api;
use metal_api::ServerBootConfiguration;
use sim_boot::Misbehaviour;
use sim_boot::oci::names;

const UUID: &str = "6a1c0f4e-0000-4000-8000-00000000b001";
const WAIT: Duration = Duration::from_secs(20);

async fn ready_then_boot(mode: Misbehaviour, image: &str, secret: Option<&str>) -> (Stack, String) {
    let stack = stack(mode).await;
    if let Some(name) = secret {
        stack.secret(name, "core").await;
    }
    let reason = configure_ready_boot(&stack, image, secret).await;
    (stack, reason)
}

/// Configures `m` with `image` and `secret`, waits for Ready and boots: the boot must fail, with this reason.
async fn configure_ready_boot(stack: &Stack, image: &str, secret: Option<&str>) -> String {
    stack
        .configure("m", UUID, &stack.backend.image(image), secret)
        .await;
    stack
        .ready("m", WAIT)
        .await
        .expect("the backend claims Ready");
    failed(stack.boot(UUID).await)
}

#[tokio::test]
async fn ready_before_serving_fails_the_boot_with_404() {
    let (_, reason) =
        ready_then_boot(Misbehaviour::ReadyBeforeServing, names::OS_V1, Some("m")).await;
    assert!(
        reason.contains("404") && reason.contains("is not prepared"),
        "{reason}"
    );
}

#[tokio::test]
async fn ready_on_missing_secret_fails_ignition() {
    // The Secret is referenced but never created: the kernel boots, Ignition cannot fetch its config.
    let stack = stack(Misbehaviour::ReadyOnMissingSecret).await;
    let reason = configure_ready_boot(&stack, names::OS_V1, Some("absent")).await;
    assert!(
        reason.starts_with("Ignition:") && reason.contains("404"),
        "{reason}"
    );
}

#[tokio::test]
async fn ready_on_bad_image_fails_the_boot() {
    let (_, reason) =
        ready_then_boot(Misbehaviour::ReadyOnBadImage, names::NO_KERNEL, Some("m")).await;
    assert!(
        reason.contains("404") && reason.contains("has no kernel layer"),
        "{reason}"
    );
}

#[tokio::test]
async fn wrong_ignition_is_rejected_by_ignition() {
    let (_, reason) = ready_then_boot(Misbehaviour::WrongIgnition, names::OS_V1, Some("m")).await;
    assert!(
        reason.contains("Ignition: config from") && reason.contains("not JSON"),
        "{reason}"
    );
}

/// After a spec change, a consumer that waits for Ready at the new generation still boots the old image.
async fn boots_old_image_after_update(mode: Misbehaviour) -> String {
    let stack = stack(mode).await;
    stack
        .configure("m", UUID, &stack.backend.image(names::OS_V1), None)
        .await;
    stack.ready("m", WAIT).await.expect("Ready");
    stack
        .set_image("m", &stack.backend.image(names::OS_V2))
        .await;
    let sbc = stack.ready("m", WAIT).await.expect("Ready at generation 2");
    assert_eq!(sbc.metadata.generation, Some(2));
    booted(stack.boot(UUID).await).image
}

#[tokio::test]
async fn stale_ready_on_update_boots_the_old_image() {
    assert_eq!(
        boots_old_image_after_update(Misbehaviour::StaleReadyOnUpdate).await,
        "ironcore/os:1.0"
    );
}

#[tokio::test]
async fn serve_old_artifacts_boots_the_old_image() {
    assert_eq!(
        boots_old_image_after_update(Misbehaviour::ServeOldArtifacts).await,
        "ironcore/os:1.0"
    );
}

#[tokio::test]
async fn honest_backend_boots_the_new_image_after_update() {
    assert_eq!(
        boots_old_image_after_update(Misbehaviour::None).await,
        "ironcore/os:2.0"
    );
}

#[tokio::test]
async fn never_ready_never_gets_ready_although_it_serves() {
    let stack = stack(Misbehaviour::NeverReady).await;
    stack
        .configure("m", UUID, &stack.backend.image(names::OS_V1), None)
        .await;
    assert!(
        stack.ready("m", Duration::from_secs(4)).await.is_none(),
        "never Ready"
    );
    assert_eq!(
        booted(stack.boot(UUID).await).image,
        "ironcore/os:1.0",
        "it does serve"
    );
}

#[tokio::test]
async fn slow_delays_ready_past_a_short_deadline() {
    let stack = stack(Misbehaviour::Slow).await;
    stack
        .configure("m", UUID, &stack.backend.image(names::OS_V1), None)
        .await;
    assert!(
        stack
            .ready("m", Duration::from_millis(1500))
            .await
            .is_none(),
        "not Ready within 1.5 s"
    );
    stack.ready("m", WAIT).await.expect("Ready eventually");
}

#[tokio::test]
async fn crash_on_reconcile_never_progresses_and_restarts() {
    let stack = stack(Misbehaviour::CrashOnReconcile).await;
    stack
        .configure("m", UUID, &stack.backend.image(names::OS_V1), None)
        .await;
    assert!(stack.ready("m", Duration::from_secs(3)).await.is_none());
    assert!(
        stack.backend.controller_crashes() >= 2,
        "crashed {} times",
        stack.backend.controller_crashes()
    );
    let sbc = stack.sbcs().get("m").await.unwrap();
    assert!(
        sbc.status.is_none_or(|s| s.conditions.is_empty()),
        "no status written"
    );
}

#[tokio::test]
async fn touch_spec_rewrites_the_image_it_does_not_own() {
    let stack = stack(Misbehaviour::TouchSpec).await;
    let image = stack.backend.image(names::OS_V1);
    stack.configure("m", UUID, &image, None).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let sbc = stack.sbcs().get("m").await.unwrap();
        if sbc.spec.image.as_deref() != Some(image.as_str()) {
            assert!(sbc.spec.image.unwrap().contains("@sha256:"));
            assert!(
                sbc.metadata.generation > Some(1),
                "the spec write bumped the generation"
            );
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "spec never touched");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test]
async fn flap_alternates_ready_and_error() {
    let stack = stack(Misbehaviour::Flap).await;
    stack
        .configure("m", UUID, &stack.backend.image(names::OS_V1), None)
        .await;
    stack.ready("m", WAIT).await.expect("Ready");
    let api: Api<ServerBootConfiguration> = stack.sbcs();
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    while tokio::time::Instant::now() < deadline {
        let state = api
            .get("m")
            .await
            .unwrap()
            .status
            .and_then(|s| s.state)
            .map(|s| s.as_str().to_string())
            .unwrap_or_default();
        if seen.last() != Some(&state) {
            seen.push(state);
        }
        if seen.len() >= 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        seen.len() >= 4 && seen.contains(&"Error".to_string()),
        "{seen:?}"
    );
}
