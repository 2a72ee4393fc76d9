//! What rotapool-sqlx promises beyond the conformance suite, measured on real PostgreSQL and MariaDB with moto:
//! - the rotation-aware path spends no more failed logins per rotation than rotapool's own pool under the same
//!   load, and no more than the login permits allow;
//! - the plain `&Pool` path (sqlx's own `acquire`, as `query(..).execute(pool.sqlx())` uses) sees the database's
//!   rejection only between the password change and the adoption, which the proactive refresh or any
//!   rotation-aware call makes; after the adoption it logs in with the new password.
//!
//! Each case proves the old password rejected (`Fixture::rotate`) before it counts anything, and prints one
//! line of figures (`SQLX | ...`) that the README quotes.

mod conformance;

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use conformance::{mariadb::MariaDb, postgres::Postgres, Fixture, TestDb};
use rotapool_core::{PoolBuilder, ProactiveRefresh, SecretSource};
use rotapool_sqlx::{
    sqlx::{self, pool::PoolOptions, Connection as _},
    ConnectOptions, RotatingDatabase, RotatingPool, SqlxBackend,
};

/// A server of the conformance suite, as sqlx speaks to it.
trait SqlxDb: TestDb {
    type Sqlx: RotatingDatabase;
    /// sqlx's options with TLS off; the secret names host, port, database and account.
    fn options(&self) -> ConnectOptions<Self::Sqlx>;
}

impl SqlxDb for Postgres {
    type Sqlx = sqlx::Postgres;
    fn options(&self) -> sqlx::postgres::PgConnectOptions {
        sqlx::postgres::PgConnectOptions::new().ssl_mode(sqlx::postgres::PgSslMode::Disable)
    }
}

impl SqlxDb for MariaDb {
    type Sqlx = sqlx::MySql;
    fn options(&self) -> sqlx::mysql::MySqlConnectOptions {
        sqlx::mysql::MySqlConnectOptions::new().ssl_mode(sqlx::mysql::MySqlSslMode::Disabled)
    }
}

const TASKS: usize = 16;
const POOL: u32 = 8;
const ROTATIONS: usize = 3;
/// Connections live this long, so that every phase of a rotation meets new logins.
const LIFETIME: Duration = Duration::from_millis(100);

fn pg() -> Postgres {
    Postgres(rotapool_testkit::PgServer::shared())
}

fn mariadb() -> MariaDb {
    MariaDb(rotapool_testkit::MariaDbServer::shared())
}

async fn sqlx_pool<D: SqlxDb>(
    db: &D,
    source: Arc<dyn SecretSource>,
    configure: impl FnOnce(PoolBuilder<SqlxBackend<D::Sqlx>>) -> PoolBuilder<SqlxBackend<D::Sqlx>>,
) -> RotatingPool<D::Sqlx> {
    let login = configure(
        PoolBuilder::new(SqlxBackend::new(db.options()))
            .secret_source(source)
            .max_lifetime(LIFETIME),
    );
    RotatingPool::new(login, PoolOptions::new().max_connections(POOL))
        .await
        .expect("the pool starts")
}

/// Runs `TASKS` loops of `attempt` until stopped; collects each error with when it happened.
struct Load {
    stop: Arc<AtomicBool>,
    errors: Arc<Mutex<Vec<(Instant, String)>>>,
    tasks: Vec<tokio::task::JoinHandle<u64>>,
}

