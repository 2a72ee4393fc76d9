//! The fault suite (tests/faults/) against a real, password-checking MariaDB and moto.

mod conformance;
#[macro_use]
mod faults;

fault_suite!(conformance::mariadb::MariaDb(
    rotapool_testkit::MariaDbServer::shared()
));
