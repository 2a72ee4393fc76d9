//! When the refresher reads the secret: a struggle never delays the next rotation, and a secret that never
//! changes gives fast, consistent failures with reads at a steady pace.

mod common;

use std::time::Duration;

use common::{FakeDb, FaultyStore, StoreMode};
use rotapool_core::{Error, PoolError};
use tokio::time::Instant;

#[tokio::test(start_paused = true)]
async fn a_rotation_soon_after_a_store_outage_is_served_without_errors() {
    let (db, store) = (FakeDb::new("one"), FaultyStore::new("one"));
    let pool = common::pool(&db, &store).await;
    assert!(common::serve(&pool, &db, Duration::from_secs(1))
        .await
        .errors
        .is_empty());

    // A rotation while the store is down: every new login fails and every read of the secret fails, for 30 s.
    store.set(StoreMode::Down);
    store.rotate_to("two");
    db.set_password("two");
    let outage = common::serve(&pool, &db, Duration::from_secs(30)).await;
    assert!(
        !outage.errors.is_empty(),
        "nothing could be done while the store was down"
    );
    store.set(StoreMode::Up);
    let back = common::serve(&pool, &db, Duration::from_secs(5)).await;
    assert!(back.ok > 0);

    // An ordinary rotation 5 s later: the struggle is over and must not delay it.
    store.rotate_to("three");
    db.set_password("three");
    let second = common::serve(&pool, &db, Duration::from_secs(5)).await;
    assert_eq!(second.errors, Vec::<String>::new());
    assert_eq!(pool.generation(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_new_rejection_after_an_adoption_reads_at_once() {
    let (db, store) = (FakeDb::new("one"), FaultyStore::new("one"));
    let pool = common::pool(&db, &store).await;
    // A failure that lasted long enough to slow the pace to its slowest.
    db.set_password("lost");
    for _ in 0..40 {
        assert!(pool.get().await.is_err());
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    store.rotate_to("lost");
    tokio::time::sleep(Duration::from_secs(11)).await;
    drop(pool.get().await.expect("the fixed secret is adopted"));

    // The next rotation; the pool must open a new connection to meet it.
    common::rotate(&db, &store, "next");
    let asked_at = Instant::now();
    let held: Vec<_> = futures_of(&pool, 4).await;
    assert_eq!(held.len(), 4);
    assert_eq!(pool.generation(), 3);
    assert!(
        asked_at.elapsed() < Duration::from_millis(100),
        "read at once, not after a pause left over from the old failure"
    );
}

/// Borrows `n` connections at once (more than are idle, so new logins happen).
async fn futures_of(
    pool: &rotapool_core::Pool<common::FakeBackend>,
    n: usize,
) -> Vec<rotapool_core::Object<common::FakeBackend>> {
    let mut held = Vec::new();
    for _ in 0..n {
        held.push(pool.get().await.expect("a connection"));
    }
    held
}

#[tokio::test(start_paused = true)]
async fn a_secret_that_is_never_updated_fails_fast_and_is_read_at_a_steady_pace() {
    let (db, store) = (FakeDb::new("one"), FaultyStore::new("one"));
    let pool = common::pool(&db, &store).await;
    db.set_password("changed behind the secret's back");
    let reads_before = store.reads();

    let mut slowest = Duration::ZERO;
    let mut kinds = std::collections::BTreeSet::new();
    let end = Instant::now() + Duration::from_secs(20);
    while Instant::now() < end {
        let asked = Instant::now();
        let err = pool.get().await.expect_err("no right password anywhere");
        slowest = slowest.max(asked.elapsed());
        kinds.insert(match err {
            PoolError::Backend(Error::AuthRejected { .. }) => "auth rejected",
            _ => "other",
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(kinds.into_iter().collect::<Vec<_>>(), ["auth rejected"]);
    assert!(
        slowest < Duration::from_millis(100),
        "every get() failed at once, the slowest after {slowest:?}"
    );
    // One round (AWSCURRENT, AWSPENDING, AWSPREVIOUS) per second, give or take a tenth: 18 to 23 rounds in 20 s.
    let rounds = (store.reads() - reads_before) / 3;
    assert!((18..=23).contains(&rounds), "{rounds} rounds in 20 s");
    // The rejected password is tried again once a round, never given up, and never by every caller: the first
    // rejection, then one retry per round after the first.
    let rejected = db.rejected.load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        (rounds..=rounds + 1).contains(&rejected),
        "{rejected} logins spent on the rejected password in {rounds} rounds"
    );

    // After a minute of failure, one round every 10 s.
    let slow_from = Instant::now() + Duration::from_secs(45);
    tokio::time::sleep_until(slow_from).await;
    let reads_then = store.reads();
    while Instant::now() < slow_from + Duration::from_secs(60) {
        let _ = pool.get().await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let slow_rounds = (store.reads() - reads_then) / 3;
    assert!(
        (5..=7).contains(&slow_rounds),
        "{slow_rounds} rounds in 60 s"
    );
}
