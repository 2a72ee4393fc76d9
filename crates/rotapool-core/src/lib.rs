#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

mod backend;
mod builder;
pub mod credentials;
mod error;
mod manager;
pub mod refresher;
pub mod source;
mod tls;

pub use backend::{Backend, Failure};
pub use builder::{BuildError, Object, Pool, PoolBuilder, PoolError};
pub use credentials::{Credentials, CredentialsError};
pub use error::Error;
pub use manager::{ConnectPolicy, Connection, EndpointOverrides, RotatingManager, Stats};
pub use refresher::{Generation, RefreshError, RefreshPolicy, Refresher};
pub use source::{
    InMemorySecretStore, SecretSource, SecretVersion, SourceError, Stage, StaticSource,
};
pub use tls::{read_ca_bundle, SslMode, TlsError};

/// The pool library this crate builds on, re-exported for advanced configuration.
pub use deadpool;
