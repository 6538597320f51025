//! The query optimizer used as an embedding developer would: on entities defined only here (an integer-keyed
//! `authors` table and its `books`), created with sea-orm's schema builder in the test database. SQLite by
//! default, PostgreSQL when TEST_DATABASE_URL is set.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, TimeZone, Utc};
use rental_repo::query::{
    Batch, Cursor, CursorValue, Direction, FilterKind, FilterOp, ListColumns, ListSpec, Listing, PageSizes, Pagination,
    SortKind, insert_chunked, rows_per_insert,
};
use rental_repo::{Database, DatabaseConfig, RepoError};
use rental_testkit::TestDb;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
    Schema, TransactionTrait,
};
use uuid::Uuid;

mod author {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "qg_authors")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: i64,
        pub name: String,
        pub born_at: DateTimeUtc,
        pub rating: i32,
        pub active: bool,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

mod book {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "qg_books")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub author_id: i64,
        pub title: String,
        pub pages: i32,
        pub published_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

static AUTHOR_SPEC: ListSpec = ListSpec {
    resource: "authors",
    filters: &[
        ("active", FilterKind::Bool),
        ("min_rating", FilterKind::Integer),
        ("born_after", FilterKind::DateTime),
        ("born_before", FilterKind::DateTime),
    ],
    sorts: &[("born_at", SortKind::DateTime), ("name", SortKind::Text), ("rating", SortKind::Integer)],
    default_sort: ("born_at", Direction::Desc),
    searchable: true,
    page_sizes: PageSizes { offset_default: 10, keyset_default: 7, max: 25 },
};

static AUTHORS: ListColumns<author::Entity> = ListColumns {
    spec: &AUTHOR_SPEC,
    key: author::Column::Id,
    sorts: &[("born_at", author::Column::BornAt), ("name", author::Column::Name), ("rating", author::Column::Rating)],
    filters: &[
        ("active", author::Column::Active, FilterOp::Eq),
        ("min_rating", author::Column::Rating, FilterOp::Gte),
        ("born_after", author::Column::BornAt, FilterOp::Gte),
        ("born_before", author::Column::BornAt, FilterOp::Lt),
    ],
    search: &[author::Column::Name],
};

/// A second list over the same table, whose cursors the first must refuse.
static ARCHIVE_SPEC: ListSpec = ListSpec { resource: "archive", ..AUTHOR_SPEC };

static ARCHIVE: ListColumns<author::Entity> = ListColumns { spec: &ARCHIVE_SPEC, ..AUTHORS };

const AUTHOR_COUNT: i64 = 250;

async fn database(test_db: &TestDb) -> Database {
    let config = DatabaseConfig {
        max_connections: Some(5),
        min_connections: Some(0),
        ..DatabaseConfig::with_url(test_db.url())
    };
    let db = Database::connect(&config).await.unwrap();
    let conn = db.connection();
    let schema = Schema::new(conn.get_database_backend());
    conn.execute(&schema.create_table_from_entity(author::Entity)).await.unwrap();
    conn.execute(&schema.create_table_from_entity(book::Entity)).await.unwrap();
    db
}

fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

fn born(i: i64) -> DateTime<Utc> {
    // 40 distinct instants, so every sort has ties that only the key orders.
    Utc.with_ymd_and_hms(1900, 1, 1, 0, 0, 0).unwrap() + chrono::TimeDelta::days((i * 7) % 40)
}

/// Authors inserted in a scrambled id order, with repeated names, birth dates and ratings.
fn authors() -> Vec<author::Model> {
    (0..AUTHOR_COUNT)
        .map(|n| {
            let id = (n * 97) % AUTHOR_COUNT + 1;
            author::Model {
                id,
                name: format!("n{:02}", (id * 13) % 30),
                born_at: born(id),
                rating: i32::try_from((id * 31) % 11).unwrap(),
                active: id % 3 != 0,
            }
        })
        .collect()
}

async fn seed_authors(db: &Database) -> Vec<author::Model> {
    let rows = authors();
    let active = rows.iter().cloned().map(author::ActiveModel::from);
    assert_eq!(insert_chunked(db.connection(), active).await.unwrap(), 1);
    rows
}

fn sort_value(a: &author::Model, sort: &str) -> String {
    match sort {
        "born_at" => a.born_at.to_rfc3339(),
        "name" => a.name.clone(),
        _ => format!("{:03}", a.rating),
    }
}

fn expected_order(rows: &[author::Model], sort: &str, direction: Direction) -> Vec<i64> {
    let mut keyed: Vec<(String, i64)> = rows.iter().map(|a| (sort_value(a, sort), a.id)).collect();
    keyed.sort();
    if direction == Direction::Desc {
        keyed.reverse();
    }
    keyed.into_iter().map(|(_, id)| id).collect()
}

