//! What the Lambda tests share: the function under test with its own log capture, what Secrets Manager (moto) does around a
//! rotation, and the databases. Each concern's tests are in a module of their own.

mod grants;
mod iam;
mod server_log;
mod steps;
mod store;
mod user_names;

use std::{
    collections::HashMap,
    io::Write,
    sync::{Arc, Mutex, Once},
};

use lambda_runtime::tracing::{
    instrument::WithSubscriber,
    subscriber::{fmt::format::FmtSpan, util::SubscriberInitExt},
    Dispatch,
};

use crate::conformance::{
    assert_rejected, mariadb::MariaDb, postgres::Postgres, secret_json, TestDb,
};
use aws_sdk_secretsmanager::{types::RotationRulesType, Client};
use mysql_async::prelude::Queryable;
use rotapool_core::{
    source::AwsSecretsManager, BuildError, Credentials, PoolBuilder, SourceError, SslMode, Stage,
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
// The function under test, and its logs.

/// The rotation function under test, one per test as one per Lambda container, with the log of its own
/// invocations and nothing else.
///
/// Each invocation runs with this function's subscriber as the default (`WithSubscriber`), so tests running in
/// parallel never see each other's lines. The subscriber writes lambda_runtime's format (no target, no time), as
/// the binary's `init_default_subscriber` does, but at TRACE for every target (the drivers and the AWS SDK
/// included, `log` records bridged) and with every span as it opens and closes, since span fields (mysql_async's
/// statements) are text that a log could leak through. Tasks the handler spawns (a driver's connection task)
/// log outside the invocation and are not captured.
struct Lambda {
    handler: RotationFunction,
    log: Arc<Mutex<Vec<u8>>>,
    subscriber: Dispatch,
}

/// Appends what a subscriber writes to one function's log.
struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl Write for LogWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Lambda {
    /// A function that reaches Secrets Manager through `client`, and its empty log.
    fn new(client: Client, settings: Settings) -> Self {
        bridge_log_records();
        let log = Arc::new(Mutex::new(Vec::new()));
        let writer = log.clone();
        let subscriber = lambda_runtime::tracing::subscriber::fmt()
            .with_target(false)
            .without_time()
            .with_ansi(false)
            .with_max_level(lambda_runtime::tracing::Level::TRACE)
            .with_span_events(FmtSpan::NEW | FmtSpan::CLOSE)
            .with_writer(move || LogWriter(writer.clone()))
            .finish();
        Self {
            handler: RotationFunction::new(client, settings),
            log,
            subscriber: Dispatch::new(subscriber),
        }
    }

    /// Runs one event, logging into this function's log.
    async fn handle(&self, event: LambdaEvent<RotationEvent>) -> Result<(), HandlerError> {
        self.handler
            .handle(event)
            .with_subscriber(self.subscriber.clone())
            .await
    }

    /// Every line this function's invocations logged.
    fn logs(&self) -> String {
        String::from_utf8_lossy(&self.log.lock().unwrap()).into_owned()
    }

    /// Panics unless this function's log holds its own rotation (a `step finished` line for each of the four
    /// steps, and TRACE lines) and no line holds any of `passwords`.
    fn assert_logs_hide(&self, passwords: &[&str]) {
        let logs = self.logs();
        for step in ["createSecret", "setSecret", "testSecret", "finishSecret"] {
            assert!(
                logs.lines()
                    .any(|l| l.contains("step finished") && l.contains(&format!("step={step}"))),
                "this test's own log has no finished {step}"
            );
        }
        assert!(
            logs.lines().any(|l| l.trim_start().starts_with("TRACE")),
            "this test's own log was captured at TRACE"
        );
        for password in passwords {
            assert!(
                !logs.contains(password),
                "a password appears in the Lambda's logs"
            );
        }
    }
}

/// Sends `log` records (tokio-postgres writes through `log`) into `tracing`, where the default subscriber of the
/// moment (a test's [`Lambda`], or none outside an invocation) receives them. The process's global default is a
/// bare registry that prints nothing; it is installed because the bridge comes with it.
fn bridge_log_records() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        lambda_runtime::tracing::subscriber::registry()
            .try_init()
            .expect("no other subscriber or logger is installed in this test binary");
    });
}

// ---------------------------------------------------------------------------------------------------------------
// Secrets Manager: the function under test, and what Secrets Manager does around it.

/// The function, built once as a container would, with the default settings except TLS: `require` (the
/// default) encrypts without verifying, which the private servers' certificates allow.
async fn function() -> (Lambda, Client) {
    let client = MotoServer::shared().client().await;
    let settings = Settings {
        ssl_mode: SslMode::Require,
        ..Settings::default()
    };
    (Lambda::new(client.clone(), settings), client)
}

async fn invoke(
    function: &Lambda,
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

async fn run_all_steps(function: &Lambda, secret_id: &str, token: &str) {
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

fn holder(versions: &HashMap<String, Vec<String>>, stage: Stage) -> Option<String> {
    versions
        .iter()
        .find(|(_, labels)| labels.iter().any(|l| l == stage.label()))
        .map(|(id, _)| id.clone())
}

/// What Secrets Manager does before it invokes the function: rotation enabled, and version `token` announced
/// under AWSPENDING with no value yet (see the module's comment for how moto is brought there).
async fn begin_rotation(client: &Client, secret_id: &str, token: &str) {
    let (before, _) = describe(client, secret_id).await;
    let current = holder(&before, Stage::Current).expect("the secret has an AWSCURRENT version");
    let previous = holder(&before, Stage::Previous);
    let stage = |stage: Stage| {
        client
            .update_secret_version_stage()
            .secret_id(secret_id)
            .version_stage(stage.label())
    };
    // AWS leaves AWSPENDING on the finished version; moto's RotateSecret takes that for a rotation in progress.
    if let Some(pending) = holder(&before, Stage::Pending) {
        stage(Stage::Pending)
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
    stage(Stage::Current)
        .move_to_version_id(&current)
        .remove_from_version_id(token)
        .send()
        .await
        .expect("AWSCURRENT back");
    stage(Stage::Previous)
        .set_move_to_version_id(previous.clone())
        .remove_from_version_id(token)
        .send()
        .await
        .expect("AWSPREVIOUS back");
    stage(Stage::Pending)
        .move_to_version_id(token)
        .send()
        .await
        .expect("AWSPENDING on the token");
    let (after, enabled) = describe(client, secret_id).await;
    assert!(enabled, "RotateSecret enabled rotation");
    assert_eq!(holder(&after, Stage::Current), Some(current));
    assert_eq!(holder(&after, Stage::Previous), previous);
    assert_eq!(
        after.get(token),
        Some(&vec![Stage::Pending.label().to_owned()])
    );
}

/// The text of version `version` (or of the version labelled `stage`), if it has one.
async fn read(
    client: &Client,
    secret_id: &str,
    version: Option<&str>,
    stage: Option<Stage>,
) -> Option<Credentials> {
    let out = client
        .get_secret_value()
        .secret_id(secret_id)
        .set_version_id(version.map(str::to_owned))
        .set_version_stage(stage.map(|stage| stage.label().to_owned()))
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
