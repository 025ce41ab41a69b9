//! Runs the backend under test as a child process (`--embedded --backend-cmd`): its own process group so a restart
//! kills wrappers like `cargo run` together with the real backend, output to a log file, and crash detection.
//! Also the kubeconfig-mode restart hook (`--backend-restart-cmd`).

use crate::target::BackendControl;
use anyhow::Context as _;
use futures::future::BoxFuture;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::process::{Child, Command};

/// How long a killed backend gets to exit before the restart gives up.
const EXIT_TIMEOUT: Duration = Duration::from_secs(10);

struct State {
    /// Process group ID of the running instance.
    pgid: Option<i32>,
    /// Bumped on every deliberate stop, so the monitor can tell a crash from a restart.
    generation: u64,
    exits: Vec<String>,
}

/// A supervised backend process.
pub struct ChildBackend {
    command: String,
    env: Vec<(String, String)>,
    log: PathBuf,
    state: Arc<Mutex<State>>,
    epoch: tokio::time::Instant,
}

impl ChildBackend {
    /// Starts `command` through `sh -c` with `env` added; stdout and stderr go to `log` (appended).
    pub async fn start(
        command: &str,
        env: Vec<(String, String)>,
        log: PathBuf,
    ) -> anyhow::Result<Arc<ChildBackend>> {
        let backend = Arc::new(ChildBackend {
            command: command.into(),
            env,
            log,
            state: Arc::new(Mutex::new(State {
                pgid: None,
                generation: 0,
                exits: Vec::new(),
            })),
            epoch: tokio::time::Instant::now(),
        });
        backend.spawn()?;
        Ok(backend)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn spawn(&self) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .with_context(|| format!("opening backend log {}", self.log.display()))?;
        let mut child: Child = Command::new("sh")
            .arg("-c")
            .arg(&self.command)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting backend: sh -c {:?}", self.command))?;
        let pid = child.id().map(|p| p as i32);
        let generation = {
            let mut s = self.lock();
            s.pgid = pid;
            s.generation
        };
        let state = self.state.clone();
        let epoch = self.epoch;
        tokio::spawn(async move {
            let status = child.wait().await;
            let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
            if s.generation == generation {
                let at = epoch.elapsed().as_secs_f64();
                let status = match status {
                    Ok(s) => s.to_string(),
                    Err(e) => format!("wait failed: {e}"),
                };
                s.exits
                    .push(format!("exited unexpectedly at {at:.1}s: {status}"));
                s.pgid = None;
            }
        });
        Ok(())
    }

    /// Kills the whole process group and waits until it is gone.
    pub async fn stop(&self) {
        let pgid = {
            let mut s = self.lock();
            s.generation += 1;
            s.pgid.take()
        };
        if let Some(pgid) = pgid {
            let group = nix::unistd::Pid::from_raw(-pgid);
            let _ = nix::sys::signal::kill(group, nix::sys::signal::Signal::SIGKILL);
            let until = tokio::time::Instant::now() + EXIT_TIMEOUT;
            // Polling the group with signal 0 until ESRCH: the only portable "is the group gone" query.
            while nix::sys::signal::kill(group, None).is_ok() && tokio::time::Instant::now() < until
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

impl ChildBackend {
    /// Crashes seen so far (exits the suite did not cause).
    pub fn exits(&self) -> Vec<String> {
        self.lock().exits.clone()
    }

    /// The last `lines` lines of the backend's log (bounded read of the file's tail).
    pub fn tail(&self, lines: usize) -> Vec<String> {
        log_tail(&self.log, lines)
    }
}

/// The last `lines` lines of a log file, reading at most its last 64 KiB.
pub fn log_tail(path: &std::path::Path, lines: usize) -> Vec<String> {
    use std::io::{Read as _, Seek as _, SeekFrom};
    const MAX_TAIL: u64 = 64 << 10;
    let Ok(mut file) = std::fs::File::open(path) else {
        return Vec::new();
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = file.seek(SeekFrom::Start(len.saturating_sub(MAX_TAIL)));
    let mut bytes = Vec::new();
    let _ = file.take(MAX_TAIL).read_to_end(&mut bytes);
    let text = String::from_utf8_lossy(&bytes);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..]
        .iter()
        .map(|l| l.to_string())
        .collect()
}

impl BackendControl for ChildBackend {
    fn restart(&self) -> Option<BoxFuture<'_, anyhow::Result<()>>> {
        Some(Box::pin(async move {
            self.stop().await;
            self.spawn()
        }))
    }

    fn unexpected_exits(&self) -> BoxFuture<'_, anyhow::Result<Vec<String>>> {
        Box::pin(async move { Ok(self.exits()) })
    }

    fn observes_process(&self) -> bool {
        true
    }

    fn log_tail(&self, lines: usize) -> Vec<String> {
        self.tail(lines)
    }
}

/// Kubeconfig mode: the backend runs in the cluster. The user may supply a command that restarts it (e.g.
/// `kubectl rollout restart …`) and where its pods run, so that crashes are observed through the API.
pub struct ClusterBackend {
    pub restart_command: Option<String>,
    pub pods: Option<crate::pods::PodObserver>,
}

impl BackendControl for ClusterBackend {
    fn restart(&self) -> Option<BoxFuture<'_, anyhow::Result<()>>> {
        let command = self.restart_command.clone()?;
        Some(Box::pin(async move {
            let status = Command::new("sh").arg("-c").arg(&command).status().await?;
            anyhow::ensure!(
                status.success(),
                "backend restart command {command:?} failed: {status}"
            );
            // The new pods a restart brings count restarts from zero (see PodObserver).
            Ok(())
        }))
    }

    fn unexpected_exits(&self) -> BoxFuture<'_, anyhow::Result<Vec<String>>> {
        Box::pin(async move {
            match &self.pods {
                Some(pods) => pods.crashes().await,
                None => Ok(Vec::new()),
            }
        })
    }

    fn observes_process(&self) -> bool {
        self.pods.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn restart_is_not_a_crash_but_an_exit_is() {
        let dir = tempfile::tempdir().unwrap();
        let b = ChildBackend::start("sleep 30", vec![], dir.path().join("log"))
            .await
            .unwrap();
        b.restart().unwrap().await.unwrap();
        assert!(b.exits().is_empty());
        b.stop().await;
        assert!(b.exits().is_empty());

        let crash = ChildBackend::start("exit 3", vec![], dir.path().join("log2"))
            .await
            .unwrap();
        let until = tokio::time::Instant::now() + Duration::from_secs(10);
        while crash.exits().is_empty() && tokio::time::Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(
            crash.exits()[0].contains("exit status: 3"),
            "{:?}",
            crash.exits()
        );
    }
}
