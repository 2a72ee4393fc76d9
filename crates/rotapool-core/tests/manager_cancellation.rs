//! `get()` futures dropped mid-refresh, by the thousand, leave nothing behind: no stuck single flight, no login
//! permit held, and the pool serves at full size afterwards.

mod common;

use std::time::Duration;

use common::{FakeDb, FaultyStore, StoreMode};

#[tokio::test(start_paused = true)]
async fn a_thousand_cancelled_gets_leave_no_stuck_flight_and_no_held_permit() {
    let (db, store) = (FakeDb::new("one"), FaultyStore::new("one"));
    let pool = common::pool(&db, &store).await;
    // A rotation while the store hangs: every get() ends up waiting on a read of the secret.
    store.set(StoreMode::Hung);
    common::rotate(&db, &store, "two");

    let gets: Vec<_> = (0..1000u64)
        .map(|i| {
            let pool = pool.clone();
            // Cancelled at every stage: queued for a slot, logging in, reading the secret, queued behind a read.
            let patience = Duration::from_micros(137 * (i % 50));
            tokio::spawn(async move { tokio::time::timeout(patience, pool.get()).await.is_err() })
        })
        .collect();
    let mut cancelled = 0;
    for get in gets {
        cancelled += u32::from(get.await.unwrap());
    }
    assert!(cancelled > 900, "{cancelled} of 1000 were cancelled");
    assert_eq!(pool.stats().login_permits_held, 0);

    store.set(StoreMode::Up);
    // A round that began while the store hung may still be reading, and its answer stands until the next round:
    // both end within the read timeout (5 s) and the pause after a failed round. A stuck flight would not.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let gets: Vec<_> = (0..4)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move { pool.get().await })
        })
        .collect();
    let mut full = Vec::new();
    for get in gets {
        full.push(get.await.unwrap().expect("a connection"));
    }
    assert_eq!(pool.status().size, 4);
    assert_eq!(pool.generation(), 2);
    assert_eq!(pool.stats().login_permits_held, 0);
}
