//! The fault suite (tests/faults/) against rotapool-sqlx's pool for MySQL and MariaDB (a real `sqlx::Pool`
//! through `RotatingPool::acquire_with_info`), on a real, password-checking MariaDB and moto: the same cases and
//! assertions as for rotapool's pool (tests/faults_mysql.rs), with the errors rotapool-sqlx returns (the
//! database's own rejection, or a configuration error naming the secret store when the store cannot be read).

mod conformance;
#[macro_use]
mod faults;

fault_suite!(
    conformance::mariadb::MariaDb(rotapool_testkit::MariaDbServer::shared()),
    conformance::sqlx::SqlxMariaDb
);
