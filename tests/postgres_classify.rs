//! How the Postgres backend classifies real server answers: only bad credentials trigger a secret refresh.

use rotapool_core::{Backend, Credentials, Failure};
use rotapool_postgres::{PgBackend, SslMode};
use rotapool_testkit::{random_password, unique_name, PgServer, TestServer};

async fn classify(credentials: Credentials) -> (Failure, String) {
    let backend = PgBackend::new().ssl_mode(SslMode::Disable);
    let err = backend
        .connect(&credentials)
        .await
        .expect_err("the login must fail");
    (backend.classify(&err), backend.describe(&err))
}

async fn account(server: &PgServer) -> Credentials {
    let (user, password) = (unique_name("classify"), random_password());
    server.create_account(&user, &password).await;
    Credentials::new(user, password)
        .with_host(server.host())
        .with_port(server.port())
        .with_dbname("postgres")
}

#[tokio::test]
async fn role_without_login_is_auth_28000() {
    let server = PgServer::shared();
    let credentials = account(server).await;
    server
        .admin()
        .await
        .batch_execute(&format!(
            "ALTER ROLE \"{}\" NOLOGIN",
            credentials.username()
        ))
        .await
        .unwrap();
    let (failure, detail) = classify(credentials).await;
    assert_eq!(failure, Failure::Auth);
    assert!(detail.starts_with("28000"), "{detail}");
}

#[tokio::test]
async fn missing_database_is_other() {
    let credentials = account(PgServer::shared())
        .await
        .with_dbname("no_such_database");
    let (failure, detail) = classify(credentials).await;
    assert_eq!(failure, Failure::Other);
    assert!(detail.starts_with("3D000"), "{detail}");
}
