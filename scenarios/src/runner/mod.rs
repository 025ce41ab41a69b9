//! The runner: starts the embedded API server, sim-bmc fleet, boot backend and operator, plays the
//! workload and fault timelines, feeds the evidence to the invariants, and reports.

pub mod conditions;
pub mod faults;
pub mod observe;
mod progress;
pub mod requests;
pub mod stack;
mod standstill;
mod workload;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::evidence::{Event, Evidence, HarnessEvent};
use crate::invariants::Monitor;
use crate::report::Report;
use crate::spec::{ClockMode, Scenario};
use observe::Sink;
use stack::Stack;

/// How often suspicions are re-judged and the progress display refreshed.
const TICK: Duration = Duration::from_millis(100);
/// The same on the simulated clock, where a day of 100 ms ticks would be most of a run's CPU; violations keep
/// the time of their evidence, only their discovery may come up to a tick later.
const SIMULATED_TICK: Duration = Duration::from_secs(1);

/// Options beyond the scenario.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    pub seed: u64,
    pub kubeconfig: Option<PathBuf>,
    pub progress: bool,
    /// Reach the BMCs through in-process services instead of one loopback listener each (no
    /// sockets per BMC: fleets past the process's file-descriptor limit); always so on the
    /// simulated clock.
    pub bmcs_in_process: bool,
    /// The clock the run lives on (`--clock`, else the scenario's).
    pub clock: ClockMode,
}

/// The runtime a run needs: several worker threads on the wall clock; on the simulated clock
/// [`testbed::simulated_runtime`]: one thread, tokio's clock paused and its random draws seeded from `seed`.
pub fn runtime(clock: ClockMode, seed: u64) -> std::io::Result<tokio::runtime::Runtime> {
    match clock {
        ClockMode::Wall => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build(),
        ClockMode::Simulated => testbed::simulated_runtime(seed),
    }
}

/// Everything a finished run produced.
pub struct Outcome {
    pub report: Report,
    pub evidence: Vec<Evidence>,
}

/// Plays a scenario; an error means the harness could not run it (not that an invariant broke).
pub async fn run(scenario: &Scenario, options: RunOptions) -> anyhow::Result<Outcome> {
    if options.clock == ClockMode::Simulated {
        let mut blockers = scenario.simulation_blockers();
        if options.kubeconfig.is_some() {
            blockers.push("--kubeconfig names a cluster that lives on the wall clock".into());
        }
        anyhow::ensure!(
            blockers.is_empty(),
            "this scenario cannot run on the simulated clock: {}",
            blockers.join("; ")
        );
    }
    if options.clock == ClockMode::Simulated {
        let watch = standstill::Standstill::start(standstill::LIMIT);
        return tokio::select! {
            biased;
            at = watch.stuck() => Err(anyhow::anyhow!(
                "the simulated clock stood still at {:.1} s for {} s of wall time: some work loops without \
                 ever waiting (a livelock), so virtual time cannot move on; the run was stopped",
                at.as_secs_f64(),
                standstill::LIMIT.as_secs()
            )),
            outcome = play(scenario, options) => outcome,
        };
    }
    play(scenario, options).await
}

