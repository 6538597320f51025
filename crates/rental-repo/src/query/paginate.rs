//! The one implementation of offset and keyset paging: runs a validated [`ListQuery`] against a filtered
//! sea-orm select, and leaves loading the page's relations to the repository that owns them.

use sea_orm::sea_query::{Expr, ExprTrait, IntoColumnRef};
use sea_orm::{
    DatabaseConnection, EntityTrait, FromQueryResult, Order, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
    Select,
};
use uuid::Uuid;

use crate::RepoResult;
use crate::query::{CursorValue, Direction, KeysetPage, ListQuery, ListSpec, Listing, Page, Pagination};

/// A page of models, and what the answer says about paging.
#[derive(Debug)]
pub(crate) struct Fetched<M> {
    /// The rows of the page, in order.
    pub models: Vec<M>,
    shape: Shape,
}

#[derive(Debug)]
enum Shape {
    Offset { total: u64, page: u64, per_page: u64 },
    Keyset { next_cursor: Option<String>, total: Option<u64> },
}

impl<M> Fetched<M> {
    /// The page with its models replaced by `items` (the models joined with their relations).
    pub(crate) fn into_listing<T>(self, items: Vec<T>) -> Listing<T> {
        match self.shape {
            Shape::Offset { total, page, per_page } => {
                Listing::Offset(Page { items, total, page, per_page, pages: total.div_ceil(per_page) })
            }
            Shape::Keyset { next_cursor, total } => Listing::Keyset(KeysetPage { items, next_cursor, total }),
        }
    }
}

/// How a resource's sort column and cursors relate.
pub(crate) struct Keys<C, V, K> {
    /// The column `query.sort` names.
    pub sort: C,
    /// The primary key, which breaks ties.
    pub id: C,
    /// The value to seek after, from a cursor.
    pub seek_value: V,
    /// The cursor value and id of a row.
    pub cursor_of: K,
}

/// Runs `filtered` for the page `query` asks for: with offset paging a COUNT and the page; with keyset paging
/// an optional COUNT and a seek `(sort, id) > (v, id)` (or `<` descending) for one row more than the page, to
/// know whether another page follows.
pub(crate) async fn fetch_page<E, C, V, K>(
    conn: &DatabaseConnection,
    spec: &ListSpec,
    query: &ListQuery,
    filtered: Select<E>,
    keys: Keys<C, V, K>,
) -> RepoResult<Fetched<E::Model>>
where
    E: EntityTrait,
    E::Model: FromQueryResult + Send + Sync,
    C: sea_orm::ColumnTrait + IntoColumnRef + Copy,
    V: Fn(&CursorValue) -> RepoResult<Expr>,
    K: Fn(&E::Model) -> (CursorValue, Uuid),
{
    let order = match query.direction {
        Direction::Asc => Order::Asc,
        Direction::Desc => Order::Desc,
    };
    let ordered = filtered.clone().order_by(keys.sort, order.clone()).order_by(keys.id, order);
    match &query.pagination {
        Pagination::Offset { page, per_page } => {
            let total = filtered.count(conn).await?;
            let offset = (page - 1).saturating_mul(*per_page);
            let models =
                if offset >= total { Vec::new() } else { ordered.offset(offset).limit(*per_page).all(conn).await? };
            Ok(Fetched { models, shape: Shape::Offset { total, page: *page, per_page: *per_page } })
        }
        Pagination::Keyset { after, limit, include_total } => {
            let total = if *include_total { Some(filtered.count(conn).await?) } else { None };
            let mut page = ordered;
            if let Some(cursor) = after {
                let left = Expr::tuple([Expr::col(keys.sort), Expr::col(keys.id)]);
                let right = Expr::tuple([(keys.seek_value)(&cursor.value)?, Expr::val(cursor.id)]);
                page = page.filter(match query.direction {
                    Direction::Asc => left.gt(right),
                    Direction::Desc => left.lt(right),
                });
            }
            let mut models = page.limit(limit + 1).all(conn).await?;
            let has_more = models.len() as u64 > *limit;
            models.truncate(usize::try_from(*limit).unwrap_or(usize::MAX));
            let next_cursor = match (has_more, models.last()) {
                (true, Some(last)) => {
                    let (value, id) = (keys.cursor_of)(last);
                    Some(spec.cursor_after(query, value, id))
                }
                _ => None,
            };
            Ok(Fetched { models, shape: Shape::Keyset { next_cursor, total } })
        }
    }
}
