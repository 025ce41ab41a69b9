//! How the suite restarts and watches the backend under test: as a child process (`--embedded --backend-cmd`,
//! supervised by `testbed`, which also supervises scenarios' command backends) or in a cluster (the
//! `--backend-restart-cmd` hook and the pod observer).

use crate::target::BackendControl;
use futures::future::BoxFuture;
use tokio::process::Command;

/// The backend under test as a child process (`--embedded --backend-cmd`), supervised by `testbed`: its own
/// process group, output to a log file, every exit told apart as deliberate or a crash.
impl BackendControl for testbed::Supervisor {
    fn restart(&self) -> Option<BoxFuture<'_, anyhow::Result<()>>> {
        Some(Box::pin(
            async move { testbed::Supervisor::restart(self).await },
        ))
    }

    fn unexpected_exits(&self) -> BoxFuture<'_, anyhow::Result<Vec<String>>> {
        Box::pin(async move { Ok(self.crashes()) })
    }

    fn observes_process(&self) -> bool {
        true
    }

    fn log_tail(&self, lines: usize) -> Vec<String> {
        testbed::Supervisor::log_tail(self, lines)
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
