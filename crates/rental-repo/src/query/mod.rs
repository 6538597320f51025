//! The query optimizer, generic over sea-orm entities: pagination, sorting and filtering validated against a
//! per-resource whitelist before any SQL is built; batch loading of a page's relations; chunked bulk insert.
//!
//! * A list request arrives as the raw query-string pairs. [`ListSpec::parse`] checks them against the
//!   resource's whitelist (plain names, no sea-orm types, so services can validate requests) and gives a
//!   [`ListQuery`]: the pagination style (offset or keyset), one sort field with a direction, typed filter
//!   values and the free-text search. Anything unknown, out of range, or a cursor of another list or sort order
//!   is an [`RepoError::InvalidQuery`] that names the parameter (a 400).
//! * [`ListColumns`] binds the whitelist to an entity's columns and [`ListColumns::fetch`] runs the query:
//!   a COUNT and the page (offset), or an optional COUNT and a seek on `(sort, key)` (keyset), answering a
//!   [`Listing`] of models with an opaque [`Cursor`] for the next keyset page.
//! * [`Batch`] loads the related rows of a whole page with one statement per relation, grouped by key.
//! * [`insert_chunked`] inserts any number of rows in multi-row INSERTs sized under the backend's
//!   bind-parameter limit, on a pool or inside the caller's transaction.
//!
//! sea-orm types appear in this module's API on purpose: it works on any entity. The repositories built on it
//! keep them out of their own records.

mod batch;
mod bulk;
mod paginate;

pub use batch::{Batch, KEYS_PER_STATEMENT};
pub use bulk::{
    MAX_ROWS_PER_INSERT, POSTGRES_MAX_BIND_PARAMS, SQLITE_MAX_BIND_PARAMS, insert_chunked, insert_chunked_by,
    max_bind_params, rows_per_insert,
};
pub use paginate::{FilterOp, ListColumns};

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{RepoError, RepoResult};

/// Default page size of offset pagination, unless a resource declares its own [`PageSizes`].
pub const OFFSET_DEFAULT_PER_PAGE: u64 = 20;
/// Default page size of keyset pagination, unless a resource declares its own [`PageSizes`].
pub const KEYSET_DEFAULT_LIMIT: u64 = 50;
/// Largest page of either style, unless a resource declares its own [`PageSizes`].
pub const MAX_PAGE_SIZE: u64 = 100;
/// Longest free-text search accepted.
pub const MAX_SEARCH_LEN: usize = 200;

/// How the kind of a filter's value is parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterKind {
    /// `true` or `false`.
    Bool,
    /// A timestamp (RFC 3339) or a date (`2026-11-22`, meaning its midnight UTC).
    DateTime,
    /// One of a fixed set of words.
    OneOf(&'static [&'static str]),
    /// A UUID (an id of another resource).
    Uuid,
    /// A whole number from 0 to `i64::MAX` (amounts in minor units, counts).
    Integer,
    /// A name from an open set (a job kind such as `mail.send`): 1 to [`MAX_NAME_LEN`] ASCII letters, digits,
    /// `.`, `_` and `-`, matched exactly.
    Name,
}

/// Longest value of a [`FilterKind::Name`] filter.
pub const MAX_NAME_LEN: usize = 64;

/// A typed filter value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FilterValue {
    /// From [`FilterKind::Bool`].
    Bool(bool),
    /// From [`FilterKind::DateTime`].
    DateTime(DateTime<Utc>),
    /// From [`FilterKind::OneOf`].
    Word(&'static str),
    /// From [`FilterKind::Uuid`].
    Uuid(Uuid),
    /// From [`FilterKind::Integer`].
    Integer(i64),
    /// From [`FilterKind::Name`].
    Name(String),
}

/// The kind of value a sort field holds, which is what a keyset cursor must carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKind {
    /// A timestamp.
    DateTime,
    /// A string.
    Text,
    /// A whole number. Its cursor value travels as decimal text ([`CursorValue::Text`]), so the cursor format
    /// stays the same for every resource.
    Integer,
}

