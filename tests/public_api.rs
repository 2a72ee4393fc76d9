//! A user of a backend crate needs nothing else: every type a builder, a pool or an error takes or returns is
//! exported by `rotapool_postgres` / `rotapool_mysql` themselves. This file names only those two crates (the
//! last test checks that it does, and that the example service does too), so it stops compiling if a name goes
//! missing from a backend crate's exports.

use std::{path::Path, sync::Arc, time::Duration};

/// Every builder method, with the types it takes named through the backend crate.
#[test]
fn every_type_a_builder_takes_is_exported_by_the_backend_crate() {
    use rotapool_postgres::{
        Credentials, DrainPolicy, InMemorySecretStore, PgBackend, PoolBuilder, ProactiveRefresh,
        RefreshPolicy, SecretSource, SslMode, StaticSource,
    };
    let store: Arc<dyn SecretSource> = Arc::new(InMemorySecretStore::new(
        "db",
        &Credentials::new("app", "pw"),
    ));
    let _static: Arc<dyn SecretSource> = Arc::new(StaticSource::new(Credentials::new("app", "pw")));
    let builder = PoolBuilder::new(PgBackend::new().ssl_mode(SslMode::Disable))
        .secret_source(store)
        .aws_secret("prod/db")
        .name("orders")
        .host("proxy.example")
        .port(5432)
        .dbname("orders")
        .max_size(4)
        .wait_timeout(Duration::from_secs(1))
        .create_timeout(None)
        .max_auth_attempts(3)
        .max_concurrent_logins(2)
        .auth_budget(Duration::from_secs(10))
        .transient_retry(Duration::from_secs(10))
        .max_lifetime(Duration::from_secs(600))
        .max_lifetime_jitter(Duration::from_secs(60))
        .drain(DrainPolicy::Gradual {
            over: Duration::from_secs(30),
        })
        .proactive_refresh(ProactiveRefresh::default())
        .refresh_policy(RefreshPolicy::default())
        .lockout_threshold(None);
    assert!(format!("{builder:?}").contains("orders"));

    use rotapool_mysql::{MySqlBackend, PoolBuilder as MySqlPoolBuilder};
    let _ = MySqlPoolBuilder::new(MySqlBackend::new()).drain(DrainPolicy::Immediate);
}

/// The results and errors a service handles, named through the backend crate.
#[allow(dead_code)]
fn results_and_errors_are_exported_too(
    pool: &rotapool_postgres::Pool,
    error: rotapool_postgres::PoolError,
) -> (
    rotapool_postgres::Stats,
    rotapool_postgres::Status,
    Option<rotapool_postgres::TimeoutType>,
    rotapool_postgres::RotatingLogin,
) {
    let timeout = match &error {
        rotapool_postgres::PoolError::Timeout(kind) => Some(*kind),
        rotapool_postgres::PoolError::Backend(rotapool_postgres::Error::Refresh(_)) => None,
        _ => None,
    };
    (pool.stats(), pool.status(), timeout, pool.login().clone())
}

#[test]
fn the_example_service_and_this_file_import_neither_core_nor_deadpool() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let service = root.join("examples/service/src");
    let mut files: Vec<_> = std::fs::read_dir(&service)
        .expect("the service's sources")
        .map(|entry| entry.expect("an entry").path())
        .collect();
    files.push(root.join("tests/public_api.rs"));
    for file in files {
        let text = std::fs::read_to_string(&file).expect("a source file reads");
        for forbidden in [concat!("rotapool", "_core"), concat!("deadpool", "::")] {
            assert!(
                !text.contains(forbidden),
                "{} names `{forbidden}`",
                file.display()
            );
        }
    }
}
