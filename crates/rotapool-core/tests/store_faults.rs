//! A secret store that hangs or is down: bounded waits, errors that blame the store, and service as soon as it
//! is back.

mod common;

use std::time::Duration;

use common::{FakeDb, FaultyStore, StoreMode};
use rotapool_core::{deadpool::managed::PoolError, Error, SourceError};
use tokio::time::Instant;

#[tokio::test(start_paused = true)]
async fn a_hung_store_costs_a_get_at_most_the_auth_budget_and_service_resumes_when_it_answers() {
    let (db, store) = (FakeDb::new("one"), FaultyStore::new("one"));
    let pool = common::pool(&db, &store).await;
    store.set(StoreMode::Hung);
    common::rotate(&db, &store, "two");

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
    for get in gets {
        let (result, waited) = get.await.unwrap();
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
    assert!(asked.elapsed() <= Duration::from_secs(5));

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
    assert_eq!(pool.manager().generation(), 2);
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
    assert!(
        db.rejected.load(std::sync::atomic::Ordering::Relaxed) <= 3,
        "logins spent on the old password"
    );

    store.set(StoreMode::Up);
    let back = common::serve(&pool, &db, Duration::from_secs(3)).await;
    assert!(back.ok > 0);
    assert_eq!(pool.manager().generation(), 2);
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
    assert!(
        err.to_string().contains("did not answer within 5s"),
        "{err}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_hung_proactive_read_does_not_hold_up_a_rejected_login() {
    let (db, store) = (FakeDb::new("one"), FaultyStore::new("one"));
    let pool = common::pool(&db, &store).await;
    let refresher = pool.manager().refresher().clone();
    store.set(StoreMode::Hung);
    let proactive = tokio::spawn(async move { refresher.refresh_proactively().await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The store answers again, but the proactive read still hangs on its old request.
    store.set(StoreMode::Up);
    common::rotate(&db, &store, "two");
    let asked = Instant::now();
    drop(
        pool.get()
            .await
            .expect("served after the proactive read gives up"),
    );
    assert!(asked.elapsed() <= Duration::from_secs(5));
    assert!(proactive.await.unwrap().is_err(), "the hung read timed out");
}
