//! The MySQL backend against the private MariaDB: what real server answers mean to the pool, and session reset.

use std::sync::Arc;

use mysql_async::prelude::Queryable;
use rotapool_core::{Backend, Credentials, Error, Failure, PoolError};
use rotapool_mysql::{InMemorySecretStore, MySqlBackend, Pool, PoolBuilder, SslMode};
use rotapool_testkit::{random_password, unique_name, MariaDbServer, TestServer};

async fn account(server: &MariaDbServer) -> Credentials {
    let (user, password) = (unique_name("mysql"), random_password());
    server.create_account(&user, &password).await;
    Credentials::new(user, password)
        .with_engine("mariadb")
        .with_host(server.host())
        .with_port(server.port())
}

fn backend() -> MySqlBackend {
    MySqlBackend::new().ssl_mode(SslMode::Disable)
}

async fn pool(credentials: &Credentials, max_size: usize) -> Pool {
    PoolBuilder::new(backend())
        .secret_source(Arc::new(InMemorySecretStore::new(
            "mysql-test",
            credentials,
        )))
        .max_size(max_size)
        .build()
        .await
        .unwrap()
}

async fn classify(credentials: &Credentials) -> (Failure, String) {
    let err = backend()
        .connect(credentials)
        .await
        .expect_err("the login must fail");
    (backend().classify(&err), backend().describe(&err))
}

#[tokio::test]
async fn a_database_without_grant_is_other_not_auth() {
    let credentials = account(MariaDbServer::shared())
        .await
        .with_dbname("no_such_database");
    let (failure, detail) = classify(&credentials).await;
    assert_eq!(
        failure,
        Failure::Other,
        "the password was right: refreshing the secret cannot help"
    );
    assert!(detail.starts_with("1044"), "{detail}");
}

#[tokio::test]
async fn a_locked_account_is_a_typed_error_and_is_not_retried() {
    let server = MariaDbServer::shared();
    let credentials = account(server).await;
    server
        .execute(&format!(
            "ALTER USER '{}'@'%' ACCOUNT LOCK",
            credentials.username()
        ))
        .await;
    let pool = pool(&credentials, 2).await;
    let err = pool
        .get()
        .await
        .expect_err("a locked account cannot log in");
    let text = err.to_string();
    match &err {
        PoolError::Backend(Error::AccountLocked { detail, .. }) => {
            assert!(detail.starts_with("4151"), "{detail}")
        }
        other => panic!("expected AccountLocked, got {other:?}"),
    }
    assert!(text.contains("locked") && text.contains("unlock"), "{text}");
    assert!(!text.contains(credentials.password()), "{text}");
    let stats = pool.stats();
    assert_eq!(
        (stats.logins, stats.secret_fetches),
        (1, 1),
        "no retry, no refresh: {stats:?}"
    );

    server
        .execute(&format!(
            "ALTER USER '{}'@'%' ACCOUNT UNLOCK",
            credentials.username()
        ))
        .await;
    let conn = pool.get().await;
    assert!(
        conn.is_ok(),
        "the pool recovers by itself once the account is unlocked: {conn:?}"
    );
}

#[tokio::test]
async fn session_state_does_not_leak_to_the_next_borrower() {
    let server = MariaDbServer::shared();
    let credentials = account(server).await;
    let database = unique_name("scratch");
    server.execute(&format!("CREATE DATABASE {database}")).await;
    server
        .execute(&format!(
            "GRANT ALL ON {database}.* TO '{}'@'%'",
            credentials.username()
        ))
        .await;
    let pool = pool(&credentials.with_dbname(database), 1).await;
    let first_id = {
        let mut conn = pool.get().await.unwrap();
        conn.query_drop("SET @leak = 42").await.unwrap();
        conn.query_drop("CREATE TEMPORARY TABLE leak (id int)")
            .await
            .unwrap();
        conn.id()
    };
    let mut conn = pool.get().await.unwrap();
    assert_eq!(
        conn.id(),
        first_id,
        "the same physical connection was reused"
    );
    let leak: Option<Option<i64>> = conn.query_first("SELECT @leak").await.unwrap();
    assert_eq!(leak, Some(None), "the user variable was reset");
    let temp = conn.query_drop("SELECT * FROM leak").await;
    assert!(
        temp.is_err(),
        "the temporary table was dropped by the reset"
    );
}
