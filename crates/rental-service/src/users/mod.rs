//! Profiles and user administration.

pub(crate) mod auth;
pub(crate) mod password;
pub(crate) mod recovery;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rental_domain::{Collector, DomainError, Email, FieldError, FullName, Password, Role, UserId};
use rental_repo::{Database, NewUserRecord, RepoError, UserChanges, UserRecord, UserRepo, UserStore, user_list_spec};
use serde::{Deserialize, Serialize};

use crate::cache::{CacheValue, Caches, Namespace, NamespaceSpec};
use crate::{CacheConfig, Clock, PasswordHasher, Principal, ServiceError, ServiceResult};

/// Most users in one bulk request.
pub const BULK_MAX: usize = 10_000;

/// A user as callers see it: everything but the password hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UserView {
    /// Id.
    #[cfg_attr(feature = "openapi", schema(value_type = uuid::Uuid))]
    pub id: UserId,
    /// Lower-cased e-mail address.
    pub email: String,
    /// Display name.
    pub full_name: String,
    /// Whether the user may log in.
    pub is_active: bool,
    /// Whether the user has every permission.
    pub is_superuser: bool,
    /// Whether a password is set (bulk-imported accounts may have none yet).
    pub has_password: bool,
    /// Roles, sorted.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<crate::openapi::RoleSchema>))]
    pub roles: Vec<Role>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

