//! The conformance suite against a real, password-checking MariaDB and the moto Secrets Manager.

#[macro_use]
mod conformance;

conformance_suite!(conformance::mariadb::MariaDb(
    rotapool_testkit::MariaDbServer::shared()
));
