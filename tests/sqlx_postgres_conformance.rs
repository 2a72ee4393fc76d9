//! The conformance suite's rotation scenarios against rotapool-sqlx's pool for PostgreSQL (a real `sqlx::Pool`
//! through `RotatingPool::acquire_with_info`), on a real, password-checking PostgreSQL and the moto Secrets
//! Manager: the same assertions as for rotapool's pool (tests/postgres.rs).

#[macro_use]
mod conformance;

conformance_suite!(
    conformance::postgres::Postgres(rotapool_testkit::PgServer::shared()),
    conformance::sqlx::SqlxPostgres
);
