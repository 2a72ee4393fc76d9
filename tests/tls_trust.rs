//! What `verify-full` trusts, proven against the real servers' TLS: the system's store (here pointed at the test
//! CA through `SSL_CERT_FILE`, which rustls-native-certs honours as OpenSSL does), and the channel binding that
//! rotapool's Postgres connector gives SCRAM-SHA-256-PLUS.
//!
//! Its own test binary: the system store is read once per process, and this one sets `SSL_CERT_FILE` before any
//! TLS happens. The other half, a CA that only the CA file holds, is the conformance suite's TLS scenario.

use std::sync::Once;

use rotapool_core::{Backend, Credentials};
use rotapool_mysql::MySqlBackend;
use rotapool_postgres::{PgBackend, RustlsConnect, SslMode};
use rotapool_testkit::{
    mysql_session_is_encrypted, pg_session_is_encrypted, random_password, unique_name,
    MariaDbServer, PgServer, TestServer,
};
use tokio_postgres::config::ChannelBinding;

/// Makes the test servers' CAs the system's only trusted roots, before the first TLS config reads the store.
fn trust_the_test_cas_as_the_system_store() {
    static SET: Once = Once::new();
    SET.call_once(|| {
        let servers: [&dyn TestServer; 2] = [PgServer::shared(), MariaDbServer::shared()];
        let mut bundle = Vec::new();
        for server in servers {
            let ca = server
                .ca_file()
                .expect("the test servers (local or in containers) have TLS");
            bundle.extend(std::fs::read(ca).expect("the test CA"));
        }
        let path =
            std::env::temp_dir().join(format!("rotapool-system-store-{}.pem", std::process::id()));
        std::fs::write(&path, bundle).expect("a scratch file");
        std::env::set_var("SSL_CERT_FILE", path);
    });
}

async fn account(server: &dyn TestServer, dbname: &str) -> Credentials {
    let (user, password) = (unique_name("tls"), random_password());
    server.create_account(&user, &password).await;
    Credentials::new(user, password)
        .with_host(server.host())
        .with_port(server.port())
        .with_dbname(dbname)
}

#[tokio::test]
async fn verify_full_trusts_the_systems_roots_without_a_ca_file() {
    trust_the_test_cas_as_the_system_store();
    let (pg, maria) = (PgServer::shared(), MariaDbServer::shared());

    let pg_backend = PgBackend::new().ssl_mode(SslMode::VerifyFull);
    let client = pg_backend
        .connect(&account(pg, "postgres").await)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "verify-full against the system store: {}",
                pg_backend.describe(&e)
            )
        });
    assert!(pg_session_is_encrypted(&client).await);
    let maria_backend = MySqlBackend::new().ssl_mode(SslMode::VerifyFull);
    let mut conn = maria_backend
        .connect(&account(maria, "information_schema").await)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "verify-full against the system store: {}",
                maria_backend.describe(&e)
            )
        });
    assert!(mysql_session_is_encrypted(&mut conn).await);
}

/// With `channel_binding=require`, tokio-postgres refuses to log in unless the TLS stream gives the server
/// certificate's hash and the server's SCRAM-SHA-256-PLUS accepts it.
#[tokio::test]
async fn scram_channel_binding_uses_the_server_certificates_hash() {
    trust_the_test_cas_as_the_system_store();
    let server = PgServer::shared();
    let credentials = account(server, "postgres").await;
    let mut config = tokio_postgres::Config::new();
    config
        .host(credentials.host().unwrap())
        .port(credentials.port().unwrap())
        .user(credentials.username())
        .password(credentials.password())
        .dbname("postgres")
        .channel_binding(ChannelBinding::Require);
    let tls = RustlsConnect::for_mode(SslMode::Require, None).expect("require has TLS");
    let (client, connection) = config
        .connect(tls)
        .await
        .expect("SCRAM-SHA-256-PLUS with tls-server-end-point logs in");
    tokio::spawn(connection);
    let one: i32 = client.query_one("SELECT 1", &[]).await.unwrap().get(0);
    assert_eq!(one, 1);
}
