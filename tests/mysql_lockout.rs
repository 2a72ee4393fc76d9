//! Lockout safety against MariaDB's `max_password_errors`, which blocks an account after N consecutive failed
//! logins until an operator runs ALTER USER or FLUSH PRIVILEGES. This binary has its own private server, so the
//! global setting touches no other test.

mod conformance;

use std::{
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use conformance::{assert_rejected, mariadb::MariaDb, Fixture, TestDb};
use rotapool_core::{deadpool::managed::PoolError, Error, PoolBuilder, RefreshPolicy};
use rotapool_testkit::{random_password, Login, MariaDbServer, TestServer};

const MAX_PASSWORD_ERRORS: u64 = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pool_stops_before_the_account_is_blocked_and_recovers_when_the_secret_is_fixed() {
    let server = MariaDbServer::shared();
    server
        .execute(&format!(
            "SET GLOBAL max_password_errors = {MAX_PASSWORD_ERRORS}"
        ))
        .await;
    let db = MariaDb(server);
    let fixture = Fixture::new(&db).await;
    let pool = PoolBuilder::new(db.backend())
        .secret_source(fixture.source.clone())
        .max_size(4)
        .max_lifetime(Some(Duration::from_millis(50)))
        .auth_budget(Duration::from_millis(300))
        .refresh_policy(RefreshPolicy {
            retry_interval: Duration::from_millis(100),
            slow_retry_interval: Duration::from_millis(400),
            ..RefreshPolicy::default()
        })
        .build()
        .await
        .unwrap();
    for _ in 0..4 {
        let mut conn = pool.get().await.unwrap();
        db.ping(&mut conn).await.unwrap();
    }

    // Behind the pool's back: the database gets a password the secret does not have.
    let new_password = random_password();
    server.set_password(&fixture.user, &new_password).await;
    assert_rejected(&db, &fixture.user, &fixture.password).await;
    // That proof was one failed login; a good one resets the server's counter so the pool starts from zero.
    assert_eq!(
        server.try_login(&fixture.user, &new_password).await,
        Login::Accepted
    );

    let ok = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let (db, pool, ok, errors, stop) =
                (db, pool.clone(), ok.clone(), errors.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    match pool.get().await {
                        Ok(mut conn) => {
                            db.ping(&mut conn).await.unwrap();
                            ok.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => errors.lock().unwrap().push(e),
                    }
                }
            })
        })
        .collect();
    let wait = |what: &'static str, done: Box<dyn Fn() -> bool + Send>| async move {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while !done() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "gave up waiting until {what}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let seen = errors.clone();
    wait(
        "the workload has failed 40 times with the wrong secret",
        Box::new(move || seen.lock().unwrap().len() >= 40),
    )
    .await;

    let failed_logins = pool.manager().stats().auth_failures;
    println!(
        "failed logins with the wrong secret, over {} failed get() calls: {failed_logins}",
        errors.lock().unwrap().len()
    );
    assert!(
        failed_logins < MAX_PASSWORD_ERRORS,
        "the pool made {failed_logins} failed logins; the server blocks at {MAX_PASSWORD_ERRORS}"
    );
    for error in errors.lock().unwrap().iter() {
        assert!(
            matches!(error, PoolError::Backend(Error::AuthRejected { .. })),
            "every failure is the typed auth error: {error:?}"
        );
    }
    // Not blocked: the right password still logs in (a blocked account answers 4150 even to the right one).
    assert_eq!(
        server.try_login(&fixture.user, &new_password).await,
        Login::Accepted,
        "the account must not be blocked"
    );

    // The operator fixes the secret; the pool picks it up by itself.
    let ok_before_fix = ok.load(Ordering::Relaxed);
    fixture.put_secret(&db, &new_password).await;
    let served = ok.clone();
    wait(
        "the workload is served again after the secret was fixed",
        Box::new(move || served.load(Ordering::Relaxed) > ok_before_fix + 20),
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.await.unwrap();
    }
    let stats = pool.manager().stats();
    println!("after recovery: {stats:?}");
    assert_eq!(stats.generation, 2, "the fixed secret was adopted");
    assert!(stats.auth_failures < MAX_PASSWORD_ERRORS, "{stats:?}");
}
