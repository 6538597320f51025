//! The request a piece of work belongs to, carried along without the services knowing HTTP.
//!
//! The HTTP layer runs each request inside [`scope`] with the request's id, and the worker runs each job inside
//! the scope of the request that enqueued it. Whatever is enqueued meanwhile through the [`crate::Outbox`] or
//! [`crate::JobService`] records [`current`], so a job, the jobs it enqueues in turn and the e-mail they send
//! can all be traced back to that request. Work started outside any scope (the scheduler's) has no request id.
//!
//! The id lives in a tokio task-local: it follows the future given to [`scope`], not tasks spawned from it.

use std::future::Future;

tokio::task_local! {
    static REQUEST_ID: Option<String>;
}

/// Runs `future` as part of request `request_id`: [`current`] answers it inside, at any depth of calls. `None`
/// runs it as part of no request, even inside another scope.
pub fn scope<F: Future>(request_id: Option<String>, future: F) -> impl Future<Output = F::Output> {
    REQUEST_ID.scope(request_id, future)
}

/// The id of the request the running code is part of, if any.
pub fn current() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok().flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_id_is_seen_inside_its_scope_only() {
        assert_eq!(current(), None);
        let inside = scope(Some("abc-123".into()), async {
            let nested = scope(None, async { current() }).await;
            (current(), nested)
        })
        .await;
        assert_eq!(inside, (Some("abc-123".to_owned()), None));
        assert_eq!(current(), None);
    }
}
