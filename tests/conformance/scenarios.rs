//! The scenarios themselves. Each takes the server under test and asserts what the pool must guarantee.

use std::{sync::Arc, time::Duration};

use rotapool_core::{
    Backend, BuildError, Credentials, Error, Failure, Pool, PoolBuilder, PoolError, SecretSource,
    SourceError, SslMode,
};

use rotapool_testkit::TestServer;

use super::{
    assert_rejected,
    pools::{self, PoolKind, TestPool},
    secret_json,
    workload::Workload,
    Fixture, TestDb,
};

async fn pool_for<D: TestDb>(
    db: &D,
    source: Arc<dyn SecretSource>,
    configure: impl FnOnce(PoolBuilder<D::Backend>) -> PoolBuilder<D::Backend>,
) -> Pool<D::Backend> {
    configure(PoolBuilder::new(db.backend()).secret_source(source))
        .build()
        .await
        .expect("the pool builds")
}

/// A secret whose `engine` the backend does not speak (the other engine, or one nobody speaks) fails the build
/// with an error naming `engine`, its value and what the backend takes; with the engine field removed, the same
/// secret builds a pool that serves.
pub async fn a_secret_for_another_engine_is_refused_by_name<D: TestDb>(db: D) {
    let fixture = Fixture::new(&db).await;
    let other = if db.engine() == "postgres" {
        "mysql"
    } else {
        "postgres"
    };
    for engine in [other, "oracle-ee"] {
        let secret =
            Credentials::from_secret_json(&secret_json(&db, &fixture.user, &fixture.password))
                .expect("the fixture's secret parses")
                .with_engine(engine)
                .to_secret_json();
        rotapool_testkit::MotoServer::shared()
            .put_current(&fixture.secret_id, &secret)
            .await;
        let err = PoolBuilder::new(db.backend())
            .secret_source(fixture.source.clone())
            .build()
            .await
            .expect_err("a secret for another engine cannot build a pool");
        let text = rotapool_testkit::error_chain(&err);
        assert!(
            matches!(&err, BuildError::Source(SourceError::InvalidContent { .. })),
            "{err:?}"
        );
        assert!(text.contains(&format!("`engine` is `{engine}`")), "{text}");
        assert!(
            text.contains(db.engine()),
            "names what the backend takes: {text}"
        );
        assert!(!text.contains(&fixture.password), "{text}");
    }
    let no_engine = format!(
        r#"{{"username":"{}","password":"{}","host":"{}","port":{},"dbname":"{}"}}"#,
        fixture.user,
        fixture.password,
        db.server().host(),
        db.server().port(),
        db.dbname()
    );
    rotapool_testkit::MotoServer::shared()
        .put_current(&fixture.secret_id, &no_engine)
        .await;
    let pool = pool_for(&db, fixture.source.clone(), |b| b.max_size(1)).await;
    let mut conn = pool
        .get()
        .await
        .expect("a secret without `engine` is taken as it is");
    db.ping(&mut conn).await.unwrap();
}

/// 16 tasks loop `get()` + a query while a 100 ms max lifetime forces new logins all the time. Mid-run the
/// password rotates (new AWSCURRENT in moto, then ALTER on the server). No task may see an error, the old password
/// must be rejected, and every connection opened once the pool adopted the new secret must use it.
pub async fn rotation_under_load_with_churn_has_zero_errors<D: TestDb, K: PoolKind<D>>(db: D) {
    let mut fixture = Fixture::new(&db).await;
    let pool = pools::build::<D, K>(&db, fixture.source.clone(), |s| {
        s.max_size(8).max_lifetime(Some(Duration::from_millis(100)))
    })
    .await;
    let workload = Workload::start(&pool, 16);
    workload
        .wait_for_new_connections(10, std::time::Instant::now())
        .await;
    fixture.rotate(&db).await;
    workload
        .wait_for_new_connections(10, std::time::Instant::now())
        .await;
    let opened_after = workload.opened_at_or_after(2);
    workload.stop_expecting_no_errors().await;

    let stats = pool.stats();
    assert_eq!(stats.generation, 2, "the pool adopted the rotated secret");
    assert!(
        stats.auth_failures >= 1,
        "the pool met the old password's rejection: {stats:?}"
    );
    assert!(
        !opened_after.is_empty(),
        "connections were opened after the adoption"
    );
    assert!(
        opened_after.iter().all(|&generation| generation == 2),
        "connections opened after the adoption used generations {opened_after:?}"
    );
}