async fn play(scenario: &Scenario, options: RunOptions) -> anyhow::Result<Outcome> {
    // Wall time is reported beside scenario time, never mixed into it.
    let wall = std::time::Instant::now();
    let start = Instant::now();
    let (sink, mut rx) = Sink::new(start);
    observe::install_panic_hook(&sink);
    let stack = Stack::start(scenario, &options, &sink).await?;
    let declared: Vec<(String, String)> = scenario
        .fleet
        .resolve()
        .iter()
        .flat_map(|b| {
            (0..b.systems).map(move |i| (crate::spec::server_name(&b.name, i), b.name.clone()))
        })
        .collect();
    let server_count = declared.len();
    sink.send(Event::Harness(HarnessEvent::FleetDeclared {
        servers: declared,
    }));
    let mut watchers = observe::watch_api(&stack.client, &sink);
    watchers.extend(observe::watch_machines(stack.fleet(), &sink));
    let client = stack.client.clone();
    let registry_host = stack.registry_host.clone();
    let stack = Arc::new(tokio::sync::Mutex::new(stack));

    let grace = scenario.expect.evidence_grace.as_millis();
    let monitor = Arc::new(Mutex::new(Monitor::new(grace)));
    let log: Arc<Mutex<Vec<Evidence>>> = Arc::default();
    let progress = progress::Progress::new(options.progress, scenario);
    let consumer = {
        let (monitor, log, progress) = (monitor.clone(), log.clone(), progress.clone());
        tokio::spawn(async move {
            while let Some(ev) = rx.recv().await {
                let found = conditions::lock(&monitor).feed(&ev);
                progress.violations(&found);
                log.lock().unwrap_or_else(|e| e.into_inner()).push(ev);
            }
        })
    };
    let deadline = start + scenario.expect.within.0;
    let labeler = labeler(scenario, client.clone(), monitor.clone());
    let player = workload::Player {
        client,
        sink: sink.clone(),
        monitor: monitor.clone(),
        registry_host,
        scenario: scenario.clone(),
    };
    let fault_task = tokio::spawn(faults::play(
        scenario.faults.clone(),
        stack.clone(),
        sink.clone(),
        start,
        options.seed,
    ));
    let tick = match options.clock {
        ClockMode::Wall => TICK,
        ClockMode::Simulated => SIMULATED_TICK,
    };
    let mut failures = Vec::new();
    let played = tokio::select! {
        biased;
        r = player.play(deadline) => r,
        _ = ticker(&monitor, &progress, &sink, tick) => unreachable!("the ticker never ends"),
    };
    if let Err(e) = played {
        failures.push(format!("{e:#}"));
    }
    let ended = tokio::select! {
        biased;
        r = wait_for_end(scenario, &monitor, deadline) => r,
        _ = ticker(&monitor, &progress, &sink, tick) => unreachable!("the ticker never ends"),
    };
    if let Err(e) = ended {
        failures.push(e);
    }
    // Faults still scheduled past the end are not applied; finished ones are reported.
    let injected = if fault_task.is_finished() {
        match fault_task.await {
            Ok(Ok(i)) => i,
            Ok(Err(e)) => {
                failures.push(format!("{e:#}"));
                Vec::new()
            }
            Err(e) => {
                failures.push(format!("fault player: {e}"));
                Vec::new()
            }
        }
    } else {
        fault_task.abort();
        let _ = fault_task.await;
        scenario
            .faults
            .iter()
            .filter(|f| f.at.0 <= start.elapsed())
            .map(|f| faults::Injected {
                at_ms: f.at.as_millis(),
                until_ms: None,
                label: f.fault.label(),
            })
            .collect()
    };
    // Let trailing evidence arrive before judging.
    tokio::time::sleep(Duration::from_millis(grace.max(200))).await;
    labeler.abort();
    for w in &watchers {
        w.abort();
    }
    let stack = Arc::try_unwrap(stack)
        .map_err(|_| anyhow::anyhow!("the stack is still in use"))?
        .into_inner();
    let figures = stack.figures();
    let api_requests = stack.requests.summary(server_count);
    let api_server = stack.bed.api.describe();
    stack.shutdown().await;
    drop(sink);
    observe::detach_panic_hook();
    let _ = tokio::time::timeout(Duration::from_secs(5), consumer).await;
    progress.finish();
    let duration_ms = start.elapsed().as_millis() as u64;
    let wall_ms = wall.elapsed().as_millis() as u64;
    let mut m = conditions::lock(&monitor);
    m.finish();
    let evidence = std::mem::take(&mut *log.lock().unwrap_or_else(|e| e.into_inner()));
    let mut report = Report::build(
        scenario,
        options.seed,
        duration_ms,
        m.world(),
        &evidence,
        m.violations(),
        injected,
        failures,
    );
    // The runner's notion of "booted" (claims_booted) is what the report counts.
    report
        .claims_by_phase
        .insert("booted".into(), conditions::count_booted(m.world()));
    report.clock = options.clock.as_str().to_string();
    report.wall_ms = wall_ms;
    report.figures = figures;
    report.api_requests = api_requests;
    report.api_server = api_server;
    Ok(Outcome { report, evidence })
}

