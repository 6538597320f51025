//! The command line of the real binary.

use std::io::Write;
use std::process::{Command, Stdio};

use rental_testkit::TestDb;

fn rental_api() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_rental-api"));
    // An empty directory: only built-in defaults and the variables set here apply.
    let dir = std::env::temp_dir().join(format!("rental-cli-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    command.arg("--config-dir").arg(&dir).env_remove("RENTAL_ENV").env("RUST_LOG", "warn");
    command
}

#[test]
fn openapi_prints_the_document() {
    let out = rental_api().arg("openapi").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(doc["paths"]["/api/v1/users/{id}/roles"].is_object());
}

#[test]
fn print_config_redacts_and_bad_config_fails_clearly() {
    let out = rental_api()
        .arg("print-config")
        .env("RENTAL_ENV", "production")
        .env("RENTAL__AUTH__JWT_SECRET", "production-secret-production-secret-42")
        .env("RENTAL__DATABASE__URL", "postgres://app:hunter2@db.internal/rental")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("# profile: production"), "{text}");
    assert!(!text.contains("production-secret-production-secret-42") && !text.contains("hunter2"), "{text}");

    let out = rental_api().arg("print-config").env("RENTAL_ENV", "production").output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("RENTAL__AUTH__JWT_SECRET"));
    let out = rental_api().arg("print-config").env("RENTAL__SERVER__PROT", "1").output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("prot"));
}

#[actix_web::test]
async fn create_admin_reads_the_password_from_stdin() {
    let test_db = TestDb::new().await;
    let run = |password: &str| {
        let mut child = rental_api()
            .args(["create-admin", "--email", "Boss@Example.com", "--password-stdin"])
            .env("RENTAL__DATABASE__URL", test_db.url())
            .env("RENTAL__DATABASE__MAX_CONNECTIONS", "2")
            .env("RENTAL__DATABASE__MIN_CONNECTIONS", "0")
            .env("RENTAL__AUTH__ARGON2_MEMORY_KIB", "1024")
            .env("RENTAL__AUTH__ARGON2_ITERATIONS", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(format!("{password}\n").as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    };
    let out = run("boss-password-1");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("created administrator boss@example.com"));
    let again = run("boss-password-1");
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));

    // The new administrator can log in through the services over the same database.
    let ctx = crate::support::context_on(test_db).await;
    ctx.state.services.auth.login("boss@example.com", "boss-password-1").await.unwrap();
}
