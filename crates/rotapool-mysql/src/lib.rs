#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod backend;

pub use backend::MySqlBackend;

/// The driver, re-exported so that its version always matches the pool's.
pub use mysql_async;

rotapool_core::backend_reexports!(MySqlBackend, mysql_async::Error);
