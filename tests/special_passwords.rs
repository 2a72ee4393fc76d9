//! A password with backslashes and both quotes, `p\a'b"c\\d\n\'e`, on real servers: rotapool-rotator's four steps
//! set it (read back from moto as JSON), the server takes it, and a pool logs in with it. On MariaDB the rotator
//! sends the password's hash, so MySQL 8's form, which carries the clear password in a string literal, is run on
//! MariaDB as well (it accepts that form), in both `sql_mode`s: with backslash escapes (the default) and with
//! `NO_BACKSLASH_ESCAPES`.

// The conformance module's servers and fixtures; this file runs none of its scenarios.
#[macro_use]
mod conformance;

use std::sync::Arc;

use async_trait::async_trait;
use conformance::{assert_rejected, mariadb::MariaDb, postgres::Postgres, Fixture, TestDb};
use mysql_async::prelude::Queryable;
use rotapool_core::PoolBuilder;
use rotapool_mysql::admin::Dialect;
use rotapool_rotator::{password::PasswordSource, Rotator, Strategy};
use rotapool_testkit::{
    random_password, rotation_token, unique_name, Login, MariaDbServer, PgServer, TestServer,
};

/// Every character a hand-rolled literal gets wrong on MySQL: `\` escapes there (`\n`, `\'`, `\\`), and `'`
/// and `"` quote.
const PASSWORD: &str = r#"p\a'b"c\\d\n\'e"#;

/// Backslashes without quotes: a literal that does not escape them parses, and silently sets another password
/// (`p\w\\x` becomes `pw\x`).
const BACKSLASHES_ONLY: &str = r"p\w\\x";

/// createSecret's new password is always [`PASSWORD`].
#[derive(Debug)]
struct Special;

#[async_trait]
impl PasswordSource for Special {
    async fn new_password(&self) -> Result<String, String> {
        Ok(PASSWORD.to_owned())
    }
}

/// The four steps to [`PASSWORD`]; then the old password is rejected, the new one accepted, and a pool reading
/// the secret logs in with it.
async fn rotation_to_a_password_with_backslashes_and_quotes<D: TestDb>(db: D) {
    let fixture = Fixture::new(&db).await;
    Rotator::new(fixture.source.clone(), db.backend(), Strategy::SingleUser)
        .with_passwords(Arc::new(Special))
        .rotate(&rotation_token())
        .await
        .expect("the four steps");
    assert_rejected(&db, &fixture.user, &fixture.password).await;
    assert_eq!(
        db.server().try_login(&fixture.user, PASSWORD).await,
        Login::Accepted,
        "the server takes the password the rotation set"
    );
    let pool = PoolBuilder::new(db.backend())
        .secret_source(fixture.source.clone())
        .max_size(1)
        .build()
        .await
        .expect("the pool builds");
    let mut conn = pool
        .get()
        .await
        .expect("a connection with the new password");
    db.ping(&mut conn).await.expect("SELECT 1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_rotation_to_a_password_with_backslashes_and_quotes() {
    rotation_to_a_password_with_backslashes_and_quotes(Postgres(PgServer::shared())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_rotation_to_a_password_with_backslashes_and_quotes() {
    rotation_to_a_password_with_backslashes_and_quotes(MariaDb(MariaDbServer::shared())).await;
}

/// MySQL 8's statements, which carry the clear password, run on MariaDB in a session of each `sql_mode`:
/// [`Dialect::detect`] sees the mode, and the password set is the password given.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql8s_clear_password_statement_sets_backslashes_and_quotes_in_either_sql_mode() {
    let server = MariaDbServer::shared();
    let (admin, admin_password) = (unique_name("admin"), random_password());
    server.create_admin_account(&admin, &admin_password).await;
    for (no_backslash_escapes, password) in [
        (false, PASSWORD),
        (true, PASSWORD),
        (false, BACKSLASHES_ONLY),
    ] {
        let (user, old) = (unique_name("app"), random_password());
        server.create_account(&user, &old).await;
        let mut conn = server
            .login(&admin, &admin_password)
            .await
            .expect("the admin logs in");
        if no_backslash_escapes {
            conn.query_drop(
                "SET SESSION sql_mode = CONCAT(@@SESSION.sql_mode, ',NO_BACKSLASH_ESCAPES')",
            )
            .await
            .expect("set sql_mode");
        }
        assert_eq!(
            Dialect::detect(&mut conn).await.expect("detect"),
            Dialect::mariadb(no_backslash_escapes)
        );
        conn.query_drop(Dialect::mysql(no_backslash_escapes).alter_user_statement(&user, password))
            .await
            .unwrap_or_else(|e| {
                panic!("ALTER USER (NO_BACKSLASH_ESCAPES {no_backslash_escapes}): {e}")
            });
        conn.disconnect().await.ok();
        assert_eq!(
            server.try_login(&user, &old).await,
            Login::BadCredentials,
            "the old password is rejected (NO_BACKSLASH_ESCAPES {no_backslash_escapes})"
        );
        assert_eq!(
            server.try_login(&user, password).await,
            Login::Accepted,
            "the password set is the password given (NO_BACKSLASH_ESCAPES {no_backslash_escapes})"
        );
    }
}
