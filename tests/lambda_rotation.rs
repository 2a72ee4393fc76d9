//! The rotation Lambda's handler, invoked with synthetic `LambdaEvent`s for all four steps against moto and the
//! private password-checking servers: both engines, both strategies, a step invoked twice, a token unknown to the
//! secret, rotation disabled, an already-finished token, grants replayed to the clone, user names too long for
//! the clone, (PostgreSQL, `log_statement=all`) no new password in the server log, and, under moto's IAM
//! enforcement, the shipped policies' actions: the service's are enough for a pool, and the function's without
//! GetRandomPassword make it fall back to its own generator.
//!
//! Logs go through lambda_runtime's own subscriber (`init_default_subscriber_with_writer`), as the binary
//! installs it, into a buffer the tests search for passwords.
//!
//! moto and rotation: moto's RotateSecret invokes the rotation Lambda through its Lambda emulation (Docker), and
//! without a Lambda ARN it labels the announced version AWSCURRENT at once. [`begin_rotation`] therefore calls
//! RotateSecret without a Lambda (which marks rotation enabled and announces the version, as AWS does before it
//! invokes the function), then moves the labels back to where AWS leaves them: the token's version, still without
//! a value, labelled AWSPENDING, and AWSCURRENT and AWSPREVIOUS where they were. It checks the result with
//! DescribeSecret. A secret that never had RotateSecret reports rotation disabled; moto's CancelRotateSecret
//! refuses a secret without a rotation Lambda, so it is not used.

#[macro_use]
mod conformance;

use std::{
    collections::HashMap,
    io::Write,
    net::TcpListener,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex, Once},
    time::{Duration, Instant},
};

use aws_sdk_secretsmanager::{types::RotationRulesType, Client};
use conformance::{assert_rejected, mariadb::MariaDb, postgres::Postgres, secret_json, TestDb};
use mysql_async::prelude::Queryable;
use rotapool_core::{
    source::AwsSecretsManager, BuildError, Credentials, PoolBuilder, SourceError, SslMode,
};
use rotapool_rotator::{
    lambda::{
        lambda_runtime, Context, HandlerError, LambdaEvent, RotationEvent, RotationFunction,
        Settings,
    },
    RotationError,
};
use rotapool_testkit::{
    random_password, rotation_token, unique_name, Login, MariaDbServer, MotoServer, PgServer,
    TestServer,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

// ---------------------------------------------------------------------------------------------------------------
// Logs: lambda_runtime's subscriber, writing into a buffer.

static LOG: Mutex<Vec<u8>> = Mutex::new(Vec::new());

struct Capture;

impl Write for Capture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        LOG.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn capture_logs() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| lambda_runtime::tracing::init_default_subscriber_with_writer(|| Capture));
}

fn logs() -> String {
    String::from_utf8_lossy(&LOG.lock().unwrap()).into_owned()
}