/// Sort direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Direction {
    /// Smallest first.
    #[serde(rename = "asc")]
    Asc,
    /// Largest first.
    #[serde(rename = "desc")]
    Desc,
}

/// Page sizes of a resource: the defaults of each pagination style and the largest page a client may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageSizes {
    /// `per_page` when offset pagination does not give one.
    pub offset_default: u64,
    /// `limit` when keyset pagination does not give one.
    pub keyset_default: u64,
    /// Largest `per_page` or `limit` accepted.
    pub max: u64,
}

impl PageSizes {
    /// 20 rows per offset page, 50 per keyset page, at most 100.
    pub const DEFAULT: PageSizes =
        PageSizes { offset_default: OFFSET_DEFAULT_PER_PAGE, keyset_default: KEYSET_DEFAULT_LIMIT, max: MAX_PAGE_SIZE };
}

/// The whitelist of one listable resource: which query parameters it accepts, as plain names. Bind it to an
/// entity's columns with [`ListColumns`].
#[derive(Debug, Clone)]
pub struct ListSpec {
    /// Name bound into cursors, so a cursor of another resource is refused.
    pub resource: &'static str,
    /// Filters the resource accepts.
    pub filters: &'static [(&'static str, FilterKind)],
    /// Fields it can be sorted by.
    pub sorts: &'static [(&'static str, SortKind)],
    /// The sort used when none is asked for.
    pub default_sort: (&'static str, Direction),
    /// Whether `q` (free-text search) is supported.
    pub searchable: bool,
    /// Default and largest page sizes.
    pub page_sizes: PageSizes,
}

/// Pagination of a list request.
#[derive(Debug, Clone, PartialEq)]
pub enum Pagination {
    /// `page` (1-based) and `per_page`.
    Offset {
        /// Page number, from 1.
        page: u64,
        /// Items per page.
        per_page: u64,
    },
    /// `cursor` and `limit`.
    Keyset {
        /// Where the previous page ended; `None` for the first page.
        after: Option<Cursor>,
        /// Items per page.
        limit: u64,
        /// Whether to also count all matching rows.
        include_total: bool,
    },
}

/// A validated list request.
#[derive(Debug, Clone, PartialEq)]
pub struct ListQuery {
    /// Offset or keyset pagination.
    pub pagination: Pagination,
    /// Field to sort by (from the whitelist).
    pub sort: &'static str,
    /// Direction of the sort.
    pub direction: Direction,
    /// Typed filters, keyed by their whitelisted name.
    pub filters: BTreeMap<&'static str, FilterValue>,
    /// Free-text search, lower-cased and trimmed.
    pub search: Option<String>,
}

impl ListQuery {
    /// The value of a boolean filter, if given.
    pub fn bool_filter(&self, name: &str) -> Option<bool> {
        match self.filters.get(name) {
            Some(FilterValue::Bool(b)) => Some(*b),
            _ => None,
        }
    }

    /// The value of a timestamp filter, if given.
    pub fn datetime_filter(&self, name: &str) -> Option<DateTime<Utc>> {
        match self.filters.get(name) {
            Some(FilterValue::DateTime(t)) => Some(*t),
            _ => None,
        }
    }

    /// The value of a UUID filter, if given.
    pub fn uuid_filter(&self, name: &str) -> Option<Uuid> {
        match self.filters.get(name) {
            Some(FilterValue::Uuid(id)) => Some(*id),
            _ => None,
        }
    }

    /// The value of an integer filter, if given.
    pub fn integer_filter(&self, name: &str) -> Option<i64> {
        match self.filters.get(name) {
            Some(FilterValue::Integer(n)) => Some(*n),
            _ => None,
        }
    }

    /// The value of a name filter, if given.
    pub fn name_filter(&self, name: &str) -> Option<&str> {
        match self.filters.get(name) {
            Some(FilterValue::Name(value)) => Some(value),
            _ => None,
        }
    }

    /// The value of a word filter, if given.
    pub fn word_filter(&self, name: &str) -> Option<&'static str> {
        match self.filters.get(name) {
            Some(FilterValue::Word(w)) => Some(w),
            _ => None,
        }
    }
}

