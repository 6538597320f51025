//! The one implementation of offset and keyset paging, for any sea-orm entity: a [`ListColumns`] binds a
//! resource's [`ListSpec`] (the names a client may use) to the entity's columns, and
//! [`ListColumns::fetch`] runs a validated [`ListQuery`] with the declared filters, search and sort.

use chrono::Utc;
use sea_orm::sea_query::{ArrayType, Expr, ExprTrait, Func, LikeExpr};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, EntityTrait, FromQueryResult, ModelTrait, Order, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect, Select, Value,
};
use uuid::Uuid;

use crate::query::{
    CursorValue, Direction, FilterValue, KeysetPage, ListQuery, ListSpec, Listing, Page, Pagination, SortKind,
    like_contains,
};
use crate::{RepoError, RepoResult};

/// How a declared filter compares its column with the value given in the query string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterOp {
    /// `column = value`
    Eq,
    /// `column <> value`
    Ne,
    /// `column > value`
    Gt,
    /// `column >= value` (an inclusive lower bound such as `created_after`)
    Gte,
    /// `column < value` (an exclusive upper bound such as `created_before`)
    Lt,
    /// `column <= value`
    Lte,
}

/// Binds the whitelist of a resource ([`ListSpec`], plain names a client may use) to the columns of a sea-orm
/// entity `E`, so that [`ListColumns::fetch`] can run any [`ListQuery`] the spec accepted.
///
/// * `sorts` maps every sort name of the spec to its column. Sort columns must be `NOT NULL`; their cursor
///   values follow the spec's [`SortKind`] (timestamps, text, or whole numbers as decimal text).
/// * `key` is a unique column (the primary key) that breaks ties between equal sort values, so keyset pages
///   neither skip nor repeat rows. UUID, whole-number and text keys are supported.
/// * `filters` maps the spec's simple filters to `column <op> value`. A spec filter missing here (a subquery,
///   a window checked across two parameters) is the caller's to apply to the select it passes in.
/// * `search` lists the text columns `q` looks in: `LOWER(column) LIKE '%q%'` on any of them.
///
/// Declare it as a `static` next to the spec:
///
/// ```
/// use rental_repo::query::{Direction, FilterKind, FilterOp, ListColumns, ListSpec, PageSizes, SortKind};
///
/// mod book {
///     use sea_orm::entity::prelude::*;
///
///     #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
///     #[sea_orm(table_name = "books")]
///     pub struct Model {
///         #[sea_orm(primary_key)]
///         pub id: i64,
///         pub title: String,
///         pub pages: i32,
///         pub published_at: DateTimeUtc,
///     }
///
///     #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
///     pub enum Relation {}
///
///     impl ActiveModelBehavior for ActiveModel {}
/// }
///
/// static BOOK_SPEC: ListSpec = ListSpec {
///     resource: "books",
///     filters: &[("min_pages", FilterKind::Integer), ("published_after", FilterKind::DateTime)],
///     sorts: &[("published_at", SortKind::DateTime), ("title", SortKind::Text), ("pages", SortKind::Integer)],
///     default_sort: ("published_at", Direction::Desc),
///     searchable: true,
///     page_sizes: PageSizes::DEFAULT,
/// };
///
/// static BOOKS: ListColumns<book::Entity> = ListColumns {
///     spec: &BOOK_SPEC,
///     key: book::Column::Id,
///     sorts: &[
///         ("published_at", book::Column::PublishedAt),
///         ("title", book::Column::Title),
///         ("pages", book::Column::Pages),
///     ],
///     filters: &[
///         ("min_pages", book::Column::Pages, FilterOp::Gte),
///         ("published_after", book::Column::PublishedAt, FilterOp::Gte),
///     ],
///     search: &[book::Column::Title],
/// };
///
/// assert!(BOOKS.unbound_sorts().is_empty());
/// # async fn list(conn: &sea_orm::DatabaseConnection) -> rental_repo::RepoResult<()> {
/// use sea_orm::EntityTrait;
/// let params = vec![("sort".to_owned(), "-title".to_owned()), ("limit".to_owned(), "10".to_owned())];
/// let query = BOOK_SPEC.parse(&params)?; // an unknown name or a foreign cursor is RepoError::InvalidQuery
/// let page = BOOKS.fetch(conn, &query, book::Entity::find()).await?;
/// for book in page.items() {
///     println!("{}", book.title);
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct ListColumns<E: EntityTrait> {
    /// The names this binding gives columns to.
    pub spec: &'static ListSpec,
    /// The unique column that orders rows with equal sort values.
    pub key: E::Column,
    /// Column of every sort name of the spec.
    pub sorts: &'static [(&'static str, E::Column)],
    /// Column and comparison of the spec's simple filters.
    pub filters: &'static [(&'static str, E::Column, FilterOp)],
    /// Text columns searched by `q`.
    pub search: &'static [E::Column],
}

