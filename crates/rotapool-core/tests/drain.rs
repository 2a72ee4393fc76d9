//! The drain after a rotation: connections opened with the old credentials retire at points spread over the
//! drain window, so that a rotation causes no reconnect storm, and stay while the new credentials are rejected,
//! since they may then be all that works.

mod common;

use std::{sync::Arc, time::Duration};

use common::{FakeBackend, FakeConn, FakeDb, FaultyStore};
use rotapool_core::{DrainPolicy, Login, RotatingLogin};
use tokio::time::Instant;

const WINDOW: Duration = Duration::from_secs(30);

/// A login that drains over [`WINDOW`], and 8 connections it opened with the first password.
async fn eight_connections(
    db: &Arc<FakeDb>,
    store: &Arc<FaultyStore>,
) -> (RotatingLogin<FakeBackend>, Vec<Login<FakeConn>>) {
    let login = common::builder(db, store)
        .drain(DrainPolicy::Gradual { over: WINDOW })
        .build_login()
        .await
        .expect("the login builds");
    let old = common::connect_at_once(&login, 8)
        .await
        .into_iter()
        .map(|connected| connected.expect("the first password works"))
        .collect();
    (login, old)
}

/// How many of `connections` [`RotatingLogin::retirement`] retires now.
fn retired(login: &RotatingLogin<FakeBackend>, connections: &[Login<FakeConn>]) -> usize {
    connections
        .iter()
        .filter(|c| login.retirement(&c.tag, || Duration::ZERO).is_some())
        .count()
}

#[tokio::test(start_paused = true)]
async fn old_connections_drain_spread_over_the_window_not_at_once() {
    let (db, store) = (FakeDb::new("one"), FaultyStore::new("one"));
    let (login, old) = eight_connections(&db, &store).await;
    assert_eq!(retired(&login, &old), 0, "none before a rotation");

    common::rotate(&db, &store, "two");
    let new = login.connect().await.expect("the new password works");
    assert_eq!(new.tag.generation(), 2);
    let adopted_at = Instant::from_std(login.stats().adopted_at);

    let at_start = retired(&login, &old);
    assert!(at_start <= 1, "{at_start} of 8 retired as the window opens");
    let mut so_far = at_start;
    for quarter in 1..=4 {
        tokio::time::sleep_until(adopted_at + WINDOW / 4 * quarter).await;
        let now = retired(&login, &old);
        assert!(
            (1..=3).contains(&(now - so_far)),
            "{} of 8 retired in quarter {quarter} of the window ({now} so far)",
            now - so_far
        );
        so_far = now;
        assert_eq!(
            login.retirement(&new.tag, || Duration::ZERO),
            None,
            "the new connection stays"
        );
    }
    assert_eq!(so_far, 8, "all retired by the end of the window");
}

#[tokio::test(start_paused = true)]
async fn old_connections_are_kept_while_the_current_generation_is_rejected() {
    let (db, store) = (FakeDb::new("one"), FaultyStore::new("one"));
    let (login, old) = eight_connections(&db, &store).await;
    common::rotate(&db, &store, "two");
    drop(login.connect().await.expect("the new password works"));

    // The database moves on without the secret: the new credentials are rejected, the old sessions still work.
    db.set_password("three");
    login.connect().await.expect_err("rejected");
    tokio::time::sleep(WINDOW * 2).await;
    assert_eq!(
        retired(&login, &old),
        0,
        "old connections kept past the window while the current generation is rejected"
    );

    // The rejection passes: the next round finds the current generation accepted, and the drain resumes.
    db.set_password("two");
    drop(login.connect().await.expect("accepted again"));
    assert_eq!(login.generation(), 2);
    assert_eq!(retired(&login, &old), 8);
}

/// Without a maximum lifetime, deciding a retirement never asks a connection's age: a pool's every reuse would
/// otherwise read the clock for nothing (the deadpool-postgres drop-in's `pre_recycle` hook did).
#[tokio::test(start_paused = true)]
async fn without_a_max_lifetime_the_age_is_never_asked() {
    let (db, store) = (FakeDb::new("one"), FaultyStore::new("one"));
    let (login, old) = eight_connections(&db, &store).await;
    let never = || -> Duration { panic!("the age was asked with no maximum lifetime set") };
    assert_eq!(login.retirement(&old[0].tag, never), None);

    common::rotate(&db, &store, "two");
    let new = login.connect().await.expect("the new password works");
    tokio::time::sleep(WINDOW).await;
    assert_eq!(login.retirement(&new.tag, never), None);
    assert!(
        login.retirement(&old[0].tag, never).is_some(),
        "an old connection still retires once the drain window has passed"
    );
}
