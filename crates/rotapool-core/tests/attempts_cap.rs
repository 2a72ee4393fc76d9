//! The attempts cap: one connect makes at most `max_auth_attempts` rejected logins, whatever the secret store
//! and the database do, and then says how many it made.
//!
//! A constant wrong secret never reaches the cap: the round after the first rejection finds nothing new and the
//! connect gives up after one login (see `rejected_generation.rs`). The cap is for a database that changes its
//! mind between the refresher's trial login and the caller's own: here, a rotation that lands each time the pool
//! has adopted the password before it (two rotation functions racing, an operator resetting the password).

mod common;

use std::{sync::atomic::Ordering, time::Duration};

use common::{FakeDb, FaultyStore};
use rotapool_core::Error;

#[tokio::test(start_paused = true)]
async fn a_create_gives_up_after_max_auth_attempts_rejections() {
    for cap in [1, 3, 5] {
        let (db, store) = (FakeDb::new("p0"), FaultyStore::new("p0"));
        let login = common::proven_login(common::builder(&db, &store).max_auth_attempts(cap)).await;
        // Each login checks its password 5 ms in, well after the racer below, which looks every millisecond.
        db.set_login_latency(Duration::from_millis(10));

        common::rotate(&db, &store, "p1");
        // From now on, whenever the pool adopts a password, the database moves on to the next one before the
        // caller's own login with it ends.
        let racing = {
            let (db, store, login) = (db.clone(), store.clone(), login.clone());
            tokio::spawn(async move {
                let mut adopted = login.generation();
                loop {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    if login.generation() > adopted {
                        adopted = login.generation();
                        common::rotate(&db, &store, &format!("p{adopted}"));
                    }
                }
            })
        };
        let rejected_before = db.rejected.load(Ordering::Relaxed);
        let gave_up = tokio::time::timeout(Duration::from_secs(60), login.connect())
            .await
            .expect("the connect gives up")
            .expect_err("every login this connect makes is rejected");
        racing.abort();

        assert!(
            matches!(gave_up, Error::AuthRejected { attempts, .. } if attempts == cap),
            "cap {cap}: {gave_up:?}"
        );
        assert_eq!(
            db.rejected.load(Ordering::Relaxed) - rejected_before,
            u64::from(cap),
            "rejected logins at the database for one connect with a cap of {cap}"
        );
    }
}