/// Panics if any log line written so far contains one of `passwords`.
fn assert_logs_hide(passwords: &[&str]) {
    let logs = logs();
    assert!(!logs.is_empty(), "the Lambda logged nothing");
    for password in passwords {
        assert!(
            !logs.contains(password),
            "a password appears in the Lambda's logs"
        );
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Secrets Manager: the function under test, and what Secrets Manager does around it.

/// The function, built once as a container would, with the default settings except TLS: `require` (the
/// default) encrypts without verifying, which the private servers' certificates allow.
async fn function() -> (RotationFunction, Client) {
    capture_logs();
    let client = MotoServer::shared().client().await;
    let settings = Settings {
        ssl_mode: SslMode::Require,
        ..Settings::default()
    };
    (RotationFunction::new(client.clone(), settings), client)
}

async fn invoke(
    function: &RotationFunction,
    secret_id: &str,
    token: &str,
    step: &str,
) -> Result<(), HandlerError> {
    let event = RotationEvent {
        secret_id: secret_id.to_owned(),
        client_request_token: token.to_owned(),
        step: step.to_owned(),
        rotation_token: Some(random_password()),
    };
    function
        .handle(LambdaEvent::new(event, Context::default()))
        .await
}

async fn run_all_steps(function: &RotationFunction, secret_id: &str, token: &str) {
    for step in ["createSecret", "setSecret", "testSecret", "finishSecret"] {
        invoke(function, secret_id, token, step)
            .await
            .unwrap_or_else(|e| panic!("{step}: {e}"));
    }
}

/// Version id -> staging labels, and whether rotation is enabled.
async fn describe(client: &Client, secret_id: &str) -> (HashMap<String, Vec<String>>, bool) {
    let out = client
        .describe_secret()
        .secret_id(secret_id)
        .send()
        .await
        .expect("DescribeSecret");
    (
        out.version_ids_to_stages().cloned().unwrap_or_default(),
        out.rotation_enabled().unwrap_or(false),
    )
}

fn holder(versions: &HashMap<String, Vec<String>>, label: &str) -> Option<String> {
    versions
        .iter()
        .find(|(_, labels)| labels.iter().any(|l| l == label))
        .map(|(id, _)| id.clone())
}

/// What Secrets Manager does before it invokes the function: rotation enabled, and version `token` announced
/// under AWSPENDING with no value yet (see the module's comment for how moto is brought there).
async fn begin_rotation(client: &Client, secret_id: &str, token: &str) {
    let (before, _) = describe(client, secret_id).await;
    let current = holder(&before, "AWSCURRENT").expect("the secret has an AWSCURRENT version");
    let previous = holder(&before, "AWSPREVIOUS");
    let stage = |label: &'static str| {
        client
            .update_secret_version_stage()
            .secret_id(secret_id)
            .version_stage(label)
    };
    // AWS leaves AWSPENDING on the finished version; moto's RotateSecret takes that for a rotation in progress.
    if let Some(pending) = holder(&before, "AWSPENDING") {
        stage("AWSPENDING")
            .remove_from_version_id(pending)
            .send()
            .await
            .expect("clear AWSPENDING");
    }
    client
        .rotate_secret()
        .secret_id(secret_id)
        .client_request_token(token)
        .rotation_rules(
            RotationRulesType::builder()
                .automatically_after_days(30)
                .build(),
        )
        .send()
        .await
        .expect("RotateSecret on moto");
    stage("AWSCURRENT")
        .move_to_version_id(&current)
        .remove_from_version_id(token)
        .send()
        .await
        .expect("AWSCURRENT back");
    stage("AWSPREVIOUS")
        .set_move_to_version_id(previous.clone())
        .remove_from_version_id(token)
        .send()
        .await
        .expect("AWSPREVIOUS back");
    stage("AWSPENDING")
        .move_to_version_id(token)
        .send()
        .await
        .expect("AWSPENDING on the token");
    let (after, enabled) = describe(client, secret_id).await;
    assert!(enabled, "RotateSecret enabled rotation");
    assert_eq!(holder(&after, "AWSCURRENT"), Some(current));
    assert_eq!(holder(&after, "AWSPREVIOUS"), previous);
    assert_eq!(after.get(token), Some(&vec!["AWSPENDING".to_owned()]));
}

/// The text of version `version` (or of the version labelled `stage`), if it has one.
async fn read(
    client: &Client,
    secret_id: &str,
    version: Option<&str>,
    stage: Option<&str>,
) -> Option<Credentials> {
    let out = client
        .get_secret_value()
        .secret_id(secret_id)
        .set_version_id(version.map(str::to_owned))
        .set_version_stage(stage.map(str::to_owned))
        .send()
        .await
        .ok()?;
    Some(Credentials::from_secret_json(out.secret_string()?).expect("the secret parses"))
}

// ---------------------------------------------------------------------------------------------------------------
// Databases.

/// An account `user` on `db` and a secret for it (with `masterarn` for alternating users); returns the secret id
/// and the password.
async fn account_and_secret<D: TestDb>(
    db: &D,
    user: &str,
    master: Option<&str>,
) -> (String, String) {
    let password = random_password();
    db.server().create_account(user, &password).await;
    let mut document: serde_json::Value =
        serde_json::from_str(&secret_json(db, user, &password)).unwrap();
    if let Some(master) = master {
        document["masterarn"] = serde_json::Value::from(master);
    }
    let secret_id = unique_name("rotapool/lambda");
    MotoServer::shared()
        .create_secret(&secret_id, &document.to_string())
        .await;
    (secret_id, password)
}

/// A master account that may create users and grant, and its secret; returns the secret id.
async fn master_secret<D: TestDb>(db: &D) -> String {
    let (user, password) = (unique_name("master"), random_password());
    db.server().create_admin_account(&user, &password).await;
    let secret_id = unique_name("rotapool/master");
    MotoServer::shared()
        .create_secret(&secret_id, &secret_json(db, &user, &password))
        .await;
    secret_id
}

async fn assert_accepted<D: TestDb>(db: &D, user: &str, password: &str, what: &str) {
    assert_eq!(
        db.server().try_login(user, password).await,
        Login::Accepted,
        "{what}"
    );
}

fn pg() -> Postgres {
    Postgres(PgServer::shared())
}

fn mariadb() -> MariaDb {
    MariaDb(MariaDbServer::shared())
}

// ---------------------------------------------------------------------------------------------------------------
// Scenarios, each run for both engines.

/// Single user through the handler: every step, createSecret and setSecret twice, finishSecret again on the
/// finished token; the new password from GetRandomPassword with AWS's default exclusions; no password logged.
async fn single_user_rotation<D: TestDb>(db: D) {
    let (function, client) = function().await;
    let user = unique_name("app");
    let (secret_id, old_password) = account_and_secret(&db, &user, None).await;
    let token = rotation_token();
    begin_rotation(&client, &secret_id, &token).await;

    invoke(&function, &secret_id, &token, "createSecret")
        .await
        .expect("createSecret");
    let pending = read(&client, &secret_id, Some(&token), Some("AWSPENDING"))
        .await
        .expect("createSecret wrote the pending version");
    assert_eq!(pending.username(), user);
    assert_eq!(pending.password().chars().count(), 32);
    assert!(!pending.password().contains(['/', '@', '"', '\'', '\\']));
    invoke(&function, &secret_id, &token, "createSecret")
        .await
        .expect("createSecret again");
    let again = read(&client, &secret_id, Some(&token), None).await.unwrap();
    assert_eq!(
        again.password(),
        pending.password(),
        "a second createSecret changed nothing"
    );
    assert_rejected(&db, &user, pending.password()).await;

    invoke(&function, &secret_id, &token, "setSecret")
        .await
        .expect("setSecret");
    assert_rejected(&db, &user, &old_password).await;
    assert_accepted(
        &db,
        &user,
        pending.password(),
        "setSecret set the pending password",
    )
    .await;
    invoke(&function, &secret_id, &token, "setSecret")
        .await
        .expect("setSecret again");
    assert_accepted(
        &db,
        &user,
        pending.password(),
        "a second setSecret changed nothing",
    )
    .await;

    invoke(&function, &secret_id, &token, "testSecret")
        .await
        .expect("testSecret");
    invoke(&function, &secret_id, &token, "finishSecret")
        .await
        .expect("finishSecret");
    let (versions, _) = describe(&client, &secret_id).await;
    assert_eq!(
        holder(&versions, "AWSCURRENT").as_deref(),
        Some(token.as_str())
    );

    // An already-finished token: every step is nothing left to do, and nothing changes.
    for step in ["finishSecret", "createSecret", "setSecret"] {
        invoke(&function, &secret_id, &token, step)
            .await
            .unwrap_or_else(|e| panic!("{step} on a finished token: {e}"));
    }
    assert_eq!(describe(&client, &secret_id).await.0, versions);
    assert_accepted(
        &db,
        &user,
        pending.password(),
        "the finished rotation's password",
    )
    .await;

    assert_logs_hide(&[&old_password, pending.password()]);
    let lines: Vec<String> = logs()
        .lines()
        .filter(|line| line.contains(&secret_id))
        .map(str::to_owned)
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("new password from secretsmanager:GetRandomPassword")),
        "the log says where the password came from"
    );
    assert!(lines
        .iter()
        .any(|l| l.contains("version is already AWSCURRENT")));
    println!("the Lambda's log of this rotation ({}):", db.engine());
    for line in lines {
        println!("{line}");
    }
}

