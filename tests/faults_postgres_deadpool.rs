//! The fault suite (tests/faults/) against deadpool-postgres's own pool over `rotapool_postgres::RotatingConnect`,
//! on a real, password-checking PostgreSQL and moto: the same cases and assertions as for rotapool's pool
//! (tests/faults_postgres.rs), with the errors deadpool-postgres can return (the database's rejection, replayed
//! with a hint naming the store when the store is down).

mod conformance;
#[macro_use]
mod faults;

fault_suite!(
    conformance::postgres::Postgres(rotapool_testkit::PgServer::shared()),
    conformance::postgres::DeadpoolPostgres
);