/// After a rotation, 32 concurrent `get()` on an empty pool all fail their first login together, and between
/// them make exactly one GetSecretValue call.
pub async fn herd_after_rotation_reads_the_secret_once<D: TestDb, K: PoolKind<D>>(db: D) {
    let mut fixture = Fixture::new(&db).await;
    let pool = pools::build::<D, K>(&db, fixture.source.clone(), |s| s.max_size(32)).await;
    fixture.rotate(&db).await;
    let calls_before = fixture.source.api_calls();
    let barrier = Arc::new(tokio::sync::Barrier::new(32));
    let herd: Vec<_> = (0..32)
        .map(|_| {
            let (pool, barrier) = (pool.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                let mut conn = pool.get().await?;
                pool.ping(&mut conn).await?;
                Ok::<u64, String>(pool.conn_generation(&conn))
            })
        })
        .collect();
    for task in herd {
        assert_eq!(task.await.unwrap(), Ok(2));
    }
    assert_eq!(
        fixture.source.api_calls() - calls_before,
        1,
        "GetSecretValue calls for the herd"
    );
    let stats = pool.stats();
    assert!(
        stats.auth_failures >= 1,
        "the herd met the old password: {stats:?}"
    );
}

/// A secret whose passwords (AWSCURRENT and AWSPREVIOUS) the database rejects, with no rotation to rescue it:
/// `get()` fails with [`Error::AuthRejected`] after at most `max_auth_attempts` logins, and a herd that follows
/// before the next round makes no login at all.
pub async fn wrong_secret_is_capped_and_typed<D: TestDb>(db: D) {
    let fixture = Fixture::new(&db).await;
    let wrong = rotapool_testkit::random_password();
    fixture.put_secret(&db, &wrong).await;
    // Neither AWSCURRENT nor AWSPREVIOUS (the fixture's first password) logs in: nothing in the secret is right.
    let right = rotapool_testkit::random_password();
    db.server().set_password(&fixture.user, &right).await;
    assert_rejected(&db, &fixture.user, &wrong).await;
    assert_rejected(&db, &fixture.user, &fixture.password).await;
    let pool = pool_for(&db, fixture.source.clone(), |b| {
        b.max_size(8)
            .max_auth_attempts(2)
            .auth_budget(Duration::from_millis(600))
    })
    .await;

    let err = pool.get().await.expect_err("a wrong secret cannot log in");
    let text = format!("{err} / {err:?}");
    match err {
        PoolError::Backend(Error::AuthRejected { attempts, .. }) => {
            assert!((1..=2).contains(&attempts))
        }
        other => panic!("expected AuthRejected, got {other:?}"),
    }
    assert!(
        !text.contains(&wrong) && !text.contains(&fixture.password),
        "a password leaked: {text}"
    );
    let logins_after_first = pool.stats().logins;
    assert!(logins_after_first <= 2, "logins: {logins_after_first}");

    let herd: Vec<_> = (0..8)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move { pool.get().await.map(drop) })
        })
        .collect();
    for task in herd {
        let result = task.await.unwrap();
        assert!(
            matches!(result, Err(PoolError::Backend(Error::AuthRejected { .. }))),
            "{result:?}"
        );
    }
    // Before the next round (a second after the last), the herd gets the last round's answer at once.
    assert_eq!(
        pool.stats().logins,
        logins_after_first,
        "a version known to be rejected is tried again only at the next round"
    );
}