fn ids(listing: &Listing<author::Model>) -> Vec<i64> {
    listing.items().iter().map(|a| a.id).collect()
}

/// Which authors a filter keeps, as the test computes it.
type Rule = Box<dyn Fn(&author::Model) -> bool>;

fn invalid_field(err: RepoError) -> String {
    match err {
        RepoError::InvalidQuery { field, .. } => field,
        other => panic!("expected an invalid query, got {other:?}"),
    }
}

#[tokio::test]
async fn keyset_pages_walk_the_whole_table_for_every_sort_and_direction() {
    let test_db = TestDb::new().await;
    let db = database(&test_db).await;
    let rows = seed_authors(&db).await;
    let stats = db.statement_stats();

    for (sort, _) in AUTHOR_SPEC.sorts {
        for (direction, prefix) in [(Direction::Asc, ""), (Direction::Desc, "-")] {
            let sort_param = format!("{prefix}{sort}");
            let mut walked = Vec::new();
            let mut cursor: Option<String> = None;
            let mut pages = 0;
            loop {
                let mut pairs = vec![("sort", sort_param.as_str()), ("include_total", "false")];
                if let Some(c) = &cursor {
                    pairs.push(("cursor", c.as_str()));
                }
                let query = AUTHOR_SPEC.parse(&params(&pairs)).unwrap();
                let before = stats.executed();
                let page = AUTHORS.fetch(db.connection(), &query, author::Entity::find()).await.unwrap();
                assert_eq!(stats.executed() - before, 1, "a keyset page without total is one statement");
                let Listing::Keyset(page) = page else { panic!("keyset query answered with offset") };
                assert!(page.items.len() <= 7, "the declared keyset default is 7");
                assert_eq!(page.total, None);
                walked.extend(page.items.iter().map(|a| a.id));
                pages += 1;
                match page.next_cursor {
                    Some(next) => {
                        assert_eq!(page.items.len(), 7, "only the last page may be short");
                        cursor = Some(next);
                    }
                    None => break,
                }
            }
            assert_eq!(walked, expected_order(&rows, sort, direction), "{sort_param}: every row once, in order");
            assert_eq!(pages, (AUTHOR_COUNT as usize).div_ceil(7), "{sort_param}");
        }
    }

    // With the total: one COUNT more; filters narrow both, and the walk still covers exactly the matches.
    let matching: Vec<&author::Model> = rows.iter().filter(|a| a.active && a.rating >= 4).collect();
    let mut walked = HashSet::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut pairs = vec![("sort", "rating"), ("active", "true"), ("min_rating", "4"), ("limit", "25")];
        if let Some(c) = &cursor {
            pairs.push(("cursor", c.as_str()));
        }
        let query = AUTHOR_SPEC.parse(&params(&pairs)).unwrap();
        let before = stats.executed();
        let Listing::Keyset(page) = AUTHORS.fetch(db.connection(), &query, author::Entity::find()).await.unwrap()
        else {
            panic!("keyset query answered with offset")
        };
        assert_eq!(stats.executed() - before, 2, "count + page");
        assert_eq!(page.total, Some(matching.len() as u64));
        for a in &page.items {
            assert!(a.active && a.rating >= 4, "{a:?} does not match the filters");
            assert!(walked.insert(a.id), "{} repeated", a.id);
        }
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(walked.len(), matching.len());
}

