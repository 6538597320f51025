//! Idempotency records in the effect's unit of work: a claim that meets a unit holding the key waits for it,
//! then finds the key taken (the holder committed) or gets it (the holder rolled back). SQLite by default,
//! PostgreSQL when TEST_DATABASE_URL is set.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::fixture;
use rental_service::{IdempotencyClaim, IdempotencyKey, Principal, ServiceError};

fn claim(body: &[u8]) -> IdempotencyClaim {
    let key = IdempotencyKey::parse("key-1").unwrap();
    IdempotencyClaim::new(Some(&Principal::system()), key, "POST", "/things", "/things", body, 201)
}

#[tokio::test]
async fn a_second_claim_waits_and_finds_the_committed_answer() {
    let f = fixture().await;
    let idem = f.services.idempotency.clone();
    let first = idem.begin(&f.db, Some(&claim(b"{}"))).await.unwrap();
    let (db, idem2) = (f.db.clone(), idem.clone());
    let second = tokio::spawn(async move { idem2.begin(&db, Some(&claim(b"{}"))).await.map(|_| ()) });
    // Not yet committed: nothing to replay.
    assert_eq!(idem.lookup(&claim(b"{}")).await.unwrap(), None);
    let answer = serde_json::json!({"id": 1});
    idem.complete(&first, &claim(b"{}"), &answer).await.unwrap();
    first.commit().await.unwrap();
    assert!(matches!(second.await.unwrap(), Err(ServiceError::IdempotencyKeyInUse)));
    let stored = idem.lookup(&claim(b"{}")).await.unwrap().unwrap();
    assert_eq!((stored.status, stored.body.as_str()), (201, r#"{"id":1}"#));
    assert!(matches!(idem.lookup(&claim(b"{\"other\":1}")).await, Err(ServiceError::IdempotencyMismatch)));
}

#[tokio::test]
async fn a_second_claim_gets_the_key_when_the_first_unit_rolls_back() {
    let f = fixture().await;
    let idem = f.services.idempotency.clone();
    let first = idem.begin(&f.db, Some(&claim(b"{}"))).await.unwrap();
    let (db, idem2) = (f.db.clone(), idem.clone());
    let second = tokio::spawn(async move {
        let uow = idem2.begin(&db, Some(&claim(b"{}"))).await?;
        idem2.complete(&uow, &claim(b"{}"), &"second").await?;
        uow.commit().await?;
        Ok::<_, ServiceError>(())
    });
    first.rollback().await;
    second.await.unwrap().unwrap();
    let stored = f.services.idempotency.lookup(&claim(b"{}")).await.unwrap().unwrap();
    assert_eq!(stored.body, r#""second""#);
}