impl From<&FilterValue> for Value {
    fn from(value: &FilterValue) -> Self {
        match value {
            FilterValue::Bool(b) => Value::from(*b),
            FilterValue::DateTime(t) => Value::from(*t),
            FilterValue::Word(w) => Value::from(*w),
            FilterValue::Uuid(id) => Value::from(*id),
            FilterValue::Integer(n) => Value::from(*n),
            FilterValue::Name(name) => Value::from(name.as_str()),
        }
    }
}

impl<E> ListColumns<E>
where
    E: EntityTrait,
    E::Model: FromQueryResult + ModelTrait<Entity = E> + Send + Sync,
{
    /// Sort names of the spec that have no column here: a binding is complete when this is empty, which a
    /// unit test of the resource should assert.
    pub fn unbound_sorts(&self) -> Vec<&'static str> {
        self.spec.sorts.iter().map(|(name, _)| *name).filter(|name| self.sort_column(name).is_none()).collect()
    }

    fn sort_column(&self, name: &str) -> Option<E::Column> {
        self.sorts.iter().find(|(n, _)| *n == name).map(|(_, column)| *column)
    }

    /// The WHERE condition of the declared filters that `query` gives and of its search.
    pub fn condition(&self, query: &ListQuery) -> Condition {
        let mut condition = Condition::all();
        for (name, column, op) in self.filters {
            let Some(value) = query.filters.get(name) else { continue };
            let value = Value::from(value);
            condition = condition.add(match op {
                FilterOp::Eq => column.eq(value),
                FilterOp::Ne => column.ne(value),
                FilterOp::Gt => column.gt(value),
                FilterOp::Gte => column.gte(value),
                FilterOp::Lt => column.lt(value),
                FilterOp::Lte => column.lte(value),
            });
        }
        if let (Some(search), false) = (&query.search, self.search.is_empty()) {
            let pattern = like_contains(search);
            let mut any = Condition::any();
            for column in self.search {
                let lowered = Expr::from(Func::lower(Expr::col(*column)));
                any = any.add(lowered.like(LikeExpr::new(pattern.clone()).escape('\\')));
            }
            condition = condition.add(any);
        }
        condition
    }

    /// Runs `select` (the entity's rows, narrowed by any filter the caller applies itself) for the page `query`
    /// asks for, with the declared filters and search added. Offset paging costs a COUNT and the page; keyset
    /// paging an optional COUNT and a seek `(sort, key) > (v, k)` (`<` descending) for one row more than the
    /// page, which tells whether another page follows. The page's relations are the caller's to add, with
    /// [`Batch`](crate::query::Batch), and [`Listing::map`] turns the models into records.
    ///
    /// # Errors
    /// [`RepoError::InvalidQuery`] for a sort without a column or a cursor whose values do not fit the columns
    /// (a forged one); [`RepoError::Database`] when a statement fails.
    pub async fn fetch<C>(&self, conn: &C, query: &ListQuery, select: Select<E>) -> RepoResult<Listing<E::Model>>
    where
        C: ConnectionTrait,
    {
        let Some(sort) = self.sort_column(query.sort) else {
            return Err(RepoError::invalid("sort", format!("cannot sort by `{}`", query.sort)));
        };
        let filtered = select.filter(self.condition(query));
        let order = match query.direction {
            Direction::Asc => Order::Asc,
            Direction::Desc => Order::Desc,
        };
        let ordered = filtered.clone().order_by(sort, order.clone()).order_by(self.key, order);
        match &query.pagination {
            Pagination::Offset { page, per_page } => {
                let total = filtered.count(conn).await?;
                let offset = (page - 1).saturating_mul(*per_page);
                let items = if offset >= total {
                    Vec::new()
                } else {
                    ordered.offset(offset).limit(*per_page).all(conn).await?
                };
                let pages = total.div_ceil(*per_page);
                Ok(Listing::Offset(Page { items, total, page: *page, per_page: *per_page, pages }))
            }
            Pagination::Keyset { after, limit, include_total } => {
                let mut page = ordered;
                // The cursor's values are checked against the columns before any statement runs.
                if let Some(cursor) = after {
                    let forged = || RepoError::invalid("cursor", "is not a cursor of this list");
                    let value = seek_value(E::Model::get_value_type(sort), &cursor.value).ok_or_else(forged)?;
                    let key = text_value(E::Model::get_value_type(self.key), &cursor.id).ok_or_else(forged)?;
                    let left = Expr::tuple([Expr::col(sort), Expr::col(self.key)]);
                    let right = Expr::tuple([Expr::val(value), Expr::val(key)]);
                    page = page.filter(match query.direction {
                        Direction::Asc => left.gt(right),
                        Direction::Desc => left.lt(right),
                    });
                }
                let total = if *include_total { Some(filtered.count(conn).await?) } else { None };
                let mut items = page.limit(limit + 1).all(conn).await?;
                let has_more = items.len() as u64 > *limit;
                items.truncate(usize::try_from(*limit).unwrap_or(usize::MAX));
                let next_cursor = match (has_more, items.last()) {
                    (true, Some(last)) => Some(self.cursor_of(query, sort, last)?),
                    _ => None,
                };
                Ok(Listing::Keyset(KeysetPage { items, next_cursor, total }))
            }
        }
    }

    /// The cursor that follows `last`.
    fn cursor_of(&self, query: &ListQuery, sort: E::Column, last: &E::Model) -> RepoResult<String> {
        let kind = self.spec.sorts.iter().find(|(n, _)| *n == query.sort).map(|(_, kind)| *kind);
        let value = kind.and_then(|kind| cursor_value(kind, last.get(sort)));
        let id = key_text(last.get(self.key));
        match (value, id) {
            (Some(value), Some(id)) => Ok(self.spec.cursor_after(query, value, id)),
            // The binding declares a kind its column does not hold, or a key that is NULL: a bug of the
            // resource's declaration, not of the request.
            _ => Err(RepoError::from(sea_orm::DbErr::Type(format!(
                "list `{}`: sort `{}` or its key holds a value a cursor cannot carry",
                self.spec.resource, query.sort
            )))),
        }
    }
}