/// A page of offset pagination.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Page<T> {
    /// The rows of this page.
    pub items: Vec<T>,
    /// Rows matching the filters, on all pages.
    pub total: u64,
    /// This page's number, from 1.
    pub page: u64,
    /// Page size.
    pub per_page: u64,
    /// Number of pages (0 when nothing matches).
    pub pages: u64,
}

/// A page of keyset pagination.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeysetPage<T> {
    /// The rows of this page.
    pub items: Vec<T>,
    /// Opaque cursor of the next page, `None` on the last page.
    pub next_cursor: Option<String>,
    /// Rows matching the filters, when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
}

/// Either kind of page, as the pagination style of the request decides.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Listing<T> {
    /// Answer to offset pagination.
    Offset(Page<T>),
    /// Answer to keyset pagination.
    Keyset(KeysetPage<T>),
}

impl<T> Listing<T> {
    /// Converts every item, keeping the paging information.
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Listing<U> {
        match self {
            Listing::Offset(p) => Listing::Offset(Page {
                items: p.items.into_iter().map(f).collect(),
                total: p.total,
                page: p.page,
                per_page: p.per_page,
                pages: p.pages,
            }),
            Listing::Keyset(p) => Listing::Keyset(KeysetPage {
                items: p.items.into_iter().map(f).collect(),
                next_cursor: p.next_cursor,
                total: p.total,
            }),
        }
    }

    /// Converts every item with a conversion that may fail, keeping the paging information.
    ///
    /// # Errors
    /// The first error `f` returns.
    pub fn try_map<U, Err>(self, f: impl FnMut(T) -> Result<U, Err>) -> Result<Listing<U>, Err> {
        Ok(match self {
            Listing::Offset(p) => Listing::Offset(Page {
                items: p.items.into_iter().map(f).collect::<Result<_, _>>()?,
                total: p.total,
                page: p.page,
                per_page: p.per_page,
                pages: p.pages,
            }),
            Listing::Keyset(p) => Listing::Keyset(KeysetPage {
                items: p.items.into_iter().map(f).collect::<Result<_, _>>()?,
                next_cursor: p.next_cursor,
                total: p.total,
            }),
        })
    }

    /// The items of the page.
    pub fn items(&self) -> &[T] {
        match self {
            Listing::Offset(p) => &p.items,
            Listing::Keyset(p) => &p.items,
        }
    }
}

/// The value of the sort field where a keyset page ended.
///
/// Both kinds travel as JSON strings. A cursor read back always holds [`CursorValue::Text`] (the first
/// variant); [`ListSpec::parse`] turns it into a timestamp when the sort is one, so that a text column whose
/// values look like timestamps still pages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum CursorValue {
    /// A string.
    Text(String),
    /// A timestamp.
    DateTime(DateTime<Utc>),
}

/// Position after the last row of a keyset page: the sort field's value and the key that breaks ties.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cursor {
    /// Resource the cursor belongs to.
    #[serde(rename = "r")]
    pub resource: String,
    /// Sort field.
    #[serde(rename = "s")]
    pub sort: String,
    /// Sort direction.
    #[serde(rename = "d")]
    pub direction: Direction,
    /// Last value of the sort field.
    #[serde(rename = "v")]
    pub value: CursorValue,
    /// Last key (the tie-breaking column, usually the primary key) as text: a UUID or a whole number in decimal
    /// form, or the text itself.
    #[serde(rename = "i")]
    pub id: String,
}

impl Cursor {
    /// The opaque text form handed to clients.
    pub fn encode(&self) -> String {
        // Serialising a struct of plain fields cannot fail; an empty cursor would only end the listing early.
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).unwrap_or_default())
    }

    fn decode(raw: &str) -> RepoResult<Self> {
        let bad = || RepoError::invalid("cursor", "is not a cursor issued by this list");
        if raw.len() > 512 {
            return Err(bad());
        }
        let bytes = URL_SAFE_NO_PAD.decode(raw).map_err(|_| bad())?;
        serde_json::from_slice(&bytes).map_err(|_| bad())
    }
}

