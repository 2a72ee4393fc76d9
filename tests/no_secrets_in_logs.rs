//! No password reaches a log: everything every crate logs at TRACE (rotapool, the rotator, tokio-postgres and
//! mysql_async, the AWS SDK and its HTTP stack) is captured through full rotations of each engine and each
//! strategy under a churning pool, and searched for every password the secret ever held.
//!
//! One global subscriber prints every `tracing` event, and every span as it opens and closes (mysql_async puts its
//! statements in span fields), into a buffer; `log` records, which tokio-postgres uses, are bridged into it.
//! Scenarios run one at a time, and each searches only what was logged after its set-up: the test kit creates
//! accounts and secrets with clear-text passwords, which is the harness's doing, not the library's.

mod conformance;

use std::{
    io,
    sync::{Mutex, Once, PoisonError},
    time::{Duration, Instant},
};

use conformance::{
    mariadb::MariaDb,
    pools::{PoolKind, TestPool},
    postgres::Postgres,
    workload::Workload,
    Fixture, TestDb,
};
use rotapool_core::{
    source::{AwsSecretsManager, SecretAdmin},
    Credentials, ProactiveRefresh, Stage,
};
use rotapool_rotator::{Rotator, Strategy};
use rotapool_testkit::{rotation_token, MariaDbServer, MotoServer, PgServer, TestServer};

/// What the subscriber printed since the running scenario began.
static CAPTURED: Mutex<Vec<u8>> = Mutex::new(Vec::new());

/// Scenarios share [`CAPTURED`], so they take turns.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Written through `log` and `tracing` at the start of each scenario, to prove that both paths are captured.
const LOG_MARKER: &str = "capture-self-check-through-log";
const TRACING_MARKER: &str = "capture-self-check-through-tracing";

/// The subscriber's writer: appends each formatted event to [`CAPTURED`].
struct CaptureWriter;

impl io::Write for CaptureWriter {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        CAPTURED
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Installs the process's one subscriber (TRACE for every target, spans included) and the `log` bridge.
fn install_capture() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_span_events(
                tracing_subscriber::fmt::format::FmtSpan::NEW
                    | tracing_subscriber::fmt::format::FmtSpan::CLOSE,
            )
            .with_writer(|| CaptureWriter)
            .try_init()
            .expect("no other subscriber or logger is installed in this test binary");
    });
}

/// Forgets what was captured so far: the scenario's set-up.
fn start_capture() {
    CAPTURED
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clear();
    log::debug!("{LOG_MARKER}");
    tracing::trace!("{TRACING_MARKER}");
}

/// What was captured since [`start_capture`].
fn captured() -> String {
    let bytes = std::mem::take(&mut *CAPTURED.lock().unwrap_or_else(PoisonError::into_inner));
    String::from_utf8_lossy(&bytes).into_owned()
}

/// What this test needs to know about an engine beyond [`TestDb`].
trait Engine: TestDb {
    /// The driver's log target, which the capture must contain.
    const DRIVER_TARGET: &'static str;
    /// SQL that lets the existing account `user` create users and grant privileges.
    fn grant_admin(user: &str) -> String;
}

impl Engine for Postgres {
    const DRIVER_TARGET: &'static str = "tokio_postgres";
    fn grant_admin(user: &str) -> String {
        format!("ALTER ROLE \"{user}\" SUPERUSER")
    }
}

impl Engine for MariaDb {
    const DRIVER_TARGET: &'static str = "mysql_async";
    fn grant_admin(user: &str) -> String {
        format!("GRANT ALL PRIVILEGES ON *.* TO '{user}'@'%' WITH GRANT OPTION")
    }
}

/// Every password that any version of `secret` holds, read back from moto, with AWSCURRENT and AWSPREVIOUS (if
/// any) checked to be among them.
async fn passwords_in(secret: &AwsSecretsManager) -> Vec<String> {
    let listed = MotoServer::shared()
        .client()
        .await
        .list_secret_version_ids()
        .secret_id(secret.secret_id())
        .include_deprecated(true)
        .send()
        .await
        .expect("ListSecretVersionIds on moto");
    let mut passwords = Vec::new();
    for version_id in listed.versions().iter().filter_map(|v| v.version_id()) {
        let raw = secret
            .read_version(version_id)
            .await
            .expect("read a version")
            .expect("a listed version exists");
        passwords.push(password_of(raw.text()));
    }
    for stage in [Stage::Current, Stage::Previous] {
        let Some(raw) = secret.read_stage(stage).await.expect("read a stage") else {
            // A secret that was never rotated (the master's) has no AWSPREVIOUS.
            assert_eq!(
                stage,
                Stage::Previous,
                "the secret has an AWSCURRENT version"
            );
            continue;
        };
        assert!(
            passwords.contains(&password_of(raw.text())),
            "the {stage} password is among the listed versions"
        );
    }
    passwords
}

fn password_of(secret_json: &str) -> String {
    Credentials::from_secret_json(secret_json)
        .expect("the secret parses")
        .password()
        .to_owned()
}

