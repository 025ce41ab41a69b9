//! Claim bindings this process has half written: the Server's `spec.serverClaimRef` is set, the
//! claim's `spec.serverRef` not yet. Shared through the context so a claim reconcile that reads a
//! stale claim finds its Server instead of binding a second one.

use kube::ResourceExt as _;
use metal_api::ServerClaim;

/// Servers this process has taken for a claim whose own `spec.serverRef` patch is not written
/// yet (keyed by claim UID). Closes the window between the two patches of a binding.
#[derive(Default)]
pub struct BindingsInFlight(std::sync::Mutex<std::collections::HashMap<String, String>>);

impl BindingsInFlight {
    fn key(claim: &ServerClaim) -> String {
        claim.metadata.uid.clone().unwrap_or_else(|| {
            format!(
                "{}/{}",
                claim.namespace().unwrap_or_default(),
                claim.name_any()
            )
        })
    }

    pub(crate) fn record(&self, claim: &ServerClaim, server: String) {
        self.lock().insert(Self::key(claim), server);
    }

    pub(crate) fn get(&self, claim: &ServerClaim) -> Option<String> {
        self.lock().get(&Self::key(claim)).cloned()
    }

    pub(crate) fn settled(&self, claim: &ServerClaim) {
        self.lock().remove(&Self::key(claim));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, String>> {
        // A poisoned map only ever holds complete entries: keep using it.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