/// Waits until the end state holds and the system has settled (or, without an end state, it is
/// quiescent and settled, or every required violation has shown), or the deadline passes.
async fn wait_for_end(
    scenario: &Scenario,
    monitor: &Arc<Mutex<Monitor>>,
    deadline: Instant,
) -> Result<(), String> {
    let e = &scenario.expect;
    let done = |m: &Monitor| {
        let required = e
            .violations
            .iter()
            .all(|name| m.violations().iter().any(|v| &v.invariant == name));
        if !required {
            return false;
        }
        if e.has_end_state() {
            conditions::unmet(m.world(), e).is_empty() && conditions::settled(m.world())
        } else {
            !e.violations.is_empty()
                || (conditions::quiescent(m.world()) && conditions::settled(m.world()))
        }
    };
    let pace = conditions::Pace::new(Duration::from_millis(50));
    loop {
        let checked = pace.start();
        if done(&conditions::lock(monitor)) {
            return Ok(());
        }
        let pause = pace.pause_after(checked);
        if Instant::now() >= deadline {
            let unmet = conditions::unmet(conditions::lock(monitor).world(), e);
            // Unsettled at the deadline is judged by the end-of-run invariants.
            return if unmet.is_empty() {
                Ok(())
            } else {
                Err(format!(
                    "end state not reached within {}: {}",
                    e.within,
                    unmet.join("; ")
                ))
            };
        }
        tokio::time::sleep(pause).await;
    }
}

/// Re-judges open suspicions as time passes and refreshes the progress display.
async fn ticker(
    monitor: &Arc<Mutex<Monitor>>,
    progress: &progress::Progress,
    sink: &Sink,
    tick: Duration,
) {
    let pace = conditions::Pace::new(tick);
    let mut pause = tick;
    loop {
        tokio::time::sleep(pause).await;
        let started = pace.start();
        let found = conditions::lock(monitor).tick(sink.now_ms());
        progress.violations(&found);
        progress.update(&conditions::lock(monitor));
        pause = pace.pause_after(started);
    }
}

/// Puts the fleet's `serverLabels` on Servers as they appear.
fn labeler(
    scenario: &Scenario,
    client: kube::Client,
    monitor: Arc<Mutex<Monitor>>,
) -> tokio::task::JoinHandle<()> {
    let fleet = scenario.fleet.clone();
    tokio::spawn(async move {
        if fleet.server_labels.is_empty() {
            return;
        }
        let api = kube::Api::<metal_api::Server>::all(client);
        loop {
            let missing: Vec<(String, std::collections::BTreeMap<String, String>)> =
                conditions::lock(&monitor)
                    .world()
                    .servers
                    .values()
                    .filter_map(|s| {
                        let want = fleet.labels_for(&s.name);
                        let lacking = want.iter().any(|(k, v)| s.labels.get(k) != Some(v));
                        lacking.then(|| (s.name.clone(), want))
                    })
                    .collect();
            for (name, labels) in missing {
                let patch =
                    kube::api::Patch::Merge(serde_json::json!({"metadata": {"labels": labels}}));
                if let Err(e) = api
                    .patch(&name, &kube::api::PatchParams::default(), &patch)
                    .await
                {
                    tracing::warn!(server = name, error = %e, "labelling failed; retrying");
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
}
