//! RDS IAM auth tokens renewed under load against real, password-checking PostgreSQL and MariaDB, over TLS.
//!
//! No server here can check an IAM signature, so the test plays RDS's part honestly: it wraps the real
//! `RdsIamAuth` in a source that, each time the real source signs a new token, makes that token the account's
//! password on the real server (ALTER USER) before handing it to the pool. The server then accepts the newest
//! token only, which is stricter than RDS (RDS accepts any token for 15 minutes): every renewal is a rotation
//! that the pool must follow with no application error. The test proves that the server rejects the previous
//! token before it checks that the application saw no error. A read after a rejected login answers the newest
//! token without signing another, as RDS would take it. What this cannot show is a real RDS login (RDS checking
//! the signature against IAM): that was not tested here.

mod conformance;

use std::{
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, SystemTime},
};

use async_trait::async_trait;
use aws_credential_types::{provider::SharedCredentialsProvider, Credentials as AwsCredentials};
use conformance::{
    mariadb::MariaDb,
    pools::{RotapoolPool, TestPool},
    postgres::Postgres,
    workload::Workload,
    TestDb,
};
use rotapool_core::{
    source::RdsIamAuth, DrainPolicy, PoolBuilder, ProactiveRefresh, SecretSource, SecretVersion,
    SourceError, SslMode, Stage,
};
use rotapool_testkit::{Login, TestServer};

/// How long the load runs: about five renewals at `RENEW_AFTER`.
const LOAD: Duration = Duration::from_secs(10);
const RENEW_AFTER: Duration = Duration::from_secs(2);

/// The real IAM source, with the server made to accept each new token (and only it) as RDS would accept it.
struct ServerAcceptsNewest<D: TestDb> {
    source: Arc<RdsIamAuth>,
    db: D,
    user: String,
    /// Every token signed, oldest first. Kept for the rejection proof; never printed.
    tokens: Arc<tokio::sync::Mutex<Vec<SecretVersion>>>,
    /// Once set, reads answer the newest token again instead of signing, so that the proof below is not raced.
    frozen: Arc<AtomicBool>,
    reads: AtomicU64,
}

impl<D: TestDb> std::fmt::Debug for ServerAcceptsNewest<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerAcceptsNewest")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl<D: TestDb> SecretSource for ServerAcceptsNewest<D> {
    async fn fetch(&self, stage: Stage) -> Result<SecretVersion, SourceError> {
        self.reads.fetch_add(1, Ordering::Relaxed);
        let (source, db, user) = (self.source.clone(), self.db.clone(), self.user.clone());
        let (tokens, frozen) = (self.tokens.clone(), self.frozen.clone());
        // A task of its own, awaited: a read the pool gives up on (its read timeout) drops this future, and must
        // not leave the server on a token that the list does not hold.
        tokio::spawn(async move {
            // Held across the signing and the ALTER USER, so that the server's password and the list agree.
            let mut tokens = tokens.lock().await;
            if frozen.load(Ordering::Relaxed) && stage == Stage::Current {
                return Ok(tokens.last().expect("a token was signed").clone());
            }
            let version = source.fetch(stage).await?;
            db.server()
                .set_password(&user, version.credentials.password())
                .await;
            tokens.push(version.clone());
            Ok(version)
        })
        .await
        .expect("the signing task ran to its end")
    }

    /// The read after a rejected login. RDS takes any token signed in the last 15 minutes, so that read needs no new
    /// signature: it answers the newest token, which the server takes. Signing here too would make every round a
    /// rotation of its own, invalidating the token the proactive refresh is trying at that moment: a password that
    /// changes on every read, which no store does and RDS does not do.
    async fn refetch(&self, stage: Stage) -> Result<SecretVersion, SourceError> {
        self.reads.fetch_add(1, Ordering::Relaxed);
        if stage != Stage::Current {
            return self.source.refetch(stage).await;
        }
        let newest = self.tokens.lock().await.last().cloned();
        match newest {
            Some(version) => Ok(version),
            None => self.fetch(stage).await,
        }
    }

    fn secret_id(&self) -> &str {
        self.source.secret_id()
    }

    async fn next_rotation(&self) -> Result<Option<SystemTime>, SourceError> {
        self.source.next_rotation().await
    }
}

fn sdk_config() -> aws_config::SdkConfig {
    let keys = AwsCredentials::new("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG", None, None, "test");
    aws_config::SdkConfig::builder()
        .credentials_provider(SharedCredentialsProvider::new(keys))
        .region(aws_config::Region::new("eu-west-1"))
        .build()
}