#[tokio::test]
async fn offset_pages_filters_search_and_refusals() {
    let test_db = TestDb::new().await;
    let db = database(&test_db).await;
    let rows = seed_authors(&db).await;
    let stats = db.statement_stats();
    let conn = db.connection();

    // Offset pages in the default order (born_at, newest first), with the declared default size of 10.
    let expected = expected_order(&rows, "born_at", Direction::Desc);
    for page in [1_u64, 2, 25] {
        let query = AUTHOR_SPEC.parse(&params(&[("page", &page.to_string())])).unwrap();
        let before = stats.executed();
        let listing = AUTHORS.fetch(conn, &query, author::Entity::find()).await.unwrap();
        assert_eq!(stats.executed() - before, 2, "count + page");
        let start = usize::try_from((page - 1) * 10).unwrap();
        assert_eq!(ids(&listing), expected[start..start + 10]);
        let Listing::Offset(p) = listing else { panic!("offset query answered with keyset") };
        assert_eq!((p.total, p.per_page, p.pages), (250, 10, 25));
    }
    let past_the_end = AUTHOR_SPEC.parse(&params(&[("page", "26")])).unwrap();
    let before = stats.executed();
    let listing = AUTHORS.fetch(conn, &past_the_end, author::Entity::find()).await.unwrap();
    assert!(listing.items().is_empty());
    assert_eq!(stats.executed() - before, 1, "a page past the end costs the count only");

    // Every declared filter and the search, against the same rule applied in Rust.
    let cut = born(20);
    let cases: Vec<(Vec<(&str, String)>, Rule)> = vec![
        (vec![("active", "false".into())], Box::new(|a| !a.active)),
        (vec![("min_rating", "7".into())], Box::new(|a| a.rating >= 7)),
        (vec![("born_after", cut.to_rfc3339())], Box::new(move |a| a.born_at >= cut)),
        (vec![("born_before", cut.to_rfc3339())], Box::new(move |a| a.born_at < cut)),
        (vec![("q", "N1".into())], Box::new(|a| a.name.contains("n1"))),
        (
            vec![("q", "2".into()), ("active", "true".into()), ("min_rating", "3".into())],
            Box::new(|a| a.name.contains('2') && a.active && a.rating >= 3),
        ),
    ];
    for (pairs, rule) in cases {
        let mut pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
        pairs.push(("per_page", "25"));
        let query = AUTHOR_SPEC.parse(&params(&pairs)).unwrap();
        let want: Vec<i64> =
            expected.iter().copied().filter(|id| rows.iter().any(|a| a.id == *id && rule(a))).collect();
        assert!(!want.is_empty() && want.len() < rows.len(), "{pairs:?} must narrow the list");
        let Listing::Offset(p) = AUTHORS.fetch(conn, &query, author::Entity::find()).await.unwrap() else {
            panic!("offset query answered with keyset")
        };
        assert_eq!(p.total, want.len() as u64, "{pairs:?}");
        assert_eq!(p.items.iter().map(|a| a.id).collect::<Vec<_>>(), want[..want.len().min(25)], "{pairs:?}");
    }

    // A caller's own condition on the select combines with the declared ones.
    let query = AUTHOR_SPEC.parse(&params(&[("active", "true"), ("per_page", "25")])).unwrap();
    let select = author::Entity::find().filter(author::Column::Rating.eq(0));
    let Listing::Offset(p) = AUTHORS.fetch(conn, &query, select).await.unwrap() else { panic!("offset expected") };
    assert_eq!(p.total, rows.iter().filter(|a| a.active && a.rating == 0).count() as u64);

    // Unknown sorts and filters, sizes over the declared maximum: refused before any SQL.
    for (pairs, field) in [
        (vec![("sort", "-secret")], "sort"),
        (vec![("secret", "1")], "secret"),
        (vec![("min_rating", "-1")], "min_rating"),
        (vec![("per_page", "26")], "per_page"),
        (vec![("limit", "26")], "limit"),
    ] {
        assert_eq!(invalid_field(AUTHOR_SPEC.parse(&params(&pairs)).unwrap_err()), field, "{pairs:?}");
    }

    // Keyset parameters take precedence over page/per_page.
    let mixed = AUTHOR_SPEC.parse(&params(&[("page", "2"), ("limit", "5")])).unwrap();
    assert!(matches!(mixed.pagination, Pagination::Keyset { limit: 5, .. }));

    // Cursors: a real one works and keeps its listing's order whatever `sort` says; one of another list, or
    // forged, is a 400.
    let first = AUTHOR_SPEC.parse(&params(&[("sort", "rating"), ("limit", "5")])).unwrap();
    let Listing::Keyset(page) = AUTHORS.fetch(conn, &first, author::Entity::find()).await.unwrap() else {
        panic!("keyset expected")
    };
    let cursor = page.next_cursor.unwrap();
    assert!(AUTHOR_SPEC.parse(&params(&[("sort", "rating"), ("cursor", &cursor)])).is_ok());
    for sort in ["-rating", "name"] {
        let next = AUTHOR_SPEC.parse(&params(&[("sort", sort), ("cursor", &cursor)])).unwrap();
        assert_eq!((next.sort, next.direction), ("rating", Direction::Asc), "{sort}");
    }
    let err = ARCHIVE_SPEC.parse(&params(&[("sort", "rating"), ("cursor", &cursor)])).unwrap_err();
    assert_eq!(invalid_field(err), "cursor");
    let archive_query = ARCHIVE_SPEC.parse(&params(&[("sort", "rating"), ("limit", "5")])).unwrap();
    let Listing::Keyset(archive_page) = ARCHIVE.fetch(conn, &archive_query, author::Entity::find()).await.unwrap()
    else {
        panic!("keyset expected")
    };
    let archive_cursor = archive_page.next_cursor.unwrap();
    assert_ne!(archive_cursor, cursor, "cursors are bound to their list");
    let err = AUTHOR_SPEC.parse(&params(&[("sort", "rating"), ("cursor", &archive_cursor)])).unwrap_err();
    assert_eq!(invalid_field(err), "cursor");
    let restart = AUTHOR_SPEC.parse(&params(&[("sort", "rating"), ("cursor", "")])).unwrap();
    assert!(matches!(restart.pagination, Pagination::Keyset { after: None, .. }), "an empty cursor starts over");
    for garbage in ["!!!", "e30", &"A".repeat(600), &format!("{cursor}x")] {
        let err = AUTHOR_SPEC.parse(&params(&[("sort", "rating"), ("cursor", garbage)])).unwrap_err();
        assert_eq!(invalid_field(err), "cursor", "{garbage:?}");
    }
    let forged = |value: CursorValue, id: &str| {
        Cursor { resource: "authors".into(), sort: "rating".into(), direction: Direction::Asc, value, id: id.into() }
            .encode()
    };
    // A value of the wrong kind is caught by the whitelist; a key that is not the key column's type by the fetch.
    let wrong_value = forged(CursorValue::Text("seven".into()), "1");
    let err = AUTHOR_SPEC.parse(&params(&[("sort", "rating"), ("cursor", &wrong_value)])).unwrap_err();
    assert_eq!(invalid_field(err), "cursor");
    for bad_key in ["abc", "1.5", "99999999999999999999"] {
        let wrong_key = forged(CursorValue::Text("3".into()), bad_key);
        let query = AUTHOR_SPEC.parse(&params(&[("sort", "rating"), ("cursor", &wrong_key)])).unwrap();
        let before = stats.executed();
        let err = AUTHORS.fetch(conn, &query, author::Entity::find()).await.unwrap_err();
        assert_eq!(invalid_field(err), "cursor", "{bad_key}");
        assert_eq!(stats.executed() - before, 0, "refused before any statement");
    }
    // A well-formed cursor the client built itself positions the page like a real one.
    let hand_made = forged(CursorValue::Text("3".into()), "0");
    let query = AUTHOR_SPEC.parse(&params(&[("sort", "rating"), ("cursor", &hand_made), ("limit", "25")])).unwrap();
    let listing = AUTHORS.fetch(conn, &query, author::Entity::find()).await.unwrap();
    let order = expected_order(&rows, "rating", Direction::Asc);
    let skip = rows.iter().filter(|a| a.rating < 3).count();
    assert_eq!(ids(&listing), order[skip..skip + 25]);
}

