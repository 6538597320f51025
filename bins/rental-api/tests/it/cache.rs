//! The caches' Redis tier with two service instances on one database (TEST_REDIS_URL; skipped without it,
//! failing when it is set but unreachable): invalidations reach the other instance, a miss on one is served
//! by the other's load, and an unreachable Redis degrades to the local caches without failing a request.

use std::time::{Duration, Instant};

use rental_domain::Role;
use rental_repo::{Database, DatabaseConfig};
use rental_service::{
    AuthConfig, CacheConfig, NewUser, Principal, Secret, ServiceConfig, Services, SharedTier, UserUpdate,
};
use rental_testkit::TestDb;

use crate::support::SECRET;

/// The bound the issue sets on cross-instance invalidation.
pub(crate) const VISIBLE_WITHIN: Duration = Duration::from_secs(1);

pub(crate) fn config(redis_url: &str, prefix: &str) -> ServiceConfig {
    ServiceConfig {
        auth: AuthConfig {
            jwt_secret: Secret::new(SECRET),
            argon2_memory_kib: 1024,
            argon2_iterations: 1,
            ..AuthConfig::default()
        },
        cache: CacheConfig {
            redis_url: Secret::new(redis_url),
            redis_key_prefix: prefix.to_owned(),
            // Generous bounds: the machine running the tests may be busy; the bounds themselves are not
            // what these tests are about.
            redis_timeout_ms: 500,
            ..CacheConfig::default()
        },
        ..ServiceConfig::default()
    }
}

pub(crate) async fn instance(db: &TestDb, config: &ServiceConfig) -> Services {
    let pool =
        DatabaseConfig { max_connections: Some(5), min_connections: Some(0), ..DatabaseConfig::with_url(db.url()) };
    Services::new(Database::connect(&pool).await.unwrap(), config).unwrap()
}