async fn renewal_under_load<D: TestDb>(db: D) {
    let server = db.server();
    let ca = server
        .ca_file()
        .expect("RDS takes IAM logins over TLS only: the test servers must offer TLS");
    let user = rotapool_testkit::unique_name("iam");
    server
        .create_account(&user, &rotapool_testkit::random_password())
        .await;
    let renewing = Arc::new(ServerAcceptsNewest {
        source: Arc::new(
            RdsIamAuth::builder(server.host(), server.port(), user.clone())
                .dbname(db.dbname())
                .sdk_config(&sdk_config())
                .renew_after(RENEW_AFTER)
                .build(),
        ),
        db: db.clone(),
        user: user.clone(),
        tokens: Default::default(),
        frozen: Arc::new(AtomicBool::new(false)),
        reads: AtomicU64::new(0),
    });
    let pool = PoolBuilder::new(db.backend_with_tls(SslMode::VerifyFull, Some(ca)))
        .secret_source(renewing.clone())
        .max_size(8)
        .max_lifetime(Some(Duration::from_millis(100)))
        // A renewal leaves healthy sessions alone: RDS checks a token only at login.
        .drain(DrainPolicy::Keep)
        // Read soon after the token is due, not the minute that Secrets Manager rotations are given to finish.
        .proactive_refresh(ProactiveRefresh {
            interval: Duration::from_secs(60),
            after_rotation: Duration::from_millis(200),
        })
        .build()
        .await
        .expect("the pool builds");
    let pool = RotapoolPool {
        db: db.clone(),
        pool,
    };

    {
        let mut conn = pool.get().await.expect("a connection");
        assert!(db.is_encrypted(&mut conn).await, "the session is encrypted");
    }
    let workload = Workload::start(&pool, 16);
    tokio::time::sleep(LOAD).await;

    // The proof, while the load runs: the server takes the newest token (a long string with & % = /) and
    // rejects the one before it.
    renewing.frozen.store(true, Ordering::Relaxed);
    let signed = renewing.tokens.lock().await.clone();
    // Two tokens signed in the same second are the same string (X-Amz-Date counts seconds): count each once.
    let mut tokens: Vec<String> = Vec::new();
    for version in &signed {
        let password = version.credentials.password();
        if tokens.last().map(String::as_str) != Some(password) {
            tokens.push(password.to_owned());
        }
    }
    assert!(tokens.len() >= 2, "no renewal happened");
    let newest = tokens[tokens.len() - 1].clone();
    let previous = tokens[tokens.len() - 2].clone();
    assert!(["&", "%", "=", "/"].iter().all(|c| newest.contains(c)));
    assert!(matches!(
        server.try_login(&user, &newest).await,
        Login::Accepted
    ));
    match server.try_login(&user, &previous).await {
        Login::BadCredentials => {}
        Login::Failed(e) => panic!("the previous token failed, but not as bad credentials: {e}"),
        Login::Accepted => panic!("the server accepted the previous token"),
    }

    let served = workload.served();
    workload.stop_expecting_no_errors().await;
    let stats = pool.stats();
    let renewals = tokens.len() - 1;
    eprintln!(
        "{}: {served} queries, 0 errors; {} tokens signed ({} distinct) in {LOAD:?}, {renewals} renewals, \
         {} reads, {} failed logins ({:.2} per renewal), {} logins, generation {}",
        db.engine(),
        signed.len(),
        tokens.len(),
        renewing.reads.load(Ordering::Relaxed),
        stats.auth_failures,
        stats.auth_failures as f64 / renewals as f64,
        stats.logins,
        stats.generation
    );
    // Renewals run at RENEW_AFTER, and rejections add a token each at most: not one per login.
    assert!(
        renewals >= 3,
        "{renewals} renewals in {LOAD:?} with renew_after {RENEW_AFTER:?}"
    );
    assert!(
        (signed.len() as u64) < stats.logins / 4,
        "{} tokens for {} logins",
        signed.len(),
        stats.logins
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_iam_tokens_renew_under_load_with_zero_errors() {
    renewal_under_load(Postgres(rotapool_testkit::PgServer::shared())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_iam_tokens_renew_under_load_with_zero_errors() {
    renewal_under_load(MariaDb(rotapool_testkit::MariaDbServer::shared())).await;
}
