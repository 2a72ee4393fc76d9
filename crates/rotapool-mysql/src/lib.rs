#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod admin;
mod backend;

pub use backend::MySqlBackend;

/// The driver, re-exported so that its version always matches the pool's.
pub use mysql_async;
#[cfg(feature = "aws")]
#[cfg_attr(docsrs, doc(cfg(feature = "aws")))]
pub use rotapool_core::source::AwsSecretsManager;
pub use rotapool_core::{
    BuildError, Config, ConfigError, ConnectPolicy, CreatePoolError, Credentials, CredentialsError,
    DrainPolicy, InMemorySecretStore, LoginConfig, PoolConfig, RefreshPolicy, SecretSource,
    SourceError, SslMode, Stage, StaticSource, Stats, TlsError,
};

/// The pool's manager: logs in with the secret's credentials and refreshes them on rejection.
pub type Manager = rotapool_core::RotatingManager<MySqlBackend>;
/// A pool of MySQL/MariaDB connections that survives password rotation.
pub type Pool = rotapool_core::Pool<MySqlBackend>;
/// A connection borrowed from the [`Pool`]. Derefs to [`mysql_async::Conn`].
pub type Object = rotapool_core::Object<MySqlBackend>;
/// Builds a [`Pool`]: `PoolBuilder::new(MySqlBackend::new()).aws_secret("prod/db").build().await`.
pub type PoolBuilder = rotapool_core::PoolBuilder<MySqlBackend>;
/// Why [`Pool::get`](rotapool_core::deadpool::managed::Pool::get) failed.
pub type PoolError = rotapool_core::PoolError<MySqlBackend>;
/// Why a connection could not be opened.
pub type Error = rotapool_core::Error<mysql_async::Error>;
