//! Login permits: however many callers need a connection when the password changes, the database sees at most
//! `max_concurrent_logins` failed logins, and credentials it has never accepted are tried by one login at a time.
//! A server that blocks an account after a few failed logins in a row never gets them from one rotation.

mod common;

use std::{sync::atomic::Ordering, time::Duration};

use common::{FakeDb, FaultyStore};
use rotapool_core::BuildError;

#[tokio::test(start_paused = true)]
async fn login_permits_bound_the_failed_logins_one_password_change_costs() {
    for limit in [1, 2, 4] {
        let (db, store) = (FakeDb::new("one"), FaultyStore::new("one"));
        let login =
            common::proven_login(common::builder(&db, &store).max_concurrent_logins(limit)).await;

        common::rotate(&db, &store, "two");
        let callers = common::connect_at_once(&login, 16).await;

        for connected in &callers {
            let connected = connected.as_ref().expect("every caller gets a connection");
            assert_eq!(connected.tag.generation(), 2);
        }
        let failed = db.rejected.load(Ordering::Relaxed);
        assert!(
            (1..=u64::from(limit)).contains(&failed),
            "{failed} failed logins for 16 callers with {limit} login permits"
        );
        let stats = login.stats();
        assert_eq!(stats.auth_failures, failed);
        assert_eq!(stats.login_permits_held, 0, "every permit given back");
    }
}

#[tokio::test(start_paused = true)]
async fn unproven_credentials_are_tried_by_one_login_at_a_time() {
    let (db, store) = (FakeDb::new("one"), FaultyStore::new("one"));
    let login = common::builder(&db, &store)
        .max_concurrent_logins(4)
        .build_login()
        .await
        .expect("the login builds");

    // A pool that starts while its database restarts: its credentials have never logged in, and 16 callers
    // retry logins that the database refuses.
    db.stop();
    let restarting = {
        let login = login.clone();
        tokio::spawn(async move { common::connect_at_once(&login, 16).await })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let refused = db.refused.load(Ordering::Relaxed);
    assert!(refused >= 16, "only {refused} logins met the restart");
    assert_eq!(
        db.peak_logins.load(Ordering::Relaxed),
        1,
        "logins with credentials the database has never accepted go one at a time"
    );
    db.start();
    for connected in restarting.await.expect("the callers finish") {
        connected.expect("every caller gets a connection once the database is back");
    }

    // Once the database has accepted them, logins go `max_concurrent_logins` at a time, and no more.
    drop(common::connect_at_once(&login, 16).await);
    assert_eq!(db.peak_logins.load(Ordering::Relaxed), 4);
}

/// The logins in flight when the password changes each fail once (the test above): with as many of them as the
/// server's threshold, one rotation could block the account, so the builder refuses that pool.
#[tokio::test(start_paused = true)]
async fn logins_in_flight_stay_below_the_lockout_threshold() {
    let (db, store) = (FakeDb::new("one"), FaultyStore::new("one"));
    let builder = |threshold: u32, logins: u32| {
        common::builder(&db, &store)
            .lockout_threshold(threshold)
            .max_concurrent_logins(logins)
    };
    let refused = builder(2, 2)
        .build_login()
        .await
        .expect_err("two logins in flight could reach a threshold of two");
    assert!(
        matches!(
            refused,
            BuildError::InvalidSetting {
                setting: "max_concurrent_logins",
                ..
            }
        ),
        "{refused:?}"
    );
    let message = refused.to_string();
    assert!(
        message.contains("lower max_concurrent_logins or raise lockout_threshold"),
        "{message}"
    );
    builder(2, 1)
        .build_login()
        .await
        .expect("one login at a time stays below two");
    builder(3, 2)
        .build_login()
        .await
        .expect("the default two logins stay below three");
}
