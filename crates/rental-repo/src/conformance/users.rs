//! The contract of [`UserStore`] and [`RefreshTokenStore`].

use std::fmt::Debug;

use chrono::Duration;
use rental_domain::{Email, FullName, Role, UserId};
use uuid::Uuid;

use super::{now, ok};
use crate::query::{Listing, Pagination};
use crate::{
    Database, NewRefreshToken, NewUserRecord, RefreshTokenStore, RepoError, RepoResult, UserChanges, UserRecord,
    UserStore, user_list_spec,
};

fn email(raw: &str) -> Email {
    ok(Email::parse(raw), "e-mail")
}

fn new_user(address: &str, roles: &[Role]) -> NewUserRecord {
    NewUserRecord {
        email: email(address),
        full_name: ok(FullName::parse(&format!("User {address}")), "name"),
        password_hash: Some("$argon2id$fake".into()),
        is_active: true,
        is_superuser: false,
        roles: roles.to_vec(),
    }
}

fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

async fn create<U: UserStore>(db: &Database, users: &U, new: NewUserRecord) -> RepoResult<UserRecord> {
    db.write(async |uow| users.create(uow, new, now()).await).await
}

async fn bulk<U: UserStore>(db: &Database, users: &U, rows: Vec<NewUserRecord>) -> RepoResult<usize> {
    db.write(async |uow| users.bulk_create(uow, rows, now()).await).await
}

async fn update<U: UserStore>(db: &Database, users: &U, id: UserId, changes: UserChanges) -> RepoResult<UserRecord> {
    db.write(async |uow| users.update(uow, id, changes, now()).await).await
}

async fn list<U: UserStore>(users: &U, pairs: &[(&str, &str)]) -> Listing<UserRecord> {
    ok(users.list(&ok(user_list_spec().parse(&params(pairs)), "query")).await, "listing users")
}

fn total(listing: &Listing<UserRecord>) -> u64 {
    match listing {
        Listing::Offset(page) => page.total,
        Listing::Keyset(page) => page.total.unwrap_or_default(),
    }
}

fn refused<T: Debug>(result: RepoResult<T>, what: &str) -> RepoError {
    match result {
        Ok(value) => panic!("{what} must be refused, got {value:?}"),
        Err(err) => err,
    }
}

/// A user is created with sorted, distinct roles, found by id and by any spelling of the address, changed
/// (stamping `updated_at`), given new roles, and deleted; an unknown id is [`RepoError::NotFound`] for every
/// write.
pub async fn users_are_created_found_changed_and_deleted<U: UserStore>(db: &Database, users: &U) {
    let created = ok(create(db, users, new_user("Ada@Example.com", &[Role::Customer, Role::Staff])).await, "create");
    assert_eq!(created.email, "ada@example.com");
    assert_eq!(created.roles, vec![Role::Staff, Role::Customer], "roles sorted");
    let found = ok(users.find_by_email(&email("ADA@example.COM")).await, "find by e-mail");
    assert_eq!(found.as_ref(), Some(&created), "what create returns is what is stored");
    assert_eq!(ok(users.find(created.id).await, "find").as_ref(), Some(&created));

    let changes = UserChanges {
        full_name: Some(ok(FullName::parse("Ada L"), "name")),
        is_active: Some(false),
        ..UserChanges::default()
    };
    let changed = ok(update(db, users, created.id, changes).await, "update");
    assert_eq!((changed.full_name.as_str(), changed.is_active), ("Ada L", false));
    assert!(changed.updated_at >= created.updated_at);

    let roles = ok(
        db.write(async |uow| users.set_roles(uow, created.id, &[Role::Admin, Role::Admin], now()).await).await,
        "set roles",
    );
    assert_eq!(roles.roles, vec![Role::Admin], "roles without repeats");
    assert!(!ok(users.any_admin().await, "any admin"), "an inactive admin does not count");

    ok(db.write(async |uow| users.delete(uow, created.id).await).await, "delete");
    assert!(ok(users.find(created.id).await, "find").is_none());
    let unknown = UserId::new();
    let gone = db.write(async |uow| users.delete(uow, created.id).await).await;
    assert!(matches!(refused(gone, "deleting twice"), RepoError::NotFound));
    let err = refused(update(db, users, unknown, UserChanges::default()).await, "updating an unknown user");
    assert!(matches!(err, RepoError::NotFound), "{err:?}");
    let err = refused(
        db.write(async |uow| users.set_roles(uow, unknown, &[Role::Staff], now()).await).await,
        "roles of an unknown user",
    );
    assert!(matches!(err, RepoError::NotFound), "{err:?}");
}

