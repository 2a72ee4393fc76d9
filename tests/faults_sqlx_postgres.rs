//! The fault suite (tests/faults/) against rotapool-sqlx's pool for PostgreSQL (a real `sqlx::Pool` through
//! `RotatingPool::acquire_with_info`), on a real, password-checking PostgreSQL and moto: the same cases and
//! assertions as for rotapool's pool (tests/faults_postgres.rs), with the errors rotapool-sqlx returns (the
//! database's own rejection, or a configuration error naming the secret store when the store cannot be read).

mod conformance;
#[macro_use]
mod faults;

fault_suite!(
    conformance::postgres::Postgres(rotapool_testkit::PgServer::shared()),
    conformance::sqlx::SqlxPostgres
);
