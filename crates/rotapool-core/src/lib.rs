#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

// Layers, lowest first; a module imports only from layers below it, never through the crate root:
// 0 credentials, random · 1 source, error, settings, backend · 2 tls, telemetry · 3 login (refresh, proactive)
// · 4 manager · 5 pool · 6 builder · 7 config. `tests/layers.rs` checks it.
mod backend;
mod builder;
mod config;
pub mod credentials;
pub mod error;
#[cfg(feature = "fake")]
#[cfg_attr(docsrs, doc(cfg(feature = "fake")))]
pub mod fake;
mod login;
mod manager;
mod pool;
mod random;
pub mod reexports;
pub mod settings;
pub mod source;
mod telemetry;
pub mod tls;

pub use backend::{Backend, Failure, Reuse};
pub use builder::PoolBuilder;
pub use config::{
    AgentConfig, Config, FileConfig, FromConfig, IamConfig, LoginConfig, PoolConfig, SourceKind,
};
pub use credentials::Credentials;
pub use error::{
    BuildError, ConfigError, CreatePoolError, CredentialsError, Error, PoolError, SourceError,
};
pub use login::{Login, LoginPermit, RotatingLogin, Stats, Tag, TransientRetries};
pub use manager::Connection;
pub use pool::{Object, Pool, WeakPool};
/// The TLS library rotapool builds its configs with, re-exported so that a [`tls::client_config`] can be
/// adjusted with the same version.
pub use rustls;
pub use settings::{DrainPolicy, ProactiveRefresh, RefreshPolicy};
pub use source::{InMemorySecretStore, SecretSource, SecretVersion, Stage, StaticSource};
pub use tls::{CaFile, SslMode};
