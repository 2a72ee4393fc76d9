//! A secret store that hangs or is down: bounded waits, errors that blame the store, and service as soon as it
//! is back.

mod common;

use std::time::Duration;

use common::{FakeDb, FaultyStore, StoreMode};
use rotapool_core::{Error, PoolError, SourceError};
use tokio::time::Instant;

#[tokio::test(start_paused = true)]
async fn a_hung_store_costs_a_get_at_most_the_auth_budget_and_service_resumes_when_it_answers() {
    let (db, store) = (FakeDb::new("one"), FaultyStore::new("one"));
    let pool = common::pool(&db, &store).await;
    store.set(StoreMode::Hung);
    common::rotate(&db, &store, "two");

    let reads = store.reads();
    let started = Instant::now();
    let gets: Vec<_> = (0..16)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move {
                let asked = Instant::now();
                (pool.get().await.map(drop), asked.elapsed())
            })
        })
        .collect();
    let mut answers = Vec::new();
    for get in gets {
        answers.push(get.await.unwrap());
    }
    assert_eq!(
        store.reads() - reads,
        1,
        "16 callers shared one read of the secret"
    );
    for (result, waited) in answers {
        assert!(
            waited <= Duration::from_secs(10),
            "a get() waited {waited:?}"
        );
        match result {
            Err(PoolError::Backend(Error::Refresh(e))) => {
                assert!(matches!(*e, SourceError::TimedOut { .. }), "{e}");
                let message = e.to_string();
                assert!(message.contains("did not answer within 5s"), "{message}");
            }
            other => panic!("expected the store's timeout, got {other:?}"),
        }
    }
    // Paused time: these durations are the runtime's virtual clock, exact whatever the machine's load.
    assert!(
        started.elapsed() < Duration::from_millis(5100),
        "one read timeout for all 16, not one each: {:?}",
        started.elapsed()
    );

    // Still hung 20 s later: still bounded, still the store's fault.
    tokio::time::sleep(Duration::from_secs(20)).await;
    let asked = Instant::now();
    assert!(matches!(
        pool.get().await,
        Err(PoolError::Backend(Error::Refresh(_)))
    ));
    // One read timeout, and one more try of the rejected password (a login of a few milliseconds).
    assert!(
        asked.elapsed() < Duration::from_millis(5100),
        "{:?}",
        asked.elapsed()
    );

    store.set(StoreMode::Up);
    let back = Instant::now();
    let served = common::serve(&pool, &db, Duration::from_secs(3)).await;
    assert!(served.ok > 0);
    assert!(
        served.errors.len() <= 110,
        "errors for at most the 1.1 s until the next round: {}",
        served.errors.len()
    );
    let recovered = pool.get().await.map(drop);
    assert!(recovered.is_ok(), "{recovered:?}");
    assert!(back.elapsed() < Duration::from_secs(4));
    assert_eq!(pool.generation(), 2);
}

#[tokio::test(start_paused = true)]
async fn while_the_store_is_down_every_error_names_the_store_not_the_password() {
    let (db, store) = (FakeDb::new("one"), FaultyStore::new("one"));
    let pool = common::pool(&db, &store).await;
    store.set(StoreMode::Down);
    store.rotate_to("two");
    db.set_password("two");

    let outage = common::serve(&pool, &db, Duration::from_secs(10)).await;
    assert!(outage.errors.len() > 100, "{}", outage.errors.len());
    let blaming_the_password: Vec<_> = outage
        .errors
        .iter()
        .filter(|e| !e.contains("secret store unreachable"))
        .collect();
    assert_eq!(
        blaming_the_password,
        Vec::<&String>::new(),
        "every error must name the store"
    );
    // The old password is tried again once a round (about one a second), never by every caller.
    let rejected = db.rejected.load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        rejected <= 12,
        "{rejected} logins spent on the old password in 10 s"
    );

    store.set(StoreMode::Up);
    let back = common::serve(&pool, &db, Duration::from_secs(3)).await;
    assert!(back.ok > 0);
    assert_eq!(pool.generation(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_hung_store_at_start_up_is_a_timeout_error_not_a_hang() {
    let store = FaultyStore::new("one");
    store.set(StoreMode::Hung);
    let started = Instant::now();
    let err = common::builder(&FakeDb::new("one"), &store)
        .build()
        .await
        .expect_err("no secret, no pool");
    assert!(started.elapsed() <= Duration::from_secs(5));
    let text = common::chain(&err);
    assert!(text.contains("did not answer within 5s"), "{text}");
}

#[tokio::test(start_paused = true)]
async fn callers_that_give_up_on_a_hung_read_do_not_start_one_read_each() {
    let (db, store) = (FakeDb::new("one"), FaultyStore::new("one"));
    let pool = common::pool(&db, &store).await;
    store.set(StoreMode::Hung);
    common::rotate(&db, &store, "two");
    let reads = store.reads();
    // A hundred callers, each giving up after 10 ms, one after another: all within the hung read's 5 s.
    let mut gave_up = 0;
    for _ in 0..100 {
        let patience = tokio::time::timeout(Duration::from_millis(10), pool.get()).await;
        gave_up += u32::from(patience.is_err());
    }
    assert_eq!(gave_up, 100, "each waited on the hung read");
    assert_eq!(
        store.reads() - reads,
        1,
        "the read outlived the caller that started it, and every later caller waited on it"
    );

    // The store answers again: the next round (after the hung read's timeout) adopts the rotation.
    store.set(StoreMode::Up);
    tokio::time::sleep(Duration::from_secs(6)).await;
    drop(pool.get().await.expect("served once the store answers"));
    assert_eq!(pool.generation(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_rejected_login_never_waits_for_a_hung_proactive_read() {
    let (db, store) = (FakeDb::new("one"), FaultyStore::new("one"));
    let pool = common::builder(&db, &store)
        .proactive_refresh(common::proactive_every_second())
        .build()
        .await
        .expect("the pool builds");
    drop(pool.get().await.expect("a connection"));
    store.set(StoreMode::Hung);
    let reads = store.reads();
    // The proactive refresh wakes within 1.2 s and its read hangs until its 5 s timeout.
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert_eq!(store.reads(), reads + 1, "the proactive read is in flight");
    // The store answers again, but the proactive read still hangs on its old request.
    store.set(StoreMode::Up);
    common::rotate(&db, &store, "two");
    let asked = Instant::now();
    drop(pool.get().await.expect("served at once"));
    // Paused time: the get() took the fake logins' few milliseconds, not the seconds left of the hung read.
    assert!(
        asked.elapsed() < Duration::from_millis(100),
        "the rejected login waited {:?}",
        asked.elapsed()
    );
    assert_eq!(pool.generation(), 2);
}