/// Alternating users through the handler, three rotations: each switches user, the previous user keeps working,
/// and the user of two rotations back no longer takes its old password.
async fn alternating_users_rotation<D: TestDb>(db: D) {
    let (function, client) = function().await;
    let master = master_secret(&db).await;
    let user = unique_name("app");
    let (secret_id, password) = account_and_secret(&db, &user, Some(&master)).await;
    let mut history = vec![Credentials::new(&user, &password)];
    for round in 1..=3 {
        let token = rotation_token();
        begin_rotation(&client, &secret_id, &token).await;
        invoke(&function, &secret_id, &token, "createSecret")
            .await
            .expect("createSecret");
        let pending = read(&client, &secret_id, Some(&token), None).await.unwrap();
        let previous = history.last().unwrap().clone();
        assert_ne!(
            pending.username(),
            previous.username(),
            "round {round} switches users"
        );
        assert_rejected(&db, pending.username(), pending.password()).await;
        for step in ["setSecret", "testSecret", "finishSecret"] {
            invoke(&function, &secret_id, &token, step)
                .await
                .unwrap_or_else(|e| panic!("round {round}, {step}: {e}"));
        }
        assert_accepted(&db, pending.username(), pending.password(), "the new user").await;
        assert_accepted(
            &db,
            previous.username(),
            previous.password(),
            "the previous user",
        )
        .await;
        if let Some(two_back) = history.len().checked_sub(2).map(|i| &history[i]) {
            assert_rejected(&db, two_back.username(), two_back.password()).await;
        }
        history.push(pending);
    }
    let passwords: Vec<&str> = history.iter().map(Credentials::password).collect();
    assert_logs_hide(&passwords);
}

