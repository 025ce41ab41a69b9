//! Server shutdown as a state, not an event: a watch or connection that starts after shutdown began still sees it
//! (a notification sent before it subscribed cannot be missed).

use tokio::sync::watch;

/// Set once when the server begins to stop; cloning shares it.
#[derive(Clone)]
pub struct Shutdown {
    begun: watch::Sender<bool>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Shutdown {
            begun: watch::Sender::new(false),
        }
    }
}

impl Shutdown {
    /// Marks the server as stopping and wakes everything waiting in [`Shutdown::begun`].
    pub fn begin(&self) {
        self.begun.send_replace(true);
    }

    pub fn is_begun(&self) -> bool {
        *self.begun.borrow()
    }

    /// Resolves once shutdown has begun, at once if it already has.
    pub fn begun(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.begun.subscribe();
        async move {
            // An error means every handle to the sender is gone: nothing is left to serve either.
            let _ = rx.wait_for(|begun| *begun).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_waiter_created_after_begin_resolves_at_once() {
        let s = Shutdown::default();
        s.begin();
        let waiter = s.begun();
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .expect("shutdown that already began is seen by a later waiter");
        assert!(s.is_begun());
    }

    #[tokio::test]
    async fn a_waiter_created_before_begin_resolves_on_begin() {
        let s = Shutdown::default();
        let waiter = tokio::spawn(s.begun());
        assert!(!s.is_begun());
        s.begin();
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .expect("a waiting task wakes on begin")
            .unwrap();
    }
}
