#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

/// The rotation-aware core: credentials, secret sources, refresher and pool manager.
pub use rotapool_core as core;
/// The MySQL, MariaDB and Aurora MySQL pool (feature `mysql`).
#[cfg(feature = "mysql")]
#[cfg_attr(docsrs, doc(cfg(feature = "mysql")))]
pub use rotapool_mysql as mysql;
/// The PostgreSQL pool (feature `postgres`, on by default).
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub use rotapool_postgres as postgres;
#[cfg(feature = "rotator")]
#[cfg_attr(docsrs, doc(cfg(feature = "rotator")))]
pub use rotapool_rotator as rotator;
/// The four rotation steps, single user and alternating users, for PostgreSQL and MySQL (feature `rotator`).
#[cfg(any(feature = "sqlx-postgres", feature = "sqlx-mysql"))]
#[cfg_attr(
    docsrs,
    doc(cfg(any(feature = "sqlx-postgres", feature = "sqlx-mysql")))
)]
pub use rotapool_sqlx as sqlx;
