#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod admin;
mod backend;

pub use backend::{InvalidReuse, MySqlBackend, MySqlReuse};

/// The driver, re-exported so that its version always matches the pool's.
pub use mysql_async;

rotapool_core::backend_reexports!(MySqlBackend, mysql_async::Error);
