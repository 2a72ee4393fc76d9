//! The store ahead of the database, and rejections that pass: a new password in the secret 10 s before the
//! database takes it (a lagging replica, a proxy's copy, an operator who updates the secret first), and the
//! database refusing the secret's password for 5 s before taking it again. Each runs for a pool that was serving
//! when the fault began and for a pool started in the middle of it, as a deploy during the lag would be.

use std::time::{Duration, Instant};

use rotapool_testkit::{random_password, Login, TestServer};

use super::{
    assert_every_get_error_is_the_typed_rejection, assert_no_get_errors, figures, prepare, settle,
    traffic::Traffic, FaultDb, Setup,
};
use crate::conformance::{
    assert_rejected,
    pools::{PoolKind, TestPool},
    Fixture,
};

/// When the pool under test starts, relative to the fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// Serving before the fault begins.
    Before,
    /// Built while the fault is on.
    During,
}

/// The fault suite's churning pool and 4 tasks of traffic, started before or during the fault `begin` sets off.
/// Returns them and the instant the fault began.
async fn around<D: FaultDb, K: PoolKind<D>>(
    db: &D,
    start: Start,
    begin: impl AsyncFnOnce(&Fixture),
) -> (Setup<K::Pool>, Traffic, Instant) {
    let prepared = prepare(db).await;
    if start == Start::During {
        let began = Instant::now();
        begin(&prepared.fixture).await;
        let s = prepared.pool::<D, K>(db, |settings| settings).await;
        let traffic = Traffic::start(&s.pool, 4);
        return (s, traffic, began);
    }
    let s = prepared.pool::<D, K>(db, |settings| settings).await;
    let traffic = Traffic::start(&s.pool, 4);
    traffic.wait_for_service(50).await;
    let began = Instant::now();
    begin(&s.fixture).await;
    (s, traffic, began)
}

fn label(case: &str, start: Start) -> String {
    match start {
        Start::Before => format!("{case}, running pool"),
        Start::During => format!("{case}, pool started in it"),
    }
}

/// The secret's AWSCURRENT holds a new password 10 s before the database takes it, on a server that blocks an
/// account after 3 failed logins in a row where the engine can (MariaDB `max_password_errors`). No `get()` fails:
/// the pool keeps serving with the password that works (a pool started in the lag finds it in AWSPREVIOUS),
/// tries the new one about once a second, and moves to it within 2 s of the database taking it; the account is
/// never blocked.
pub async fn store_ahead_of_the_database_by_10s<D: FaultDb, K: PoolKind<D>>(db: D, start: Start) {
    const BLOCK_AT: u32 = 3;
    let case = label("store ahead of the database by 10 s", start);
    let db = db.private();
    let blocking = db.block_after_failed_logins(BLOCK_AT).await;
    let new = random_password();
    let (s, traffic, ahead) = around::<D, K>(&db, start, async |fixture| {
        fixture.put_secret(&db, &new).await;
        // The lag is real: the database refuses the new password and still takes the old one (whose login also
        // resets the server's count of failed logins after this proof).
        assert_rejected(&db, &fixture.user, &new).await;
        assert_eq!(
            db.server()
                .try_login(&fixture.user, &fixture.password)
                .await,
            Login::Accepted
        );
    })
    .await;
    let (user, old) = (s.fixture.user.clone(), s.fixture.password.clone());
    tokio::time::sleep(Duration::from_secs(10).saturating_sub(ahead.elapsed())).await;
    let errors_in_lag = traffic.get_errors();
    let failed_in_lag = s.pool.stats().auth_failures;

    let caught_up = Instant::now();
    db.server().set_password(&user, &new).await;
    let deadline = caught_up + Duration::from_secs(30);
    while s.pool.password() != new {
        assert!(
            Instant::now() < deadline,
            "the pool never moved to the new password"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let recovery = caught_up.elapsed();
    // The pool had to move: the old password is refused now (and a good login resets the server's count).
    assert_rejected(&db, &user, &old).await;
    assert_eq!(db.server().try_login(&user, &new).await, Login::Accepted);
    traffic.wait_for_service(50).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let report = traffic.stop().await;
    let failed = s.pool.stats().auth_failures;
    figures(
        &db,
        &case,
        &report,
        Some(recovery),
        &format!(
            "{errors_in_lag} get() errors in the lag; {failed_in_lag} failed logins in it and {failed} in all{}; \
             recovery: the database taking the password to the pool using it",
            if blocking {
                format!(", the server blocking at {BLOCK_AT} in a row")
            } else {
                String::new()
            }
        ),
    );
    assert_no_get_errors(&report, &case);
    assert!(
        recovery <= Duration::from_secs(2),
        "the pool moved {recovery:?} after the database"
    );
    assert!(
        (1..=15).contains(&failed_in_lag),
        "{failed_in_lag} failed logins in 10 s: the new password is tried about once a second"
    );
}

/// The database refuses the secret's password for 5 s, then takes it again (an account briefly changed, an
/// access rule briefly wrong): errors only while no password works, each the typed rejection, and service again
/// within 2 s with the same version of the secret.
pub async fn a_password_refused_for_5s_then_taken_again<D: FaultDb, K: PoolKind<D>>(
    db: D,
    start: Start,
) {
    let case = label("password refused for 5 s, then taken again", start);
    let (s, traffic, refused) = around::<D, K>(&db, start, async |fixture| {
        db.server()
            .set_password(&fixture.user, &random_password())
            .await;
        assert_rejected(&db, &fixture.user, &fixture.password).await;
    })
    .await;
    tokio::time::sleep(Duration::from_secs(5).saturating_sub(refused.elapsed())).await;
    let errors_while_refused = traffic.get_errors();
    let restored = Instant::now();
    db.server()
        .set_password(&s.fixture.user, &s.fixture.password)
        .await;
    let (report, recovery) = settle(traffic, restored).await;
    figures(
        &db,
        &case,
        &report,
        Some(recovery),
        &format!(
            "{errors_while_refused} get() errors while refused; {} failed logins",
            s.pool.stats().auth_failures
        ),
    );
    assert!(
        errors_while_refused > 0,
        "new logins happen all the time, and none can succeed while the password is refused"
    );
    assert_every_get_error_is_the_typed_rejection::<K::Pool>(&report);
    let failed = s.pool.stats().auth_failures;
    assert!(
        failed <= 12,
        "{failed} failed logins in about 6 s: the refused password is tried again once a round"
    );
    assert!(
        recovery <= Duration::from_secs(2),
        "recovery took {recovery:?}"
    );
    assert_eq!(s.pool.generation(), 1, "the same version serves again");
}
