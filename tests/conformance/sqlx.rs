//! rotapool-sqlx's pool (a real `sqlx::Pool` with a rotation-aware `acquire()`), for PostgreSQL
//! ([`SqlxPostgres`]) and MariaDB ([`SqlxMariaDb`]), behind the scenarios' [`PoolKind`] and [`TestPool`].
//!
//! The pool is built as a service would build it: `rotapool_sqlx::{postgres, mysql}::builder` over sqlx's connect
//! options with TLS off (the secret names the host, port and database), the scenario's settings applied to the
//! rotating login, and sqlx's `PoolOptions` sized from them. `get()` is `RotatingPool::acquire_with_info`.

use std::{marker::PhantomData, sync::Arc, time::Instant};

use async_trait::async_trait;
use rotapool_core::{SecretSource, Stats};
use rotapool_sqlx::{
    sqlx::{
        self,
        pool::{PoolConnection, PoolOptions},
    },
    PoolBuilder, RotatingDatabase, RotatingPool, SqlxBackend,
};

use super::{
    mariadb::MariaDb,
    pools::{PoolKind, Settings, TestPool},
    postgres::Postgres,
};

/// sqlx's pool size when a scenario leaves it unset (sqlx's own default is 10 too).
const DEFAULT_MAX_CONNECTIONS: u32 = 10;

/// What differs between the engines rotapool-sqlx speaks, as the scenarios see them.
#[async_trait]
pub trait SqlxEngine: RotatingDatabase {
    /// The rotating login's builder over sqlx's connect options for this engine, with TLS off.
    fn builder() -> PoolBuilder<SqlxBackend<Self>>;
    /// `SELECT 1` on a pooled connection.
    async fn ping(conn: &mut PoolConnection<Self>) -> Result<(), String>;
    /// Words of the database's own rejection of a password (what `acquire()` returns on a final failure).
    const REJECTION: &'static str;
}

#[async_trait]
impl SqlxEngine for sqlx::Postgres {
    fn builder() -> PoolBuilder<SqlxBackend<Self>> {
        use sqlx::postgres::{PgConnectOptions, PgSslMode};
        rotapool_sqlx::postgres::builder(PgConnectOptions::new().ssl_mode(PgSslMode::Disable))
    }

    async fn ping(conn: &mut PoolConnection<Self>) -> Result<(), String> {
        let one: i32 = sqlx::query_scalar("SELECT 1::int4")
            .fetch_one(&mut **conn)
            .await
            .map_err(query_error)?;
        (one == 1)
            .then_some(())
            .ok_or_else(|| format!("SELECT 1 returned {one}"))
    }

    /// SQLSTATE 28P01's message: `password authentication failed for user "..."`.
    const REJECTION: &'static str = "password authentication failed";
}

#[async_trait]
impl SqlxEngine for sqlx::MySql {
    fn builder() -> PoolBuilder<SqlxBackend<Self>> {
        use sqlx::mysql::{MySqlConnectOptions, MySqlSslMode};
        rotapool_sqlx::mysql::builder(MySqlConnectOptions::new().ssl_mode(MySqlSslMode::Disabled))
    }

    async fn ping(conn: &mut PoolConnection<Self>) -> Result<(), String> {
        let one: i64 = sqlx::query_scalar("SELECT CAST(1 AS SIGNED)")
            .fetch_one(&mut **conn)
            .await
            .map_err(query_error)?;
        (one == 1)
            .then_some(())
            .ok_or_else(|| format!("SELECT 1 returned {one}"))
    }

    /// Error 1045's message: `Access denied for user '...'@'...' (using password: YES)`.
    const REJECTION: &'static str = "Access denied";
}

/// A failed query's error, as the application would log it (the chain). sqlx words a session the server ended
/// (a restart, `KILL`) with no message of its own as an `UnexpectedEof` I/O error ("expected to read 4 bytes, got
/// 0 bytes at EOF"): that is said in so many words, as the other drivers say "connection closed".
fn query_error(error: sqlx::Error) -> String {
    let chain = rotapool_testkit::error_chain(&error);
    match &error {
        sqlx::Error::Io(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            format!("connection closed by the server: {chain}")
        }
        _ => chain,
    }
}

/// rotapool-sqlx's pool over the engine `DB`; [`SqlxPostgres`] and [`SqlxMariaDb`] name the two.
pub struct Sqlx<DB>(PhantomData<fn() -> DB>);

/// rotapool-sqlx's pool for PostgreSQL.
pub type SqlxPostgres = Sqlx<sqlx::Postgres>;
/// rotapool-sqlx's pool for MariaDB (sqlx's MySQL driver).
pub type SqlxMariaDb = Sqlx<sqlx::MySql>;

