//! The fixture shared by the service test files: services over a fresh database, with cheap password hashes
//! and a clock the test moves by hand; and the people most tests need.
#![allow(dead_code, reason = "each test file uses its own part of the fixture")]

use std::sync::Arc;

use chrono::Utc;
use rental_domain::Role;
use rental_repo::{Database, DatabaseConfig};
use rental_service::{
    AuthConfig, ManualClock, NewUser, Principal, Registration, RentalConfig, Secret, ServiceConfig, Services,
};
use rental_testkit::TestDb;

pub struct Fixture {
    pub services: Services,
    /// The database the services use, for composing repositories in a test.
    pub db: Database,
    /// The services' clock: it stands still until a test moves it.
    pub clock: ManualClock,
    pub _db: TestDb,
}

pub async fn fixture() -> Fixture {
    let test_db = TestDb::new().await;
    let config = DatabaseConfig {
        max_connections: Some(5),
        min_connections: Some(0),
        ..DatabaseConfig::with_url(test_db.url())
    };
    let db = Database::connect(&config).await.unwrap();
    let service_config = ServiceConfig {
        auth: AuthConfig {
            jwt_secret: Secret::new("test-secret-test-secret-test-secret!"),
            // Cheap hashes keep the suite fast; production cost is measured by the criterion bench.
            argon2_memory_kib: 1024,
            argon2_iterations: 1,
            ..AuthConfig::default()
        },
        rentals: RentalConfig { tax_rate_bp: 1_000 },
        ..ServiceConfig::default()
    };
    let clock = ManualClock::new(Utc::now());
    let services = Services::with_clock(db.clone(), &service_config, Arc::new(clock.clone())).unwrap();
    Fixture { services, db, clock, _db: test_db }
}

pub async fn principal(services: &Services, email: &str, password: &str) -> Principal {
    let tokens = services.auth.login(email, password).await.unwrap();
    services.auth.authenticate(&tokens.access_token).await.unwrap()
}

/// An admin, a staff member and a customer.
pub async fn people(services: &Services) -> (Principal, Principal, Principal) {
    services.users.create_admin("root@example.com", "root-password").await.unwrap();
    let admin = principal(services, "root@example.com", "root-password").await;
    let staff = NewUser {
        email: "staff@example.com".into(),
        full_name: "Sam Staff".into(),
        password: Some("staff-password".into()),
        roles: Some(vec![Role::Staff]),
        ..NewUser::default()
    };
    services.users.create(&admin, staff).await.unwrap();
    let staff = principal(services, "staff@example.com", "staff-password").await;
    services
        .auth
        .register(Registration {
            email: "cus@example.com".into(),
            full_name: "Cus Tomer".into(),
            password: "customer-pw".into(),
        })
        .await
        .unwrap();
    let customer = principal(services, "cus@example.com", "customer-pw").await;
    (admin, staff, customer)
}
