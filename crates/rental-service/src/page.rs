//! A page of a listing that is served as JSON, encoded once and shared by every answer that serves it.

use std::sync::OnceLock;

use serde::Serialize;

use crate::{Listing, ServiceError, ServiceResult};

/// A page of a listing with its JSON encoded at most once (a few times at worst, when first readers race):
/// a cached page is then handed out as bytes, not serialised again per request.
#[derive(Debug)]
pub struct EncodedPage<T> {
    listing: Listing<T>,
    json: OnceLock<Box<[u8]>>,
}

impl<T: Serialize> EncodedPage<T> {
    /// The page, not encoded yet.
    pub fn new(listing: Listing<T>) -> Self {
        Self { listing, json: OnceLock::new() }
    }

    /// The page.
    pub fn listing(&self) -> &Listing<T> {
        &self.listing
    }

    /// The page's rows.
    pub fn items(&self) -> &[T] {
        self.listing.items()
    }

    /// The page as JSON: `{items, next_cursor[, total]}` for keyset pagination, `{items, total, page, per_page,
    /// pages}` for offset pagination.
    ///
    /// # Errors
    /// [`ServiceError::Internal`] if the page cannot be encoded (plain data always can).
    pub fn json(&self) -> ServiceResult<&[u8]> {
        if let Some(json) = self.json.get() {
            return Ok(json);
        }
        let encoded = serde_json::to_vec(&self.listing)
            .map_err(|err| ServiceError::Internal(format!("cannot encode a page: {err}")))?;
        Ok(self.json.get_or_init(|| encoded.into_boxed_slice()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Page;

    #[test]
    fn the_json_is_the_listings_and_encoded_once() {
        let page =
            EncodedPage::new(Listing::Offset(Page { items: vec![1, 2, 3], total: 3, page: 1, per_page: 50, pages: 1 }));
        let json = page.json().unwrap();
        assert_eq!(json, serde_json::to_vec(page.listing()).unwrap().as_slice());
        assert!(std::ptr::eq(json, page.json().unwrap()), "the second call returns the same bytes");
    }
}
