//! [`Recent`]: an async result shared by concurrent callers and reused while young.

use std::fmt;
use std::future::Future;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};

/// Keeps the last result of an expensive async check (a `SELECT 1`, a queue count) so that a
/// health endpoint probed every second, or by many clients at once, runs it at most once per
/// `max_age`: callers that arrive while a check runs wait for that same check instead of starting
/// their own, and callers that arrive within `max_age` after it finished get its result.
///
/// Runtime-agnostic (a shared boxed future); a caller that gives up (its request is cancelled)
/// does not cancel the check for the others.
pub struct Recent<T: Clone> {
    max_age: Duration,
    slot: Mutex<Slot<T>>,
}

enum Slot<T: Clone> {
    Empty,
    Running(Shared<BoxFuture<'static, T>>),
    Done(Instant, T),
}

impl<T: Clone> fmt::Debug for Recent<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Recent").field("max_age", &self.max_age).finish_non_exhaustive()
    }
}

impl<T: Clone + Send + Sync + 'static> Recent<T> {
    /// Nothing cached yet; results are reused for `max_age`.
    pub fn new(max_age: Duration) -> Self {
        Self { max_age, slot: Mutex::new(Slot::Empty) }
    }

    /// The cached result if younger than `max_age`, else the result of the check running now,
    /// else the result of a new check made by `check`. Returns the value and its age when it was
    /// handed out (zero for a fresh check).
    pub async fn get(&self, check: impl FnOnce() -> BoxFuture<'static, T>) -> (T, Duration) {
        let running = {
            let mut slot = self.slot.lock().unwrap_or_else(PoisonError::into_inner);
            match &*slot {
                Slot::Done(at, value) if at.elapsed() < self.max_age => return (value.clone(), at.elapsed()),
                Slot::Running(running) => running.clone(),
                _ => {
                    let running = check().shared();
                    *slot = Slot::Running(running.clone());
                    running
                }
            }
        };
        let value = running.clone().await;
        let mut slot = self.slot.lock().unwrap_or_else(PoisonError::into_inner);
        if matches!(&*slot, Slot::Running(current) if current.ptr_eq(&running)) {
            *slot = Slot::Done(Instant::now(), value.clone());
        }
        (value, Duration::ZERO)
    }
}

/// Boxes a future for [`Recent::get`].
pub fn boxed<T>(future: impl Future<Output = T> + Send + 'static) -> BoxFuture<'static, T> {
    future.boxed()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    use futures_util::future::join_all;

    use super::*;

    fn counting(calls: &Arc<AtomicU32>) -> impl FnOnce() -> BoxFuture<'static, u32> + use<> {
        let calls = calls.clone();
        move || {
            boxed(async move {
                // Yield once so that concurrent callers find the check running.
                let mut yielded = false;
                std::future::poll_fn(|cx| {
                    if yielded {
                        std::task::Poll::Ready(())
                    } else {
                        yielded = true;
                        cx.waker().wake_by_ref();
                        std::task::Poll::Pending
                    }
                })
                .await;
                calls.fetch_add(1, Ordering::SeqCst) + 1
            })
        }
    }

    #[test]
    fn concurrent_callers_share_one_check_and_young_results_are_reused() {
        let recent = Recent::new(Duration::from_secs(3_600));
        let calls = Arc::new(AtomicU32::new(0));
        let results = futures_executor_block_on(join_all((0..5).map(|_| recent.get(counting(&calls)))));
        assert!(results.iter().all(|(value, _)| *value == 1), "{results:?}");
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        let (again, _) = futures_executor_block_on(recent.get(counting(&calls)));
        assert_eq!(again, 1, "reused");
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn old_results_are_checked_again() {
        let recent = Recent::new(Duration::ZERO);
        let calls = Arc::new(AtomicU32::new(0));
        assert_eq!(futures_executor_block_on(recent.get(counting(&calls))).0, 1);
        assert_eq!(futures_executor_block_on(recent.get(counting(&calls))).0, 2);
    }

    /// A minimal executor: polls on this thread until ready (the futures above wake themselves).
    fn futures_executor_block_on<F: Future>(future: F) -> F::Output {
        let mut future = std::pin::pin!(future);
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        loop {
            if let std::task::Poll::Ready(value) = future.as_mut().poll(&mut cx) {
                return value;
            }
        }
    }
}
