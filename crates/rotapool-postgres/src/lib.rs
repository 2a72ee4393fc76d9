#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod backend;
mod client;
#[cfg(feature = "deadpool-postgres")]
mod connect;
#[cfg(feature = "deadpool-postgres")]
mod login_shim;
mod template;
pub mod tls;

pub use backend::PgBackend;
pub use client::PgClient;
#[cfg(all(feature = "deadpool-postgres", feature = "aws"))]
#[cfg_attr(docsrs, doc(cfg(all(feature = "deadpool-postgres", feature = "aws"))))]
pub use connect::{create_pool, pool_builder};
#[cfg(feature = "deadpool-postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "deadpool-postgres")))]
pub use connect::{
    pool_builder_with, template_from, CreateError, DeadpoolTls, LoginBuilder, RotatingConnect,
    TemplateBackend,
};
/// deadpool-postgres, re-exported so that its version always matches the one [`RotatingConnect`] plugs into.
#[cfg(feature = "deadpool-postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "deadpool-postgres")))]
pub use deadpool_postgres;
pub use tls::RustlsConnect;

#[cfg(feature = "aws")]
#[cfg_attr(docsrs, doc(cfg(feature = "aws")))]
pub use rotapool_core::source::AwsSecretsManager;
pub use rotapool_core::{
    BuildError, Config, ConfigError, ConnectPolicy, CreatePoolError, Credentials, CredentialsError,
    DrainPolicy, InMemorySecretStore, LoginConfig, PoolConfig, RefreshPolicy, SecretSource,
    SourceError, SslMode, Stage, StaticSource, Stats, TlsError,
};
/// The driver, re-exported so that its version always matches the pool's.
pub use tokio_postgres;

/// The pool's manager: logs in with the secret's credentials and refreshes them on rejection.
pub type Manager = rotapool_core::RotatingManager<PgBackend>;
/// A pool of Postgres connections that survives password rotation.
pub type Pool = rotapool_core::Pool<PgBackend>;
/// A connection borrowed from the [`Pool`]. Derefs to [`PgClient`], and through it to [`tokio_postgres::Client`].
pub type Object = rotapool_core::Object<PgBackend>;
/// Builds a [`Pool`]: `PoolBuilder::new(PgBackend::new()).aws_secret("prod/db").build().await`.
pub type PoolBuilder = rotapool_core::PoolBuilder<PgBackend>;
/// Why [`Pool::get`](rotapool_core::deadpool::managed::Pool::get) failed.
pub type PoolError = rotapool_core::PoolError<PgBackend>;
/// Why a connection could not be opened.
pub type Error = rotapool_core::Error<tokio_postgres::Error>;
