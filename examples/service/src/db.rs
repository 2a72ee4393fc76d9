//! The orders table on whichever engine the secret names: one pool type per backend, one set of queries. The
//! client, rotapool's own pools (the default) or sqlx's ([`crate::db_sqlx`]), is chosen by `DB_CLIENT`.

use rotapool_mysql::mysql_async::prelude::Queryable;
use rotapool_postgres::{report, Config, CreatePoolError, FromConfig};
use serde_json::Value;

use crate::db_sqlx::SqlxDb;

/// The service's database: a rotating pool of the engine the secret's `engine` field names.
#[derive(Clone)]
pub(crate) enum Db {
    /// PostgreSQL or Aurora PostgreSQL.
    Postgres(rotapool_postgres::Pool),
    /// MySQL, MariaDB or Aurora MySQL.
    MySql(rotapool_mysql::Pool),
    /// Either engine on sqlx's own pool, its logins rotated by rotapool-sqlx.
    Sqlx(SqlxDb),
}

/// Which pools the service runs on: `DB_CLIENT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Client {
    /// rotapool's own pools over tokio-postgres and mysql_async (`DB_CLIENT=rotapool`, the default).
    Rotapool,
    /// sqlx's pool through rotapool-sqlx (`DB_CLIENT=sqlx`).
    Sqlx,
}

impl Client {
    /// `DB_CLIENT`'s value: unset or `rotapool`, or `sqlx`.
    pub(crate) fn from_env(value: Option<&str>) -> Result<Self, String> {
        match value {
            None | Some("rotapool") => Ok(Self::Rotapool),
            Some("sqlx") => Ok(Self::Sqlx),
            Some(_) => Err("invalid `DB_CLIENT`: must be rotapool or sqlx".to_owned()),
        }
    }
}

/// Why a request could not be served by the database. Its `Display` never holds a secret: pool errors name
/// the step and the server's words, and driver errors are the server's own.
#[derive(Debug)]
pub(crate) struct DbError(pub String);

impl From<rotapool_postgres::PoolError> for DbError {
    fn from(error: rotapool_postgres::PoolError) -> Self {
        Self(report(&error))
    }
}

impl From<rotapool_mysql::PoolError> for DbError {
    fn from(error: rotapool_mysql::PoolError) -> Self {
        Self(report(&error))
    }
}

impl From<rotapool_postgres::tokio_postgres::Error> for DbError {
    fn from(error: rotapool_postgres::tokio_postgres::Error) -> Self {
        Self(
            error
                .as_db_error()
                .map_or_else(|| error.to_string(), |e| e.message().to_owned()),
        )
    }
}

impl From<rotapool_mysql::mysql_async::Error> for DbError {
    fn from(error: rotapool_mysql::mysql_async::Error) -> Self {
        Self(error.to_string())
    }
}

impl Db {
    /// Creates the pool of `client` for the engine `engine` (the secret's `engine` field) from `config`, sharing
    /// `sdk`.
    pub(crate) async fn connect(
        client: Client,
        engine: &str,
        config: &Config,
        sdk: &aws_config::SdkConfig,
    ) -> Result<Self, String> {
        if client == Client::Sqlx {
            return SqlxDb::connect(engine, config, sdk).await.map(Self::Sqlx);
        }
        let built: Result<Self, CreatePoolError> = match engine {
            "postgres" | "aurora-postgresql" => {
                async {
                    let backend =
                        <rotapool_postgres::PgBackend as FromConfig>::from_config(config)?;
                    let pool = config.builder(backend)?.aws_sdk_config(sdk).build().await?;
                    Ok(Self::Postgres(pool))
                }
                .await
            }
            "mysql" | "mariadb" | "aurora-mysql" => {
                async {
                    let backend =
                        <rotapool_mysql::MySqlBackend as FromConfig>::from_config(config)?;
                    let pool = config.builder(backend)?.aws_sdk_config(sdk).build().await?;
                    Ok(Self::MySql(pool))
                }
                .await
            }
            other => {
                return Err(format!(
                    "the secret's engine `{other}` is not one this service speaks"
                ))
            }
        };
        built.map_err(|e| report(&e))
    }

    /// Creates the orders table if it is missing.
    pub(crate) async fn create_table(&self) -> Result<(), DbError> {
        match self {
            Self::Postgres(pool) => {
                pool.get()
                    .await?
                    .batch_execute("CREATE TABLE IF NOT EXISTS orders (id BIGSERIAL PRIMARY KEY, body TEXT NOT NULL)")
                    .await?
            }
            Self::MySql(pool) => {
                pool.get()
                    .await?
                    .query_drop(
                        "CREATE TABLE IF NOT EXISTS orders (id BIGINT AUTO_INCREMENT PRIMARY KEY, body TEXT NOT NULL)",
                    )
                    .await?
            }
            Self::Sqlx(db) => db.create_table().await?,
        }
        Ok(())
    }

    /// Stores `order`; returns its id.
    pub(crate) async fn insert(&self, order: &Value) -> Result<i64, DbError> {
        let body = order.to_string();
        match self {
            Self::Postgres(pool) => {
                let row = pool
                    .get()
                    .await?
                    .query_one(
                        "INSERT INTO orders (body) VALUES ($1) RETURNING id",
                        &[&body],
                    )
                    .await?;
                Ok(row.get(0))
            }
            Self::MySql(pool) => {
                let mut conn = pool.get().await?;
                conn.exec_drop("INSERT INTO orders (body) VALUES (?)", (body,))
                    .await?;
                Ok(conn.last_insert_id().unwrap_or_default() as i64)
            }
            Self::Sqlx(db) => db.insert(order).await,
        }
    }

    /// The order `id`, if there is one.
    pub(crate) async fn find(&self, id: i64) -> Result<Option<Value>, DbError> {
        let body: Option<String> = match self {
            Self::Sqlx(db) => return db.find(id).await,
            Self::Postgres(pool) => pool
                .get()
                .await?
                .query_opt("SELECT body FROM orders WHERE id = $1", &[&id])
                .await?
                .map(|row| row.get(0)),
            Self::MySql(pool) => {
                pool.get()
                    .await?
                    .exec_first("SELECT body FROM orders WHERE id = ?", (id,))
                    .await?
            }
        };
        Ok(body.map(|body| serde_json::from_str(&body).unwrap_or(Value::String(body))))
    }

    /// Holds a pooled connection in a server-side sleep of `duration` (`pg_sleep`, `SLEEP`): a slow query on
    /// demand.
    pub(crate) async fn sleep(&self, duration: std::time::Duration) -> Result<(), DbError> {
        let seconds = duration.as_secs_f64();
        match self {
            Self::Postgres(pool) => {
                pool.get()
                    .await?
                    .execute("SELECT pg_sleep($1)", &[&seconds])
                    .await?;
            }
            Self::MySql(pool) => {
                pool.get()
                    .await?
                    .exec_drop("SELECT SLEEP(?)", (seconds,))
                    .await?;
            }
            Self::Sqlx(db) => db.sleep(duration).await?,
        }
        Ok(())
    }

    /// `SELECT 1` on a pooled connection.
    pub(crate) async fn ping(&self) -> Result<(), DbError> {
        match self {
            Self::Postgres(pool) => {
                pool.get().await?.simple_query("SELECT 1").await?;
            }
            Self::MySql(pool) => {
                pool.get().await?.query_drop("SELECT 1").await?;
            }
            Self::Sqlx(db) => db.ping().await?,
        }
        Ok(())
    }
}
