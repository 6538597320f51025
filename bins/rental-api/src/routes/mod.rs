//! HTTP handlers. Each parses its input, calls one service method and renders the answer.

pub mod analytics;
pub mod auth;
pub mod cache;
pub mod catalogue;
pub mod deposits;
pub mod health;
pub mod jobs;
pub mod monitoring;
pub mod payments;
pub mod payments_webhook;
pub mod rentals;
pub mod users;

use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::{ApiError, ApiResult};

/// A path id, or 400 `invalid_id` naming what it should have been.
pub(crate) fn parse_id(raw: &str, what: &str) -> ApiResult<Uuid> {
    raw.parse().map_err(|_| ApiError::bad_request("invalid_id", format!("`{raw}` is not a valid {what} id (UUID)")))
}

/// The JSON of a (possibly cached) page, handed to actix without copying: `Bytes::from_owner(PageJson(page))`.
/// The service encodes the page before handing it out, so its JSON is there.
pub(crate) struct PageJson<T>(pub(crate) std::sync::Arc<rental_service::EncodedPage<T>>);

impl<T: Serialize> AsRef<[u8]> for PageJson<T> {
    fn as_ref(&self) -> &[u8] {
        self.0.json().unwrap_or_default()
    }
}

/// A page of a list, as documented: `{items,total,page,per_page,pages}` for offset pagination,
/// `{items,next_cursor[,total]}` for keyset pagination. Handlers serialise the repository's `Listing`, which has
/// exactly this shape; this type only describes it in the OpenAPI document.
#[derive(Debug, Serialize, ToSchema)]
pub struct PageOf<T: ToSchema> {
    /// The rows.
    pub items: Vec<T>,
    /// All matches (offset pagination, or keyset with `include_total`).
    pub total: Option<u64>,
    /// Offset pagination: this page.
    pub page: Option<u64>,
    /// Offset pagination: page size.
    pub per_page: Option<u64>,
    /// Offset pagination: number of pages.
    pub pages: Option<u64>,
    /// Keyset pagination: cursor of the next page, `null` on the last.
    pub next_cursor: Option<String>,
}