/// Refusals, before any change: rotation disabled, a token unknown to the secret, a token that is neither
/// AWSPENDING nor AWSCURRENT. The database password and the secret's labels stay as they were.
async fn refusals<D: TestDb>(db: D) {
    let (function, client) = function().await;
    let user = unique_name("app");
    let (secret_id, password) = account_and_secret(&db, &user, None).await;

    let token = rotation_token();
    let disabled = invoke(&function, &secret_id, &token, "createSecret").await;
    assert!(
        matches!(disabled, Err(HandlerError::RotationDisabled { .. })),
        "{disabled:?}"
    );
    assert_eq!(
        describe(&client, &secret_id).await.0.len(),
        1,
        "nothing was written"
    );

    begin_rotation(&client, &secret_id, &token).await;
    let (before, _) = describe(&client, &secret_id).await;
    let stranger = rotation_token();
    for step in ["createSecret", "setSecret", "testSecret", "finishSecret"] {
        let unknown = invoke(&function, &secret_id, &stranger, step).await;
        assert!(
            matches!(&unknown, Err(HandlerError::UnknownVersion { token, .. }) if *token == stranger),
            "{step}: {unknown:?}"
        );
    }
    assert_eq!(describe(&client, &secret_id).await.0, before);

    run_all_steps(&function, &secret_id, &token).await;
    let (finished, _) = describe(&client, &secret_id).await;
    let old_version = holder(&finished, "AWSPREVIOUS").expect("the first version is AWSPREVIOUS");
    let next = rotation_token();
    begin_rotation(&client, &secret_id, &next).await;
    let stale = invoke(&function, &secret_id, &old_version, "setSecret").await;
    assert!(
        matches!(stale, Err(HandlerError::NotPending { .. })),
        "{stale:?}"
    );
    let current = read(&client, &secret_id, None, Some("AWSCURRENT"))
        .await
        .unwrap();
    assert_rejected(&db, &user, &password).await;
    assert_accepted(
        &db,
        &user,
        current.password(),
        "the refused events changed nothing",
    )
    .await;
    let message = format!("{stale:?} {}", stale.as_ref().unwrap_err());
    assert!(!message.contains(current.password()));
}