/// A secret with no `password` key fails the build with an error naming the field; a malformed version that
/// appears later fails `get()` with the same error, and the password appears in neither.
pub async fn malformed_secret_is_a_typed_error_naming_the_field<D: TestDb>(db: D) {
    let fixture = Fixture::new(&db).await;
    let (host, port) = (db.server().host(), db.server().port());
    let no_password = format!(
        r#"{{"username":"{}","host":"{host}","port":{port}}}"#,
        fixture.user
    );
    rotapool_testkit::MotoServer::shared()
        .put_current(&fixture.secret_id, &no_password)
        .await;
    let err = PoolBuilder::new(db.backend())
        .secret_source(fixture.source.clone())
        .build()
        .await
        .expect_err("a secret without a password cannot build a pool");
    assert!(
        matches!(&err, BuildError::Source(SourceError::InvalidContent { .. })),
        "{err:?}"
    );
    let text = rotapool_testkit::error_chain(&err);
    assert!(text.contains("`password`"), "{text}");

    let fixture = Fixture::new(&db).await;
    let pool = pool_for(&db, fixture.source.clone(), |b| b.max_size(2)).await;
    let bad_port = format!(
        r#"{{"username":"{}","password":"{}","port":"not-a-port"}}"#,
        fixture.user, fixture.password
    );
    rotapool_testkit::MotoServer::shared()
        .put_current(&fixture.secret_id, &bad_port)
        .await;
    db.server()
        .set_password(&fixture.user, &rotapool_testkit::random_password())
        .await;
    assert_rejected(&db, &fixture.user, &fixture.password).await;
    let err = pool.get().await.expect_err("the secret is malformed");
    let text = format!("{} / {err:?}", rotapool_testkit::error_chain(&err));
    assert!(text.contains("`port`"), "{text}");
    assert!(
        !text.contains(&fixture.password),
        "the password leaked: {text}"
    );
    assert!(
        matches!(err, PoolError::Backend(Error::Refresh(_))),
        "{err:?}"
    );
}

/// Debug and Display of the credentials, the source, the builder, the pool, a connection and every error the
/// scenarios can produce never contain the password.
pub async fn passwords_never_appear_in_debug_display_or_errors<D: TestDb>(db: D) {
    let fixture = Fixture::new(&db).await;
    let builder = PoolBuilder::new(db.backend())
        .secret_source(fixture.source.clone())
        .max_size(2);
    let builder_text = format!("{builder:?}");
    let pool = builder.build().await.expect("the pool builds");
    let conn = pool.get().await.expect("a connection");
    let current = pool.stats();
    let credentials = pool.login().credentials();
    let mut texts = vec![
        builder_text,
        format!("{pool:?}"),
        format!("{conn:?}"),
        format!("{:?}", fixture.source),
        format!("{current:?}"),
        format!("{credentials:?}"),
        format!("{credentials}"),
        format!("{:?}", pool.login()),
    ];
    drop(conn);
    // An error carrying the database's rejection.
    let wrong = rotapool_testkit::random_password();
    let wrong_pool = {
        fixture.put_secret(&db, &wrong).await;
        // Nor does AWSPREVIOUS (the first password) log in: the pool has nothing to fall back to.
        db.server()
            .set_password(&fixture.user, &rotapool_testkit::random_password())
            .await;
        pool_for(&db, fixture.source.clone(), |b| {
            b.auth_budget(Duration::from_millis(100))
        })
        .await
    };
    let err = wrong_pool.get().await.expect_err("wrong password");
    texts.push(format!("{err}"));
    texts.push(format!("{err:?}"));
    let mut source = std::error::Error::source(&err);
    while let Some(cause) = source {
        texts.push(cause.to_string());
        source = cause.source();
    }
    for text in &texts {
        assert!(
            !text.contains(&fixture.password),
            "the password leaked: {text}"
        );
        assert!(!text.contains(&wrong), "the wrong password leaked: {text}");
    }
    assert!(texts[5].contains("redacted"), "{}", texts[5]);
}