/// The cursor form of a sort column's value.
fn cursor_value(kind: SortKind, value: Value) -> Option<CursorValue> {
    match (kind, value) {
        (SortKind::DateTime, Value::ChronoDateTimeUtc(Some(t))) => Some(CursorValue::DateTime(t)),
        (SortKind::DateTime, Value::ChronoDateTimeWithTimeZone(Some(t))) => {
            Some(CursorValue::DateTime(t.with_timezone(&Utc)))
        }
        (SortKind::DateTime, Value::ChronoDateTime(Some(t))) => Some(CursorValue::DateTime(t.and_utc())),
        (SortKind::Text, Value::String(Some(s))) => Some(CursorValue::Text(s)),
        (SortKind::Integer, value) => integer_text(&value).map(CursorValue::Text),
        _ => None,
    }
}

/// The cursor form of a key column's value.
fn key_text(value: Value) -> Option<String> {
    match value {
        Value::Uuid(Some(id)) => Some(id.to_string()),
        Value::String(Some(s)) => Some(s),
        other => integer_text(&other),
    }
}

fn integer_text(value: &Value) -> Option<String> {
    match value {
        Value::TinyInt(Some(n)) => Some(n.to_string()),
        Value::SmallInt(Some(n)) => Some(n.to_string()),
        Value::Int(Some(n)) => Some(n.to_string()),
        Value::BigInt(Some(n)) => Some(n.to_string()),
        Value::TinyUnsigned(Some(n)) => Some(n.to_string()),
        Value::SmallUnsigned(Some(n)) => Some(n.to_string()),
        Value::Unsigned(Some(n)) => Some(n.to_string()),
        Value::BigUnsigned(Some(n)) => Some(n.to_string()),
        _ => None,
    }
}