/// The lines of `text` that contain one of `passwords`, with the password masked.
fn lines_with_a_password(text: &str, passwords: &[String]) -> Vec<String> {
    text.lines()
        .filter_map(|line| {
            let leaked = passwords.iter().find(|p| line.contains(p.as_str()))?;
            Some(line.replace(leaked.as_str(), "<pw>"))
        })
        .collect()
}

/// Builds a pool whose connections live 100 ms, runs a workload on it through `rotations` rotations of the given
/// strategy (alternating users when `alternating`), and searches everything logged meanwhile for every password
/// involved: each version of the secret, and the master's. With `ahead`, the store is first 2 s ahead of the
/// database, so that the trial logins with a refused password, and the logins that prove the old one still works,
/// are captured too.
async fn rotations_log_no_password<D: Engine, K: PoolKind<D>>(
    db: D,
    alternating: bool,
    rotations: usize,
    ahead: bool,
    driver_target: &str,
) {
    let _turn = SERIAL.lock().await;
    install_capture();
    let fixture = Fixture::new(&db).await;
    let master = if alternating {
        let master = Fixture::new(&db).await;
        db.server().execute(&D::grant_admin(&master.user)).await;
        Some(master)
    } else {
        None
    };
    let strategy = match &master {
        Some(master) => Strategy::AlternatingUsers {
            master: master.source.clone(),
        },
        None => Strategy::SingleUser,
    };
    let rotator = Rotator::new(fixture.source.clone(), db.backend(), strategy);

    start_capture();
    let pool = conformance::pools::build::<D, K>(&db, fixture.source.clone(), |s| {
        s.max_size(4)
            .max_lifetime(Some(Duration::from_millis(100)))
            .proactive_refresh(Some(ProactiveRefresh {
                interval: Duration::from_millis(500),
                after_rotation: Duration::from_secs(60),
            }))
    })
    .await;
    let workload = Workload::start(&pool, 4);
    workload.wait_for_new_connections(5, Instant::now()).await;
    let mut kept = String::new();
    if ahead {
        let new = rotapool_testkit::random_password();
        fixture.put_secret(&db, &new).await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        // The database catches up through the test kit's own admin session, whose driver logs the statement in
        // clear: the harness's doing, so what is logged during that call is left out of the search.
        kept.push_str(&captured());
        db.server().set_password(&fixture.user, &new).await;
        drop(captured());
        workload.wait_for_new_connections(5, Instant::now()).await;
        assert!(
            pool.stats().auth_failures > 0,
            "the pool tried the new password while the database refused it"
        );
    }
    for _ in 0..rotations {
        rotator
            .rotate(&rotation_token())
            .await
            .expect("the rotation");
        workload.wait_for_new_connections(5, Instant::now()).await;
    }
    workload.stop_expecting_no_errors().await;
    // With alternating users the pool adopts a new version only once its own user's password has changed.
    assert!(
        pool.generation() > 1,
        "the pool logged in with a rotated password while the capture ran"
    );
    drop(pool);
    let text = kept + &captured();

    let mut passwords = passwords_in(&fixture.source).await;
    assert!(
        passwords.len() > rotations,
        "the secret's first password and one per rotation: {} found",
        passwords.len()
    );
    passwords.push(fixture.password.clone());
    if let Some(master) = &master {
        passwords.extend(passwords_in(&master.source).await);
        passwords.push(master.password.clone());
    }
    passwords.sort();
    passwords.dedup();
    for expected in [
        LOG_MARKER,
        TRACING_MARKER,
        driver_target,
        "aws_smithy",
        "rotapool_rotator",
    ] {
        assert!(
            text.contains(expected),
            "the capture ({} bytes) has no `{expected}`: it does not see everything",
            text.len()
        );
    }
    let leaks = lines_with_a_password(&text, &passwords);
    assert!(
        leaks.is_empty(),
        "{} captured lines contain a password; the first: {:#?}",
        leaks.len(),
        &leaks[..leaks.len().min(5)]
    );
    println!(
        "{} captured bytes, {} lines, {} passwords searched, none found",
        text.len(),
        text.lines().count(),
        passwords.len()
    );
}

/// One `#[tokio::test]` per engine and strategy, with rotapool's own pool (whose driver is the engine's), or with
/// the pool kind and driver log target given: `name: server, alternating users?, rotations, store ahead?;`.
macro_rules! scenarios {
    ($($name:ident: $db:expr, $alternating:expr, $rotations:expr, $ahead:expr $(, $kind:ty, $target:expr)?;)+) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                scenarios!(@run $db, $alternating, $rotations, $ahead $(, $kind, $target)?);
            }
        )+
    };
    (@run $db:expr, $alternating:expr, $rotations:expr, $ahead:expr) => {{
        let db = $db;
        rotations_log_no_password::<_, conformance::pools::Rotapool>(
            db, $alternating, $rotations, $ahead, driver_target(&db),
        )
        .await
    }};
    (@run $db:expr, $alternating:expr, $rotations:expr, $ahead:expr, $kind:ty, $target:expr) => {
        rotations_log_no_password::<_, $kind>($db, $alternating, $rotations, $ahead, $target).await
    };
}

