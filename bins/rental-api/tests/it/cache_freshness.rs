//! Freshness of every cache namespace across two service instances on one database and one Redis
//! (TEST_REDIS_URL; skipped without it), and the Redis faults: restarted with its data gone (a private
//! `redis-server` the test starts, kills and starts again) and a subscription that hangs silently.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::Utc;
use rental_domain::Role;
use rental_service::{
    CacheConfig, CategoryUpdate, NewCategory, NewLocation, NewProduct, NewRental, NewRentalLine, NewUnit, NewUser,
    Principal, ProductUpdate, ServiceConfig, Services, SharedTier, UserUpdate,
};
use rental_testkit::TestDb;
use uuid::Uuid;

use crate::cache::{config, instance, login, redis_url, two_instances, until_tier, until_up, within_a_second};

/// An admin and a staff member, created on `a`; the staff member signed in on `a`.
async fn staff_on(a: &Services) -> (Principal, Principal) {
    a.users.create_admin("root@example.com", "root-password").await.unwrap();
    let (_, admin) = login(a, "root@example.com", "root-password").await;
    let new = NewUser {
        email: "staff@example.com".into(),
        full_name: "Sam Staff".into(),
        password: Some("staff-password".into()),
        roles: Some(vec![Role::Staff]),
        ..NewUser::default()
    };
    a.users.create(&admin, new).await.unwrap();
    let (_, staff) = login(a, "staff@example.com", "staff-password").await;
    (admin, staff)
}

/// A category, a location and a product with two units.
async fn camera(a: &Services, staff: &Principal) -> (Uuid, Uuid, Vec<Uuid>) {
    let c = &a.catalogue;
    let category = c.create_category(staff, NewCategory { name: "Cameras".into(), description: None }).await.unwrap();
    let depot = c.create_location(staff, NewLocation { name: "Depot".into(), address: None }).await.unwrap();
    let new = NewProduct {
        category_id: category.id,
        sku: "CAM-1".into(),
        name: "Camera".into(),
        currency: "EUR".into(),
        price_per_day_minor: 2_000,
        ..NewProduct::default()
    };
    let product = c.create_product(staff, new).await.unwrap();
    let units = ["A", "B"].map(|s| NewUnit { serial_number: s.into(), condition: None, location_id: depot.id });
    let units = c.add_units(staff, product.id, units.to_vec()).await.unwrap();
    (product.id, category.id, units.into_iter().map(|u| u.id).collect())
}

