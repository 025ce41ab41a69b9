//! Coalescing concurrent work per key: when 1,000 SBCs name one image, its blobs are downloaded (and
//! verified) once, not 1,000 times at the same moment. Failures are not cached; finished keys are dropped.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;

pub struct SingleFlight<T> {
    inflight: Mutex<HashMap<String, Arc<OnceCell<T>>>>,
}

impl<T> Default for SingleFlight<T> {
    fn default() -> Self {
        Self {
            inflight: Mutex::new(HashMap::new()),
        }
    }
}

impl<T: Clone> SingleFlight<T> {
    /// Runs `work` for `key` unless a run for `key` is in flight, in which case its result is shared.
    pub async fn run<F, Fut, E>(&self, key: &str, work: F) -> Result<T, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let cell = self.lock().entry(key.to_string()).or_default().clone();
        let result = cell.get_or_try_init(work).await.cloned();
        let mut inflight = self.lock();
        if inflight.get(key).is_some_and(|c| Arc::ptr_eq(c, &cell)) {
            inflight.remove(key);
        }
        result
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<OnceCell<T>>>> {
        self.inflight.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn concurrent_runs_share_one_execution_and_errors_are_retried() {
        let flight = Arc::new(SingleFlight::<u32>::default());
        let calls = Arc::new(AtomicUsize::new(0));
        let runs = (0..10).map(|_| {
            let (flight, calls) = (flight.clone(), calls.clone());
            tokio::spawn(async move {
                flight
                    .run("k", || async {
                        calls.fetch_add(1, Ordering::SeqCst);
                        tokio::task::yield_now().await;
                        Ok::<_, ()>(7)
                    })
                    .await
            })
        });
        for run in futures::future::join_all(runs).await {
            assert_eq!(run.unwrap(), Ok(7));
        }
        assert!(calls.load(Ordering::SeqCst) < 10);
        assert_eq!(
            flight.run("e", || async { Err::<u32, _>("boom") }).await,
            Err("boom")
        );
        assert_eq!(flight.run("e", || async { Ok::<_, &str>(1) }).await, Ok(1));
    }
}
