//! One rotation under load on each engine, through whichever sqlx release the crate is built with: the
//! workspace's tests run it on sqlx 0.8 (the default); CI also runs it with `--no-default-features --features
//! sqlx-09,postgres,mysql,aws`, so that the claim that the same code serves sqlx 0.9 is tested, not assumed.
//! The conformance and fault suites (tests/sqlx_*.rs at the workspace root) hold the full proof on 0.8.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use rotapool_core::{Credentials, SecretSource};
use rotapool_sqlx::{
    sqlx::{self, pool::PoolOptions, Connection as _},
    ConnectOptions, PoolBuilder, RotatingDatabase, RotatingPool, SqlxBackend,
};
use rotapool_testkit::{
    random_password, unique_name, Login, MariaDbServer, MotoServer, PgServer, TestServer,
};

/// An account on `server`, a secret for it in moto, a rotating pool of 4 over it and 8 tasks using it; then a
/// rotation (new AWSCURRENT, then the password on the server, the old one proven rejected). No task may err,
/// and the pool must end on the new generation with its connections logged in with it.
async fn rotates_without_errors<DB: RotatingDatabase>(
    server: &'static impl TestServer,
    engine: &str,
    dbname: &str,
    options: ConnectOptions<DB>,
) {
    let (user, old) = (unique_name("sqlx"), random_password());
    server.create_account(&user, &old).await;
    let secret = |password: &str| {
        Credentials::new(&user, password)
            .with_engine(engine)
            .with_host(server.host())
            .with_port(server.port())
            .with_dbname(dbname)
            .to_secret_json()
    };
    let (moto, secret_id) = (MotoServer::shared(), unique_name("rotapool/sqlx"));
    moto.create_secret(&secret_id, &secret(&old)).await;
    let source: Arc<dyn SecretSource> = Arc::new(moto.source(&secret_id).await);
    let login = PoolBuilder::new(SqlxBackend::<DB>::new(options))
        .secret_source(source)
        .max_lifetime(Duration::from_millis(200));
    let pool = RotatingPool::new(login, PoolOptions::new().max_connections(4))
        .await
        .expect("the pool starts");

    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (pool, stop) = (pool.clone(), stop.clone());
            tokio::spawn(async move {
                let mut calls = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let mut conn = pool.acquire().await?;
                    conn.ping().await?;
                    calls += 1;
                }
                Ok::<u64, sqlx::Error>(calls)
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let new = random_password();
    moto.put_current(&secret_id, &secret(&new)).await;
    server.set_password(&user, &new).await;
    assert!(
        matches!(server.try_login(&user, &old).await, Login::BadCredentials),
        "the server must reject the old password"
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while pool.stats().generation < 2 {
        assert!(Instant::now() < deadline, "no adoption: {:?}", pool.stats());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let mut calls = 0;
    for task in tasks {
        calls += task.await.unwrap().expect("no caller sees an error");
    }
    let stats = pool.stats();
    assert!(calls > 8, "the load ran: {calls} calls");
    assert!(
        stats.auth_failures >= 1,
        "the pool met the rejection: {stats:?}"
    );
    let (_, info) = pool.acquire_with_info().await.expect("a connection");
    assert_eq!(info.map(|i| i.generation), Some(2), "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_rotates_without_errors() {
    rotates_without_errors::<sqlx::Postgres>(
        PgServer::shared(),
        "postgres",
        "postgres",
        sqlx::postgres::PgConnectOptions::new().ssl_mode(sqlx::postgres::PgSslMode::Disable),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_rotates_without_errors() {
    rotates_without_errors::<sqlx::MySql>(
        MariaDbServer::shared(),
        "mariadb",
        "information_schema",
        sqlx::mysql::MySqlConnectOptions::new().ssl_mode(sqlx::mysql::MySqlSslMode::Disabled),
    )
    .await;
}