#[tokio::test]
async fn every_namespace_is_fresh_on_the_other_instance_within_a_second_after_a_write() {
    let Some(url) = redis_url() else { return };
    let (a, b, _db) = two_instances(&url).await;
    let (_admin, staff) = staff_on(&a).await;
    let (product_id, category_id, units) = camera(&a, &staff).await;
    let (from, to) = (Utc::now() + chrono::Duration::days(1), Utc::now() + chrono::Duration::days(3));

    // B caches everything once.
    let available = async || b.rentals.availability(product_id, from, to, None).await.unwrap().available;
    assert_eq!(b.catalogue.list_categories().await.unwrap()[0].name, "Cameras");
    assert_eq!(b.catalogue.get_product(None, product_id).await.unwrap().product.name, "Camera");
    assert_eq!(available().await, 2);

    // categories and products: a catalogue write on A.
    let rename = CategoryUpdate { name: Some("Photo".into()), ..CategoryUpdate::default() };
    a.catalogue.update_category(&staff, category_id, rename).await.unwrap();
    within_a_second("category rename (categories)", async || {
        b.catalogue.list_categories().await.unwrap()[0].name == "Photo"
    })
    .await;
    within_a_second("category rename (product detail)", async || {
        b.catalogue.get_product(None, product_id).await.unwrap().category.is_some_and(|c| c.name == "Photo")
    })
    .await;
    let rename = ProductUpdate { name: Some("Camera II".into()), ..ProductUpdate::default() };
    a.catalogue.update_product(&staff, product_id, rename).await.unwrap();
    within_a_second("product rename", async || {
        b.catalogue.get_product(None, product_id).await.unwrap().product.name == "Camera II"
    })
    .await;

    // availability: a reservation, a maintenance block and a cancellation on A.
    let line = NewRentalLine { product_id, quantity: 1, start: from, end: to };
    let rental = NewRental { customer_id: None, status: None, lines: vec![line], notes: None };
    let order = a.rentals.create(&staff, rental).await.unwrap();
    within_a_second("reservation", async || available().await == 1).await;
    a.rentals.add_maintenance(&staff, units[1], from, to, None).await.unwrap();
    within_a_second("maintenance block", async || available().await == 0).await;
    a.rentals.cancel(&staff, order.id, None).await.unwrap();
    within_a_second("cancellation", async || available().await == 1).await;

    // analytics and dashboard: TTL namespaces, made fresh everywhere by a clear on A.
    let reserved = async || {
        let report = b.analytics.status_distribution(&staff).await.unwrap();
        report.items.iter().map(|c| (c.status.as_str().to_owned(), c.count)).collect::<Vec<_>>()
    };
    let dashboard = async || String::from_utf8(b.analytics.dashboard_json(&staff).await.unwrap().0.to_vec()).unwrap();
    let (report_before, dashboard_before) = (reserved().await, dashboard().await);
    let line = NewRentalLine { product_id, quantity: 1, start: from, end: to };
    a.rentals
        .create(&staff, NewRental { customer_id: None, status: None, lines: vec![line], notes: None })
        .await
        .unwrap();
    assert_eq!(reserved().await, report_before, "within its TTL the report is the cached one");
    a.caches.clear(Some("analytics")).await.unwrap();
    a.caches.clear(Some("dashboard")).await.unwrap();
    within_a_second("analytics clear", async || reserved().await != report_before).await;
    within_a_second("dashboard clear", async || dashboard().await != dashboard_before).await;
}

/// A `redis-server` of the test's own, without persistence, on a port of its own: killed, it comes back empty.
struct PrivateRedis {
    port: u16,
    child: Option<std::process::Child>,
}

impl PrivateRedis {
    fn start(port: u16) -> Option<Self> {
        let child = std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--save", "", "--appendonly", "no", "--bind", "127.0.0.1"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .ok()?;
        Some(Self { port, child: Some(child) })
    }

