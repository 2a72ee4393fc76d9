#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

// One sqlx, named `sqlx` everywhere in the crate: 0.9 if its feature is on, else 0.8.
/// The sqlx release the pool is built on (feature `sqlx-08`, the default): use its types through this path, or
/// depend on the same release.
#[cfg(all(feature = "sqlx-08", not(feature = "sqlx-09")))]
pub extern crate sqlx08 as sqlx;
/// The sqlx release the pool is built on (feature `sqlx-09`): use its types through this path, or depend on
/// the same release.
#[cfg(feature = "sqlx-09")]
pub extern crate sqlx09 as sqlx;
#[cfg(not(any(feature = "sqlx-08", feature = "sqlx-09")))]
compile_error!("rotapool-sqlx needs its feature `sqlx-08` (default) or `sqlx-09`");

mod backend;
mod database;
mod pool;
mod tracking;

pub use backend::SqlxBackend;
pub use database::{ConnectOptions, RotatingDatabase};
pub use pool::RotatingPool;
pub use rotapool_core::{self as core, PoolBuilder};
pub use tracking::ConnectionInfo;

/// PostgreSQL through `sqlx::Postgres`.
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub mod postgres {
    use sqlx::postgres::PgConnectOptions;

    /// A rotating sqlx pool for PostgreSQL.
    pub type PgPool = crate::RotatingPool<sqlx::Postgres>;

    /// The rotating login's builder for PostgreSQL logins starting from `options` (TLS, application name...);
    /// give it a secret (`aws_secret`, `secret_source`) and its settings, then [`crate::RotatingPool::new`].
    pub fn builder(
        options: PgConnectOptions,
    ) -> crate::PoolBuilder<crate::SqlxBackend<sqlx::Postgres>> {
        crate::PoolBuilder::new(crate::SqlxBackend::new(options))
    }

    /// A rotating pool for the Secrets Manager secret `secret_id` (RDS format: username, password, host,
    /// port, dbname), with `options` for sqlx's pool and the login's defaults.
    #[cfg(feature = "aws")]
    #[cfg_attr(docsrs, doc(cfg(feature = "aws")))]
    pub async fn pool(
        secret_id: impl Into<String>,
        options: sqlx::postgres::PgPoolOptions,
    ) -> Result<PgPool, rotapool_core::BuildError> {
        crate::RotatingPool::new(
            builder(PgConnectOptions::new()).aws_secret(secret_id),
            options,
        )
        .await
    }
}

/// MySQL and MariaDB through `sqlx::MySql`.
#[cfg(feature = "mysql")]
#[cfg_attr(docsrs, doc(cfg(feature = "mysql")))]
pub mod mysql {
    use sqlx::mysql::MySqlConnectOptions;

    /// A rotating sqlx pool for MySQL or MariaDB.
    pub type MySqlPool = crate::RotatingPool<sqlx::MySql>;

    /// The rotating login's builder for MySQL logins starting from `options` (TLS, charset...); give it a
    /// secret (`aws_secret`, `secret_source`) and its settings, then [`crate::RotatingPool::new`].
    pub fn builder(
        options: MySqlConnectOptions,
    ) -> crate::PoolBuilder<crate::SqlxBackend<sqlx::MySql>> {
        crate::PoolBuilder::new(crate::SqlxBackend::new(options))
    }

    /// A rotating pool for the Secrets Manager secret `secret_id` (RDS format), with `options` for sqlx's pool
    /// and the login's defaults.
    #[cfg(feature = "aws")]
    #[cfg_attr(docsrs, doc(cfg(feature = "aws")))]
    pub async fn pool(
        secret_id: impl Into<String>,
        options: sqlx::mysql::MySqlPoolOptions,
    ) -> Result<MySqlPool, rotapool_core::BuildError> {
        crate::RotatingPool::new(
            builder(MySqlConnectOptions::new()).aws_secret(secret_id),
            options,
        )
        .await
    }
}
