//! Everything a backend crate re-exports, so that its users never name `rotapool-core` or `deadpool` for ordinary
//! work: the non-generic names here, through `pub use rotapool_core::reexports::*`, and the aliases for one
//! backend, through [`backend_reexports!`](crate::backend_reexports).

#[cfg(feature = "aws")]
#[cfg_attr(docsrs, doc(cfg(feature = "aws")))]
pub use crate::source::AwsSecretsManager;
pub use crate::{
    config::{Config, FromConfig, LoginConfig, PoolConfig},
    credentials::{Credentials, CredentialsError},
    error::{
        report, BuildError, ConfigError, CreatePoolError, InvalidValue, SourceError, TimeoutType,
        TlsError,
    },
    login::{Stats, Tag},
    manager::Connection,
    settings::{DrainPolicy, EndpointOverrides, ProactiveRefresh, RefreshPolicy},
    source::{InMemorySecretStore, SecretSource, SecretVersion, Stage, StaticSource},
    tls::{CaFile, SslMode},
};
pub use deadpool::managed::{Metrics, Status, Timeouts};

/// Declares a backend crate's public names: everything in [`crate::reexports`], and the aliases `Pool`,
/// `Object`, `WeakPool`, `PoolBuilder`, `RotatingLogin`, `PoolError` and `Error` for `$backend`, whose driver
/// error is `$error`.
///
/// ```ignore
/// rotapool_core::backend_reexports!(PgBackend, tokio_postgres::Error);
/// ```
#[macro_export]
macro_rules! backend_reexports {
    ($backend:ty, $error:ty) => {
        pub use $crate::reexports::*;

        /// A pool of connections that survives password rotation.
        pub type Pool = $crate::Pool<$backend>;
        /// A connection borrowed from the [`Pool`]; derefs to the driver's connection.
        pub type Object = $crate::Object<$backend>;
        /// A [`Pool`] handle that does not keep it alive.
        pub type WeakPool = $crate::WeakPool<$backend>;
        /// Builds a [`Pool`] (`.build()`) or a [`RotatingLogin`] for another pool (`.build_login()`).
        pub type PoolBuilder = $crate::PoolBuilder<$backend>;
        /// Opens connections with the current credentials; the heart of every pool adapter.
        pub type RotatingLogin = $crate::RotatingLogin<$backend>;
        /// Why [`Pool::get`](rotapool_core::Pool::get) returned no connection.
        pub type PoolError = $crate::PoolError<$error>;
        /// Why a connection could not be opened.
        pub type Error = $crate::Error<$error>;
    };
}
