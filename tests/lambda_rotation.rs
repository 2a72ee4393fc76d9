//! The rotation Lambda's handler, invoked with synthetic `LambdaEvent`s for all four steps against moto and the
//! private password-checking servers: both engines, both strategies, a step invoked twice, a token unknown to the
//! secret, rotation disabled, an already-finished token, grants replayed to the clone, user names too long for
//! the clone, and (PostgreSQL, `log_statement=all`) no new password in the server log.
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
    sync::{Mutex, Once},
};

use aws_sdk_secretsmanager::{types::RotationRulesType, Client};
use conformance::{assert_rejected, mariadb::MariaDb, postgres::Postgres, secret_json, TestDb};
use mysql_async::prelude::Queryable;
use rotapool_core::{Credentials, SslMode};
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