    async fn until_listening(&self) {
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("redis-server did not listen on {}", self.port);
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn fault_config(url: &str, prefix: &str) -> ServiceConfig {
    let mut config = config(url, prefix);
    config.cache = CacheConfig { degraded_ttl_ms: 300, redis_heartbeat_ms: 500, ..config.cache };
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restarted_with_its_data_gone_serves_nothing_stale_fails_no_request_and_resyncs() {
    // Needs no TEST_REDIS_URL: the test runs its own redis-server (skipped when there is none).
    let port = free_port();
    let Some(mut redis) = PrivateRedis::start(port) else {
        eprintln!("no redis-server on this machine: the restart test does not run");
        return;
    };
    redis.until_listening().await;
    let url = format!("redis://127.0.0.1:{port}");
    let db = TestDb::new().await;
    let config = fault_config(&url, "rental-test-restart");
    let (a, b) = (instance(&db, &config).await, instance(&db, &config).await);
    until_up(&a).await;
    until_up(&b).await;
    let (admin, staff) = staff_on(&a).await;
    let (token, sam) = login(&b, "staff@example.com", "staff-password").await;
    let dashboard =
        async |s: &Services| String::from_utf8(s.analytics.dashboard_json(&staff).await.unwrap().0.to_vec()).unwrap();
    // Two clears before the restart: the shared generation of `dashboard` is 2 in Redis and in both.
    a.caches.clear(Some("dashboard")).await.unwrap();
    a.caches.clear(Some("dashboard")).await.unwrap();
    assert!(b.auth.authenticate(&token).await.is_ok());

    // Redis dies: both degrade; no request fails; a deactivation on A is refused on B within the degraded TTL.
    redis.kill();
    until_tier(&a, SharedTier::Degraded).await;
    until_tier(&b, SharedTier::Degraded).await;
    assert!(b.auth.authenticate(&token).await.is_ok(), "no request fails because of the cache");
    let set_active = |on: bool| UserUpdate { is_active: Some(on), ..UserUpdate::default() };
    a.users.update(&admin, sam.user_id, set_active(false)).await.unwrap();
    within_a_second("deactivation while Redis is down", async || b.auth.authenticate(&token).await.is_err()).await;

    // Redis is back, empty: both resubscribe and resynchronise by themselves.
    let restarted = PrivateRedis::start(port).unwrap();
    restarted.until_listening().await;
    until_tier(&a, SharedTier::Up).await;
    until_tier(&b, SharedTier::Up).await;
    assert!(b.auth.authenticate(&token).await.is_err(), "still refused after the restart");
    a.users.update(&admin, sam.user_id, set_active(true)).await.unwrap();
    within_a_second("reactivation after the restart", async || b.auth.authenticate(&token).await.is_ok()).await;

    // The shared generations start again from Redis's (empty) state: a clear after the restart reaches the
    // shared tier, so B does not read a copy stored before the clear.
    let stored = dashboard(&a).await;
    let new = NewUser { email: "new@example.com".into(), full_name: "New".into(), ..NewUser::default() };
    a.users.create(&admin, new).await.unwrap();
    a.caches.clear(Some("dashboard")).await.unwrap();
    within_a_second("dashboard clear after the restart", async || dashboard(&b).await != stored).await;
}

/// A TCP relay to Redis whose connections can be frozen: they stay open but carry nothing (a silent hang).
struct FreezingRelay {
    port: u16,
    frozen: Arc<AtomicBool>,
}

impl FreezingRelay {
    async fn start(target: String) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let frozen = Arc::new(AtomicBool::new(false));
        let relay = Self { port: listener.local_addr().unwrap().port(), frozen: frozen.clone() };
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (target, frozen) = (target.clone(), frozen.clone());
                tokio::spawn(async move {
                    let Ok(server) = tokio::net::TcpStream::connect(target).await else { return };
                    let (client_read, client_write) = client.into_split();
                    let (server_read, server_write) = server.into_split();
                    tokio::spawn(pipe(client_read, server_write, frozen.clone()));
                    pipe(server_read, client_write, frozen).await;
                });
            }
        });
        relay
    }
}

/// Copies bytes from `from` to `to`, holding them (without closing anything) while `frozen`.
async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    frozen: Arc<AtomicBool>,
) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut buffer = vec![0_u8; 16 * 1024];
    loop {
        let Ok(n) = from.read(&mut buffer).await else { return };
        if n == 0 {
            return;
        }
        while frozen.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if to.write_all(&buffer[..n]).await.is_err() {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silently_hung_subscription_is_detected_by_the_heartbeat_and_renewed() {
    let Some(url) = redis_url() else { return };
    let target = url.trim_start_matches("redis://").trim_end_matches('/').to_owned();
    let relay = FreezingRelay::start(target).await;
    let prefix = format!("rental-test-{}", Uuid::now_v7().simple());
    let db = TestDb::new().await;
    let hung = instance(&db, &fault_config(&format!("redis://127.0.0.1:{}", relay.port), &prefix)).await;
    let direct = instance(&db, &fault_config(&url, &prefix)).await;
    until_up(&hung).await;
    until_up(&direct).await;
    let (admin, _staff) = staff_on(&direct).await;
    let (token, sam) = login(&hung, "staff@example.com", "staff-password").await;

    // Nothing is closed and no request is made: only the heartbeat can notice the silence.
    relay.frozen.store(true, Ordering::Relaxed);
    until_tier(&hung, SharedTier::Degraded).await;
    relay.frozen.store(false, Ordering::Relaxed);
    until_tier(&hung, SharedTier::Up).await;
    direct
        .users
        .update(&admin, sam.user_id, UserUpdate { is_active: Some(false), ..UserUpdate::default() })
        .await
        .unwrap();
    within_a_second("deactivation after the hang", async || hung.auth.authenticate(&token).await.is_err()).await;
}