/// A user name too long for `_clone` within the engine's limit is refused at createSecret, naming the limit,
/// and nothing is written.
async fn long_user_names_are_refused<D: TestDb>(db: D, limit: usize) {
    let (function, client) = function().await;
    let master = master_secret(&db).await;
    let base = unique_name("app");
    let user = format!(
        "{base}{}",
        "x".repeat(limit - "_clone".len() + 1 - base.len())
    );
    let (secret_id, password) = account_and_secret(&db, &user, Some(&master)).await;
    let token = rotation_token();
    begin_rotation(&client, &secret_id, &token).await;
    let refused = invoke(&function, &secret_id, &token, "createSecret").await;
    match &refused {
        Err(HandlerError::Rotation(RotationError::UserNameTooLong { max, .. })) => {
            assert_eq!(*max, limit)
        }
        other => panic!("expected UserNameTooLong, got {other:?}"),
    }
    let message = refused.unwrap_err().to_string();
    assert!(message.contains(&format!("limit of {limit}")), "{message}");
    assert!(
        read(&client, &secret_id, Some(&token), None)
            .await
            .is_none(),
        "no pending version was written"
    );
    assert_accepted(&db, &user, &password, "the account is untouched").await;
}

macro_rules! for_both_engines {
    ($($scenario:ident),+ $(,)?) => {
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    super::$scenario(super::pg()).await;
                }
            )+
        }
        mod mariadb {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    super::$scenario(super::mariadb()).await;
                }
            )+
        }
    };
}

for_both_engines!(single_user_rotation, alternating_users_rotation, refusals);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_user_names_longer_than_56_are_refused() {
    long_user_names_are_refused(pg(), 63).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_user_names_longer_than_26_are_refused() {
    long_user_names_are_refused(mariadb(), 32).await;
}

/// MariaDB, alternating users: a grant given to the base user after the clone exists reaches the clone at the
/// next rotation to it (AWS's function replays the current user's grants on every setSecret; so does this one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_grants_given_between_rotations_reach_the_clone() {
    let db = mariadb();
    let (function, client) = function().await;
    let master = master_secret(&db).await;
    let user = unique_name("app");
    let (secret_id, _) = account_and_secret(&db, &user, Some(&master)).await;
    let schema = unique_name("lambda_grants");
    db.server()
        .execute(&format!(
            "CREATE DATABASE `{schema}`; CREATE TABLE `{schema}`.t (n INT); INSERT INTO `{schema}`.t VALUES (7)"
        ))
        .await;
    let select = format!("SELECT n FROM `{schema}`.t");
    let rotate = || async {
        let token = rotation_token();
        begin_rotation(&client, &secret_id, &token).await;
        run_all_steps(&function, &secret_id, &token).await;
        read(&client, &secret_id, None, Some("AWSCURRENT"))
            .await
            .unwrap()
    };
    let clone = rotate().await;
    assert_eq!(clone.username(), format!("{user}_clone"));
    db.server()
        .execute(&format!("GRANT SELECT ON `{schema}`.t TO '{user}'@'%'"))
        .await;
    let base = rotate().await;
    assert_eq!(base.username(), user);

    // The clone's password is the one from the first rotation, still valid; its privileges lack the new grant.
    let mut conn = db
        .server()
        .login(clone.username(), clone.password())
        .await
        .expect("the clone logs in");
    match conn.query_first::<i32, _>(&select).await {
        Err(mysql_async::Error::Server(e)) => assert_eq!(e.code, 1142, "{e}"),
        other => panic!("the clone read the table before the grant reached it: {other:?}"),
    }
    conn.disconnect().await.ok();

    let clone = rotate().await;
    assert_eq!(clone.username(), format!("{user}_clone"));
    let mut conn = db
        .server()
        .login(clone.username(), clone.password())
        .await
        .expect("the clone logs in");
    let n: Option<i32> = conn
        .query_first(&select)
        .await
        .expect("the clone has the grant");
    assert_eq!(n, Some(7));
    conn.disconnect().await.ok();
}