fn books_of(authors: &[author::Model]) -> Vec<book::Model> {
    // Author n has n % 4 books: some none, some several.
    authors
        .iter()
        .flat_map(|a| {
            (0..a.id % 4).map(move |k| book::Model {
                id: Uuid::now_v7(),
                author_id: a.id,
                title: format!("b{:03}-{k}", 999 - a.id),
                pages: i32::try_from(100 + k).unwrap(),
                published_at: born(a.id),
            })
        })
        .collect()
}

#[tokio::test]
async fn relations_of_a_page_load_in_one_statement_each() {
    let test_db = TestDb::new().await;
    let db = database(&test_db).await;
    let rows = seed_authors(&db).await;
    let books = books_of(&rows);
    insert_chunked(db.connection(), books.iter().cloned().map(book::ActiveModel::from)).await.unwrap();
    let stats = db.statement_stats();
    let conn = db.connection();

    for per_page in ["1", "10", "25"] {
        let query = AUTHOR_SPEC.parse(&params(&[("per_page", per_page), ("sort", "name")])).unwrap();
        let before = stats.executed();
        let page = AUTHORS.fetch(conn, &query, author::Entity::find()).await.unwrap();
        let mut loaded = Batch::of(page.items(), |a| a.id)
            .many(conn, book::Entity::find().order_by_asc(book::Column::Title), book::Column::AuthorId)
            .await
            .unwrap();
        assert_eq!(stats.executed() - before, 3, "count + page + books of the page, whatever its size");
        let joined = page.map(|a| {
            let titles: Vec<String> = loaded.remove(&a.id).unwrap_or_default().into_iter().map(|b| b.title).collect();
            (a.id, titles)
        });
        assert_eq!(joined.items().len(), per_page.parse::<usize>().unwrap());
        for (author_id, titles) in joined.items() {
            let mut want: Vec<String> =
                books.iter().filter(|b| b.author_id == *author_id).map(|b| b.title.clone()).collect();
            want.sort();
            assert_eq!(titles, &want, "books of author {author_id}");
        }
        assert!(loaded.is_empty(), "no books of authors outside the page");
    }

    // The other direction: the author of each book of a page (keys repeat; each is asked for once).
    let some_books: Vec<book::Model> = books.iter().take(40).cloned().collect();
    let batch = Batch::of(&some_books, |b| b.author_id);
    assert!(batch.keys().len() < some_books.len(), "authors repeat among the books");
    let before = stats.executed();
    let authors = batch.one(conn, author::Entity::find(), author::Column::Id).await.unwrap();
    assert_eq!(stats.executed() - before, 1);
    for b in &some_books {
        assert_eq!(authors[&b.author_id], rows.iter().find(|a| a.id == b.author_id).unwrap().clone());
    }

    // An aggregate per key: the number of books and pages of every author of the batch, in one statement.
    let page_authors = Batch::new(rows.iter().take(30).map(|a| a.id));
    let before = stats.executed();
    let counts: Vec<(i64, i64, i64)> = page_authors
        .tuples(
            conn,
            book::Entity::find()
                .select_only()
                .column(book::Column::AuthorId)
                .column_as(Expr::col(book::Column::Id).count(), "books")
                .column_as(Expr::col(book::Column::Pages).sum().cast_as("bigint"), "pages")
                .group_by(book::Column::AuthorId),
            book::Column::AuthorId,
        )
        .await
        .unwrap();
    assert_eq!(stats.executed() - before, 1);
    let counts: HashMap<i64, (i64, i64)> = counts.into_iter().map(|(id, n, p)| (id, (n, p))).collect();
    for id in page_authors.keys() {
        let own: Vec<&book::Model> = books.iter().filter(|b| b.author_id == *id).collect();
        let want = (own.len() as i64, own.iter().map(|b| i64::from(b.pages)).sum::<i64>());
        assert_eq!(counts.get(id).copied().unwrap_or((0, 0)), want, "author {id}");
    }

    // An empty page asks nothing.
    let before = stats.executed();
    let none = Batch::<i64>::new([]).many(conn, book::Entity::find(), book::Column::AuthorId).await.unwrap();
    assert!(none.is_empty());
    assert_eq!(stats.executed() - before, 0);
}

