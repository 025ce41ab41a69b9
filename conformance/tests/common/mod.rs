//! Shared by the end-to-end tests: certify in-process sim-boot on a fresh embedded environment.

use conformance::boot_net::network_boot;
use conformance::embedded::EmbeddedEnv;
use conformance::progress::Display;
use conformance::report::{Implementation, Report};
use conformance::rules::Profile;
use conformance::runner::{RunResult, Selection, run};
use conformance::simboot::InProcessSimBoot;
use conformance::target::{BackendControl, MachineBoot};
use conformance::timeouts::Timeouts;
use sim_boot::Misbehaviour;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub struct Run {
    pub result: RunResult,
    pub report: Report,
}

/// Runs `selection` against sim-boot in `mode`; the boot profile attaches simulated machines.
pub async fn certify(
    mode: Misbehaviour,
    selection: Selection,
    timeouts: Timeouts,
    slow_delay: Duration,
) -> Run {
    let env = EmbeddedEnv::start().await.expect("embedded environment");
    let backend = Arc::new(
        InProcessSimBoot::start(&env, mode, slow_delay)
            .await
            .expect("sim-boot"),
    );
    let machine: Option<Arc<dyn MachineBoot>> = match selection.profiles.contains(&Profile::Boot) {
        true => Some(network_boot(&backend.boot_url_template(), None).expect("boot network")),
        false => None,
    };
    let target = env
        .target(
            Some(backend.clone() as Arc<dyn BackendControl>),
            machine,
            timeouts.clone(),
            20,
            CancellationToken::new(),
        )
        .expect("target");
    let result = run(Arc::new(target), &selection, &Display::hidden(), 8).await;
    backend.shutdown().await;
    env.api.shutdown().await;
    let implementation = Implementation {
        name: "sim-boot".into(),
        version: format!("{mode}"),
    };
    let report = Report::new(
        &result,
        implementation,
        format!("cargo test -p conformance ({mode})"),
        &timeouts,
    );
    Run { result, report }
}