/// PostgreSQL with `log_statement=all`: after a single-user and an alternating-users rotation through the
/// handler, the server log holds the SCRAM verifiers the rotator sent and none of the new passwords.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_server_log_never_sees_a_new_password() {
    let server: &'static PgServer = Box::leak(Box::new(PgServer::private()));
    let db = Postgres(server);
    let admin = server.admin().await;
    // Two statements: ALTER SYSTEM refuses to run inside the implicit transaction of a multi-statement query.
    for sql in [
        "ALTER SYSTEM SET log_statement = 'all'",
        "SELECT pg_reload_conf()",
    ] {
        admin.batch_execute(sql).await.expect("log_statement=all");
    }
    // The testkit's pg_ctl writes the server log next to the data directory (`-l <dir>/server.log`); a server
    // with the logging collector on would say where through pg_current_logfile().
    let row = admin
        .query_one(
            "SELECT current_setting('data_directory'), pg_current_logfile()",
            &[],
        )
        .await
        .expect("where the log is");
    let (data_dir, collector_file): (String, Option<String>) = (row.get(0), row.get(1));
    let log_path = match collector_file {
        Some(file) => std::path::Path::new(&data_dir).join(file),
        None => std::path::Path::new(&data_dir).with_file_name("server.log"),
    };
    let marker = unique_name("log_statement_marker");
    let fresh = server.admin().await;
    fresh
        .batch_execute(&format!("SELECT '{marker}'"))
        .await
        .expect("the marker query");
    let log = || {
        std::fs::read_to_string(&log_path).unwrap_or_else(|e| panic!("{}: {e}", log_path.display()))
    };
    assert!(log().contains(&marker), "the server logs every statement");

    let (function, client) = function().await;
    let mut new_passwords = Vec::new();
    let user = unique_name("app");
    let (single, _) = account_and_secret(&db, &user, None).await;
    let master = master_secret(&db).await;
    let (alternating, _) = account_and_secret(&db, &unique_name("app"), Some(&master)).await;
    for (secret_id, rounds) in [(&single, 1), (&alternating, 2)] {
        for _ in 0..rounds {
            let token = rotation_token();
            begin_rotation(&client, secret_id, &token).await;
            run_all_steps(&function, secret_id, &token).await;
            let current = read(&client, secret_id, None, Some("AWSCURRENT"))
                .await
                .unwrap();
            assert_accepted(
                &db,
                current.username(),
                current.password(),
                "the rotated account",
            )
            .await;
            new_passwords.push(current.password().to_owned());
        }
    }
    let log = log();
    for password in &new_passwords {
        assert!(
            !log.contains(password.as_str()),
            "a new password is in the server log"
        );
    }
    assert!(
        log.matches("PASSWORD 'SCRAM-SHA-256$4096:").count() >= 3,
        "the log holds the rotator's ALTER ROLE and CREATE ROLE statements"
    );
}

// ---------------------------------------------------------------------------------------------------------------
// moto's IAM enforcement (INITIAL_NO_AUTH_ACTION_COUNT): it covers Secrets Manager, by action. That setting is
// process-wide, so each test here starts a moto of its own, whose first requests (IAM users with their policies and
// access keys, as raw HTTP calls) are the only unauthenticated ones.

/// A moto_server of a test's own, enforcing IAM once `users` IAM users have been set up (CreateUser,
/// PutUserPolicy and CreateAccessKey each); stopped when dropped.
struct EnforcingMoto {
    child: Child,
    port: u16,
}