/// The log target of the engine's own driver, which rotapool's pool uses.
fn driver_target<D: Engine>(_: &D) -> &'static str {
    D::DRIVER_TARGET
}

// Alternating users rotate twice: the first rotation creates the clone user, the second changes the original
// user's password, and each writes its own statement.
scenarios! {
    postgres_single_user_rotation_logs_no_password: Postgres(PgServer::shared()), false, 1, false;
    postgres_alternating_users_rotations_log_no_password: Postgres(PgServer::shared()), true, 2, false;
    postgres_store_ahead_then_rotation_logs_no_password: Postgres(PgServer::shared()), false, 1, true;
    mariadb_single_user_rotation_logs_no_password: MariaDb(MariaDbServer::shared()), false, 1, false;
    mariadb_alternating_users_rotations_log_no_password: MariaDb(MariaDbServer::shared()), true, 2, false;
    mariadb_store_ahead_then_rotation_logs_no_password: MariaDb(MariaDbServer::shared()), false, 1, true;
    // rotapool-sqlx: sqlx's pool logs in with options that carry the password; nothing of it may reach a log.
    sqlx_postgres_rotations_log_no_password: Postgres(PgServer::shared()), false, 1, true,
        conformance::sqlx::SqlxPostgres, "sqlx";
    sqlx_mariadb_rotations_log_no_password: MariaDb(MariaDbServer::shared()), false, 1, true,
        conformance::sqlx::SqlxMariaDb, "sqlx";
}

/// The search is not vacuous: a password in a line is found and masked.
#[test]
fn a_logged_password_is_found() {
    let passwords = ["pa55-w0rd".to_owned()];
    let text = "DEBUG tokio_postgres::simple_query: executing statement batch: ALTER ROLE x PASSWORD 'pa55-w0rd'\n\
                DEBUG tokio_postgres::prepare: preparing query s0: SELECT 1";
    assert_eq!(
        lines_with_a_password(text, &passwords),
        ["DEBUG tokio_postgres::simple_query: executing statement batch: ALTER ROLE x PASSWORD '<pw>'"]
    );
}

/// RDS IAM tokens: signing (aws-sigv4 traces its canonical request and string to sign) and a pool logging in with
/// a token as the password, at TRACE for every crate, show neither a token, nor its signature, nor the secret
/// access key it was signed with.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iam_tokens_log_no_token_and_no_signing_key() {
    use aws_credential_types::{provider::SharedCredentialsProvider, Credentials as AwsKeys};
    use rotapool_core::{source::RdsIamAuth, PoolBuilder, SecretSource, StaticSource};

    let _turn = SERIAL.lock().await;
    install_capture();
    const SIGNING_KEY: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYsignkey";
    let sdk = aws_config::SdkConfig::builder()
        .credentials_provider(SharedCredentialsProvider::new(AwsKeys::new(
            "AKIDEXAMPLE",
            SIGNING_KEY,
            None,
            None,
            "test",
        )))
        .region(aws_config::Region::new("eu-west-1"))
        .build();
    let db = Postgres(PgServer::shared());
    let server = db.server();
    let user = rotapool_testkit::unique_name("iamlog");
    let source = RdsIamAuth::builder(server.host(), server.port(), &user)
        .dbname(db.dbname())
        .sdk_config(&sdk)
        .build();

    start_capture();
    let mut secrets = vec![SIGNING_KEY.to_owned()];
    for _ in 0..2 {
        let token = source
            .fetch(Stage::Current)
            .await
            .expect("a token is signed");
        let token = token.credentials.password().to_owned();
        let signature = token
            .split("X-Amz-Signature=")
            .nth(1)
            .expect("a presigned token ends with its signature")
            .to_owned();
        secrets.extend([token, signature]);
    }
    let signing = captured();
    // The token as a password: the account takes the newest one (the test's own statement, not captured), and a
    // pool logs in with it.
    server.create_account(&user, &secrets[3]).await;
    start_capture();
    let credentials = Credentials::new(&user, secrets[3].clone())
        .with_host(server.host())
        .with_port(server.port())
        .with_dbname(db.dbname());
    let pool = PoolBuilder::new(db.backend())
        .secret_source(std::sync::Arc::new(StaticSource::new(credentials)))
        .build()
        .await
        .expect("the pool logs in with the token");
    let mut conn = pool.get().await.expect("a connection");
    db.ping(&mut conn).await.expect("a query runs");
    drop((conn, pool));
    let text = signing + &captured();

    assert!(
        text.contains("aws_sigv4"),
        "the signer's own trace was captured"
    );
    assert!(text.contains("tokio_postgres"), "and the driver's");
    let leaks = lines_with_a_password(&text, &secrets);
    assert!(
        leaks.is_empty(),
        "{} captured lines contain a token, a signature or the signing key:\n{}",
        leaks.len(),
        leaks.join("\n")
    );
}