const RESERVED: [&str; 7] = ["page", "per_page", "cursor", "limit", "include_total", "sort", "q"];

impl ListSpec {
    /// Validates the raw query-string pairs of a list request.
    ///
    /// # Errors
    /// [`RepoError::InvalidQuery`] naming the first parameter that is unknown, repeated or out of range.
    pub fn parse(&self, params: &[(String, String)]) -> RepoResult<ListQuery> {
        let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
        for (key, value) in params {
            let known = RESERVED.contains(&key.as_str()) || self.filters.iter().any(|(name, _)| name == key);
            if !known {
                return Err(RepoError::invalid(key.clone(), "is not a filter of this list"));
            }
            if seen.insert(key, value).is_some() {
                return Err(RepoError::invalid(key.clone(), "is given more than once"));
            }
        }

        let (mut sort, mut direction) = match seen.get("sort") {
            None => self.default_sort,
            Some(raw) => {
                let (name, direction) = match raw.strip_prefix('-') {
                    Some(name) => (name, Direction::Desc),
                    None => (*raw, Direction::Asc),
                };
                let Some((name, _)) = self.sorts.iter().find(|(n, _)| *n == name) else {
                    let allowed: Vec<_> = self.sorts.iter().map(|(n, _)| *n).collect();
                    return Err(RepoError::invalid(
                        "sort",
                        format!("cannot sort by `{name}`; use one of {} (prefix - for descending)", allowed.join(", ")),
                    ));
                };
                (*name, direction)
            }
        };

        let mut filters = BTreeMap::new();
        for (name, kind) in self.filters {
            if let Some(raw) = seen.get(name) {
                filters.insert(*name, parse_filter(name, *kind, raw)?);
            }
        }

        let search = match seen.get("q") {
            None => None,
            Some(_) if !self.searchable => return Err(RepoError::invalid("q", "this list has no search")),
            Some(raw) => {
                let q = raw.trim().to_lowercase();
                if q.chars().count() > MAX_SEARCH_LEN {
                    return Err(RepoError::invalid("q", "must be at most 200 characters"));
                }
                (!q.is_empty()).then_some(q)
            }
        };

        // Keyset pagination takes precedence: with `cursor`, `limit` or `include_total`, `page` and `per_page`
        // are ignored (but still checked). OpenAPI cannot declare two parameters exclusive, so every combination
        // has a meaning.
        let page = match seen.get("page") {
            None => 1,
            Some(raw) => match raw.parse::<u64>() {
                Ok(p) if (1..=1_000_000_000).contains(&p) => p,
                _ => return Err(RepoError::invalid("page", "must be a whole number from 1")),
            },
        };
        let per_page =
            parse_size("per_page", seen.get("per_page").copied(), self.page_sizes.offset_default, self.page_sizes.max)?;
        let keyset_style =
            seen.contains_key("cursor") || seen.contains_key("limit") || seen.contains_key("include_total");
        let pagination = if keyset_style {
            let limit =
                parse_size("limit", seen.get("limit").copied(), self.page_sizes.keyset_default, self.page_sizes.max)?;
            let include_total = match seen.get("include_total") {
                None => true,
                Some(raw) => parse_bool("include_total", raw)?,
            };
            // An empty cursor starts at the first page. A cursor continues the listing it came from, in that
            // listing's order: its sort field and direction replace `sort`.
            let after = match seen.get("cursor").filter(|raw| !raw.is_empty()) {
                None => None,
                Some(raw) => {
                    let (cursor, cursor_sort) = self.check_cursor(Cursor::decode(raw)?)?;
                    (sort, direction) = (cursor_sort, cursor.direction);
                    Some(cursor)
                }
            };
            Pagination::Keyset { after, limit, include_total }
        } else {
            Pagination::Offset { page, per_page }
        };
        Ok(ListQuery { pagination, sort, direction, filters, search })
    }

