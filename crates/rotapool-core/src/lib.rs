#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod backend;
mod builder;
mod config;
mod connection;
pub mod credentials;
mod error;
mod manager;
mod policy;
mod pool;
mod proactive;
mod random;
pub mod refresher;
pub mod source;
mod telemetry;
pub mod tls;

pub use backend::{Backend, Failure, Reuse};
pub use builder::{BuildError, PoolBuilder, PoolError};
pub use config::{
    Config, ConfigError, CreatePoolError, FromConfig, InvalidValue, LoginConfig, PoolConfig,
};
pub use connection::Connection;
pub use credentials::{Credentials, CredentialsError};
pub use error::Error;
pub use manager::{RotatingManager, Stats};
pub use policy::{ConnectPolicy, DrainPolicy, EndpointOverrides};
pub use pool::{Object, Pool, WeakPool};
pub use proactive::ProactiveRefresh;
pub use refresher::{Generation, Probe, ProbeOutcome, RefreshError, RefreshPolicy, Refresher};
/// The TLS library rotapool builds its configs with, re-exported so that a [`tls::client_config`] can be
/// adjusted with the same version.
pub use rustls;
pub use source::{
    InMemorySecretStore, SecretSource, SecretVersion, SourceError, Stage, StaticSource,
};
pub use tls::{CaFile, SslMode, TlsError};

/// The pool library this crate builds on, re-exported for advanced configuration.
pub use deadpool;