/// Two users cannot share an address, whether created or changed to it.
pub async fn addresses_are_unique<U: UserStore>(db: &Database, users: &U) {
    ok(create(db, users, new_user("bob@example.com", &[])).await, "bob");
    let err = refused(create(db, users, new_user("BOB@example.com", &[])).await, "a second bob");
    assert!(
        matches!(&err, RepoError::Conflict { message, index: None } if message == "a user with this e-mail address already exists"),
        "{err:?}"
    );
    let carol = ok(create(db, users, new_user("carol@example.com", &[])).await, "carol");
    let changes = UserChanges { email: Some(email("Bob@Example.com")), ..UserChanges::default() };
    let err = refused(update(db, users, carol.id, changes).await, "taking bob's address");
    assert!(matches!(err, RepoError::Conflict { .. }), "{err:?}");
}

/// A batch is all or nothing: a row whose address is taken, or repeats an earlier row, is named by its index
/// and nothing of the batch is written; a good batch is written whole.
pub async fn batches_are_all_or_nothing_and_name_the_bad_row<U: UserStore>(db: &Database, users: &U) {
    ok(create(db, users, new_user("taken@example.com", &[])).await, "taken");
    let mut rows: Vec<_> = (0..2500).map(|i| new_user(&format!("bulk{i}@example.com"), &[Role::Customer])).collect();
    rows[1700] = new_user("TAKEN@example.com", &[]);
    match refused(bulk(db, users, rows).await, "a batch with a taken address") {
        RepoError::Conflict { index, .. } => assert_eq!(index, Some(1700)),
        other => panic!("a conflict expected, got {other:?}"),
    }
    let mut rows: Vec<_> = (0..30).map(|i| new_user(&format!("dup{i}@example.com"), &[])).collect();
    rows[20] = new_user("Dup3@example.com", &[]);
    match refused(bulk(db, users, rows).await, "a batch with a repeated address") {
        RepoError::Conflict { index, .. } => assert_eq!(index, Some(20)),
        other => panic!("a conflict expected, got {other:?}"),
    }
    assert_eq!(total(&list(users, &[]).await), 1, "nothing of the refused batches was written");

    let rows: Vec<_> = (0..2500).map(|i| new_user(&format!("bulk{i}@example.com"), &[Role::Customer])).collect();
    assert_eq!(ok(bulk(db, users, rows).await, "a good batch"), 2500);
    assert_eq!(total(&list(users, &[("role", "customer")]).await), 2500);
}

/// What a unit wrote is gone when the unit rolls back, in every store that wrote in it.
pub async fn a_rolled_back_unit_leaves_nothing<U: UserStore, T: RefreshTokenStore>(
    db: &Database,
    users: &U,
    tokens: &T,
) {
    let result: RepoResult<()> = db
        .write(async |uow| {
            let user = users.create(uow, new_user("ghost@example.com", &[Role::Staff]), now()).await?;
            let token = NewRefreshToken {
                user_id: user.id,
                family_id: Uuid::now_v7(),
                token_hash: "c".repeat(64),
                expires_at: now() + Duration::days(1),
            };
            tokens.insert(uow, token, now()).await?;
            Err(RepoError::NotFound)
        })
        .await;
    assert!(matches!(result, Err(RepoError::NotFound)));
    assert!(ok(users.find_by_email(&email("ghost@example.com")).await, "find").is_none(), "the user stayed");
    assert!(ok(tokens.find_by_hash(&"c".repeat(64)).await, "find").is_none(), "the token stayed");
}

/// Keyset pages walk every user once, in the order of each sort, ties broken by id.
pub async fn keyset_pages_walk_every_user_once_in_order<U: UserStore>(db: &Database, users: &U) {
    let rows: Vec<_> = (0..57).map(|i| new_user(&format!("k{:02}@example.com", (i * 37) % 57), &[])).collect();
    // Separate batches give distinct creation times as well as ties within a batch.
    let (first, second) = rows.split_at(30);
    ok(bulk(db, users, first.to_vec()).await, "first batch");
    ok(bulk(db, users, second.to_vec()).await, "second batch");
    for sort in ["email", "-email", "created_at", "-created_at", "full_name"] {
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut pairs = vec![("sort", sort), ("limit", "10")];
            if let Some(c) = &cursor {
                pairs.push(("cursor", c));
            }
            let Listing::Keyset(page) = list(users, &pairs).await else { panic!("a keyset page expected") };
            assert_eq!(page.total, Some(57));
            seen.extend(page.items.into_iter().map(|u| (u.email, u.created_at, u.id)));
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        assert_eq!(seen.len(), 57, "sort {sort}");
        let mut expected = seen.clone();
        match sort {
            "email" | "full_name" => expected.sort_by_key(|a| a.0.clone()),
            "-email" => expected.sort_by_key(|a| std::cmp::Reverse(a.0.clone())),
            "created_at" => expected.sort_by_key(|a| (a.1, a.2)),
            _ => expected.sort_by_key(|a| std::cmp::Reverse((a.1, a.2))),
        }
        assert_eq!(seen, expected, "sort {sort}");
    }
}

