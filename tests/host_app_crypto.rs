//! An application's own rustls use next to rotapool: a service that builds a `rustls::ClientConfig` the plain way
//! (`ClientConfig::builder()`, which panics when rustls cannot tell which provider to use) before and after it
//! builds pools that talk TLS to real servers.
//!
//! Its own test binary, so that nothing else in the process installs a provider. The workspace compiles exactly
//! one provider (`.ci/run` checks that ring is absent from `cargo tree`), so this is what a service with rotapool's
//! features sees.

use std::sync::Arc;

use rotapool_core::{rustls, PoolBuilder, StaticSource};
use rotapool_mysql::MySqlBackend;
use rotapool_postgres::{PgBackend, SslMode};
use rotapool_testkit::{
    mysql_session_is_encrypted, pg_session_is_encrypted, random_password, unique_name,
    MariaDbServer, PgServer, TestServer,
};

/// The application's own TLS config, built as most code does.
fn the_apps_own_config() -> rustls::ClientConfig {
    rustls::ClientConfig::builder()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth()
}

async fn static_source(server: &dyn TestServer, dbname: &str) -> Arc<StaticSource> {
    let (user, password) = (unique_name("host"), random_password());
    server.create_account(&user, &password).await;
    Arc::new(StaticSource::new(
        rotapool_core::Credentials::new(user, password)
            .with_host(server.host())
            .with_port(server.port())
            .with_dbname(dbname),
    ))
}

#[tokio::test]
async fn an_applications_rustls_config_builds_before_and_after_rotapools_pools() {
    let pg = PgServer::shared();
    let pool = PoolBuilder::new(PgBackend::new().ssl_mode(SslMode::Require))
        .secret_source(static_source(pg, "postgres").await)
        .build()
        .await
        .expect("the Postgres pool builds");
    let client = pool.get().await.expect("a TLS connection to PostgreSQL");
    assert!(pg_session_is_encrypted(&client).await);
    assert!(
        rustls::crypto::CryptoProvider::get_default().is_none(),
        "rotapool installed a process-wide crypto provider"
    );

    let config = the_apps_own_config();
    assert!(!config.crypto_provider().cipher_suites.is_empty());

    // mysql_async builds its TLS config from the process-wide provider, which rustls has now settled on.
    let maria = MariaDbServer::shared();
    let pool = PoolBuilder::new(MySqlBackend::new().ssl_mode(SslMode::Require))
        .secret_source(static_source(maria, "information_schema").await)
        .build()
        .await
        .expect("the MySQL pool builds");
    let mut conn = pool.get().await.expect("a TLS connection to MariaDB");
    assert!(mysql_session_is_encrypted(&mut conn).await);

    let _ = the_apps_own_config();
}
