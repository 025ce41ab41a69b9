//! Kubeconfig mode: the backend's pods, observed through the Kubernetes API (`--backend-namespace` and
//! `--backend-pod-selector`), so that a crash — a container restart, a terminated container, a crash loop — is
//! evidence for SBC-RES-005 instead of a pass on nothing observed.

use anyhow::Context as _;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use std::collections::BTreeMap;
use std::sync::Mutex;

/// Restart counts per (pod uid, container) when the run started; pods first seen later start from zero.
type Baseline = BTreeMap<(String, String), i32>;

pub struct PodObserver {
    api: Api<Pod>,
    namespace: String,
    selector: String,
    baseline: Mutex<Baseline>,
}

impl PodObserver {
    /// Lists the backend's pods and records their restart counts; fails when no pod matches.
    pub async fn start(
        client: kube::Client,
        namespace: &str,
        selector: &str,
    ) -> anyhow::Result<PodObserver> {
        let api: Api<Pod> = Api::namespaced(client, namespace);
        let pods = api
            .list(&ListParams::default().labels(selector))
            .await
            .with_context(|| format!("listing the backend's pods in {namespace} ({selector})"))?;
        anyhow::ensure!(
            !pods.items.is_empty(),
            "no pod in namespace {namespace} matches --backend-pod-selector {selector:?}: is the backend running there?"
        );
        let baseline = pods
            .items
            .iter()
            .flat_map(restart_counts)
            .collect::<Baseline>();
        Ok(PodObserver {
            api,
            namespace: namespace.into(),
            selector: selector.into(),
            baseline: Mutex::new(baseline),
        })
    }

    /// Crashes since the run started, described; an API error is an error, never "no crash".
    pub async fn crashes(&self) -> anyhow::Result<Vec<String>> {
        let pods = self
            .api
            .list(&ListParams::default().labels(&self.selector))
            .await
            .with_context(|| {
                format!(
                    "listing the backend's pods in {} ({})",
                    self.namespace, self.selector
                )
            })?;
        let baseline = self.baseline.lock().unwrap_or_else(|p| p.into_inner());
        let mut found = crashes_since(&baseline, &pods.items);
        if pods.items.is_empty() {
            found.push(format!(
                "no pod in {} matches {:?}: the backend is not running",
                self.namespace, self.selector
            ));
        }
        Ok(found)
    }
}

fn restart_counts(pod: &Pod) -> Vec<((String, String), i32)> {
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    pod.status
        .iter()
        .flat_map(|s| s.container_statuses.iter().flatten())
        .map(|c| ((uid.clone(), c.name.clone()), c.restart_count))
        .collect()
}

/// What in `pods` shows a crash since `baseline`: more restarts than at the start (a pod first seen later
/// counts from zero), a terminated container, or one waiting in CrashLoopBackOff.
pub fn crashes_since(baseline: &Baseline, pods: &[Pod]) -> Vec<String> {
    let mut found = Vec::new();
    for pod in pods {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        if pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        for c in pod
            .status
            .iter()
            .flat_map(|s| s.container_statuses.iter().flatten())
        {
            let before = baseline
                .get(&(uid.clone(), c.name.clone()))
                .copied()
                .unwrap_or(0);
            let last = c
                .last_state
                .as_ref()
                .and_then(|s| s.terminated.as_ref())
                .map(|t| {
                    format!(
                        " (last exit: code {}, reason {})",
                        t.exit_code,
                        t.reason.as_deref().unwrap_or("none")
                    )
                })
                .unwrap_or_default();
            if c.restart_count > before {
                found.push(format!(
                    "pod {name} container {} restarted {} time(s) during the run{last}",
                    c.name,
                    c.restart_count - before
                ));
            }
            let state = c.state.as_ref();
            if let Some(t) = state.and_then(|s| s.terminated.as_ref()) {
                found.push(format!(
                    "pod {name} container {} terminated: code {}, reason {}",
                    c.name,
                    t.exit_code,
                    t.reason.as_deref().unwrap_or("none")
                ));
            }
            if let Some(w) = state.and_then(|s| s.waiting.as_ref())
                && w.reason.as_deref() == Some("CrashLoopBackOff")
            {
                found.push(format!(
                    "pod {name} container {} is in CrashLoopBackOff",
                    c.name
                ));
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, uid: &str, restarts: i32, state: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "uid": uid},
            "status": {"containerStatuses": [{
                "name": "manager", "image": "b:1", "imageID": "", "ready": true,
                "restartCount": restarts, "state": state,
                "lastState": {"terminated": {"exitCode": 2, "reason": "Error"}}
            }]}
        }))
        .unwrap()
    }

    #[test]
    fn restarts_terminations_and_crash_loops_are_crashes() {
        let running = json!({"running": {}});
        let baseline: Baseline = [(("u1".into(), "manager".into()), 3)].into();
        // Restarts before the run are not this run's crashes.
        assert!(crashes_since(&baseline, &[pod("b-1", "u1", 3, running.clone())]).is_empty());
        let found = crashes_since(&baseline, &[pod("b-1", "u1", 4, running.clone())]);
        assert_eq!(
            found,
            vec![
                "pod b-1 container manager restarted 1 time(s) during the run (last exit: code 2, reason Error)"
            ]
        );
        // A pod that appeared during the run (after a rollout restart) counts from zero.
        assert_eq!(
            crashes_since(&baseline, &[pod("b-2", "u2", 1, running)]).len(),
            1
        );
        let looping = json!({"waiting": {"reason": "CrashLoopBackOff"}});
        assert!(
            crashes_since(&baseline, &[pod("b-1", "u1", 3, looping)])[0]
                .contains("CrashLoopBackOff")
        );
        let dead = json!({"terminated": {"exitCode": 137, "reason": "OOMKilled"}});
        assert!(crashes_since(&baseline, &[pod("b-1", "u1", 3, dead)])[0].contains("OOMKilled"));
    }
}