/// Waits (at most 10 s) until the instance's subscription to invalidations is live.
pub(crate) async fn until_up(services: &Services) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while services.caches.shared_tier() != SharedTier::Up {
        assert!(Instant::now() < deadline, "the shared tier never came up: {:?}", services.caches);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Polls `check` until it holds, failing after [`VISIBLE_WITHIN`].
pub(crate) async fn within_a_second(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + VISIBLE_WITHIN;
    loop {
        if check().await {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: not visible on the other instance within {VISIBLE_WITHIN:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

pub(crate) fn redis_url() -> Option<String> {
    let url = std::env::var("TEST_REDIS_URL").ok();
    if url.is_none() {
        eprintln!("TEST_REDIS_URL is unset: the caches' Redis tier is not tested");
    }
    url
}

/// Two instances on one database and one Redis, with key prefixes of their own test run.
pub(crate) async fn two_instances(url: &str) -> (Services, Services, TestDb) {
    let prefix = format!("rental-test-{}", uuid::Uuid::now_v7().simple());
    let db = TestDb::new().await;
    let config = config(url, &prefix);
    let (a, b) = (instance(&db, &config).await, instance(&db, &config).await);
    until_up(&a).await;
    until_up(&b).await;
    (a, b, db)
}

pub(crate) async fn login(services: &Services, email: &str, password: &str) -> (String, Principal) {
    let token = services.auth.login(email, password).await.unwrap().access_token;
    let principal = services.auth.authenticate(&token).await.unwrap();
    (token, principal)
}

#[tokio::test]
async fn a_user_changed_on_one_instance_is_judged_afresh_on_the_other_within_a_second() {
    let Some(url) = redis_url() else { return };
    let (a, b, _db) = two_instances(&url).await;
    a.users.create_admin("root@example.com", "root-password").await.unwrap();
    let (_, admin) = login(&a, "root@example.com", "root-password").await;
    let new = |email: &str| NewUser {
        email: email.into(),
        full_name: "Sam".into(),
        password: Some("sam-password".into()),
        roles: Some(vec![Role::Staff]),
        ..NewUser::default()
    };
    let sam = a.users.create(&admin, new("sam@example.com")).await.unwrap();
    let (token, _) = login(&b, "sam@example.com", "sam-password").await;

    // Deactivated on A: refused on B, which had the user cached.
    assert!(b.auth.authenticate(&token).await.is_ok());
    let set_active = |on: bool| UserUpdate { is_active: Some(on), ..UserUpdate::default() };
    a.users.update(&admin, sam.id, set_active(false)).await.unwrap();
    within_a_second("deactivation", async || b.auth.authenticate(&token).await.is_err()).await;
    a.users.update(&admin, sam.id, set_active(true)).await.unwrap();
    within_a_second("reactivation", async || b.auth.authenticate(&token).await.is_ok()).await;

    // Demoted on A: B no longer sees the staff role.
    assert!(b.auth.authenticate(&token).await.unwrap().is_staff());
    a.users.set_roles(&admin, sam.id, vec![Role::Customer]).await.unwrap();
    within_a_second("demotion", async || !b.auth.authenticate(&token).await.unwrap().is_staff()).await;

    // Deleted on A: refused on B.
    a.users.delete(&admin, sam.id).await.unwrap();
    within_a_second("deletion", async || b.auth.authenticate(&token).await.is_err()).await;
}

#[tokio::test]
async fn a_miss_on_one_instance_is_served_by_the_load_of_the_other() {
    let Some(url) = redis_url() else { return };
    let (a, b, _db) = two_instances(&url).await;
    a.users.create_admin("root@example.com", "root-password").await.unwrap();
    let (token, admin) = login(&a, "root@example.com", "root-password").await;
    let shared_hits = |s: &Services| {
        s.cache_stats().iter().filter(|c| c.name == "users" && c.tier == "shared").map(|c| c.hits).sum::<u64>()
    };
    let loads = |s: &Services| {
        s.cache_stats().iter().filter(|c| c.name == "users" && c.tier == "local").map(|c| c.loads).sum::<u64>()
    };
    // A loaded the user when it authenticated; B finds it in Redis.
    let before = (shared_hits(&b), loads(&b));
    assert_eq!(b.auth.authenticate(&token).await.unwrap().user_id, admin.user_id);
    assert_eq!((shared_hits(&b) - before.0, loads(&b) - before.1), (1, 0), "served from Redis, not loaded");
    // Neither the shared copy nor B's own holds the password hash.
    assert!(b.users.me(&admin).await.unwrap().has_password);
}

#[tokio::test]
async fn an_unreachable_redis_leaves_the_caches_local_and_degraded_without_failing_requests() {
    // Runs whether TEST_REDIS_URL is set or not: it needs no Redis, only a port where none listens.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("redis://{}", closed.local_addr().unwrap());
    drop(closed);
    let db = TestDb::new().await;
    let services = instance(&db, &config(&url, "rental-test-unreachable")).await;
    services.users.create_admin("root@example.com", "root-password").await.unwrap();
    let (token, admin) = login(&services, "root@example.com", "root-password").await;
    for _ in 0..3 {
        assert_eq!(services.auth.authenticate(&token).await.unwrap().user_id, admin.user_id);
    }
    assert_eq!(services.caches.shared_tier(), SharedTier::Degraded);
    // Writes still evict (locally) and clears still work.
    services
        .users
        .update(&admin, admin.user_id, UserUpdate { full_name: Some("Root".into()), ..UserUpdate::default() })
        .await
        .unwrap();
    assert_eq!(services.users.me(&admin).await.unwrap().full_name, "Root");
    assert!(services.caches.clear(None).await.is_ok());
}

#[actix_web::test]
async fn catalogue_answers_carry_an_etag_and_a_matching_if_none_match_gets_a_304() {
    use actix_web::test::TestRequest;

    use crate::support::{app, bearer, context, send, staff_token};

    let ctx = context().await;
    let app = app(&ctx).await;
    let staff = staff_token(&ctx, &app).await;
    let get = |uri: &str, tag: Option<&str>| {
        let mut req = TestRequest::get().uri(uri);
        if let Some(tag) = tag {
            req = req.insert_header(("If-None-Match", tag.to_owned()));
        }
        req
    };
    let first = send(&app, get("/api/v1/categories", None)).await;
    assert_eq!(first.status, 200);
    let tag = first.headers.get("etag").unwrap().to_str().unwrap().to_owned();
    assert_eq!(first.headers.get("cache-control").unwrap(), "public, no-cache");
    let again = send(&app, get("/api/v1/categories", Some(&tag))).await;
    assert_eq!(again.status, 304);
    assert_eq!(again.body, serde_json::Value::Null, "no body");

    // A write changes the answer, so the old tag no longer matches.
    let created = send(
        &app,
        bearer(TestRequest::post().uri("/api/v1/categories"), &staff).set_json(serde_json::json!({"name": "Tools"})),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let changed = send(&app, get("/api/v1/categories", Some(&tag))).await;
    assert_eq!(changed.status, 200);
    assert_ne!(changed.headers.get("etag").unwrap().to_str().unwrap(), tag);

    // Product pages: public for anonymous callers (varying by Authorization), private for signed-in ones.
    let anonymous = send(&app, get("/api/v1/products", None)).await;
    assert_eq!(anonymous.headers.get("cache-control").unwrap(), "public, no-cache");
    assert_eq!(anonymous.headers.get("vary").unwrap(), "Authorization");
    let tag = anonymous.headers.get("etag").unwrap().to_str().unwrap().to_owned();
    assert_eq!(send(&app, get("/api/v1/products", Some(&tag))).await.status, 304);
    let signed_in = send(&app, bearer(get("/api/v1/products", None), &staff)).await;
    assert_eq!(signed_in.headers.get("cache-control").unwrap(), "private, no-cache");
}

/// A TCP relay to Redis that the test can cut and restore on the same port, standing for a Redis outage.
pub(crate) struct Relay {
    port: u16,
    target: String,
    tasks: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Relay {
    pub(crate) async fn start(target: &str) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let relay =
            Self { port: listener.local_addr().unwrap().port(), target: target.to_owned(), tasks: Default::default() };
        relay.serve(listener);
        relay
    }

    fn serve(&self, listener: tokio::net::TcpListener) {
        let (target, tasks) = (self.target.clone(), self.tasks.clone());
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let target = target.clone();
                let pipe = tokio::spawn(async move {
                    if let Ok(mut server) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                tasks.lock().unwrap().push(pipe);
            }
        });
        self.tasks.lock().unwrap().push(accept);
    }

    /// Closes the listener and every relayed connection.
    pub(crate) fn cut(&self) {
        for task in self.tasks.lock().unwrap().drain(..) {
            task.abort();
        }
    }

    /// Listens again on the same port.
    pub(crate) async fn restore(&self) {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", self.port)).await.unwrap();
        self.serve(listener);
    }
}

pub(crate) async fn until_tier(services: &Services, tier: SharedTier) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while services.caches.shared_tier() != tier {
        assert!(Instant::now() < deadline, "the shared tier never became {tier:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_degrades_the_tier_and_it_recovers_and_resynchronises_by_itself() {
    let Some(url) = redis_url() else { return };
    let target = url.trim_start_matches("redis://").trim_end_matches('/').to_owned();
    let relay = Relay::start(&target).await;
    let prefix = format!("rental-test-{}", uuid::Uuid::now_v7().simple());
    let db = TestDb::new().await;
    let through_relay = instance(&db, &config(&format!("redis://127.0.0.1:{}", relay.port), &prefix)).await;
    let direct = instance(&db, &config(&url, &prefix)).await;
    until_up(&through_relay).await;
    until_up(&direct).await;
    direct.users.create_admin("root@example.com", "root-password").await.unwrap();
    let (_, admin) = login(&direct, "root@example.com", "root-password").await;
    let sam = NewUser {
        email: "sam@example.com".into(),
        full_name: "Sam".into(),
        password: Some("sam-password".into()),
        ..NewUser::default()
    };
    let sam = direct.users.create(&admin, sam).await.unwrap();
    let (token, _) = login(&through_relay, "sam@example.com", "sam-password").await;

    // Redis goes away: the instance notices, keeps answering from the database and its own cache.
    relay.cut();
    until_tier(&through_relay, SharedTier::Degraded).await;
    for _ in 0..3 {
        assert!(through_relay.auth.authenticate(&token).await.is_ok(), "no request fails because of the cache");
    }

    // Redis is back: the instance resubscribes by itself, and invalidations reach it again.
    relay.restore().await;
    until_tier(&through_relay, SharedTier::Up).await;
    assert!(through_relay.auth.authenticate(&token).await.is_ok());
    direct.users.update(&admin, sam.id, UserUpdate { is_active: Some(false), ..UserUpdate::default() }).await.unwrap();
    within_a_second("deactivation after the outage", async || through_relay.auth.authenticate(&token).await.is_err())
        .await;
}
