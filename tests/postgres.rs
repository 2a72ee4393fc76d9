//! The conformance suite against a real, password-checking PostgreSQL and the moto Secrets Manager.

#[macro_use]
mod conformance;

conformance_suite!(conformance::postgres::Postgres(
    rotapool_testkit::PgServer::shared()
));
