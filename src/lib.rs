#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

/// The rotation-aware core: credentials, secret sources, refresher and pool manager.
pub use rotapool_core as core;
/// The MySQL, MariaDB and Aurora MySQL pool (feature `mysql`, on by default).
#[cfg(feature = "mysql")]
pub use rotapool_mysql as mysql;
/// The PostgreSQL pool (feature `postgres`, on by default).
#[cfg(feature = "postgres")]
pub use rotapool_postgres as postgres;
