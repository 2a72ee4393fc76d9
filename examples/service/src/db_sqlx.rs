//! The orders table on sqlx (`DB_CLIENT=sqlx`): a real `sqlx::Pool` per engine, whose logins rotapool-sqlx keeps
//! in step with the secret. Every query goes through the rotation-aware [`rotapool_sqlx::RotatingPool::acquire`],
//! never through the plain `&PgPool` / `&MySqlPool` ([`rotapool_sqlx::RotatingPool::sqlx`]), whose own logins
//! fail between the database's password change and rotapool's adoption of the new one.

use rotapool_postgres::{report, Config, SslMode};
use rotapool_sqlx::{
    mysql::MySqlPool,
    postgres::PgPool,
    sqlx::{
        self,
        mysql::{MySqlConnectOptions, MySqlSslMode},
        pool::PoolOptions,
        postgres::{PgConnectOptions, PgSslMode},
        Database,
    },
    SqlxBackend,
};
use serde_json::Value;

use crate::db::DbError;

/// A rotating sqlx pool of the engine the secret's `engine` field names.
#[derive(Clone)]
pub(crate) enum SqlxDb {
    /// PostgreSQL or Aurora PostgreSQL.
    Postgres(PgPool),
    /// MySQL, MariaDB or Aurora MySQL.
    MySql(MySqlPool),
}

/// A sqlx error as the service reports it: the server's own words, or the chain of causes (a rejection the pool
/// could not recover from names the secret store there). Neither holds a secret.
impl From<sqlx::Error> for DbError {
    fn from(error: sqlx::Error) -> Self {
        Self(match &error {
            sqlx::Error::Database(e) => e.message().to_owned(),
            other => report(other),
        })
    }
}

impl SqlxDb {
    /// Creates the pool for the engine `engine` from `config`, sharing `sdk`. The login takes every setting of
    /// `config`; sqlx's pool takes `pool.max_size` and `pool.wait_timeout` (its `acquire_timeout`, sqlx's 30 s by
    /// default), and its connect options `ssl_mode`, `ca_file` and `application_name`. `connect_timeout` and
    /// `reuse` are the rotapool backends' own: sqlx's pool bounds a connect by its `acquire_timeout`, and pings a
    /// connection before lending it again.
    pub(crate) async fn connect(
        engine: &str,
        config: &Config,
        sdk: &aws_config::SdkConfig,
    ) -> Result<Self, String> {
        match engine {
            "postgres" | "aurora-postgresql" => {
                let mut options = PgConnectOptions::new().ssl_mode(match config.ssl_mode {
                    Some(SslMode::Disable) => PgSslMode::Disable,
                    None | Some(SslMode::Require) => PgSslMode::Require,
                    Some(SslMode::VerifyFull) => PgSslMode::VerifyFull,
                });
                if let Some(ca_file) = &config.ca_file {
                    options = options.ssl_root_cert(ca_file);
                }
                if let Some(name) = &config.application_name {
                    options = options.application_name(name);
                }
                let login = config
                    .builder(SqlxBackend::new(options))
                    .map_err(|e| report(&e))?;
                PgPool::new(login.aws_sdk_config(sdk), pool_options(config))
                    .await
                    .map(Self::Postgres)
                    .map_err(|e| report(&e))
            }
            "mysql" | "mariadb" | "aurora-mysql" => {
                let mut options = MySqlConnectOptions::new().ssl_mode(match config.ssl_mode {
                    Some(SslMode::Disable) => MySqlSslMode::Disabled,
                    None | Some(SslMode::Require) => MySqlSslMode::Required,
                    Some(SslMode::VerifyFull) => MySqlSslMode::VerifyIdentity,
                });
                if let Some(ca_file) = &config.ca_file {
                    options = options.ssl_ca(ca_file);
                }
                let login = config
                    .builder(SqlxBackend::new(options))
                    .map_err(|e| report(&e))?;
                MySqlPool::new(login.aws_sdk_config(sdk), pool_options(config))
                    .await
                    .map(Self::MySql)
                    .map_err(|e| report(&e))
            }
            other => Err(format!(
                "the secret's engine `{other}` is not one this service speaks"
            )),
        }
    }

