//! The sqlx clients. All three are real `sqlx::Pool`s over the same engine with the same size and churn, so
//! only the way they get credentials differs: rotapool-sqlx's [`RotatingPool`] (`sqlx-rotapool`), a pool built
//! once from the secret read at start (`sqlx-static`), and a pool that, when a login is rejected, reads the
//! secret again and sets its connect options, every caller for itself (`sqlx-naive`, what sqlx users write today).

use std::{
    cell::Cell,
    sync::Arc,
    time::{Duration, Instant},
};

use rotapool_core::{Backend, Credentials, Error, Failure, PoolBuilder, SecretSource, Stage};
use rotapool_sqlx::{ConnectOptions, RotatingDatabase, RotatingPool, SqlxBackend};
use sqlx::pool::{PoolConnection, PoolOptions};

use crate::{
    clients::{CountingSource, Logins},
    sim::{error_kind, Settings, SimBackend, SimPool},
};

/// A backend the simulator also drives through sqlx, for the sqlx clients.
pub(crate) trait SqlxEngine: SimBackend {
    /// The same engine through sqlx.
    type Sqlx: RotatingDatabase;
    /// sqlx's connect options for the engine, as the simulator's own backends connect (no TLS); the secret's
    /// credentials, host, port and database go over them.
    fn sqlx_options() -> ConnectOptions<Self::Sqlx>;
    /// Runs `SELECT 1` on a sqlx connection, through the same simple (text) protocol as [`SimBackend::ping`].
    fn sqlx_ping(
        conn: &mut <Self::Sqlx as sqlx::Database>::Connection,
    ) -> impl std::future::Future<Output = Result<(), String>> + Send;
}

tokio::task_local! {
    /// When the connection a plain pool's `acquire()` returns was opened, if that `acquire()` opened it (sqlx
    /// opens it in the caller's task, and runs `after_connect` there).
    static OPENED: Cell<Option<Instant>>;
}

/// rotapool-sqlx's pool over `source`, its logins gated, retried and drained by rotapool.
pub(crate) async fn rotating<B: SqlxEngine>(
    source: Arc<CountingSource>,
    settings: &Settings,
    max_lifetime: Option<Duration>,
) -> Result<RotatingPool<B::Sqlx>, String> {
    let login = PoolBuilder::new(SqlxBackend::new(B::sqlx_options()))
        .secret_source(source)
        .max_lifetime(max_lifetime);
    RotatingPool::new(login, pool_options(settings))
        .await
        .map_err(|e| e.to_string())
}

impl<B: SqlxEngine> SimPool<B> for RotatingPool<B::Sqlx> {
    type Conn = PoolConnection<B::Sqlx>;

    async fn checkout(&self) -> Result<(Self::Conn, Option<Instant>), &'static str> {
        let (conn, info) = self
            .acquire_with_info()
            .await
            .map_err(|e| sqlx_error_kind(self.login().backend(), &e))?;
        Ok((conn, info.map(|info| info.created)))
    }

    async fn ping(conn: &mut Self::Conn) -> Result<(), String> {
        B::sqlx_ping(conn).await
    }
}

/// A plain `sqlx::Pool`, and what the simulator counts of it.
pub(crate) struct PlainSqlx<B: SqlxEngine> {
    pool: sqlx::Pool<B::Sqlx>,
    /// Makes the connect options from credentials, and classifies errors as rotapool-sqlx does.
    backend: Arc<SqlxBackend<B::Sqlx>>,
    /// Where `sqlx-naive` reads the secret again after a rejected login; `None` for `sqlx-static`.
    reread: Option<Arc<CountingSource>>,
    logins: Arc<Logins>,
}

impl<B: SqlxEngine> PlainSqlx<B> {
    /// A pool logging in as `credentials`; with `reread`, one that re-reads the secret after a rejected login.
    pub(crate) fn new(
        credentials: Arc<Credentials>,
        reread: Option<Arc<CountingSource>>,
        settings: &Settings,
        max_lifetime: Option<Duration>,
    ) -> Self {
        let backend = Arc::new(SqlxBackend::new(B::sqlx_options()));
        let logins = Arc::new(Logins::default());
        let connected = Arc::clone(&logins);
        let pool = pool_options(settings)
            .max_lifetime(max_lifetime)
            .after_connect(move |_, _| {
                connected.count(false);
                let _ = OPENED.try_with(|opened| opened.set(Some(Instant::now())));
                Box::pin(std::future::ready(Ok(())))
            })
            .connect_lazy_with(backend.options_for(&credentials));
        Self {
            pool,
            backend,
            reread,
            logins,
        }
    }

    /// Logins attempted and rejected. sqlx reports no failed login but to the caller that made it, so those are
    /// counted from `acquire()`'s errors (sqlx does not retry a rejected login).
    pub(crate) fn logins(&self) -> (u64, u64) {
        (self.logins.attempts(), self.logins.rejected())
    }
}

impl<B: SqlxEngine> Clone for PlainSqlx<B> {
    fn clone(&self) -> Self {
        Self {
            pool: self.pool.clone(),
            backend: Arc::clone(&self.backend),
            reread: self.reread.clone(),
            logins: Arc::clone(&self.logins),
        }
    }
}

impl<B: SqlxEngine> SimPool<B> for PlainSqlx<B> {
    type Conn = PoolConnection<B::Sqlx>;

    async fn checkout(&self) -> Result<(Self::Conn, Option<Instant>), &'static str> {
        let acquire = self.pool.acquire();
        let (acquired, opened) = OPENED
            .scope(Cell::new(None), async {
                let acquired = acquire.await;
                (acquired, OPENED.with(Cell::get))
            })
            .await;
        let error = match acquired {
            Ok(conn) => return Ok((conn, opened)),
            Err(error) => error,
        };
        match self.backend.classify(&error) {
            Failure::Auth => {
                self.logins.count(true);
                // No cache, no coordination: this caller reads AWSCURRENT and points the pool at it; its
                // request has failed all the same.
                if let Some(source) = &self.reread {
                    if let Ok(version) = source.fetch(Stage::Current).await {
                        self.pool
                            .set_connect_options(self.backend.options_for(&version.credentials));
                    }
                }
            }
            _ if !matches!(error, sqlx::Error::PoolTimedOut) => self.logins.count(false),
            _ => {}
        }
        Err(sqlx_error_kind(&self.backend, &error))
    }

    async fn ping(conn: &mut Self::Conn) -> Result<(), String> {
        B::sqlx_ping(conn).await
    }
}

/// The pool settings every sqlx client shares; the rest are sqlx's defaults.
fn pool_options<DB: RotatingDatabase>(settings: &Settings) -> PoolOptions<DB> {
    PoolOptions::new().max_connections(u32::try_from(settings.pool_size).unwrap_or(u32::MAX))
}

/// The report's name for a failed `acquire()`.
fn sqlx_error_kind<DB: RotatingDatabase>(
    backend: &SqlxBackend<DB>,
    error: &sqlx::Error,
) -> &'static str {
    match error {
        sqlx::Error::PoolTimedOut => "get:timeout",
        // rotapool-sqlx's own errors (the secret store failing during a rejection).
        sqlx::Error::Configuration(source) => source
            .downcast_ref::<Error<sqlx::Error>>()
            .map_or("get:other", |e| error_kind(e)),
        error => match backend.classify(error) {
            Failure::Auth => "get:auth",
            _ => "get:connect",
        },
    }
}
