//! The conformance suite's rotation scenarios against deadpool-postgres's own pool over
//! `rotapool_postgres::RotatingConnect`, on a real, password-checking PostgreSQL and the moto Secrets Manager:
//! the same assertions as for rotapool's pool (tests/postgres.rs).

#[macro_use]
mod conformance;

conformance_suite!(
    conformance::postgres::Postgres(rotapool_testkit::PgServer::shared()),
    conformance::postgres::DeadpoolPostgres
);
