//! The cache abstraction's own tests: hits and loads, invalidation races, refresh-ahead, clearing.
use std::sync::atomic::AtomicUsize;

use super::*;

fn spec(name: &'static str) -> NamespaceSpec {
    NamespaceSpec::new(name, Duration::from_secs(3600), 1_000)
}

async fn load(ns: &Namespace<String, JsonBytes>, key: &str, value: &'static str, loads: &AtomicUsize) -> String {
    let got = ns
        .get_or_load(key.to_owned(), async {
            loads.fetch_add(1, Ordering::SeqCst);
            Ok::<_, ()>(JsonBytes(Arc::from(value.as_bytes())))
        })
        .await
        .unwrap();
    String::from_utf8(got.0.to_vec()).unwrap()
}

#[tokio::test]
async fn keys_are_invalidated_one_by_one_and_namespaces_by_generation() {
    let caches = Caches::local_only();
    let ns: Namespace<String, JsonBytes> = caches.namespace(spec("things"));
    let loads = AtomicUsize::new(0);
    assert_eq!(load(&ns, "a", "1", &loads).await, "1");
    assert_eq!(load(&ns, "a", "2", &loads).await, "1", "a hit");
    assert_eq!(load(&ns, "b", "3", &loads).await, "3");
    ns.invalidate(&"a".to_owned()).await;
    assert_eq!(load(&ns, "a", "4", &loads).await, "4");
    assert_eq!(load(&ns, "b", "5", &loads).await, "3", "other keys stay");
    ns.clear().await;
    assert_eq!(load(&ns, "a", "6", &loads).await, "6");
    assert_eq!(load(&ns, "b", "7", &loads).await, "7");
    assert_eq!(loads.load(Ordering::SeqCst), 5);
    let stats = caches.stats();
    assert_eq!(stats.len(), 1);
    assert_eq!(
        (stats[0].name, stats[0].tier, stats[0].hits, stats[0].misses, stats[0].loads),
        ("things", "local", 2, 5, 5)
    );
}

/// A lookup of `key` whose load gives `value` once the returned sender is used; returns when the load runs.
async fn held_lookup(
    ns: &Namespace<String, JsonBytes>,
    key: &str,
    value: &'static [u8],
) -> (tokio::task::JoinHandle<Result<JsonBytes, Arc<()>>>, tokio::sync::oneshot::Sender<()>) {
    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
    let (ns, key) = (ns.clone(), key.to_owned());
    let lookup = tokio::spawn(async move {
        ns.get_or_load(key, async move {
            let _ = started_tx.send(());
            let _ = go_rx.await;
            Ok::<_, ()>(JsonBytes(Arc::from(value)))
        })
        .await
    });
    started_rx.await.unwrap();
    (lookup, go_tx)
}

/// A namespace with a refresh point of 50 ms (TTL 2 minutes) holding `a` = `old`, 100 ms later.
async fn past_its_refresh_point() -> (Caches, Namespace<String, JsonBytes>, AtomicUsize) {
    let caches = Caches::local_only();
    let ns = caches.namespace(
        NamespaceSpec::new("things", Duration::from_secs(120), 10).refreshed_after(Duration::from_millis(50)),
    );
    let loads = AtomicUsize::new(0);
    assert_eq!(load(&ns, "a", "old", &loads).await, "old");
    tokio::time::sleep(Duration::from_millis(100)).await;
    (caches, ns, loads)
}

#[tokio::test]
async fn a_load_that_overlaps_an_invalidation_is_not_kept() {
    let caches = Caches::local_only();
    let ns: Namespace<String, JsonBytes> = caches.namespace(spec("things"));
    let (slow, go_tx) = held_lookup(&ns, "k", b"old").await;
    ns.invalidate(&"k".to_owned()).await;
    go_tx.send(()).unwrap();
    assert_eq!(&*slow.await.unwrap().unwrap().0, b"old", "the racing caller gets what it read");
    let loads = AtomicUsize::new(0);
    assert_eq!(load(&ns, "k", "new", &loads).await, "new", "the cache did not keep it");
}

fn refreshes(caches: &Caches) -> u64 {
    caches.stats().iter().map(|s| s.refreshes).sum()
}

#[test]
fn a_refresh_point_is_kept_only_before_the_ttl() {
    let spec = NamespaceSpec::new("x", Duration::from_secs(10), 1);
    assert_eq!(spec.refresh_after, None);
    assert_eq!(spec.refreshed_after(Duration::from_secs(7)).refresh_after, Some(Duration::from_secs(7)));
    assert_eq!(spec.refreshed_after(Duration::from_secs(10)).refresh_after, None);
}

