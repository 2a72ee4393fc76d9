//! The `env` source (`DB__SOURCE=env`) against real, password-checking servers: a pool built by
//! `Config::from_env` from a URL or a user and password logs in; after the password changes on the server, a new
//! login fails with an error that says the pool never reads those variables again, and names them, without
//! the password.

#[macro_use]
mod conformance;

use conformance::{assert_rejected, mariadb::MariaDb, postgres::Postgres, TestDb};
use rotapool_core::{Config, Error, FromConfig, PoolError};
use rotapool_testkit::TestServer;

/// Sets `vars` under `prefix` and reads them back as a [`Config`]. Each test has a prefix of its own.
fn config_from(prefix: &str, vars: &[(&str, String)]) -> Config {
    for (name, value) in vars {
        std::env::set_var(format!("{prefix}__{name}"), value);
    }
    let config = Config::from_env(prefix).expect("the variables read");
    for (name, _) in vars {
        std::env::remove_var(format!("{prefix}__{name}"));
    }
    config
}

/// An account on `db`'s server, a pool from `account_vars(user, password)`, a query, then the password changed
/// by hand: the next login fails and says why.
async fn never_rereads<D: TestDb>(
    db: D,
    prefix: &str,
    account_vars: impl Fn(&D, &str, &str) -> Vec<(&'static str, String)>,
) where
    D::Backend: FromConfig,
{
    let user = rotapool_testkit::unique_name("envapp");
    let password = rotapool_testkit::random_password();
    db.server().create_account(&user, &password).await;
    let mut vars = account_vars(&db, &user, &password);
    vars.extend([
        ("SOURCE", "env".to_owned()),
        ("SSL_MODE", "disable".to_owned()),
        ("POOL__MAX_SIZE", "2".to_owned()),
        // Every get() logs in, so the change below meets a login whatever the pool's checks see.
        ("MAX_LIFETIME", "1ms".to_owned()),
    ]);
    let pool = config_from(prefix, &vars)
        .create_pool::<D::Backend>()
        .await
        .expect("the pool builds from the environment");
    let mut conn = pool.get().await.expect("the env credentials log in");
    db.ping(&mut conn).await.expect("a query runs");
    drop(conn);

    // The password changes on the server.
    let changed = rotapool_testkit::random_password();
    db.server().set_password(&user, &changed).await;
    assert_rejected(&db, &user, &password).await;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;

    let err = match pool.get().await {
        Err(PoolError::Backend(err @ Error::AuthRejected { .. })) => err,
        other => panic!("expected the database's rejection, got {other:?}"),
    };
    let text = rotapool_core::error::report(&err);
    assert!(
        text.contains("never reads the credentials again"),
        "the error says that the env source never re-reads: {text}"
    );
    assert!(
        text.contains(&format!("`{prefix}__")),
        "and names the variables: {text}"
    );
    assert!(
        !text.contains(&password) && !text.contains(&changed),
        "no password in: {text}"
    );
}

#[tokio::test]
async fn postgres_from_a_url_never_rereads_and_says_so() {
    let db = Postgres(rotapool_testkit::PgServer::shared());
    never_rereads(db, "RP_ENV_PG", |db, user, password| {
        let server = db.server();
        vec![(
            "URL",
            format!(
                "postgres://{user}:{}@{}:{}/{}",
                utf8_percent(password),
                server.host(),
                server.port(),
                db.dbname()
            ),
        )]
    })
    .await;
}

#[tokio::test]
async fn mariadb_from_a_user_and_password_never_rereads_and_says_so() {
    let db = MariaDb(rotapool_testkit::MariaDbServer::shared());
    never_rereads(db, "RP_ENV_MARIADB", |db, user, password| {
        let server = db.server();
        vec![
            ("USERNAME", user.to_owned()),
            ("PASSWORD", password.to_owned()),
            ("HOST", server.host().to_owned()),
            ("PORT", server.port().to_string()),
            ("DBNAME", db.dbname().to_owned()),
        ]
    })
    .await;
}

/// `text` with every byte outside the URL's unreserved set percent-encoded, as a URL's password must be.
fn utf8_percent(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
