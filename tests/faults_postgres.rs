//! The fault suite (tests/faults/) against a real, password-checking PostgreSQL and moto.

mod conformance;
#[macro_use]
mod faults;

fault_suite!(conformance::postgres::Postgres(
    rotapool_testkit::PgServer::shared()
));
