#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod admin;
mod backend;
mod client;
pub mod tls;

pub use backend::PgBackend;
pub use client::PgClient;
pub use tls::RustlsConnect;

/// The driver, re-exported so that its version always matches the pool's.
pub use tokio_postgres;

rotapool_core::backend_reexports!(PgBackend, tokio_postgres::Error);
