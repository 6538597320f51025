//! The fixture shared by the service test files: services over a fresh database, with cheap password hashes.

use rental_repo::{Database, DatabaseConfig};
use rental_service::{AuthConfig, Secret, ServiceConfig, Services};
use rental_testkit::TestDb;

pub struct Fixture {
    pub services: Services,
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
        ..ServiceConfig::default()
    };
    Fixture { services: Services::new(db, &service_config).unwrap(), _db: test_db }
}