impl Load {
    fn start<F, Fut>(tasks: usize, attempt: F) -> Self
    where
        F: Fn() -> Fut + Clone + Send + 'static,
        Fut: std::future::Future<Output = Result<(), String>> + Send,
    {
        let stop = Arc::new(AtomicBool::new(false));
        let errors = Arc::new(Mutex::new(Vec::new()));
        let tasks = (0..tasks)
            .map(|_| {
                let (stop, errors, attempt) = (stop.clone(), errors.clone(), attempt.clone());
                tokio::spawn(async move {
                    let mut done = 0;
                    while !stop.load(Ordering::Relaxed) {
                        if let Err(e) = attempt().await {
                            errors.lock().unwrap().push((Instant::now(), e));
                            // A failing caller backs off as a service's retry would, rather than spin.
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                        done += 1;
                    }
                    done
                })
            })
            .collect();
        Self {
            stop,
            errors,
            tasks,
        }
    }

    /// Stops the loops; returns the calls made and the errors seen.
    async fn stop(self) -> (u64, Vec<(Instant, String)>) {
        self.stop.store(true, Ordering::Relaxed);
        let mut calls = 0;
        for task in self.tasks {
            calls += task.await.expect("a load task panicked");
        }
        let errors = std::mem::take(&mut *self.errors.lock().unwrap());
        (calls, errors)
    }
}

/// `tasks` loops of the rotation-aware `acquire()` and a ping.
fn aware_load<DB: RotatingDatabase>(pool: &RotatingPool<DB>, tasks: usize) -> Load {
    let pool = pool.clone();
    ping_load(tasks, move || {
        let pool = pool.clone();
        async move { pool.acquire().await }
    })
}

/// `tasks` loops of sqlx's own `acquire()` on the plain pool (what `execute(&pool)` does) and a ping.
fn plain_load<DB: RotatingDatabase>(pool: &sqlx::Pool<DB>, tasks: usize) -> Load {
    let pool = pool.clone();
    ping_load(tasks, move || pool.acquire())
}

/// `tasks` loops of `acquire` and a ping on the connection.
fn ping_load<DB, F, Fut>(tasks: usize, acquire: F) -> Load
where
    DB: RotatingDatabase,
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Result<sqlx::pool::PoolConnection<DB>, sqlx::Error>> + Send,
{
    Load::start(tasks, move || {
        let connection = acquire();
        async move {
            let mut conn = connection
                .await
                .map_err(|e| rotapool_testkit::error_chain(&e))?;
            conn.ping().await.map_err(|e| e.to_string())
        }
    })
}

/// Rotates `ROTATIONS` times under load and returns the failed logins each rotation cost, read by `failed`.
async fn failed_logins_per_rotation<D: TestDb>(
    db: &D,
    fixture: &mut Fixture,
    load: Load,
    failed: impl Fn() -> u64,
    generation: impl Fn() -> u64,
) -> Vec<u64> {
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut per_rotation = Vec::new();
    for round in 0..ROTATIONS {
        let before = failed();
        fixture.rotate(db).await;
        let deadline = Instant::now() + Duration::from_secs(20);
        while generation() < round as u64 + 2 {
            assert!(Instant::now() < deadline, "no adoption of rotation {round}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Logins in flight at the adoption end within a moment.
        tokio::time::sleep(Duration::from_millis(300)).await;
        per_rotation.push(failed() - before);
    }
    let (calls, errors) = load.stop().await;
    assert!(calls > TASKS as u64, "the load ran: {calls} calls");
    assert!(errors.is_empty(), "errors under rotation: {errors:?}");
    per_rotation
}

/// rotapool-sqlx's rotation-aware `acquire()` and rotapool's own pool, the same load (16 tasks, 8
/// connections living 100 ms) through three rotations each: failed logins per rotation, side by side.
async fn failed_logins_match_rotapools_pool<D: SqlxDb>(db: D, engine: &str) {
    let mut fixture = Fixture::new(&db).await;
    let pool = sqlx_pool(&db, fixture.source.clone(), |b| b).await;
    let load = aware_load(&pool, TASKS);
    let sqlx_failed = failed_logins_per_rotation(
        &db,
        &mut fixture,
        load,
        || pool.stats().auth_failures,
        || pool.stats().generation,
    )
    .await;

    let mut fixture = Fixture::new(&db).await;
    let deadpool = PoolBuilder::new(db.backend())
        .secret_source(fixture.source.clone())
        .max_size(POOL as usize)
        .max_lifetime(LIFETIME)
        .build()
        .await
        .expect("rotapool's pool starts");
    let load = Load::start(TASKS, {
        let (pool, db) = (deadpool.clone(), db.clone());
        move || {
            let (pool, db) = (pool.clone(), db.clone());
            async move {
                let mut conn = pool
                    .get()
                    .await
                    .map_err(|e| rotapool_testkit::error_chain(&e))?;
                db.ping(&mut conn).await
            }
        }
    });
    let deadpool_failed = failed_logins_per_rotation(
        &db,
        &mut fixture,
        load,
        || deadpool.stats().auth_failures,
        || deadpool.stats().generation,
    )
    .await;

    println!(
        "SQLX | {engine} | failed logins per rotation | rotapool-sqlx {sqlx_failed:?} | rotapool {deadpool_failed:?}"
    );
    // The login permits (2 by default) bound the logins in flight when the password changes; each of them may
    // fail once, in either pool. Nothing else may spend a failed login.
    let permits = 2;
    assert!(
        sqlx_failed.iter().all(|&n| (1..=permits).contains(&n)),
        "rotapool-sqlx failed logins per rotation: {sqlx_failed:?} (rotapool's pool: {deadpool_failed:?})"
    );
    assert!(
        sqlx_failed.iter().sum::<u64>()
            <= deadpool_failed
                .iter()
                .sum::<u64>()
                .max(ROTATIONS as u64 * permits),
        "rotapool-sqlx {sqlx_failed:?} against rotapool's pool {deadpool_failed:?}"
    );
}

/// The plain path: sqlx's own `acquire` (what `execute(pool.sqlx())` does) under churn while the password
/// rotates. Its logins fail from the password change until the adoption (by a proactive refresh every 2 s, or
/// by a rotation-aware caller's first rejected login) and never after, but for logins already under way.
async fn plain_path_errs_only_until_the_adoption<D: SqlxDb>(
    db: D,
    engine: &str,
    with_aware_caller: bool,
) {
    let mut fixture = Fixture::new(&db).await;
    // Beside a rotation-aware caller, the proactive refresh is out of the picture: that caller's first
    // rejected login is what adopts the new secret.
    let interval = if with_aware_caller {
        Duration::from_secs(15 * 60)
    } else {
        Duration::from_secs(2)
    };
    let pool = sqlx_pool(&db, fixture.source.clone(), |b| {
        b.proactive_refresh(ProactiveRefresh {
            interval,
            after_rotation: interval,
        })
    })
    .await;
    let plain = plain_load(pool.sqlx(), 8);
    let aware = with_aware_caller.then(|| aware_load(&pool, 1));
    tokio::time::sleep(Duration::from_millis(300)).await;
    fixture.rotate(&db).await;
    let changed = Instant::now();
    let deadline = changed + 4 * interval;
    while pool.stats().generation < 2 {
        assert!(
            Instant::now() < deadline,
            "the proactive refresh adopted nothing"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let adopted = Instant::now();
    // Past the adoption, every new login of the plain path uses the new password: watched for 3 s, longer
    // than the margin below allows for logins under way.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (calls, errors) = plain.stop().await;
    if let Some(aware) = aware {
        let (_, aware_errors) = aware.stop().await;
        assert!(
            aware_errors.is_empty(),
            "the rotation-aware caller erred: {aware_errors:?}"
        );
    }
    let window = errors
        .first()
        .zip(errors.last())
        .map_or(Duration::ZERO, |(first, last)| last.0 - first.0);
    println!(
        "SQLX | {engine} | plain &Pool path{} | {} errors in {calls} calls | error window {} ms | adoption {} ms after the password change",
        if with_aware_caller { " beside a rotation-aware caller, no proactive refresh" } else { " alone, proactive refresh every 2 s" },
        errors.len(),
        window.as_millis(),
        (adopted - changed).as_millis(),
    );
    for (at, error) in &errors {
        assert!(
            error.contains("password authentication failed") || error.contains("Access denied"),
            "an error of the plain path is not the database's rejection: {error}"
        );
        // A login that began before the options changed may fail a moment after: one login's time, with a
        // wide margin for a loaded 2-core machine.
        assert!(
            *at <= adopted + Duration::from_secs(1),
            "an error {} ms after the adoption: {error}",
            (*at - adopted).as_millis()
        );
    }
}

/// One `#[tokio::test]` per engine, each running `$scenario(server, engine name, $args...)`.
macro_rules! on_both_engines {
    ($($pg:ident, $mariadb:ident: $scenario:ident($($arg:expr),*);)+) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $pg() {
            $scenario(pg(), "postgres" $(, $arg)*).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $mariadb() {
            $scenario(mariadb(), "mariadb" $(, $arg)*).await;
        }
    )+};
}

on_both_engines! {
    postgres_failed_logins_per_rotation_match_rotapools_pool,
    mariadb_failed_logins_per_rotation_match_rotapools_pool:
        failed_logins_match_rotapools_pool();
    postgres_plain_path_errs_only_until_the_proactive_adoption,
    mariadb_plain_path_errs_only_until_the_proactive_adoption:
        plain_path_errs_only_until_the_adoption(false);
    postgres_plain_path_beside_a_rotation_aware_caller_errs_until_its_first_rejection,
    mariadb_plain_path_beside_a_rotation_aware_caller_errs_until_its_first_rejection:
        plain_path_errs_only_until_the_adoption(true);
}

/// rotapool-sqlx's `Debug` output never shows the password, though sqlx's own options print theirs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwords_never_appear_in_the_pools_debug() {
    let db = pg();
    let fixture = Fixture::new(&db).await;
    let pool = sqlx_pool(&db, fixture.source.clone(), |b| b).await;
    let conn = pool.acquire().await.expect("a connection");
    let options = pool.sqlx().connect_options();
    assert!(
        format!("{options:?}").contains(&fixture.password),
        "sqlx's options print the password: the check below means something"
    );
    for text in [
        format!("{pool:?}"),
        format!("{:?}", pool.login()),
        format!("{:?}", pool.login().backend()),
        format!("{:?}", pool.stats()),
    ] {
        assert!(!text.contains(&fixture.password), "the password in {text}");
    }
    drop(conn);
}
