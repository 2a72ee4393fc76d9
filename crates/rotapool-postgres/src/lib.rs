#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod admin;
mod backend;
mod client;
#[cfg(feature = "deadpool-postgres")]
mod connect;
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

/// The driver, re-exported so that its version always matches the pool's.
pub use tokio_postgres;

rotapool_core::backend_reexports!(PgBackend, tokio_postgres::Error);