impl EnforcingMoto {
    fn start(users: usize) -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let binary = std::env::var("ROTAPOOL_MOTO_SERVER").unwrap_or_else(|_| "moto_server".into());
        let child = Command::new(&binary)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .env("INITIAL_NO_AUTH_ACTION_COUNT", (3 * users).to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("`{binary}` did not start ({e}); install moto (pip install 'moto[server]')")
            });
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "moto_server did not listen within 30 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { child, port }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A Secrets Manager client signing with `key`.
    fn client(&self, (key, secret): &(String, String)) -> Client {
        let config = aws_sdk_secretsmanager::Config::builder()
            .behavior_version(aws_sdk_secretsmanager::config::BehaviorVersion::latest())
            .region(aws_sdk_secretsmanager::config::Region::new("us-east-1"))
            .endpoint_url(self.url())
            .credentials_provider(aws_sdk_secretsmanager::config::Credentials::new(
                key,
                secret,
                None,
                None,
                "iam-tests",
            ))
            .build();
        Client::from_conf(config)
    }

    /// One unauthenticated IAM request (moto routes it by the credential scope); returns the answer's body.
    async fn iam(&self, params: &[(&str, &str)]) -> String {
        let body: Vec<String> = params
            .iter()
            .chain(&[("Version", "2010-05-08")])
            .map(|(k, v)| format!("{k}={}", form_encode(v)))
            .collect();
        let body = body.join("&");
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .expect("connect to moto");
        let request = format!(
            "POST / HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\nContent-Length: {}\r\n\
             Content-Type: application/x-www-form-urlencoded\r\n\
             Authorization: AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/iam/aws4_request, \
             SignedHeaders=host, Signature=00\r\n\r\n{body}",
            self.port,
            body.len()
        );
        stream.write_all(request.as_bytes()).await.expect("send");
        let mut response = String::new();
        stream.read_to_string(&mut response).await.expect("read");
        assert!(
            response.starts_with("HTTP/1.1 200"),
            "IAM {params:?}: {response}"
        );
        response
    }

    /// An IAM user with `policy` inline; returns its access key id and secret.
    async fn user_with_policy(&self, policy: serde_json::Value) -> (String, String) {
        let name = unique_name("svc");
        self.iam(&[("Action", "CreateUser"), ("UserName", &name)])
            .await;
        self.iam(&[
            ("Action", "PutUserPolicy"),
            ("UserName", &name),
            ("PolicyName", "service"),
            ("PolicyDocument", &policy.to_string()),
        ])
        .await;
        let key = self
            .iam(&[("Action", "CreateAccessKey"), ("UserName", &name)])
            .await;
        (
            xml_value(&key, "AccessKeyId"),
            xml_value(&key, "SecretAccessKey"),
        )
    }
}

impl Drop for EnforcingMoto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn form_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn xml_value(xml: &str, tag: &str) -> String {
    let open = format!("<{tag}>");
    let start = xml.find(&open).expect("the tag is in the answer") + open.len();
    let end = start + xml[start..].find('<').expect("the tag closes");
    xml[start..end].to_owned()
}

/// The shipped service policy's actions, with `drop_action` removed if given.
///
/// moto 5 checks identity policies by action only: it evaluates every request against the resource `*` (its
/// `iam/access_control.py`: "once the Resource element in IAM policies is supported"), so a statement scoped to
/// the secret's ARN, as shipped, denies everything there. The statement's resource becomes `*` here; what this
/// test proves is that the policy's actions are enough, and that GetSecretValue among them is needed.
fn service_policy(drop_action: Option<&str>) -> serde_json::Value {
    let mut policy: serde_json::Value =
        serde_json::from_str(include_str!("../deploy/iam/service-policy.json"))
            .expect("the shipped policy parses");
    let read = &mut policy["Statement"][0];
    assert!(
        read["Resource"]
            .as_str()
            .is_some_and(|arn| arn.starts_with("arn:aws:secretsmanager:")),
        "the shipped policy names one secret"
    );
    read["Resource"] = serde_json::Value::from("*");
    if let Some(action) = drop_action {
        let actions = read["Action"].as_array_mut().expect("a list of actions");
        actions.retain(|a| a != action);
    }
    policy
}

