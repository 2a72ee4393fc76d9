//! mysql_async parity against the private MariaDB: an `OptsBuilder` template under the secret's fields, the three
//! reuse checks and what each costs in round trips, and a graceful close that says goodbye with `COM_QUIT`.

use std::{future::Future, sync::Arc, time::Duration};

use mysql_async::{prelude::Queryable, OptsBuilder, SslOpts};
use rotapool_core::Credentials;
use rotapool_mysql::{InMemorySecretStore, MySqlBackend, MySqlReuse, Pool, PoolBuilder, SslMode};
use rotapool_testkit::{
    mysql_session_is_encrypted, random_password, unique_name, FaultyLink, LinkState, MariaDbServer,
    TestServer,
};

/// A guard against a hang, never a timing assertion: every wait below ends in milliseconds when the code works.
const HANG: Duration = Duration::from_secs(20);

async fn account(server: &MariaDbServer) -> Credentials {
    let (user, password) = (unique_name("reuse"), random_password());
    server.create_account(&user, &password).await;
    Credentials::new(user, password)
        .with_engine("mariadb")
        .with_host(server.host())
        .with_port(server.port())
}

async fn pool(backend: MySqlBackend, credentials: &Credentials, max_size: usize) -> Pool {
    PoolBuilder::new(backend)
        .secret_source(Arc::new(InMemorySecretStore::new(
            "mysql-reuse-test",
            credentials,
        )))
        .max_size(max_size)
        .proactive_refresh(None)
        .build()
        .await
        .unwrap()
}

#[tokio::test]
async fn an_opts_builder_template_is_applied_before_the_secrets_fields() {
    let server = MariaDbServer::shared();
    let credentials = account(server).await;
    // An address, an account and TLS options of the template's own. The server has TLS, so a session in the
    // clear shows that the template's `ssl_opts(None)` stood.
    let template = OptsBuilder::default()
        .ip_or_hostname("192.0.2.1")
        .tcp_port(1)
        .user(Some("template_user"))
        .pass(Some("not-the-password"))
        .db_name(Some("information_schema"))
        .ssl_opts(None::<SslOpts>)
        .init(vec!["SET @rotapool_init = 7"])
        .setup(vec!["SET @rotapool_setup = 8"]);
    let pool = pool(MySqlBackend::new().template(template), &credentials, 1).await;

    let mut conn = pool
        .get()
        .await
        .expect("the secret's address and account log in");
    let (user, db, init, setup): (String, Option<String>, Option<i64>, Option<i64>) = conn
        .query_first("SELECT CURRENT_USER(), DATABASE(), @rotapool_init, @rotapool_setup")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(user, format!("{}@%", credentials.username()));
    assert_eq!(
        db.as_deref(),
        Some("information_schema"),
        "the secret names no database: the template's stands"
    );
    assert_eq!(
        (init, setup),
        (Some(7), Some(8)),
        "the template's commands ran"
    );
    assert!(
        !mysql_session_is_encrypted(&mut conn).await,
        "no ssl_mode was called: the template's TLS options stand"
    );
    let id = conn.id();
    drop(conn);

    // Clean reuse resets the session, then runs the template's `setup` again, but not its `init`.
    let mut conn = pool.get().await.unwrap();
    assert_eq!(conn.id(), id, "the same connection, reset");
    let (init, setup): (Option<i64>, Option<i64>) = conn
        .query_first("SELECT @rotapool_init, @rotapool_setup")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((init, setup), (None, Some(8)));
    drop(conn);

    // rotapool's ssl_mode, once called, replaces the template's TLS options.
    let template = OptsBuilder::default().ssl_opts(None::<SslOpts>);
    let backend = MySqlBackend::new()
        .template(template)
        .ssl_mode(SslMode::Require);
    let pool = self::pool(backend, &credentials, 1).await;
    let mut conn = pool.get().await.unwrap();
    assert!(mysql_session_is_encrypted(&mut conn).await);
}

/// What one reuse check did, seen from outside the driver.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    /// Requests the pool sent while it reused the connection (held by a frozen link in front of the server).
    round_trips: u64,
    /// Whether a user variable the previous borrower set was still there.
    session_kept: bool,
}