    /// The cursor, checked against this list, with its sort field's whitelisted name.
    fn check_cursor(&self, cursor: Cursor) -> RepoResult<(Cursor, &'static str)> {
        let foreign = || RepoError::invalid("cursor", "belongs to another list");
        let Some((sort, kind)) = self.sorts.iter().find(|(n, _)| *n == cursor.sort) else {
            return Err(foreign());
        };
        if cursor.resource != self.resource {
            return Err(foreign());
        }
        let kind = Some(*kind);
        let value = match (kind, cursor.value) {
            (Some(SortKind::DateTime), CursorValue::Text(t)) => {
                t.parse::<DateTime<Utc>>().ok().map(CursorValue::DateTime)
            }
            (Some(SortKind::DateTime), value @ CursorValue::DateTime(_)) => Some(value),
            (Some(SortKind::Text), value @ CursorValue::Text(_)) => Some(value),
            (Some(SortKind::Integer), CursorValue::Text(t)) if t.parse::<i64>().is_ok() => Some(CursorValue::Text(t)),
            _ => None,
        };
        Ok((Cursor { value: value.ok_or_else(foreign)?, ..cursor }, sort))
    }

    /// Builds the cursor that follows a row whose sort field holds `value` and whose key is `id`.
    pub fn cursor_after(&self, query: &ListQuery, value: CursorValue, id: impl std::fmt::Display) -> String {
        Cursor {
            resource: self.resource.to_owned(),
            sort: query.sort.to_owned(),
            direction: query.direction,
            value,
            id: id.to_string(),
        }
        .encode()
    }
}

fn parse_size(field: &str, raw: Option<&str>, default: u64, max: u64) -> RepoResult<u64> {
    match raw {
        None => Ok(default),
        Some(raw) => match raw.parse::<u64>() {
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(RepoError::invalid(field, format!("must be a whole number from 1 to {max}"))),
        },
    }
}

fn parse_bool(field: &str, raw: &str) -> RepoResult<bool> {
    match raw {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(RepoError::invalid(field, "must be true or false")),
    }
}

fn parse_filter(name: &str, kind: FilterKind, raw: &str) -> RepoResult<FilterValue> {
    match kind {
        FilterKind::Bool => parse_bool(name, raw).map(FilterValue::Bool),
        FilterKind::DateTime => parse_datetime(raw)
            .map(FilterValue::DateTime)
            .ok_or_else(|| RepoError::invalid(name, "must be an RFC 3339 timestamp or a date (YYYY-MM-DD)")),
        FilterKind::OneOf(words) => words
            .iter()
            .find(|w| **w == raw)
            .map(|w| FilterValue::Word(w))
            .ok_or_else(|| RepoError::invalid(name, format!("must be one of {}", words.join(", ")))),
        FilterKind::Uuid => {
            raw.parse::<Uuid>().map(FilterValue::Uuid).map_err(|_| RepoError::invalid(name, "must be a UUID"))
        }
        FilterKind::Integer => match raw.parse::<i64>() {
            Ok(n) if n >= 0 => Ok(FilterValue::Integer(n)),
            _ => Err(RepoError::invalid(name, "must be a whole number from 0")),
        },
        FilterKind::Name => {
            let valid = !raw.is_empty()
                && raw.len() <= MAX_NAME_LEN
                && raw.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
            if valid {
                Ok(FilterValue::Name(raw.to_owned()))
            } else {
                Err(RepoError::invalid(
                    name,
                    format!("must be 1 to {MAX_NAME_LEN} ASCII letters, digits, '.', '_' or '-'"),
                ))
            }
        }
    }
}

