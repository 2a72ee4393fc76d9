#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

/// The rotation-aware core: credentials, secret sources, refresher and pool manager.
pub use rotapool_core as core;
/// The PostgreSQL pool (feature `postgres`, on by default).
#[cfg(feature = "postgres")]
pub use rotapool_postgres as postgres;
