//! The conformance suite's rotation scenarios against rotapool-sqlx's pool for MySQL and MariaDB (a real
//! `sqlx::Pool` through `RotatingPool::acquire_with_info`), on a real, password-checking MariaDB and the moto
//! Secrets Manager: the same assertions as for rotapool's pool (tests/mysql.rs).

#[macro_use]
mod conformance;

conformance_suite!(
    conformance::mariadb::MariaDb(rotapool_testkit::MariaDbServer::shared()),
    conformance::sqlx::SqlxMariaDb
);
