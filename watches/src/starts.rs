//! Reconciles started as tasks of their own, in a fixed order within each batch a controller releases.
//!
//! Why: kube-runtime calls a controller's reconciler in its scheduler's order and then polls the
//! reconciles from a `HashMap` (`FutureHashMap`); both orders follow a randomly seeded hash whenever
//! several objects fall due at once (its `pending` set, requeues that arrived in hash order). On one
//! thread and a virtual clock that order decides which reconcile writes first, so two runs of one
//! seed would differ. Here the reconciler only files its work under the object's key; one task
//! started with the first filing spawns everything filed until it runs, sorted by key, so the tasks
//! start — and, on a current-thread runtime, first run — in the same order every time.
//!
//! A concurrency limit is kept here too, not in kube-runtime: its limit holds objects back in that
//! hash-ordered set and releases them in its order. Here the started tasks wait for a permit first
//! come, first served (as controller-runtime's workers take a FIFO queue), and only then make their
//! work, so that it reads the object as it is when it runs.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use tokio::sync::{Semaphore, oneshot};
use tokio::task::{JoinError, JoinHandle};
use tokio_util::task::AbortOnDropHandle;

type Work<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// Work filed but not yet started, with where its task's handle goes.
struct Filed<T> {
    work: Work<T>,
    handle: oneshot::Sender<JoinHandle<T>>,
}

/// Starts each filed piece of work as a task; all filings made before the starter runs start
/// together, in key order (ties in filing order).
pub struct OrderedStarts<T> {
    filed: Arc<Mutex<BTreeMap<String, Vec<Filed<T>>>>>,
    /// At most this many pieces of work run at once (none: no limit).
    permits: Option<Arc<Semaphore>>,
}

impl<T> Clone for OrderedStarts<T> {
    fn clone(&self) -> Self {
        Self {
            filed: self.filed.clone(),
            permits: self.permits.clone(),
        }
    }
}

impl<T> Default for OrderedStarts<T> {
    fn default() -> Self {
        Self::limited(0)
    }
}

impl<T> OrderedStarts<T> {
    /// At most `limit` pieces of work run at once, the others wait in the order they started
    /// (0: no limit).
    pub fn limited(limit: usize) -> Self {
        Self {
            filed: Arc::default(),
            permits: (limit > 0).then(|| Arc::new(Semaphore::new(limit))),
        }
    }
}

impl<T: Send + 'static> OrderedStarts<T> {
    /// Files the work `make` makes under `key` and returns its outcome once it has run as a task
    /// of its own; `make` is called on that task once a permit is free. Dropping the returned
    /// future before the work starts means it never starts; dropping it after aborts the task.
    /// Must be called inside a tokio runtime.
    pub fn start<M, W>(
        &self,
        key: String,
        make: M,
    ) -> impl Future<Output = Result<T, JoinError>> + Send + 'static + use<T, M, W>
    where
        M: FnOnce() -> W + Send + 'static,
        W: Future<Output = T> + Send + 'static,
    {
        let permits = self.permits.clone();
        let work = async move {
            // The semaphore is never closed, so acquiring only waits.
            let _permit = match permits {
                Some(permits) => permits.acquire_owned().await.ok(),
                None => None,
            };
            make().await
        };
        let (handle, started) = oneshot::channel();
        let first = {
            let mut filed = self.filed.lock().unwrap_or_else(|p| p.into_inner());
            let first = filed.is_empty();
            filed.entry(key).or_default().push(Filed {
                work: Box::pin(work),
                handle,
            });
            first
        };
        if first {
            tokio::spawn(start_filed(self.filed.clone()));
        }
        async move {
            match started.await {
                Ok(task) => AbortOnDropHandle::new(task).await,
                // The starter went away with the runtime: nothing was started.
                Err(_) => std::future::pending().await,
            }
        }
    }
}

async fn start_filed<T: Send + 'static>(filed: Arc<Mutex<BTreeMap<String, Vec<Filed<T>>>>>) {
    let batch = std::mem::take(&mut *filed.lock().unwrap_or_else(|p| p.into_inner()));
    for Filed { work, handle } in batch.into_values().flatten() {
        if handle.is_closed() {
            continue; // its reconcile was dropped (shutdown) before it could start
        }
        if let Err(task) = handle.send(tokio::spawn(work)) {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn a_batch_starts_in_key_order_whatever_the_filing_order() {
        let starts = OrderedStarts::default();
        let order = Arc::new(Mutex::new(Vec::new()));
        let outcomes: Vec<_> = ["c", "a", "b"]
            .into_iter()
            .map(|key| {
                let order = order.clone();
                starts.start(key.to_owned(), move || async move {
                    order.lock().unwrap().push(key);
                    key.len()
                })
            })
            .collect();
        for outcome in outcomes {
            assert_eq!(outcome.await.unwrap(), 1);
        }
        assert_eq!(*order.lock().unwrap(), ["a", "b", "c"]);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn work_dropped_before_its_start_never_runs() {
        let starts = OrderedStarts::default();
        let ran = Arc::new(Mutex::new(false));
        let flag = ran.clone();
        drop(starts.start("x".into(), move || async move {
            *flag.lock().unwrap() = true;
        }));
        // A second filing runs after the first batch's starter: once it is done, so is the batch.
        starts.start("y".into(), || async {}).await.unwrap();
        assert!(!*ran.lock().unwrap());
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn a_limit_holds_the_rest_back_first_come_first_served() {
        let starts = OrderedStarts::limited(2);
        let running = Arc::new(Mutex::new((0usize, 0usize, Vec::new())));
        let outcomes: Vec<_> = ["d", "b", "a", "c"]
            .into_iter()
            .map(|key| {
                let running = running.clone();
                starts.start(key.to_owned(), move || async move {
                    {
                        let mut r = running.lock().unwrap();
                        r.0 += 1;
                        r.1 = r.1.max(r.0);
                        r.2.push(key);
                    }
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    running.lock().unwrap().0 -= 1;
                })
            })
            .collect();
        for outcome in outcomes {
            outcome.await.unwrap();
        }
        let r = running.lock().unwrap();
        assert_eq!(r.1, 2, "at most two at once");
        assert_eq!(r.2, ["a", "b", "c", "d"]);
    }
}