/// An identity policy allowing `actions` on every resource (moto evaluates resources as `*`; see
/// [`service_policy`]).
fn allow(actions: &[impl AsRef<str>]) -> serde_json::Value {
    let actions: Vec<&str> = actions.iter().map(AsRef::as_ref).collect();
    serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{ "Effect": "Allow", "Action": actions, "Resource": "*" }],
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_policy_is_enough_and_get_secret_value_is_needed() {
    let db = pg();
    let moto = EnforcingMoto::start(3);
    let admin = moto.client(&moto.user_with_policy(allow(&["secretsmanager:*"])).await);
    let allowed = moto.user_with_policy(service_policy(None)).await;
    let denied = moto
        .user_with_policy(service_policy(Some("secretsmanager:GetSecretValue")))
        .await;
    let (user, password) = (unique_name("app"), random_password());
    db.server().create_account(&user, &password).await;
    let arn = admin
        .create_secret()
        .name(unique_name("rotapool/iam"))
        .secret_string(secret_json(&db, &user, &password))
        .send()
        .await
        .expect("CreateSecret as the admin")
        .arn()
        .expect("an ARN")
        .to_owned();

    let pool_with = |(key, secret): (String, String)| {
        let (url, arn, backend) = (moto.url(), arn.clone(), db.backend());
        async move {
            let source = AwsSecretsManager::builder(arn)
                .endpoint_url(url)
                .region("us-east-1")
                .static_credentials(key, secret)
                .build()
                .await;
            PoolBuilder::new(backend)
                .secret_source(Arc::new(source))
                .max_size(2)
                .build()
                .await
        }
    };

    // The key without GetSecretValue first: it proves moto enforces IAM for Secrets Manager at all.
    //
    // Against AWS the denial is `SourceError::AccessDenied`: the service answers `{"__type":
    // "AccessDeniedException"}`. moto answers this JSON-protocol service's denial with an XML body (`<Code>
    // AccessDenied</Code>`, HTTP 403) from which the SDK reads no error code, so rotapool-core can only call it
    // `SourceError::Other`. The test therefore pins the denial by its words, wherever the variant lands.
    match pool_with(denied).await {
        Err(BuildError::Source(error)) => {
            let (SourceError::AccessDenied { secret_id, .. }
            | SourceError::Other { secret_id, .. }) = &error
            else {
                panic!("expected an access or store error, got {error:?}")
            };
            assert_eq!(secret_id, &arn);
            let chain = format!("{error:?}");
            assert!(
                chain.contains("not authorized to perform: secretsmanager:GetSecretValue"),
                "{chain}"
            );
        }
        Err(other) => panic!("expected the store's refusal, got {other:?}"),
        Ok(_) => panic!("a pool read the secret without secretsmanager:GetSecretValue"),
    }

    let pool = pool_with(allowed)
        .await
        .expect("the service policy lets the pool read its secret");
    let mut conn = pool.get().await.expect("a connection");
    db.ping(&mut conn).await.expect("SELECT 1");
}

/// The rotation function's role as the SAM template grants it on the secret, without GetRandomPassword: a full
/// rotation through the handler still succeeds, with a password from the local generator, and the log says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_get_random_password_the_lambda_uses_its_own_generator() {
    let db = pg();
    let moto = EnforcingMoto::start(2);
    let admin = moto.client(&moto.user_with_policy(allow(&["secretsmanager:*"])).await);
    let template = include_str!("../deploy/sam/template.yaml");
    let on_secret: Vec<String> = template
        .lines()
        .skip_while(|l| !l.contains("Sid: TheFourStepsOnTheRotatedSecret"))
        .take_while(|l| !l.contains("Resource:"))
        .filter_map(|l| l.trim().strip_prefix("- secretsmanager:"))
        .map(|action| format!("secretsmanager:{action}"))
        .collect();
    assert_eq!(
        on_secret.len(),
        4,
        "the template's actions on the secret: {on_secret:?}"
    );
    let role = moto.client(&moto.user_with_policy(allow(&on_secret)).await);

    let (user, password) = (unique_name("app"), random_password());
    db.server().create_account(&user, &password).await;
    let secret_id = unique_name("rotapool/iam");
    admin
        .create_secret()
        .name(&secret_id)
        .secret_string(secret_json(&db, &user, &password))
        .send()
        .await
        .expect("CreateSecret as the admin");
    let token = rotation_token();
    begin_rotation(&admin, &secret_id, &token).await;
    capture_logs();
    let function = RotationFunction::new(
        role,
        Settings {
            ssl_mode: SslMode::Require,
            ..Settings::default()
        },
    );
    run_all_steps(&function, &secret_id, &token).await;

    let current = read(&admin, &secret_id, None, Some("AWSCURRENT"))
        .await
        .unwrap();
    assert_rejected(&db, &user, &password).await;
    assert_accepted(&db, &user, current.password(), "the rotated password").await;
    assert!(
        current
            .password()
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.~".contains(c)),
        "the local generator's alphabet"
    );
    assert!(
        logs().lines().any(|l| l.contains(&secret_id)
            && l.contains("GetRandomPassword denied; new password from the local generator")),
        "the log says the password came from the local generator"
    );
}