/// rotapool-sqlx's pool, as the scenarios use it.
pub struct SqlxPool<DB: RotatingDatabase> {
    pub pool: RotatingPool<DB>,
}

impl<DB: RotatingDatabase> Clone for SqlxPool<DB> {
    fn clone(&self) -> Self {
        Self {
            pool: self.pool.clone(),
        }
    }
}

/// A connection `acquire_with_info()` lent, and what rotapool said about it (its `rotapool_sqlx::ConnectionInfo`).
pub struct SqlxConn<DB: RotatingDatabase> {
    pub conn: PoolConnection<DB>,
    /// [`rotapool_sqlx::ConnectionInfo::generation`]: the credentials generation it logged in with.
    pub generation: u64,
    /// [`rotapool_sqlx::ConnectionInfo::created`]: when it was made.
    pub created: Instant,
}

impl<DB: SqlxEngine> Sqlx<DB> {
    async fn build_pool(source: Arc<dyn SecretSource>, settings: Settings) -> SqlxPool<DB> {
        let max_connections = settings.size().map_or(DEFAULT_MAX_CONNECTIONS, |size| {
            u32::try_from(size).expect("a pool size fits in u32")
        });
        let login = settings.apply(DB::builder().secret_source(source));
        let options = PoolOptions::<DB>::new().max_connections(max_connections);
        let pool = RotatingPool::new(login, options)
            .await
            .expect("the pool builds");
        SqlxPool { pool }
    }
}

#[async_trait]
impl PoolKind<Postgres> for SqlxPostgres {
    type Pool = SqlxPool<sqlx::Postgres>;

    async fn build(_: &Postgres, source: Arc<dyn SecretSource>, settings: Settings) -> Self::Pool {
        Self::build_pool(source, settings).await
    }
}

#[async_trait]
impl PoolKind<MariaDb> for SqlxMariaDb {
    type Pool = SqlxPool<sqlx::MySql>;

    async fn build(_: &MariaDb, source: Arc<dyn SecretSource>, settings: Settings) -> Self::Pool {
        Self::build_pool(source, settings).await
    }
}

#[async_trait]
impl<DB: SqlxEngine> TestPool for SqlxPool<DB> {
    type Conn = SqlxConn<DB>;

    async fn get(&self) -> Result<Self::Conn, String> {
        let (conn, info) = self
            .pool
            .acquire_with_info()
            .await
            // sqlx's errors print their source's words only in part; the application logs the chain.
            .map_err(|e| rotapool_testkit::error_chain(&e))?;
        // `None`: the current credentials are rejected, and the pool lent an idle session that logged in before,
        // through sqlx's `try_acquire`, which runs none of sqlx's hooks: rotapool cannot say which session it is.
        // `rotapool_sqlx::ConnectionInfo` cannot be built outside its crate (non-exhaustive), so the two facts are
        // kept here. Generation: the current one, the nearest rotapool offers (the session logged in with it or
        // an older one). Creation: when the current generation was adopted, not now. The session is not new: it
        // logged in before this `get()` and before the rejection, and `Instant::now()` would count it as a
        // connection opened for this `get()`, with the rejected generation, every time one is lent. While the
        // old password is being rejected, lent sessions come by the hundred in milliseconds: counted as new, they
        // ended `Workload::wait_for_new_connections` before any connection on the new password was opened, and
        // rotation_under_load_with_churn_has_zero_errors (MariaDB) failed with "connections were opened after the
        // adoption". The adoption instant is never after any scenario instant that follows the adoption, so such
        // a session never counts as opened after an adoption.
        let (generation, created) = match info {
            Some(info) => (info.generation, info.created),
            None => {
                let stats = self.pool.stats();
                (stats.generation, stats.adopted_at)
            }
        };
        Ok(SqlxConn {
            conn,
            generation,
            created,
        })
    }

    async fn ping(&self, conn: &mut Self::Conn) -> Result<(), String> {
        DB::ping(&mut conn.conn).await
    }

    fn conn_generation(&self, conn: &Self::Conn) -> u64 {
        conn.generation
    }

    fn conn_created(&self, conn: &Self::Conn) -> Instant {
        conn.created
    }

    fn stats(&self) -> Stats {
        self.pool.stats()
    }

    fn password(&self) -> String {
        self.pool.login().credentials().password().to_owned()
    }

    fn size(&self) -> usize {
        self.pool.sqlx().size() as usize
    }

    /// `acquire()` returns the database's own rejection on a final failure: `sqlx::Error::Database`.
    fn is_rejection(message: &str) -> bool {
        message.contains(DB::REJECTION)
    }

    /// With the store unreadable, `sqlx::Error::Configuration` whose source, rotapool's refresh error, names it.
    fn names_the_store(message: &str) -> bool {
        message.contains("secret store")
    }
}