/// Borrows the one connection of a pool of `mode` through a link to the server, sets a session variable, gives it
/// back, freezes the link and borrows it again: a check that talks to the server sends a request the link holds.
async fn reuse_once(mode: MySqlReuse) -> Seen {
    let server = MariaDbServer::shared();
    let link = FaultyLink::start(server.port()).await;
    let credentials = account(server).await.with_port(link.port());
    let backend = MySqlBackend::new().ssl_mode(SslMode::Disable).reuse(mode);
    let pool = pool(backend, &credentials, 1).await;

    let mut conn = pool.get().await.unwrap();
    conn.query_drop("SET @borrower = 42").await.unwrap();
    let id = conn.id();
    drop(conn);

    link.set(LinkState::Frozen);
    let before = link.held_requests();
    let getting = tokio::spawn({
        let pool = pool.clone();
        async move { pool.get().await.map(|conn| conn.id()) }
    });
    // A check that sends a request hangs on the frozen link until it thaws; one that sends none returns at once.
    let waited = tokio::time::timeout(HANG, async {
        while !getting.is_finished() && link.held_requests() == before {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert!(
        waited.is_ok(),
        "{mode:?}: get() neither returned nor sent anything"
    );
    let round_trips = link.held_requests() - before;
    link.set(LinkState::Up);
    let reused = tokio::time::timeout(HANG, getting)
        .await
        .expect("get() returns once the link thaws")
        .unwrap()
        .unwrap();
    assert_eq!(reused, id, "{mode:?}: the same connection was lent again");

    let mut conn = pool.get().await.unwrap();
    let kept: Option<Option<i64>> = conn.query_first("SELECT @borrower").await.unwrap();
    assert_eq!(pool.stats().logins, 1, "{mode:?}: no login after the first");
    Seen {
        round_trips,
        session_kept: kept == Some(Some(42)),
    }
}

#[tokio::test]
async fn fast_reuse_makes_no_round_trip_verified_pings_clean_resets() {
    assert_eq!(
        reuse_once(MySqlReuse::Fast).await,
        Seen {
            round_trips: 0,
            session_kept: true
        },
        "Fast"
    );
    assert_eq!(
        reuse_once(MySqlReuse::Verified).await,
        Seen {
            round_trips: 1,
            session_kept: true
        },
        "Verified: COM_PING"
    );
    assert_eq!(
        reuse_once(MySqlReuse::Clean).await,
        Seen {
            round_trips: 1,
            session_kept: false
        },
        "Clean: COM_RESET_CONNECTION"
    );
    assert_eq!(MySqlReuse::default(), MySqlReuse::Clean);
}

#[tokio::test]
async fn fast_reuse_retires_a_connection_the_driver_saw_close() {
    let server = MariaDbServer::shared();
    let link = FaultyLink::start(server.port()).await;
    let credentials = account(server).await.with_port(link.port());
    let backend = MySqlBackend::new()
        .ssl_mode(SslMode::Disable)
        .reuse(MySqlReuse::Fast);
    let pool = pool(backend, &credentials, 1).await;

    let mut conn = pool.get().await.unwrap();
    let first = conn.id();
    link.set(LinkState::Down);
    conn.query_drop("SELECT 1")
        .await
        .expect_err("the link reset the connection");
    assert!(conn.is_disconnected());
    drop(conn);
    link.set(LinkState::Up);

    let mut conn = pool.get().await.expect("a new connection");
    assert_ne!(conn.id(), first, "the closed connection was not lent again");
    conn.query_drop("SELECT 1").await.unwrap();
}

/// Runs `phase` on a runtime of its own, which shuts down as soon as `phase` returns, as a service's does when
/// `main` ends: a task spawned and not yet run then never runs.
fn in_a_runtime_that_then_shuts_down<T>(phase: impl Future<Output = T>) -> T {
    // One thread: no worker can run a spawned task while `phase` runs or after it returns.
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(phase)
}

/// Waits until `user` has no session left, then reads the server's `Aborted_clients`: the server counts a session
/// that ended without `COM_QUIT` before it leaves the process list.
fn aborted_clients_once_gone(server: &MariaDbServer, user: &str) -> u64 {
    in_a_runtime_that_then_shuts_down(async {
        let mut admin = server.admin().await;
        let gone = tokio::time::timeout(HANG, async {
            loop {
                let sessions: Option<u64> = admin
                    .exec_first(
                        "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = ?",
                        (user,),
                    )
                    .await
                    .unwrap();
                if sessions == Some(0) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        assert!(gone.is_ok(), "the sessions of {user} never ended");
        let (_, aborted): (String, u64) = admin
            .query_first("SHOW GLOBAL STATUS LIKE 'Aborted_clients'")
            .await
            .unwrap()
            .unwrap();
        admin.disconnect().await.unwrap();
        aborted
    })
}

/// Builds a pool of `size` open, idle connections for `credentials`, then ends it by `closing` it.
async fn open_then<F: Future<Output = ()>>(
    credentials: &Credentials,
    size: usize,
    closing: impl FnOnce(Pool) -> F,
) {
    let backend = MySqlBackend::new().ssl_mode(SslMode::Disable);
    let pool = pool(backend, credentials, size).await;
    let mut held = Vec::new();
    for _ in 0..size {
        held.push(pool.get().await.unwrap());
    }
    drop(held);
    assert_eq!(pool.status().available, size);
    closing(pool).await;
}

#[test]
fn a_graceful_close_ends_idle_connections_with_com_quit() {
    // A server of its own: Aborted_clients counts for the whole server. The shared one first: two
    // `mariadb-install-db` at once in one process failed here once in about ten runs ("Unknown table
    // 'mysql.tmp_proxies_priv'", after "Could not remove temporary table: '/tmp/#sql-temptable-..'").
    let _ = MariaDbServer::shared();
    let server = MariaDbServer::private();
    let credentials = in_a_runtime_that_then_shuts_down(account(&server));
    let user = credentials.username();
    let start = aborted_clients_once_gone(&server, user);

    // The control, which shows that the counter sees a goodbye that never came: dropped in a runtime that
    // then shuts down, a mysql_async connection's own COM_QUIT (a spawned task) never runs.
    in_a_runtime_that_then_shuts_down(open_then(&credentials, 4, |pool| async move {
        drop(pool);
    }));
    let dropped = aborted_clients_once_gone(&server, user);
    assert_eq!(
        dropped - start,
        4,
        "4 connections dropped, 4 aborted clients"
    );

    // The same, closed gracefully: every idle connection says goodbye before the runtime goes.
    in_a_runtime_that_then_shuts_down(open_then(&credentials, 4, |pool| async move {
        pool.close_gracefully(HANG).await;
        assert!(pool.get().await.is_err(), "a closed pool lends nothing");
    }));
    let closed = aborted_clients_once_gone(&server, user);
    assert_eq!(closed, dropped, "no aborted client after close_gracefully");
}
