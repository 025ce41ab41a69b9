//! Plays the fault timeline against the running components.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::observe::Sink;
use super::stack::Stack;
use crate::evidence::{ComponentEvent, Event, HarnessEvent};
pub use crate::report::Injected;
use crate::spec::{Fault, FaultStep};

/// Applies every fault at its time and clears it after its duration; returns what was injected.
pub async fn play(
    faults: Vec<FaultStep>,
    stack: Arc<Mutex<Stack>>,
    sink: Sink,
    start: Instant,
    seed: u64,
) -> anyhow::Result<Vec<Injected>> {
    let mut steps = faults;
    steps.sort_by_key(|f| f.at);
    let mut injected = Vec::new();
    let mut clears = Vec::new();
    for (i, step) in steps.into_iter().enumerate() {
        tokio::time::sleep_until(start + step.at.0).await;
        let label = step.fault.label();
        sink.send(Event::Harness(HarnessEvent::FaultInjected {
            label: label.clone(),
        }));
        let undo = apply(&step.fault, &stack, &sink, seed.wrapping_add(i as u64))
            .await
            .with_context(|| format!("fault at {} ({label})", step.at))?;
        let until = step.duration.map(|d| start + step.at.0 + d.0);
        injected.push(Injected {
            at_ms: step.at.as_millis(),
            until_ms: step.duration.map(|d| step.at.as_millis() + d.as_millis()),
            label: label.clone(),
        });
        if let (Some(until), Some(undo)) = (until, undo) {
            let sink = sink.clone();
            clears.push(tokio::spawn(async move {
                tokio::time::sleep_until(until).await;
                undo();
                sink.send(Event::Harness(HarnessEvent::FaultCleared { label }));
            }));
        }
    }
    for c in clears {
        let _ = c.await;
    }
    Ok(injected)
}

type Undo = Box<dyn FnOnce() + Send>;

async fn apply(
    fault: &Fault,
    stack: &Arc<Mutex<Stack>>,
    sink: &Sink,
    seed: u64,
) -> anyhow::Result<Option<Undo>> {
    let restarted = |component: &str| {
        sink.send(Event::Component(ComponentEvent::Exited {
            component: component.into(),
            expected: true,
            detail: "restarted by the fault timeline".into(),
        }))
    };
    match fault {
        Fault::Bmc { bmcs, kind } => {
            let s = stack.lock().await;
            let all: Vec<String> = s.fleet().bmcs().into_iter().map(|b| b.name).collect();
            let spec = sim_bmc::fault::FaultSpec::new(kind.sim_bmc_kind());
            let mut handles = Vec::new();
            for name in bmcs.select(&all, seed) {
                let handle = s
                    .fleet()
                    .faults(&name)
                    .with_context(|| format!("no BMC {name} in the fleet"))?;
                handle.add(spec.clone());
                handles.push(handle);
            }
            Ok(Some(Box::new(move || {
                for h in handles {
                    let mut list = h.list();
                    if let Some(pos) = list.iter().position(|f| f == &spec) {
                        list.remove(pos);
                    }
                    h.set(list);
                }
            })))
        }
        Fault::BackendRestart => {
            restarted("backend");
            stack.lock().await.restart_backend().await?;
            Ok(None)
        }
        Fault::OperatorRestart => {
            restarted("operator");
            let mut s = stack.lock().await;
            s.stop_operator().await;
            s.start_operator().await?;
            Ok(None)
        }
        Fault::ApiServerRestart => {
            restarted("apiserver");
            stack.lock().await.restart_api().await?;
            Ok(None)
        }
        Fault::WatchDrop { expire } => {
            let faults = api_faults(stack).await?;
            if *expire {
                faults.expire_watches();
            } else {
                faults.drop_watches();
            }
            Ok(None)
        }
        Fault::ApiErrors { rate, code } => {
            let faults = api_faults(stack).await?;
            faults.set_error_rate(*rate, *code);
            let code = *code;
            Ok(Some(Box::new(move || faults.set_error_rate(0.0, code))))
        }
        Fault::ApiLatency { latency } => {
            let faults = api_faults(stack).await?;
            faults.set_latency(latency.0);
            Ok(Some(Box::new(move || faults.set_latency(Duration::ZERO))))
        }
    }
}

async fn api_faults(stack: &Arc<Mutex<Stack>>) -> anyhow::Result<apiserver::Faults> {
    stack
        .lock()
        .await
        .api_faults()
        .context("API faults need the embedded API server (not --kubeconfig)")
}
