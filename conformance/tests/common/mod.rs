//! Shared by the end-to-end tests: certify in-process sim-boot on a fresh embedded environment.
#![allow(dead_code)]

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
    /// Objects of the run still present after it: must be empty.
    pub leftovers: Vec<String>,
}

/// A fresh embedded environment with sim-boot in `mode` running against it in this process.
pub async fn sim_boot_env(
    mode: Misbehaviour,
    slow_delay: Duration,
) -> (EmbeddedEnv, InProcessSimBoot) {
    let env = EmbeddedEnv::start().await.expect("embedded environment");
    let backend = InProcessSimBoot::start(&env, mode, slow_delay)
        .await
        .expect("sim-boot");
    (env, backend)
}

/// Runs `selection` against sim-boot in `mode`; the boot profile attaches simulated machines.
pub async fn certify(
    mode: Misbehaviour,
    selection: Selection,
    timeouts: Timeouts,
    slow_delay: Duration,
) -> Run {
    let (env, backend) = sim_boot_env(mode, slow_delay).await;
    let backend = Arc::new(backend);
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
        .await
        .expect("target");
    let run_id = target.run_id.clone();
    let client = target.client.clone();
    let result = run(Arc::new(target), &selection, &Display::hidden(), 8).await;
    let leftovers = leftovers(&client, &run_id).await;
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
        conformance::level::ConformanceLevel::Extended,
    );
    Run {
        result,
        report,
        leftovers,
    }
}

/// Servers, SBCs and Secrets of this run still present after it (cleanup must leave none; namespaces may
/// still be terminating).
async fn leftovers(client: &kube::Client, run_id: &str) -> Vec<String> {
    use conformance::fixtures::{SUITE_LABEL, sbc_resource, server_resource};
    use kube::api::{Api, DynamicObject, ListParams};
    let lp = ListParams::default().labels(&format!("{SUITE_LABEL}={run_id}"));
    let mut found = Vec::new();
    for ar in [sbc_resource(), server_resource()] {
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
        for o in api.list(&lp).await.map(|l| l.items).unwrap_or_default() {
            found.push(format!(
                "{} {}",
                ar.kind,
                o.metadata.name.unwrap_or_default()
            ));
        }
    }
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::all(client.clone());
    for o in secrets.list(&lp).await.map(|l| l.items).unwrap_or_default() {
        found.push(format!("Secret {}", o.metadata.name.unwrap_or_default()));
    }
    found
}
