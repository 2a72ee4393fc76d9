//! A rejected generation: once the database has refused the credentials in use, callers fail at once with its
//! words instead of spending logins on them, until the next round of reads (`RefreshPolicy::retry_interval`
//! later) tries them once for everyone.

mod common;

use std::{sync::atomic::Ordering, time::Duration};

use common::{FakeDb, FaultyStore};
use rotapool_core::{Error, RefreshPolicy};

#[tokio::test(start_paused = true)]
async fn a_generation_known_to_be_rejected_costs_no_login_until_the_next_round() {
    let retry_interval = Duration::from_secs(5);
    let (db, store) = (FakeDb::new("one"), FaultyStore::new("one"));
    let login = common::proven_login(common::builder(&db, &store).refresh_policy(RefreshPolicy {
        retry_interval,
        ..RefreshPolicy::default()
    }))
    .await;

    // The database takes a password the secret does not hold.
    db.set_password("changed by hand");
    let first = tokio::time::timeout(Duration::from_secs(60), login.connect())
        .await
        .expect("the connect gives up")
        .expect_err("rejected");
    assert!(
        matches!(first, Error::AuthRejected { attempts: 1, .. }),
        "{first:?}"
    );
    let rejected_at = tokio::time::Instant::now();
    let (logins, reads) = (db.logins.load(Ordering::Relaxed), store.reads());

    // Before the next round (at least 0.9 × retry_interval away): every connect fails at once, with no login and
    // no read.
    while rejected_at.elapsed() < retry_interval.mul_f64(0.85) {
        let asked = tokio::time::Instant::now();
        let err = login.connect().await.expect_err("still rejected");
        assert!(
            matches!(&err, Error::AuthRejected { attempts: 0, generation: 1, detail, .. } if detail.starts_with("28P01")),
            "{err:?}"
        );
        assert_eq!(asked.elapsed(), Duration::ZERO, "answered without waiting");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        db.logins.load(Ordering::Relaxed),
        logins,
        "no login on a generation known to be rejected"
    );
    assert_eq!(store.reads(), reads, "and no read of the secret");

    // The next round is due by 1.1 × retry_interval: it tries the rejected generation once for all 8 callers.
    tokio::time::sleep_until(rejected_at + retry_interval.mul_f64(1.1)).await;
    for connected in common::connect_at_once(&login, 8).await {
        assert!(
            matches!(connected, Err(Error::AuthRejected { attempts: 0, .. })),
            "{connected:?}"
        );
    }
    assert_eq!(
        db.logins.load(Ordering::Relaxed),
        logins + 1,
        "one round, one login"
    );
    assert!(store.reads() > reads, "the round read the secret");

    // Once the database takes the password again, the round after next finds it and the generation serves.
    db.set_password("one");
    tokio::time::sleep(retry_interval.mul_f64(1.1)).await;
    let again = login.connect().await.expect("accepted again");
    assert_eq!(again.tag.generation(), 1, "the same generation");
}

/// A session past its lifetime is kept while the credentials in use are rejected and nothing newer is known
/// (a mounted secret behind the database): its replacement could not log in. Once the credentials work again,
/// the lifetime applies as before.
#[tokio::test(start_paused = true)]
async fn a_session_past_its_lifetime_is_kept_while_its_replacement_could_not_log_in() {
    let lifetime = Duration::from_secs(60);
    let (db, store) = (FakeDb::new("one"), FaultyStore::new("one"));
    let login = common::proven_login(
        common::builder(&db, &store)
            .max_lifetime(lifetime)
            .max_auth_attempts(1),
    )
    .await;
    let session = login.connect().await.expect("the password works");
    let old = lifetime + Duration::from_secs(1);
    assert_eq!(
        login.retirement(&session.tag, || old),
        Some("reached its maximum lifetime"),
        "while the credentials work, the lifetime retires the session"
    );

    db.set_password("changed before the secret");
    login
        .connect()
        .await
        .expect_err("the database rejects the secret");
    assert_eq!(
        login.retirement(&session.tag, || old),
        None,
        "kept: a new login with the rejected credentials would fail"
    );

    db.set_password("one");
    tokio::time::sleep(Duration::from_secs(10)).await;
    drop(
        login
            .connect()
            .await
            .expect("the next round finds the password works again"),
    );
    assert_eq!(
        login.retirement(&session.tag, || old),
        Some("reached its maximum lifetime")
    );
}