    /// Creates the orders table if it is missing.
    pub(crate) async fn create_table(&self) -> Result<(), DbError> {
        match self {
            Self::Postgres(pool) => {
                sqlx::query("CREATE TABLE IF NOT EXISTS orders (id BIGSERIAL PRIMARY KEY, body TEXT NOT NULL)")
                    .execute(&mut *pool.acquire().await?)
                    .await?;
            }
            Self::MySql(pool) => {
                sqlx::query(
                    "CREATE TABLE IF NOT EXISTS orders (id BIGINT AUTO_INCREMENT PRIMARY KEY, body TEXT NOT NULL)",
                )
                .execute(&mut *pool.acquire().await?)
                .await?;
            }
        }
        Ok(())
    }

    /// Stores `order` in a transaction of its own ([`rotapool_sqlx::RotatingPool::begin`]); returns its id.
    pub(crate) async fn insert(&self, order: &Value) -> Result<i64, DbError> {
        let body = order.to_string();
        match self {
            Self::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                let id = sqlx::query_scalar("INSERT INTO orders (body) VALUES ($1) RETURNING id")
                    .bind(body)
                    .fetch_one(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(id)
            }
            Self::MySql(pool) => {
                let mut tx = pool.begin().await?;
                let done = sqlx::query("INSERT INTO orders (body) VALUES (?)")
                    .bind(body)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(done.last_insert_id() as i64)
            }
        }
    }

    /// The order `id`, if there is one.
    pub(crate) async fn find(&self, id: i64) -> Result<Option<Value>, DbError> {
        let body: Option<String> = match self {
            Self::Postgres(pool) => {
                sqlx::query_scalar("SELECT body FROM orders WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&mut *pool.acquire().await?)
                    .await?
            }
            Self::MySql(pool) => {
                sqlx::query_scalar("SELECT body FROM orders WHERE id = ?")
                    .bind(id)
                    .fetch_optional(&mut *pool.acquire().await?)
                    .await?
            }
        };
        Ok(body.map(|body| serde_json::from_str(&body).unwrap_or(Value::String(body))))
    }

    /// Holds a pooled connection in a server-side sleep of `duration` (`pg_sleep`, `SLEEP`).
    pub(crate) async fn sleep(&self, duration: std::time::Duration) -> Result<(), DbError> {
        let seconds = duration.as_secs_f64();
        match self {
            Self::Postgres(pool) => {
                sqlx::query("SELECT pg_sleep($1)")
                    .bind(seconds)
                    .execute(&mut *pool.acquire().await?)
                    .await?;
            }
            Self::MySql(pool) => {
                sqlx::query("SELECT SLEEP(?)")
                    .bind(seconds)
                    .execute(&mut *pool.acquire().await?)
                    .await?;
            }
        }
        Ok(())
    }

    /// `SELECT 1` on a pooled connection.
    pub(crate) async fn ping(&self) -> Result<(), DbError> {
        match self {
            Self::Postgres(pool) => {
                sqlx::query("SELECT 1")
                    .execute(&mut *pool.acquire().await?)
                    .await?;
            }
            Self::MySql(pool) => {
                sqlx::query("SELECT 1")
                    .execute(&mut *pool.acquire().await?)
                    .await?;
            }
        }
        Ok(())
    }
}

/// sqlx's pool options from `config`: its size (4 per core by default, as rotapool's own pools) and how long an
/// `acquire()` waits. rotapool-sqlx sets the hooks and the lifetime (the login's `max_lifetime`) itself.
fn pool_options<DB: Database>(config: &Config) -> PoolOptions<DB> {
    let max_size = config.pool.max_size.unwrap_or_else(|| {
        4 * std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });
    let options = PoolOptions::new().max_connections(u32::try_from(max_size).unwrap_or(u32::MAX));
    match config.pool.wait_timeout {
        Some(timeout) => options.acquire_timeout(timeout),
        None => options,
    }
}