#[tokio::test]
async fn bulk_insert_splits_under_the_bind_limit_inside_the_callers_transaction() {
    let test_db = TestDb::new().await;
    let db = database(&test_db).await;
    let conn = db.connection();
    let stats = db.statement_stats();
    seed_authors(&db).await;

    let per_statement = rows_per_insert::<book::Entity>(conn.get_database_backend());
    let limit = if test_db.is_postgres() { 65_535 } else { 32_766 };
    assert_eq!(per_statement, limit / 5, "5 columns per book");
    let count = 2 * per_statement + 11;
    let rows = |n: usize| {
        (0..n).map(|i| book::ActiveModel {
            id: Set(Uuid::now_v7()),
            author_id: Set(i64::try_from(i).unwrap() % AUTHOR_COUNT + 1),
            title: Set(format!("bulk {i:06}")),
            pages: Set(i32::try_from(i % 900).unwrap()),
            published_at: Set(born(i64::try_from(i).unwrap())),
        })
    };

    // Rolled back: nothing stays, which shows every chunk ran on the caller's transaction.
    let txn = conn.begin().await.unwrap();
    let before = stats.executed();
    assert_eq!(insert_chunked(&txn, rows(count)).await.unwrap(), 3);
    assert_eq!(stats.executed() - before, 3, "three multi-row INSERTs");
    assert_eq!(book::Entity::find().count(&txn).await.unwrap(), count as u64);
    txn.rollback().await.unwrap();
    assert_eq!(book::Entity::find().count(conn).await.unwrap(), 0);

    // Committed: every row, in the statements counted.
    let txn = conn.begin().await.unwrap();
    assert_eq!(insert_chunked(&txn, rows(count)).await.unwrap(), 3);
    txn.commit().await.unwrap();
    assert_eq!(book::Entity::find().count(conn).await.unwrap(), count as u64);
    let titles: HashSet<String> = book::Entity::find()
        .select_only()
        .column(book::Column::Title)
        .into_tuple()
        .all(conn)
        .await
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(titles.len(), count, "no row lost or doubled at the chunk edges");

    // Exactly one chunk is one statement; nothing is none.
    let before = stats.executed();
    assert_eq!(insert_chunked(conn, rows(per_statement)).await.unwrap(), 1);
    assert_eq!(insert_chunked(conn, rows(0)).await.unwrap(), 0);
    assert_eq!(stats.executed() - before, 1);
}
