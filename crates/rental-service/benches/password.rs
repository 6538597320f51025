//! Cost of one argon2id hash and one verification at the production parameters: the floor of a login.
//!
//! `cargo bench -p rental-service --bench password`
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use criterion::{Criterion, criterion_group, criterion_main};
use rental_domain::Password;
use rental_service::{AuthConfig, PasswordHasher};

fn password(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let hasher = PasswordHasher::new(&AuthConfig::default()).unwrap();
    let hash = runtime.block_on(hasher.hash(Password::parse("correct horse battery").unwrap())).unwrap();

    let mut group = c.benchmark_group("argon2id_m19456_t2_p1");
    group.sample_size(20);
    group.bench_function("hash", |b| {
        b.iter(|| runtime.block_on(hasher.hash(Password::parse("correct horse battery").unwrap())).unwrap())
    });
    group.bench_function("verify", |b| {
        b.iter(|| {
            runtime.block_on(hasher.verify(Some(hash.clone()), Password::unchecked("correct horse battery"))).unwrap()
        })
    });
    group.bench_function("verify_unknown_user", |b| {
        b.iter(|| runtime.block_on(hasher.verify(None, Password::unchecked("correct horse battery"))).unwrap())
    });
    group.finish();
}

criterion_group!(benches, password);
criterion_main!(benches);