#[tokio::test]
async fn an_entry_before_its_refresh_point_is_served_without_a_load() {
    let caches = Caches::local_only();
    let ns: Namespace<String, JsonBytes> = caches
        .namespace(NamespaceSpec::new("things", Duration::from_secs(120), 10).refreshed_after(Duration::from_secs(60)));
    let loads = AtomicUsize::new(0);
    assert_eq!(load(&ns, "a", "1", &loads).await, "1");
    for _ in 0..10 {
        assert_eq!(load(&ns, "a", "2", &loads).await, "1");
    }
    assert_eq!((loads.load(Ordering::SeqCst), refreshes(&caches)), (1, 0));
}

#[tokio::test]
async fn past_its_refresh_point_one_lookup_reloads_an_entry_while_the_others_are_served_it() {
    let (caches, ns, loads) = past_its_refresh_point().await;
    let (refresher, go_tx) = held_lookup(&ns, "a", b"new").await;
    // While the refresh runs, 50 lookups are answered at once with the entry, none of them loading.
    for _ in 0..50 {
        assert_eq!(load(&ns, "a", "other", &loads).await, "old");
    }
    assert_eq!(loads.load(Ordering::SeqCst), 1, "only the first load ran");
    go_tx.send(()).unwrap();
    assert_eq!(&*refresher.await.unwrap().unwrap().0, b"new", "the refreshing lookup gets what it loaded");
    assert_eq!(load(&ns, "a", "other", &loads).await, "new", "the entry was replaced");
    assert_eq!(refreshes(&caches), 1);
    let stats = &caches.stats()[0];
    assert_eq!((stats.hits, stats.misses, stats.loads), (52, 1, 2));
}

#[tokio::test]
async fn a_refreshed_entry_lives_a_whole_ttl_from_its_refresh() {
    // TTL 2 s, refresh point 50 ms: refreshed at about 1 s, the entry must still be there at about 2.5 s
    // (half a second either side of both expiries, the first entry's and the refreshed one's).
    let caches = Caches::local_only();
    let ns: Namespace<String, JsonBytes> = caches
        .namespace(NamespaceSpec::new("things", Duration::from_secs(2), 10).refreshed_after(Duration::from_millis(50)));
    let loads = AtomicUsize::new(0);
    load(&ns, "a", "1", &loads).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    load(&ns, "a", "2", &loads).await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    load(&ns, "a", "3", &loads).await;
    let stats = &caches.stats()[0];
    assert_eq!((stats.misses, stats.refreshes), (1, 2), "past the first TTL the refreshed entry was still there");
}

#[tokio::test]
async fn a_failed_refresh_keeps_the_entry_and_a_later_lookup_tries_again() {
    let (caches, ns, loads) = past_its_refresh_point().await;
    let failed = ns.get_or_load("a".to_owned(), async { Err::<JsonBytes, _>("database down") }).await;
    assert_eq!(&*failed.unwrap().0, b"old", "the entry is served when its refresh fails");
    assert_eq!(load(&ns, "a", "new", &loads).await, "new", "the next lookup refreshes it");
    assert_eq!(refreshes(&caches), 2);
}

#[tokio::test]
async fn a_refresh_that_overlaps_an_invalidation_is_not_kept() {
    let (_caches, ns, loads) = past_its_refresh_point().await;
    let (refresher, go_tx) = held_lookup(&ns, "a", b"raced").await;
    ns.invalidate(&"a".to_owned()).await;
    go_tx.send(()).unwrap();
    assert_eq!(&*refresher.await.unwrap().unwrap().0, b"raced");
    assert_eq!(load(&ns, "a", "fresh", &loads).await, "fresh", "the raced refresh was not kept");
}

#[tokio::test]
async fn clearing_names_one_namespace_or_all_and_refuses_unknown_names() {
    let caches = Caches::local_only();
    let first: Namespace<String, JsonBytes> = caches.namespace(spec("first"));
    let _second: Namespace<Singleton, JsonBytes> = caches.namespace(spec("second"));
    let loads = AtomicUsize::new(0);
    load(&first, "a", "1", &loads).await;
    assert_eq!(caches.clear(Some("first")).await, Ok(vec!["first"]));
    assert_eq!(load(&first, "a", "2", &loads).await, "2");
    assert_eq!(caches.clear(None).await, Ok(vec!["first", "second"]));
    assert_eq!(load(&first, "a", "3", &loads).await, "3");
    assert_eq!(caches.clear(Some("nope")).await, Err(UnknownNamespace("nope".into())));
    assert_eq!(caches.shared_tier(), SharedTier::None);
}