/// `Disable` connects in clear, `Require` encrypts, `VerifyFull` with the server's CA encrypts, and `VerifyFull`
/// against the system's roots alone refuses the private CA, which only the CA file holds, with a connect error, not an auth error (which would make the
/// pool re-read the secret for nothing). The server itself says whether the session is encrypted.
pub async fn tls_modes_encrypt_and_verify_as_documented<D: TestDb>(db: D) {
    let ca = db.server().ca_file().expect(
        "TLS scenarios need the private local servers, which have TLS: ROTAPOOL_TEST_SERVERS=local",
    );
    let fixture = Fixture::new(&db).await;
    let cases = [
        (SslMode::Disable, None, Some(false)),
        (SslMode::Require, None, Some(true)),
        (SslMode::VerifyFull, Some(ca), Some(true)),
        (SslMode::VerifyFull, None, None),
    ];
    for (mode, ca_file, expected) in cases {
        let pool = PoolBuilder::new(db.backend_with_tls(mode, ca_file))
            .secret_source(fixture.source.clone())
            .max_size(1)
            .build()
            .await
            .expect("the pool builds");
        match (pool.get().await, expected) {
            (Ok(mut conn), Some(encrypted)) => {
                assert_eq!(
                    db.is_encrypted(&mut conn).await,
                    encrypted,
                    "{mode:?} with CA {ca_file:?}"
                )
            }
            (Err(PoolError::Backend(Error::Connect { detail, .. })), None) => {
                assert!(
                    detail.to_lowercase().contains("certificate"),
                    "{mode:?}: {detail}"
                );
                assert_eq!(pool.stats().auth_failures, 0);
            }
            (outcome, _) => panic!("{mode:?} with CA {ca_file:?}: unexpected {outcome:?}"),
        }
    }
}

/// Only bad credentials may trigger a secret refresh: a wrong password is [`Failure::Auth`], a refused connection
/// is [`Failure::Transient`].
pub async fn failures_are_classified_so_only_bad_credentials_refresh<D: TestDb>(db: D) {
    let fixture = Fixture::new(&db).await;
    let backend = db.backend();
    let credentials =
        Credentials::from_secret_json(&secret_json(&db, &fixture.user, &fixture.password))
            .expect("the fixture's secret parses");
    let refused_port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let cases = [
        (credentials.clone().with_password("wrong"), Failure::Auth),
        (credentials.with_port(refused_port), Failure::Transient),
    ];
    for (credentials, expected) in cases {
        let err = match backend.connect(&credentials).await {
            Ok(_) => panic!("expected {expected:?}, but the login succeeded"),
            Err(e) => e,
        };
        assert_eq!(
            backend.classify(&err),
            expected,
            "{}",
            backend.describe(&err)
        );
    }
}

/// The builder's host and port overrides replace what the secret says (an RDS Proxy endpoint, a tunnel).
pub async fn endpoint_overrides_replace_the_secrets_host_and_port<D: TestDb>(db: D) {
    let fixture = Fixture::new(&db).await;
    let unreachable = format!(
        r#"{{"engine":"{}","host":"db.invalid","port":1,"username":"{}","password":"{}","dbname":"{}"}}"#,
        db.engine(),
        fixture.user,
        fixture.password,
        db.dbname()
    );
    rotapool_testkit::MotoServer::shared()
        .put_current(&fixture.secret_id, &unreachable)
        .await;
    let pool = pool_for(&db, fixture.source.clone(), |b| {
        b.host(db.server().host()).port(db.server().port())
    })
    .await;
    let mut conn = pool
        .get()
        .await
        .expect("the overrides point at the real server");
    db.ping(&mut conn)
        .await
        .expect("a query through the overridden endpoint");
}
