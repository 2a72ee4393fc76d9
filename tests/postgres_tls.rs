//! The TLS modes of the Postgres backend against the private server, which serves a certificate signed by its
//! own CA. Each test checks on the server side (`pg_stat_ssl`) whether the session really is encrypted.

use rotapool_core::{Backend, Credentials, Failure};
use rotapool_postgres::{PgBackend, PgClient, SslMode, TlsError};
use rotapool_testkit::{random_password, unique_name, PgServer};

async fn account(server: &PgServer) -> Credentials {
    let user = unique_name("tls");
    let password = random_password();
    server.create_account(&user, &password).await;
    Credentials::new(user, password)
        .with_host(server.host())
        .with_port(server.port())
        .with_dbname("postgres")
}

fn ca_file(server: &PgServer) -> &std::path::Path {
    server
        .ca_file()
        .expect("TLS tests need the private local server, which has TLS: run with ROTAPOOL_TEST_SERVERS=local")
}

async fn session_is_encrypted(client: &PgClient) -> bool {
    client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .expect("pg_stat_ssl")
        .get(0)
}

#[tokio::test]
async fn require_encrypts_without_checking_the_certificate() {
    let server = PgServer::shared();
    let credentials = account(server).await;
    let client = PgBackend::new()
        .ssl_mode(SslMode::Require)
        .connect(&credentials)
        .await
        .unwrap();
    assert!(session_is_encrypted(&client).await);
}

#[tokio::test]
async fn disable_connects_in_clear() {
    let server = PgServer::shared();
    let credentials = account(server).await;
    let client = PgBackend::new()
        .ssl_mode(SslMode::Disable)
        .connect(&credentials)
        .await
        .unwrap();
    assert!(!session_is_encrypted(&client).await);
}

#[tokio::test]
async fn verify_full_accepts_a_certificate_from_the_given_ca() {
    let server = PgServer::shared();
    let credentials = account(server).await;
    let backend = PgBackend::new()
        .ssl_mode(SslMode::VerifyFull)
        .ca_file(ca_file(server))
        .expect("the CA file loads");
    let client = backend.connect(&credentials).await.unwrap();
    assert!(session_is_encrypted(&client).await);
}

#[tokio::test]
async fn verify_full_rejects_a_certificate_from_an_unknown_ca() {
    let server = PgServer::shared();
    let credentials = account(server).await;
    // Without a CA file the Mozilla roots are trusted, and the test CA is not among them.
    let backend = PgBackend::new().ssl_mode(SslMode::VerifyFull);
    let err = backend
        .connect(&credentials)
        .await
        .expect_err("an untrusted certificate is refused");
    assert_ne!(
        backend.classify(&err),
        Failure::Auth,
        "a TLS failure must not trigger a secret refresh"
    );
    let text = format!("{err:?}");
    assert!(text.to_lowercase().contains("certificate"), "{text}");
}

#[test]
fn a_ca_file_without_certificates_is_a_clear_error() {
    let dir = std::env::temp_dir().join(unique_name("not-a-ca"));
    std::fs::write(&dir, "not a certificate").unwrap();
    let err = PgBackend::new()
        .ca_file(&dir)
        .expect_err("no certificate in the file");
    assert!(matches!(err, TlsError::NoCertificates { .. }), "{err:?}");
    assert!(err.to_string().contains("PEM"), "{err}");
    let missing = PgBackend::new()
        .ca_file("/nonexistent/rds-ca.pem")
        .expect_err("missing file");
    assert!(matches!(missing, TlsError::Read { .. }), "{missing:?}");
    std::fs::remove_file(dir).unwrap();
}
