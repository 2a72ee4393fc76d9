//! Logins that fail for passing reasons are retried inside the caller's wait, so a brief database restart never
//! reaches the application; `transient_retry(None)` keeps deadpool's fail-at-once.

mod common;

use std::{sync::atomic::Ordering, time::Duration};

use common::{FakeDb, FaultyStore};
use rotapool_core::{Error, PoolError};
use tokio::time::Instant;

/// Restarts `db` for `downtime`, starting `after` from now.
fn restart_later(db: &std::sync::Arc<FakeDb>, after: Duration, downtime: Duration) {
    let db = db.clone();
    tokio::spawn(async move {
        tokio::time::sleep(after).await;
        db.stop();
        tokio::time::sleep(downtime).await;
        db.start();
    });
}

#[tokio::test(start_paused = true)]
async fn a_restart_of_a_few_hundred_milliseconds_is_invisible_to_get() {
    let (db, store) = (FakeDb::new("one"), FaultyStore::new("one"));
    let pool = common::pool(&db, &store).await;
    restart_later(&db, Duration::from_millis(500), Duration::from_millis(300));
    let served = common::serve(&pool, &db, Duration::from_secs(2)).await;
    assert_eq!(served.errors, Vec::<String>::new());
    assert!(
        db.refused.load(Ordering::Relaxed) > 0,
        "the restart was met"
    );
}

#[tokio::test(start_paused = true)]
async fn without_transient_retry_a_restart_fails_at_once() {
    let (db, store) = (FakeDb::new("one"), FaultyStore::new("one"));
    let pool = common::builder(&db, &store)
        .transient_retry(None)
        .build()
        .await
        .unwrap();
    db.stop();
    db.kill_sessions();
    let asked = Instant::now();
    let err = pool.get().await.expect_err("refused");
    assert!(
        matches!(err, PoolError::Backend(Error::Connect { .. })),
        "{err:?}"
    );
    // Paused time: virtual, exact. One login of 2 ms, no retry.
    assert!(asked.elapsed() < Duration::from_millis(10));
    assert_eq!(db.refused.load(Ordering::Relaxed), 1);
}

#[tokio::test(start_paused = true)]
async fn a_database_that_stays_down_fails_after_the_retry_budget_with_the_connect_error() {
    let (db, store) = (FakeDb::new("one"), FaultyStore::new("one"));
    let pool = common::builder(&db, &store)
        .transient_retry(Some(Duration::from_secs(3)))
        .build()
        .await
        .unwrap();
    db.stop();
    let asked = Instant::now();
    let err = pool.get().await.expect_err("down for good");
    let waited = asked.elapsed();
    assert!(
        matches!(&err, PoolError::Backend(Error::Connect { detail, .. }) if detail == "connection refused"),
        "{err:?}"
    );
    assert!(
        waited > Duration::from_secs(2) && waited <= Duration::from_secs(3),
        "{waited:?}"
    );
    // Doubling pauses from 25 ms up to 1 s: a handful of tries, not a busy loop.
    let tries = db.refused.load(Ordering::Relaxed);
    assert!((4..=12).contains(&tries), "{tries} tries in 3 s");
}
