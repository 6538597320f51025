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

/// Whether `id` is a request id as the HTTP layer accepts one from a client (1 to 128 characters of ASCII
/// letters, digits, `-`, `_`, `.` and `:`): safe to put into a header or a log line as it is.
pub fn is_sane(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
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

    #[test]
    fn sane_ids_are_short_printable_words() {
        for id in ["abc-123", "0193a5c2-7f1e-7b3a-9c1d-2e4f6a8b0c1d", "trace:span.1_x"] {
            assert!(is_sane(id), "{id}");
        }
        for id in ["", "a b", "a\r\nBcc: x@y", "ü", &"x".repeat(129)] {
            assert!(!is_sane(id), "{id:?}");
        }
    }
}
