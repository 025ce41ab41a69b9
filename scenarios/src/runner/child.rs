//! A boot backend under test run as a child process with `KUBECONFIG` pointing at the run's API
//! server; restartable, and an exit the harness did not ask for is evidence.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context as _;
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;

use super::observe::Sink;
use crate::evidence::{ComponentEvent, Event};

pub struct ChildBackend {
    command: String,
    args: Vec<String>,
    kubeconfig: PathBuf,
    sink: Sink,
    stopping: Arc<AtomicBool>,
    waiter: Option<JoinHandle<()>>,
    kill: Option<tokio::sync::oneshot::Sender<()>>,
}

impl ChildBackend {
    pub fn start(
        command: &str,
        args: &[String],
        kubeconfig: PathBuf,
        sink: Sink,
    ) -> anyhow::Result<Self> {
        let mut backend = ChildBackend {
            command: command.to_string(),
            args: args.to_vec(),
            kubeconfig,
            sink,
            stopping: Arc::new(AtomicBool::new(false)),
            waiter: None,
            kill: None,
        };
        backend.spawn()?;
        Ok(backend)
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        let child: Child = Command::new(&self.command)
            .args(&self.args)
            .env("KUBECONFIG", &self.kubeconfig)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting backend command {:?}", self.command))?;
        self.stopping.store(false, Ordering::SeqCst);
        let (kill, killed) = tokio::sync::oneshot::channel();
        let (sink, stopping, name) = (
            self.sink.clone(),
            self.stopping.clone(),
            self.command.clone(),
        );
        self.kill = Some(kill);
        self.waiter = Some(tokio::spawn(async move {
            let mut child = child;
            let status = tokio::select! {
                status = child.wait() => status,
                _ = killed => {
                    let _ = child.kill().await;
                    child.wait().await
                }
            };
            let detail = match status {
                Ok(s) => s.to_string(),
                Err(e) => e.to_string(),
            };
            sink.send(Event::Component(ComponentEvent::Exited {
                component: format!("backend {name}"),
                expected: stopping.load(Ordering::SeqCst),
                detail,
            }));
        }));
        Ok(())
    }

    pub async fn stop(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        if let Some(kill) = self.kill.take() {
            let _ = kill.send(());
        }
        if let Some(waiter) = self.waiter.take() {
            let _ = waiter.await;
        }
    }

    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.stop().await;
        self.spawn()
    }
}