impl From<UserRecord> for UserView {
    fn from(r: UserRecord) -> Self {
        Self {
            id: r.id,
            email: r.email,
            full_name: r.full_name,
            is_active: r.is_active,
            is_superuser: r.is_superuser,
            has_password: r.password_hash.is_some(),
            roles: r.roles,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// A user as the authentication cache holds it: everything a request needs to be judged, and the profile,
/// but never the password hash (which must not leave the process, and is not needed after login).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthUser {
    /// Id.
    pub id: UserId,
    /// Lower-cased e-mail address.
    pub email: String,
    /// Display name.
    pub full_name: String,
    /// Whether the user may log in.
    pub is_active: bool,
    /// Whether the user has every permission.
    pub is_superuser: bool,
    /// Whether a password is set.
    pub has_password: bool,
    /// Roles, sorted.
    pub roles: Vec<Role>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

impl From<UserRecord> for AuthUser {
    fn from(r: UserRecord) -> Self {
        Self {
            id: r.id,
            email: r.email,
            full_name: r.full_name,
            is_active: r.is_active,
            is_superuser: r.is_superuser,
            has_password: r.password_hash.is_some(),
            roles: r.roles,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

impl From<&AuthUser> for UserView {
    fn from(u: &AuthUser) -> Self {
        Self {
            id: u.id,
            email: u.email.clone(),
            full_name: u.full_name.clone(),
            is_active: u.is_active,
            is_superuser: u.is_superuser,
            has_password: u.has_password,
            roles: u.roles.clone(),
            created_at: u.created_at,
            updated_at: u.updated_at,
        }
    }
}

/// Shared between instances as JSON; `None` (an unknown user) is cached too, so that a flood of tokens of a
/// deleted account does not read the database each time.
impl CacheValue for Arc<Option<AuthUser>> {
    const SHARED: bool = true;

    fn encode(&self) -> Option<Vec<u8>> {
        serde_json::to_vec(&**self).ok()
    }

    fn decode(bytes: &[u8]) -> Option<Self> {
        serde_json::from_slice::<Option<AuthUser>>(bytes).ok().map(Arc::new)
    }
}

/// User-list pages stay in the process that read them (they are short-lived and admin-only).
impl CacheValue for Arc<UserPage> {}

/// The canonical cache key of a validated list query: every part in a fixed order, values in their
/// canonical text (the cursor in its encoded form), so equivalent query strings share an entry.
pub(crate) fn list_query_key(query: &rental_repo::query::ListQuery) -> String {
    use std::fmt::Write as _;

    use rental_repo::query::{Direction, FilterValue, Pagination};
    let mut key = String::with_capacity(64);
    match &query.pagination {
        Pagination::Offset { page, per_page } => {
            let _ = write!(key, "o:{page}:{per_page}");
        }
        Pagination::Keyset { after, limit, include_total } => {
            let cursor = after.as_ref().map(|c| c.encode()).unwrap_or_default();
            let _ = write!(key, "k:{limit}:{include_total}:{cursor}");
        }
    }
    let direction = match query.direction {
        Direction::Asc => "asc",
        Direction::Desc => "desc",
    };
    let _ = write!(key, "|s:{}:{direction}", query.sort);
    for (name, value) in &query.filters {
        let _ = match value {
            FilterValue::Bool(b) => write!(key, "|f:{name}={b}"),
            FilterValue::DateTime(at) => write!(key, "|f:{name}={}", at.timestamp_micros()),
            FilterValue::Word(w) => write!(key, "|f:{name}={w}"),
            FilterValue::Uuid(id) => write!(key, "|f:{name}={id}"),
            FilterValue::Integer(i) => write!(key, "|f:{name}={i}"),
            FilterValue::Name(n) => write!(key, "|f:{name}={}", n.len()).and_then(|()| write!(key, ":{n}")),
        };
    }
    if let Some(search) = &query.search {
        let _ = write!(key, "|q:{}:{search}", search.len());
    }
    key
}

/// A user created by an admin, as received (unvalidated).
#[derive(Debug, Clone, Default)]
pub struct NewUser {
    /// Address.
    pub email: String,
    /// Name.
    pub full_name: String,
    /// Password; without one the account cannot log in until an admin sets one.
    pub password: Option<String>,
    /// Defaults to active.
    pub is_active: Option<bool>,
    /// Defaults to false.
    pub is_superuser: Option<bool>,
    /// Defaults to `[customer]`.
    pub roles: Option<Vec<Role>>,
}

/// Changes an admin makes to a user; `None` keeps a field.
#[derive(Debug, Clone, Default)]
pub struct UserUpdate {
    /// New address.
    pub email: Option<String>,
    /// New name.
    pub full_name: Option<String>,
    /// New password.
    pub password: Option<String>,
    /// Activate or deactivate.
    pub is_active: Option<bool>,
    /// Grant or revoke superuser.
    pub is_superuser: Option<bool>,
}

/// Changes users make to their own profile.
#[derive(Debug, Clone, Default)]
pub struct ProfileUpdate {
    /// New address.
    pub email: Option<String>,
    /// New name.
    pub full_name: Option<String>,
}

/// A page of the user list, shared by every caller of a cached page, with its JSON encoded once.
pub type UserPage = crate::EncodedPage<UserView>;

/// Profiles and user administration, over a [`UserStore`] (the sea-orm [`UserRepo`] unless another is
/// given). Cheap to clone.
#[derive(Debug)]
pub struct UserService<U = UserRepo> {
    db: Database,
    pub(crate) repo: Arc<U>,
    hasher: PasswordHasher,
    pub(crate) clock: Arc<dyn Clock>,
    /// Users by id for authentication (without their password hash); every write to a user evicts its
    /// entry, on every instance.
    cache: Namespace<UserId, Arc<Option<AuthUser>>>,
    /// Pages of the user list by their validated query; every write to any user clears them all.
    lists: Option<Namespace<String, Arc<UserPage>>>,
}

impl<U> Clone for UserService<U> {
    fn clone(&self) -> Self {
        Self {
            db: self.db.clone(),
            repo: self.repo.clone(),
            hasher: self.hasher.clone(),
            clock: self.clock.clone(),
            cache: self.cache.clone(),
            lists: self.lists.clone(),
        }
    }
}

impl UserService {
    /// The service over `db`'s user repository, judging time by `clock`.
    pub fn new(
        db: Database,
        hasher: PasswordHasher,
        clock: Arc<dyn Clock>,
        config: &CacheConfig,
        caches: &Caches,
    ) -> Self {
        Self::with_store(db.clone(), Arc::new(UserRepo::new(db)), hasher, clock, config, caches)
    }
}

impl<U: UserStore + 'static> UserService<U> {
    /// The service over another implementation of the store; `db` gives the units of work it writes in.
    pub fn with_store(
        db: Database,
        repo: Arc<U>,
        hasher: PasswordHasher,
        clock: Arc<dyn Clock>,
        config: &CacheConfig,
        caches: &Caches,
    ) -> Self {
        let cache = caches.namespace(NamespaceSpec::new(
            "users",
            Duration::from_secs(config.user_ttl_secs),
            config.user_capacity,
        ));
        let lists = (config.list_ttl_secs > 0).then(|| {
            caches.namespace(config.refresh_ahead(NamespaceSpec::new(
                "user_lists",
                Duration::from_secs(config.list_ttl_secs),
                config.list_capacity,
            )))
        });
        Self { db, repo, hasher, clock, cache, lists }
    }

    /// A user by id through the cache (without the password hash); concurrent misses for one id share one
    /// database read.
    ///
    /// # Errors
    /// [`ServiceError::Repo`] when the read fails.
    pub(crate) async fn cached(&self, id: UserId) -> ServiceResult<Arc<Option<AuthUser>>> {
        let repo = self.repo.clone();
        let loaded = self
            .cache
            .get_or_load(id, async move { repo.find(id).await.map(|user| Arc::new(user.map(AuthUser::from))) })
            .await;
        loaded.map_err(ServiceError::from)
    }

    /// Forgets everything cached about `id` (on every instance), and every cached list page (which may
    /// show it).
    pub(crate) async fn evict(&self, id: UserId) {
        self.cache.invalidate(&id).await;
        self.evict_lists().await;
    }

    /// Forgets every cached list page, after a write that adds or changes users.
    pub(crate) async fn evict_lists(&self) {
        if let Some(lists) = &self.lists {
            lists.clear().await;
        }
    }

    /// The caller's own profile.
    ///
    /// # Errors
    /// [`ServiceError::Unauthorized`] when the account is gone.
    pub async fn me(&self, principal: &Principal) -> ServiceResult<UserView> {
        match &*self.cached(principal.user_id).await? {
            Some(user) => Ok(UserView::from(user)),
            None => Err(ServiceError::Unauthorized("the account no longer exists")),
        }
    }

    /// Updates the caller's own name or address.
    ///
    /// # Errors
    /// [`ServiceError::Invalid`] listing bad fields; [`ServiceError::Conflict`] when the address is taken.
    #[tracing::instrument(skip_all, fields(user_id = %principal.user_id))]
    pub async fn update_me(&self, principal: &Principal, update: ProfileUpdate) -> ServiceResult<UserView> {
        let mut errors = Collector::default();
        let email = update.email.as_deref().and_then(|e| errors.take(Email::parse(e)));
        let full_name = update.full_name.as_deref().and_then(|n| errors.take(FullName::parse(n)));
        errors.finish()?;
        let changes = UserChanges { email, full_name, ..UserChanges::default() };
        let user = self.write_user(principal.user_id, changes).await?;
        self.evict(principal.user_id).await;
        Ok(user.into())
    }

    /// Lists users (admins only) with the query parameters of the request, validated against the whitelist.
    /// The page is shared with the cache, hence the `Arc`.
    ///
    /// # Errors
    /// [`ServiceError::Forbidden`] for non-admins; [`ServiceError::InvalidQuery`] naming a bad parameter.
    pub async fn list(&self, principal: &Principal, params: &[(String, String)]) -> ServiceResult<Arc<UserPage>> {
        require_admin(principal)?;
        let query = user_list_spec().parse(params)?;
        let Some(lists) = &self.lists else {
            return Ok(Arc::new(UserPage::new(self.repo.list(&query).await?.map(UserView::from))));
        };
        // The key is the validated query, so equivalent query strings share an entry; concurrent misses for
        // one key share one database read.
        let repo = self.repo.clone();
        let key = list_query_key(&query);
        let page = lists
            .get_or_load(key, async { repo.list(&query).await.map(|l| Arc::new(UserPage::new(l.map(UserView::from)))) })
            .await;
        let page = page.map_err(ServiceError::from)?;
        // Encoded here, once per cached page, so that the route can hand out its bytes.
        page.json()?;
        Ok(page)
    }

    /// One user (admins only).
    ///
    /// # Errors
    /// [`ServiceError::Forbidden`], [`ServiceError::NotFound`].
    pub async fn get(&self, principal: &Principal, id: UserId) -> ServiceResult<UserView> {
        require_admin(principal)?;
        self.repo.find(id).await?.map(UserView::from).ok_or(ServiceError::NotFound("user"))
    }

    /// Creates a user (admins only).
    ///
    /// # Errors
    /// [`ServiceError::Forbidden`], [`ServiceError::Invalid`] listing every bad field,
    /// [`ServiceError::Conflict`] when the address is taken.
    #[tracing::instrument(skip_all)]
    pub async fn create(&self, principal: &Principal, new: NewUser) -> ServiceResult<UserView> {
        require_admin(principal)?;
        let (record, password) = validate_new(&new).map_err(ServiceError::Invalid)?;
        let record = self.with_hash(record, password).await?;
        let user = self.insert(record).await?;
        self.evict_lists().await;
        Ok(user.into())
    }

    /// Creates up to 10,000 users in one all-or-nothing transaction (admins only). Every row is validated
    /// before anything is written; the first bad or conflicting row is named by its index. Passwords, when
    /// given, are hashed first, so rows with passwords cost one argon2 hash each.
    ///
    /// # Errors
    /// [`ServiceError::Forbidden`], [`ServiceError::Invalid`] with fields like `users[3].email`,
    /// [`ServiceError::Conflict`] with the index of the row whose address is taken or repeated.
    #[tracing::instrument(skip_all, fields(rows = rows.len()))]
    pub async fn bulk_create(&self, principal: &Principal, rows: Vec<NewUser>) -> ServiceResult<usize> {
        require_admin(principal)?;
        if rows.is_empty() || rows.len() > BULK_MAX {
            return Err(DomainError::field("users", "must hold between 1 and 10000 users").into());
        }
        let mut errors = Vec::new();
        let mut valid = Vec::with_capacity(rows.len());
        for (index, row) in rows.iter().enumerate() {
            match validate_new(row) {
                Ok(ok) => valid.push(ok),
                Err(err) => {
                    let prefix = format!("users[{index}]");
                    errors.extend(err.fields().iter().cloned().map(|f: FieldError| f.within(&prefix)));
                }
            }
        }
        if !errors.is_empty() {
            errors.truncate(100);
            return Err(DomainError::Invalid(errors).into());
        }
        let mut records = Vec::with_capacity(valid.len());
        for (record, password) in valid {
            records.push(self.with_hash(record, password).await?);
        }
        let at = self.clock.now();
        let created = self.db.write(async |uow| self.repo.bulk_create(uow, records, at).await).await?;
        self.evict_lists().await;
        Ok(created)
    }

    /// Changes a user (admins only). Admins cannot deactivate themselves, so an instance always keeps one.
    ///
    /// # Errors
    /// [`ServiceError::Forbidden`], [`ServiceError::NotFound`], [`ServiceError::Invalid`],
    /// [`ServiceError::Conflict`].
    #[tracing::instrument(skip_all, fields(user_id = %id))]
    pub async fn update(&self, principal: &Principal, id: UserId, update: UserUpdate) -> ServiceResult<UserView> {
        require_admin(principal)?;
        let mut errors = Collector::default();
        let email = update.email.as_deref().and_then(|e| errors.take(Email::parse(e)));
        let full_name = update.full_name.as_deref().and_then(|n| errors.take(FullName::parse(n)));
        let password = update.password.as_deref().and_then(|p| errors.take(Password::parse(p)));
        errors.finish()?;
        if id == principal.user_id && (update.is_active == Some(false) || update.is_superuser == Some(false)) {
            return Err(ServiceError::Conflict {
                message: "admins cannot deactivate or demote their own account".into(),
                index: None,
            });
        }
        let password_hash = match password {
            Some(p) => Some(self.hasher.hash(p).await?),
            None => None,
        };
        let changes = UserChanges {
            email,
            full_name,
            password_hash,
            is_active: update.is_active,
            is_superuser: update.is_superuser,
        };
        let user = self.write_user(id, changes).await?;
        self.evict(id).await;
        Ok(user.into())
    }

    /// Deletes a user (admins only), never oneself.
    ///
    /// # Errors
    /// [`ServiceError::Forbidden`], [`ServiceError::NotFound`], [`ServiceError::Conflict`] for oneself.
    #[tracing::instrument(skip_all, fields(user_id = %id))]
    pub async fn delete(&self, principal: &Principal, id: UserId) -> ServiceResult<()> {
        require_admin(principal)?;
        if id == principal.user_id {
            return Err(ServiceError::Conflict {
                message: "admins cannot delete their own account".into(),
                index: None,
            });
        }
        self.db.write(async |uow| self.repo.delete(uow, id).await).await.map_err(not_found_as("user"))?;
        self.evict(id).await;
        Ok(())
    }

    /// Replaces a user's roles (admins only).
    ///
    /// # Errors
    /// [`ServiceError::Forbidden`], [`ServiceError::NotFound`], [`ServiceError::Conflict`] when admins would
    /// remove their own admin role.
    #[tracing::instrument(skip_all, fields(user_id = %id))]
    pub async fn set_roles(&self, principal: &Principal, id: UserId, roles: Vec<Role>) -> ServiceResult<UserView> {
        require_admin(principal)?;
        if id == principal.user_id && !principal.is_superuser && !roles.contains(&Role::Admin) {
            return Err(ServiceError::Conflict {
                message: "admins cannot remove their own admin role".into(),
                index: None,
            });
        }
        let at = self.clock.now();
        let user = self
            .db
            .write(async |uow| self.repo.set_roles(uow, id, &roles, at).await)
            .await
            .map_err(not_found_as("user"))?;
        self.evict(id).await;
        Ok(user.into())
    }

    /// Creates a superuser with the admin role: the command-line way to bootstrap an instance.
    ///
    /// # Errors
    /// [`ServiceError::Invalid`] for a bad address or password; [`ServiceError::Conflict`] when it exists.
    pub async fn create_admin(&self, email: &str, password: &str) -> ServiceResult<UserView> {
        let mut errors = Collector::default();
        let email = errors.take(Email::parse(email));
        let password = errors.take(Password::parse(password));
        errors.finish()?;
        let (Some(email), Some(password)) = (email, password) else {
            return Err(ServiceError::Internal("validated values missing".into()));
        };
        let full_name = FullName::parse("Administrator")?;
        let record = NewUserRecord {
            email,
            full_name,
            password_hash: Some(self.hasher.hash(password).await?),
            is_active: true,
            is_superuser: true,
            roles: vec![Role::Admin],
        };
        let user = self.insert(record).await?;
        self.evict_lists().await;
        Ok(user.into())
    }

    /// Whether any active admin exists.
    ///
    /// # Errors
    /// [`ServiceError::Repo`] when the count fails.
    pub async fn admin_exists(&self) -> ServiceResult<bool> {
        Ok(self.repo.any_admin().await?)
    }

    /// Inserts one user in a unit of its own.
    pub(crate) async fn insert(&self, record: NewUserRecord) -> ServiceResult<UserRecord> {
        let at = self.clock.now();
        Ok(self.db.write(async |uow| self.repo.create(uow, record, at).await).await?)
    }

    /// Applies `changes` to one user in a unit of its own.
    async fn write_user(&self, id: UserId, changes: UserChanges) -> ServiceResult<UserRecord> {
        let at = self.clock.now();
        self.db.write(async |uow| self.repo.update(uow, id, changes, at).await).await.map_err(not_found_as("user"))
    }

    async fn with_hash(&self, mut record: NewUserRecord, password: Option<Password>) -> ServiceResult<NewUserRecord> {
        if let Some(password) = password {
            record.password_hash = Some(self.hasher.hash(password).await?);
        }
        Ok(record)
    }
}

fn require_admin(principal: &Principal) -> ServiceResult<()> {
    if principal.is_admin() { Ok(()) } else { Err(ServiceError::Forbidden("this action needs the admin role")) }
}

fn not_found_as(what: &'static str) -> impl Fn(RepoError) -> ServiceError {
    move |err| match err {
        RepoError::NotFound => ServiceError::NotFound(what),
        other => other.into(),
    }
}

/// Checks every field of a new user, collecting all errors.
fn validate_new(new: &NewUser) -> Result<(NewUserRecord, Option<Password>), DomainError> {
    let mut errors = Collector::default();
    let email = errors.take(Email::parse(&new.email));
    let full_name = errors.take(FullName::parse(&new.full_name));
    let password = match new.password.as_deref() {
        Some(p) => errors.take(Password::parse(p)).map(Some),
        None => Some(None),
    };
    errors.finish()?;
    match (email, full_name, password) {
        (Some(email), Some(full_name), Some(password)) => Ok((
            NewUserRecord {
                email,
                full_name,
                password_hash: None,
                is_active: new.is_active.unwrap_or(true),
                is_superuser: new.is_superuser.unwrap_or(false),
                roles: new.roles.clone().unwrap_or_else(|| vec![Role::Customer]),
            },
            password,
        )),
        _ => Err(DomainError::field("user", "invalid")),
    }
}
