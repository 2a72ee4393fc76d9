//! sqlx pools whose logins survive AWS Secrets Manager password rotation, for PostgreSQL (feature `postgres`)
//! and MySQL or MariaDB (feature `mysql`), on sqlx 0.8.
//!
//! [`RotatingPool`] wraps a real `sqlx::Pool`: its [`RotatingPool::acquire`] and [`RotatingPool::begin`] ride
//! through a rotation with no error, and [`RotatingPool::sqlx`] hands the same pool to code that takes
//! `&PgPool` / `&MySqlPool`, whose logins use the new password as soon as rotapool has adopted it. The rotation
//! logic is rotapool-core's [`rotapool_core::RotatingLogin`]; this crate keeps sqlx's connect options in step
//! with it and retires old connections through sqlx's hooks. The README says what each call site can see
//! during a rotation.
//!
//! ```no_run
//! # #[cfg(all(feature = "postgres", feature = "aws"))]
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use rotapool_sqlx::{postgres, sqlx::postgres::PgPoolOptions};
//!
//! let pool = postgres::pool("prod/app/db", PgPoolOptions::new().max_connections(16)).await?;
//! let mut conn = pool.acquire().await?; // rotation-aware
//! sqlx::query("SELECT 1").execute(&mut *conn).await?;
//! sqlx::query("SELECT 1").execute(pool.sqlx()).await?; // plain &PgPool: follows the secret's adoptions
//! # Ok(())
//! # }
//! ```

mod backend;
mod database;
mod pool;
mod tracking;

pub use backend::SqlxBackend;
pub use database::{ConnectOptions, RotatingDatabase};
pub use pool::RotatingPool;
pub use rotapool_core::{self as core, PoolBuilder};
pub use sqlx;
pub use tracking::ConnectionInfo;

/// PostgreSQL through `sqlx::Postgres`.
#[cfg(feature = "postgres")]
pub mod postgres {
    use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

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
    pub async fn pool(
        secret_id: impl Into<String>,
        options: PgPoolOptions,
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
pub mod mysql {
    use sqlx::mysql::{MySqlConnectOptions, MySqlPoolOptions};

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
    pub async fn pool(
        secret_id: impl Into<String>,
        options: MySqlPoolOptions,
    ) -> Result<MySqlPool, rotapool_core::BuildError> {
        crate::RotatingPool::new(
            builder(MySqlConnectOptions::new()).aws_secret(secret_id),
            options,
        )
        .await
    }
}