fn parse_datetime(raw: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(raw) {
        return Some(t.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(raw, "%Y-%m-%d").ok()?.and_hms_opt(0, 0, 0).map(|t| t.and_utc())
}

/// Escapes `%`, `_` and the escape character itself for a `LIKE ... ESCAPE '\'` pattern.
pub fn like_contains(search: &str) -> String {
    let mut pattern = String::with_capacity(search.len() + 2);
    pattern.push('%');
    for c in search.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: ListSpec = ListSpec {
        resource: "things",
        filters: &[
            ("is_active", FilterKind::Bool),
            ("created_after", FilterKind::DateTime),
            ("role", FilterKind::OneOf(&["admin", "staff"])),
        ],
        sorts: &[("created_at", SortKind::DateTime), ("name", SortKind::Text)],
        default_sort: ("created_at", Direction::Desc),
        searchable: true,
        page_sizes: PageSizes::DEFAULT,
    };

    fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    fn field_of(err: RepoError) -> String {
        match err {
            RepoError::InvalidQuery { field, .. } => field,
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn defaults_are_offset_page_one_of_twenty() {
        let q = SPEC.parse(&[]).unwrap();
        assert_eq!(q.pagination, Pagination::Offset { page: 1, per_page: 20 });
        assert_eq!((q.sort, q.direction), ("created_at", Direction::Desc));
    }

    #[test]
    fn keyset_defaults_to_fifty_with_total() {
        let q = SPEC.parse(&params(&[("limit", "50")])).unwrap();
        assert_eq!(q.pagination, Pagination::Keyset { after: None, limit: 50, include_total: true });
        let q = SPEC.parse(&params(&[("include_total", "false")])).unwrap();
        assert_eq!(q.pagination, Pagination::Keyset { after: None, limit: 50, include_total: false });
    }

    #[test]
    fn out_of_range_pages_are_refused() {
        for (k, v) in [("page", "0"), ("per_page", "1000000000"), ("per_page", "0"), ("limit", "101"), ("page", "x")] {
            assert_eq!(field_of(SPEC.parse(&params(&[(k, v)])).unwrap_err()), k);
        }
    }

    #[test]
    fn unknown_filters_and_sorts_are_named() {
        assert_eq!(field_of(SPEC.parse(&params(&[("password_hash", "x")])).unwrap_err()), "password_hash");
        let err = SPEC.parse(&params(&[("sort", "-password_hash")])).unwrap_err();
        assert!(err.to_string().contains("password_hash"), "{err}");
        assert_eq!(field_of(SPEC.parse(&params(&[("role", "root")])).unwrap_err()), "role");
        assert_eq!(field_of(SPEC.parse(&params(&[("is_active", "yes")])).unwrap_err()), "is_active");
        assert_eq!(field_of(SPEC.parse(&params(&[("is_active", "1"), ("is_active", "0")])).unwrap_err()), "is_active");
    }

    #[test]
    fn filters_are_typed() {
        let q = SPEC
            .parse(&params(&[
                ("is_active", "true"),
                ("created_after", "2026-01-02"),
                ("role", "staff"),
                ("q", " Ada "),
            ]))
            .unwrap();
        assert_eq!(q.bool_filter("is_active"), Some(true));
        assert_eq!(q.datetime_filter("created_after").unwrap().to_rfc3339(), "2026-01-02T00:00:00+00:00");
        assert_eq!(q.word_filter("role"), Some("staff"));
        assert_eq!(q.search.as_deref(), Some("ada"));
    }

    #[test]
    fn cursors_round_trip_and_foreign_ones_are_refused() {
        let q = SPEC.parse(&params(&[("sort", "name"), ("limit", "10")])).unwrap();
        let id = Uuid::now_v7();
        let cursor = SPEC.cursor_after(&q, CursorValue::Text("m".into()), id);
        let next = SPEC.parse(&params(&[("sort", "name"), ("cursor", &cursor)])).unwrap();
        let Pagination::Keyset { after: Some(after), .. } = next.pagination else { panic!("no cursor") };
        assert_eq!(after.id, id.to_string());

        // A cursor keeps the order of the listing it came from, whatever `sort` says; an empty one starts over.
        let resorted = SPEC.parse(&params(&[("sort", "-created_at"), ("cursor", &cursor)])).unwrap();
        assert_eq!((resorted.sort, resorted.direction), ("name", Direction::Asc));
        let first = SPEC.parse(&params(&[("sort", "-name"), ("cursor", "")])).unwrap();
        assert!(matches!(first.pagination, Pagination::Keyset { after: None, .. }));
        assert_eq!((first.sort, first.direction), ("name", Direction::Desc));

        // Another resource, or forged bytes.
        let other = ListSpec { resource: "others", ..SPEC };
        assert_eq!(field_of(other.parse(&params(&[("sort", "name"), ("cursor", &cursor)])).unwrap_err()), "cursor");
        for forged in ["garbage!", "e30", &"A".repeat(600)] {
            assert_eq!(field_of(SPEC.parse(&params(&[("cursor", forged)])).unwrap_err()), "cursor");
        }
        // Keyset parameters take precedence over page/per_page, which are then ignored.
        for mixed in [&[("cursor", cursor.as_str()), ("page", "2")][..], &[("limit", "5"), ("per_page", "7")]] {
            let q = SPEC.parse(&params(mixed)).unwrap();
            assert!(matches!(q.pagination, Pagination::Keyset { .. }), "{mixed:?}");
        }
        // Ignored, but not unchecked: a bad value is still a 400.
        assert_eq!(field_of(SPEC.parse(&params(&[("limit", "5"), ("page", "0")])).unwrap_err()), "page");
    }

    #[test]
    fn uuid_and_integer_filters_are_typed() {
        const TYPED: ListSpec = ListSpec {
            resource: "typed",
            filters: &[("category", FilterKind::Uuid), ("min_price", FilterKind::Integer)],
            sorts: &[("price", SortKind::Integer)],
            default_sort: ("price", Direction::Asc),
            searchable: false,
            page_sizes: PageSizes::DEFAULT,
        };
        let id = Uuid::now_v7();
        let q = TYPED.parse(&params(&[("category", &id.to_string()), ("min_price", "1500")])).unwrap();
        assert_eq!(q.uuid_filter("category"), Some(id));
        assert_eq!(q.integer_filter("min_price"), Some(1500));
        assert_eq!(q.uuid_filter("min_price"), None);
        for (k, v) in [("category", "not-a-uuid"), ("min_price", "-1"), ("min_price", "1.5"), ("min_price", "x")] {
            assert_eq!(field_of(TYPED.parse(&params(&[(k, v)])).unwrap_err()), k);
        }

        // Integer sorts carry their cursor value as decimal text; anything else is refused.
        let q = TYPED.parse(&params(&[("limit", "5")])).unwrap();
        let cursor = TYPED.cursor_after(&q, CursorValue::Text("1234".into()), id);
        assert!(TYPED.parse(&params(&[("cursor", &cursor)])).is_ok());
        let forged = TYPED.cursor_after(&q, CursorValue::Text("12x".into()), id);
        assert_eq!(field_of(TYPED.parse(&params(&[("cursor", &forged)])).unwrap_err()), "cursor");
    }

    #[test]
    fn text_that_looks_like_a_timestamp_pages_as_text_and_timestamps_as_timestamps() {
        let looks_like_time = "2026-01-02T03:04:05Z";
        let q = SPEC.parse(&params(&[("sort", "name"), ("limit", "10")])).unwrap();
        let cursor = SPEC.cursor_after(&q, CursorValue::Text(looks_like_time.into()), 1);
        let next = SPEC.parse(&params(&[("sort", "name"), ("cursor", &cursor)])).unwrap();
        let Pagination::Keyset { after: Some(after), .. } = next.pagination else { panic!("no cursor") };
        assert_eq!(after.value, CursorValue::Text(looks_like_time.into()));

        let q = SPEC.parse(&params(&[("sort", "created_at"), ("limit", "10")])).unwrap();
        let at = Utc::now();
        let cursor = SPEC.cursor_after(&q, CursorValue::DateTime(at), 1);
        let next = SPEC.parse(&params(&[("sort", "created_at"), ("cursor", &cursor)])).unwrap();
        let Pagination::Keyset { after: Some(after), .. } = next.pagination else { panic!("no cursor") };
        assert_eq!(after.value, CursorValue::DateTime(at));
        let not_a_time = SPEC.cursor_after(&q, CursorValue::Text("yesterday".into()), 1);
        assert_eq!(
            field_of(SPEC.parse(&params(&[("sort", "created_at"), ("cursor", &not_a_time)])).unwrap_err()),
            "cursor"
        );
    }

    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(like_contains("50%_a\\b"), "%50\\%\\_a\\\\b%");
    }
}
