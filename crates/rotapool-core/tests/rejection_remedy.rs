//! A rejected login's error ends with what the source of the credentials advises: a rotating secret asks for
//! the last rotation to be checked, fixed credentials say that the pool never reads them again.

mod common;

use std::sync::Arc;

use common::{FakeBackend, FakeDb, FaultyStore};
use rotapool_core::{Credentials, Error, PoolBuilder, StaticSource};

/// The error of a connect after the database stopped taking the credentials `builder` reads.
async fn rejection(db: &Arc<FakeDb>, builder: PoolBuilder<FakeBackend>) -> String {
    let login = common::proven_login(builder.max_auth_attempts(1)).await;
    db.set_password("changed by hand");
    let err = login.connect().await.expect_err("rejected");
    assert!(matches!(err, Error::AuthRejected { .. }), "{err:?}");
    err.to_string()
}

#[tokio::test(start_paused = true)]
async fn fixed_credentials_say_that_they_are_never_read_again() {
    let db = FakeDb::new("one");
    let source = StaticSource::new(Credentials::new("app", "one"))
        .described_as("`DB__USERNAME` and `DB__PASSWORD`");
    let builder = PoolBuilder::new(FakeBackend(db.clone()))
        .secret_source(Arc::new(source))
        .proactive_refresh(None);
    let text = rejection(&db, builder).await;
    assert!(
        text.contains("the pool read `DB__USERNAME` and `DB__PASSWORD` once, at start-up, and never reads the credentials again"),
        "{text}"
    );
    assert!(!text.contains("rotation completed"), "{text}");
}

#[tokio::test(start_paused = true)]
async fn a_rotating_secret_asks_for_the_last_rotation_to_be_checked() {
    let (db, store) = (FakeDb::new("one"), FaultyStore::new("one"));
    let text = rejection(&db, common::builder(&db, &store)).await;
    assert!(
        text.contains(
            "check that the last rotation completed, or put the right password in the secret"
        ),
        "{text}"
    );
}
