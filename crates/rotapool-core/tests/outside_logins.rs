//! A pool that logs in by itself (sqlx's), through the rotating login's seam: it logs in with
//! `RotatingLogin::credentials` under a `permit`, reports what the database said (`opened`, `rejected`), and waits
//! in `recover` after a rejection. The seam must give it what `connect` gives: one read of the secret for all
//! callers, failed logins bounded by the login permits, and an adoption announced to `adoptions`.

mod common;

use std::{sync::atomic::Ordering, time::Duration};

use common::{rotate, FakeBackend, FakeDb, FaultyStore, StoreMode};
use rotapool_core::{Backend, Error, RotatingLogin};
use tokio::time::Instant;

/// One login as such a pool makes it: under a permit, with the current credentials, reporting the outcome;
/// after a rejection, waits for the re-read and tries again, as rotapool-sqlx's `acquire` does.
async fn outside_login(
    login: &RotatingLogin<FakeBackend>,
) -> Result<u64, Error<common::FakeError>> {
    let started = Instant::now();
    let mut attempts = 0;
    loop {
        let generation = login.generation();
        if login.is_rejected() {
            login.recover(generation, attempts, started, None).await?;
            continue;
        }
        let Some(permit) = login.permit(generation).await else {
            continue;
        };
        let credentials = login.credentials();
        let logged_in = login.backend().connect(&credentials).await;
        // Reported before the permit goes: the next holder must see a rejection and skip its login.
        match logged_in {
            Ok(_) => {
                drop(login.opened(generation, Some(&permit)));
                return Ok(generation);
            }
            Err(error) => {
                attempts += 1;
                login.rejected(generation, &error);
                drop(permit);
                login
                    .recover(generation, attempts, started, Some(error))
                    .await?;
            }
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_herd_of_outside_logins_after_a_rotation_reads_once_and_fails_at_most_a_permit_each() {
    let (db, store) = (FakeDb::new("one"), FaultyStore::new("one"));
    let login = common::proven_login(common::builder(&db, &store)).await;
    let mut adoptions = login.adoptions();
    rotate(&db, &store, "two");
    let (reads, rejected) = (store.reads(), db.rejected.load(Ordering::Relaxed));

    let herd: Vec<_> = (0..16)
        .map(|_| {
            let login = login.clone();
            tokio::spawn(async move { outside_login(&login).await })
        })
        .collect();
    for caller in herd {
        assert_eq!(caller.await.unwrap().expect("every caller logs in"), 2);
    }

    assert_eq!(
        store.reads() - reads,
        1,
        "one read of the secret for 16 callers"
    );
    let failed = db.rejected.load(Ordering::Relaxed) - rejected;
    assert!(
        (1..=2).contains(&failed),
        "{failed} failed logins: at most one per login permit (2)"
    );
    assert_eq!(login.stats().auth_failures, failed, "each counted once");
    assert!(
        adoptions.has_changed().unwrap(),
        "the adoption was announced"
    );
    assert_eq!(*adoptions.borrow_and_update(), 2);
    assert_eq!(login.credentials().password(), "two");
}

#[tokio::test(start_paused = true)]
async fn a_permit_is_refused_once_its_generation_is_rejected() {
    let (db, store) = (FakeDb::new("one"), FaultyStore::new("one"));
    let login = common::proven_login(common::builder(&db, &store)).await;
    assert!(
        login.permit(1).await.is_some(),
        "the current generation logs in"
    );
    db.set_password("two");
    let error = login
        .backend()
        .connect(&login.credentials())
        .await
        .expect_err("the old password is rejected");
    login.rejected(1, &error);
    assert!(login.is_rejected());
    assert!(
        login.permit(1).await.is_none(),
        "no login on a rejected generation"
    );
}

#[tokio::test(start_paused = true)]
async fn recover_with_the_store_down_says_so() {
    let (db, store) = (FakeDb::new("one"), FaultyStore::new("one"));
    let login = common::proven_login(common::builder(&db, &store)).await;
    db.set_password("two");
    store.set(StoreMode::Down);
    let error = tokio::time::timeout(Duration::from_secs(60), outside_login(&login))
        .await
        .expect("recover gives up")
        .expect_err("no way in with the store down");
    assert!(matches!(error, Error::Refresh(_)), "{error:?}");
}