/// A cursor's sort value as the column's own value type, so the seek binds exactly what the column holds.
fn seek_value(ty: ArrayType, value: &CursorValue) -> Option<Value> {
    match (ty, value) {
        (ArrayType::ChronoDateTimeUtc, CursorValue::DateTime(t)) => Some(Value::from(*t)),
        (ArrayType::ChronoDateTimeWithTimeZone, CursorValue::DateTime(t)) => Some(Value::from(t.fixed_offset())),
        (ArrayType::ChronoDateTime, CursorValue::DateTime(t)) => Some(Value::from(t.naive_utc())),
        (ty, CursorValue::Text(s)) => text_value(ty, s),
        _ => None,
    }
}

/// Text from a cursor as a value of the column type `ty`; `None` when it does not parse as one.
fn text_value(ty: ArrayType, s: &str) -> Option<Value> {
    Some(match ty {
        ArrayType::String => Value::from(s.to_owned()),
        ArrayType::Uuid => Value::from(s.parse::<Uuid>().ok()?),
        ArrayType::TinyInt => Value::from(s.parse::<i8>().ok()?),
        ArrayType::SmallInt => Value::from(s.parse::<i16>().ok()?),
        ArrayType::Int => Value::from(s.parse::<i32>().ok()?),
        ArrayType::BigInt => Value::from(s.parse::<i64>().ok()?),
        ArrayType::TinyUnsigned => Value::from(s.parse::<u8>().ok()?),
        ArrayType::SmallUnsigned => Value::from(s.parse::<u16>().ok()?),
        ArrayType::Unsigned => Value::from(s.parse::<u32>().ok()?),
        ArrayType::BigUnsigned => Value::from(s.parse::<u64>().ok()?),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn cursor_values_round_trip_through_the_column_type() {
        let t = Utc.with_ymd_and_hms(2026, 11, 28, 1, 2, 3).unwrap();
        let value = cursor_value(SortKind::DateTime, Value::from(t)).unwrap();
        assert_eq!(seek_value(ArrayType::ChronoDateTimeUtc, &value), Some(Value::from(t)));
        let value = cursor_value(SortKind::Integer, Value::from(42_i32)).unwrap();
        assert_eq!(seek_value(ArrayType::Int, &value), Some(Value::from(42_i32)));
        let id = Uuid::now_v7();
        let key = key_text(Value::from(id)).unwrap();
        assert_eq!(text_value(ArrayType::Uuid, &key), Some(Value::from(id)));
        assert_eq!(text_value(ArrayType::BigInt, &key_text(Value::from(7_i64)).unwrap()), Some(Value::from(7_i64)));
    }

    #[test]
    fn values_that_do_not_fit_the_column_are_refused() {
        assert_eq!(text_value(ArrayType::Uuid, "not-a-uuid"), None);
        assert_eq!(text_value(ArrayType::Int, "99999999999"), None);
        assert_eq!(seek_value(ArrayType::String, &CursorValue::DateTime(Utc::now())), None);
        assert_eq!(cursor_value(SortKind::Text, Value::from(1_i32)), None);
        assert_eq!(key_text(Value::Uuid(None)), None);
    }
}
