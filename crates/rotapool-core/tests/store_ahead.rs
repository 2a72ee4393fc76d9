//! A secret store ahead of the database (a lagging replica, a proxy's copy, an operator who updates the secret
//! first), and rejections that pass: the pool keeps serving with the password that works, follows the store as
//! soon as the database does, and never gives up a version the database rejected once.

mod common;

use std::{sync::atomic::Ordering, time::Duration};

use common::{FakeDb, FaultyStore};

#[tokio::test(start_paused = true)]
async fn a_store_10s_ahead_of_the_database_costs_no_error() {
    let (db, store) = (FakeDb::new("one"), FaultyStore::new("one"));
    let pool = common::builder(&db, &store)
        .proactive_refresh(common::proactive_every_second())
        .build()
        .await
        .expect("the pool builds");
    assert!(common::serve(&pool, &db, Duration::from_secs(2))
        .await
        .errors
        .is_empty());

    store.rotate_to("two");
    let lag = common::serve(&pool, &db, Duration::from_secs(10)).await;
    assert_eq!(
        lag.errors,
        Vec::<String>::new(),
        "the old password still works"
    );
    assert_eq!(
        pool.generation(),
        1,
        "not adopted before the database takes it"
    );
    // The new version was tried about once a second, each time followed by a login that worked.
    let tried = db.rejected.load(Ordering::Relaxed);
    assert!((8..=12).contains(&tried), "{tried} trial logins in 10 s");

    db.set_password("two");
    let caught_up = common::serve(&pool, &db, Duration::from_secs(2)).await;
    assert_eq!(caught_up.errors, Vec::<String>::new());
    assert_eq!(pool.generation(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_pool_started_while_the_store_is_ahead_serves_with_awsprevious() {
    let (db, store) = (FakeDb::new("one"), FaultyStore::new("one"));
    store.rotate_to("two");
    let pool = common::builder(&db, &store)
        .proactive_refresh(common::proactive_every_second())
        .build()
        .await
        .expect("the pool builds");
    let lag = common::serve(&pool, &db, Duration::from_secs(10)).await;
    assert_eq!(lag.errors, Vec::<String>::new());
    assert_eq!(pool.login().credentials().password(), "one");

    db.set_password("two");
    let caught_up = common::serve(&pool, &db, Duration::from_secs(2)).await;
    assert_eq!(caught_up.errors, Vec::<String>::new());
    assert_eq!(pool.login().credentials().password(), "two");
}

#[tokio::test(start_paused = true)]
async fn a_rejection_that_passes_ends_within_a_round() {
    let (db, store) = (FakeDb::new("one"), FaultyStore::new("one"));
    let pool = common::pool(&db, &store).await;
    db.set_password("refused for a while");
    let refused = common::serve(&pool, &db, Duration::from_secs(5)).await;
    assert!(!refused.errors.is_empty(), "no password works for 5 s");
    db.set_password("one");
    let back = tokio::time::Instant::now();
    let after = common::serve(&pool, &db, Duration::from_secs(3)).await;
    assert!(after.ok > 0);
    // Errors only until the next round, at most 1.1 s away (10 ms between gets).
    assert!(after.errors.len() <= 110, "{} errors", after.errors.len());
    drop(pool.get().await.expect("served again"));
    assert!(back.elapsed() < Duration::from_secs(4));
    assert_eq!(pool.generation(), 1, "the same version serves again");
}

#[tokio::test(start_paused = true)]
async fn with_a_lockout_threshold_a_wrong_secret_never_reaches_it() {
    let (db, store) = (FakeDb::new("one"), FaultyStore::new("one"));
    let pool = common::builder(&db, &store)
        .lockout_threshold(Some(3))
        .build()
        .await
        .expect("the pool builds");
    db.set_password("right");
    let wrong = common::serve(&pool, &db, Duration::from_secs(20)).await;
    assert!(!wrong.errors.is_empty());
    let failed = db.rejected.load(Ordering::Relaxed);
    assert!(failed < 3, "{failed} failed logins in a row");

    store.rotate_to("right");
    tokio::time::sleep(Duration::from_secs(11)).await;
    drop(
        pool.get()
            .await
            .expect("the fixed secret is tried and adopted"),
    );
}

#[tokio::test(start_paused = true)]
async fn a_login_accepted_beside_the_first_rejected_one_does_not_wipe_it_from_the_count() {
    let (db, store) = (FakeDb::new("one"), FaultyStore::new("one"));
    let login = common::proven_login(common::builder(&db, &store).lockout_threshold(Some(3))).await;
    db.set_login_latency(Duration::from_millis(40));
    // The first login's password is checked at 20 ms and accepted; the second's, begun at 10 ms, at 30 ms, after
    // the change at 25 ms: it is rejected, and ends, before the first has finished its start-up at 40 ms. The
    // server saw the acceptance first, so the rejection is the first of a run.
    let accepted = tokio::spawn({
        let login = login.clone();
        async move { login.connect().await }
    });
    tokio::time::sleep(Duration::from_millis(10)).await;
    let rejected = tokio::spawn({
        let login = login.clone();
        async move { login.connect().await }
    });
    tokio::time::sleep(Duration::from_millis(15)).await;
    db.set_password("right");
    drop(accepted.await.unwrap().expect("checked before the change"));
    rejected
        .await
        .unwrap()
        .expect_err("checked after the change");

    let end = tokio::time::Instant::now() + Duration::from_secs(20);
    while tokio::time::Instant::now() < end {
        login
            .connect()
            .await
            .expect_err("no version holds the right password");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let tries = db.rejected.load(Ordering::Relaxed);
    assert!(
        tries >= 2,
        "the rejected version was tried again: {tries} rejections"
    );
    let in_a_row = db.most_rejected_in_a_row.load(Ordering::Relaxed);
    assert!(in_a_row < 3, "{in_a_row} failed logins in a row");
}