/// Offset pages report the total and the number of pages; a page past the end is empty.
pub async fn offset_pages_report_totals<U: UserStore>(db: &Database, users: &U) {
    let rows: Vec<_> = (0..45).map(|i| new_user(&format!("o{i:02}@example.com"), &[])).collect();
    ok(bulk(db, users, rows).await, "batch");
    let query = ok(user_list_spec().parse(&params(&[("page", "3"), ("per_page", "20"), ("sort", "email")])), "query");
    assert_eq!(query.pagination, Pagination::Offset { page: 3, per_page: 20 });
    let Listing::Offset(page) = ok(users.list(&query).await, "listing") else { panic!("an offset page expected") };
    assert_eq!((page.total, page.pages, page.items.len()), (45, 3, 5));
    assert_eq!(page.items[0].email, "o40@example.com");
    assert!(list(users, &[("page", "99")]).await.items().is_empty());
}

/// Filters and search narrow the list; search wildcards are literal.
pub async fn filters_and_search_narrow_the_list<U: UserStore>(db: &Database, users: &U) {
    ok(create(db, users, new_user("alice@example.com", &[Role::Admin])).await, "alice");
    let bob = ok(create(db, users, new_user("bob@example.com", &[Role::Staff])).await, "bob");
    ok(create(db, users, new_user("carol_50%@example.com", &[Role::Customer])).await, "carol");
    ok(update(db, users, bob.id, UserChanges { is_active: Some(false), ..UserChanges::default() }).await, "bob off");
    let emails = async |pairs: &[(&str, &str)]| -> Vec<String> {
        let mut found: Vec<_> = list(users, pairs).await.items().iter().map(|u| u.email.clone()).collect();
        found.sort();
        found
    };
    assert_eq!(emails(&[("is_active", "false")]).await, vec!["bob@example.com"]);
    assert_eq!(emails(&[("role", "admin")]).await, vec!["alice@example.com"]);
    assert_eq!(emails(&[("q", "USER BOB")]).await, vec!["bob@example.com"]);
    assert_eq!(emails(&[("q", "50%")]).await, vec!["carol_50%@example.com"]);
    assert_eq!(emails(&[("q", "_")]).await, vec!["carol_50%@example.com"], "wildcards are literal");
    let tomorrow = (now() + Duration::days(1)).to_rfc3339();
    assert!(emails(&[("created_after", &tomorrow)]).await.is_empty());
    assert_eq!(emails(&[("created_before", &tomorrow)]).await.len(), 3);
    assert!(ok(users.any_admin().await, "any admin"));
}

/// A refresh token is spent once, revoked with its family (and then cannot be spent), revoked with its user,
/// and deleted once expired.
pub async fn refresh_tokens_are_spent_once_and_revoked<U: UserStore, T: RefreshTokenStore>(
    db: &Database,
    users: &U,
    tokens: &T,
) {
    let user = ok(create(db, users, new_user("t@example.com", &[])).await, "user");
    let expires_at = now() + Duration::days(1);
    let token = |hash: char, family_id: Uuid| NewRefreshToken {
        user_id: user.id,
        family_id,
        token_hash: hash.to_string().repeat(64),
        expires_at,
    };
    let family = Uuid::now_v7();
    let id = ok(db.write(async |uow| tokens.insert(uow, token('a', family), now()).await).await, "insert");
    let found = ok(tokens.find_by_hash(&"a".repeat(64)).await, "find");
    let found = found.unwrap_or_else(|| panic!("the token was not stored"));
    assert_eq!((found.id, found.family_id, found.user_id), (id, family, user.id));
    let spend = async |id| ok(db.write(async |uow| tokens.mark_used(uow, id, now()).await).await, "spend");
    assert!(spend(id).await);
    assert!(!spend(id).await, "a token is spent once");

    let sibling = ok(db.write(async |uow| tokens.insert(uow, token('b', family), now()).await).await, "insert");
    let other = ok(db.write(async |uow| tokens.insert(uow, token('d', Uuid::now_v7()), now()).await).await, "insert");
    let revoked = ok(db.write(async |uow| tokens.revoke_family(uow, family, now()).await).await, "revoke");
    assert_eq!(revoked, 2, "both tokens of the family");
    assert!(!spend(sibling).await, "a revoked token cannot be spent");
    let stored = ok(tokens.find_by_hash(&"b".repeat(64)).await, "find");
    assert!(stored.is_some_and(|t| t.revoked_at.is_some()));
    let by_user = ok(db.write(async |uow| tokens.revoke_user(uow, user.id, now()).await).await, "revoke user");
    assert_eq!(by_user, 1, "only the token not revoked yet");
    assert!(!spend(other).await);

    let purged =
        ok(db.write(async |uow| tokens.delete_expired(uow, expires_at + Duration::seconds(1)).await).await, "purge");
    assert_eq!(purged, 3);
    assert!(ok(tokens.find_by_hash(&"a".repeat(64)).await, "find").is_none());
}
