//! RDS IAM auth tokens under paused time: the pool's proactive refresh replaces each token before it expires, a
//! wall clock that jumps does not move that schedule, a herd rejected at once signs one new token, and no Debug
//! or error shows a token.
//!
//! The database here behaves as RDS does with IAM tokens: it accepts a token the source signed for 15 minutes
//! after signing (measured on the monotonic clock, which paused time moves) and checks it only at login.

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use async_trait::async_trait;
use aws_credential_types::{provider::SharedCredentialsProvider, Credentials as AwsCredentials};
use rotapool_core::{
    error::report,
    source::{RdsIamAuth, TOKEN_LIFETIME},
    Backend, Credentials, DrainPolicy, Failure, Pool, PoolBuilder, ProactiveRefresh, Reuse,
    SecretSource, SecretVersion, SourceError, Stage,
};
use tokio::time::Instant;

const MINUTE: Duration = Duration::from_secs(60);

/// One token the source signed, as the database knows it.
#[derive(Debug)]
struct Token {
    password: String,
    /// `iam-<unix seconds of the signing clock>-<n>`.
    version_id: String,
    signed_at: Instant,
    first_login: Option<Instant>,
}

/// A database that checks IAM tokens as RDS does: a token is good for new logins for 15 minutes after signing.
#[derive(Debug, Default)]
struct Rds {
    tokens: Mutex<Vec<Token>>,
    logins: AtomicU64,
    expired: AtomicU64,
    refused: AtomicU64,
}

impl Rds {
    fn learn(&self, version: &SecretVersion) {
        self.tokens.lock().unwrap().push(Token {
            password: version.credentials.password().to_owned(),
            version_id: version.version_id.clone(),
            signed_at: Instant::now(),
            first_login: None,
        });
    }

    fn login(&self, password: &str) -> Result<(), RdsError> {
        self.logins.fetch_add(1, Ordering::Relaxed);
        let mut tokens = self.tokens.lock().unwrap();
        // Two tokens signed in the same second are the same string: the newest stands for both.
        let Some(token) = tokens.iter_mut().rev().find(|t| t.password == password) else {
            self.refused.fetch_add(1, Ordering::Relaxed);
            return Err(RdsError::Refused);
        };
        let now = Instant::now();
        if now >= token.signed_at + TOKEN_LIFETIME {
            self.expired.fetch_add(1, Ordering::Relaxed);
            return Err(RdsError::Expired);
        }
        token.first_login.get_or_insert(now);
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
enum RdsError {
    #[error("PAM authentication failed (token expired)")]
    Expired,
    #[error("PAM authentication failed")]
    Refused,
}

#[derive(Debug, Clone)]
struct RdsBackend(Arc<Rds>);

impl Backend for RdsBackend {
    type Connection = ();
    type Error = RdsError;

    async fn connect(&self, credentials: &Credentials) -> Result<(), RdsError> {
        // A login takes a moment, as a real one does, so that callers overlap.
        tokio::time::sleep(Duration::from_millis(2)).await;
        self.0.login(credentials.password())
    }

    fn classify(&self, _: &RdsError) -> Failure {
        Failure::Auth
    }

    async fn check(&self, _: &mut ()) -> Reuse<RdsError> {
        // Every get() logs in, so that every token is put to the test at once.
        Reuse::Retire("every get logs in")
    }
}

/// The real source, telling the database about each token it signs (as RDS knows every signature), and
/// keeping what the test inspects.
#[derive(Debug)]
struct Signed {
    source: RdsIamAuth,
    rds: Arc<Rds>,
}

#[async_trait]
impl SecretSource for Signed {
    async fn fetch(&self, stage: Stage) -> Result<SecretVersion, SourceError> {
        let version = self.source.fetch(stage).await?;
        self.rds.learn(&version);
        Ok(version)
    }

    fn secret_id(&self) -> &str {
        self.source.secret_id()
    }

    async fn next_rotation(&self) -> Result<Option<SystemTime>, SourceError> {
        self.source.next_rotation().await
    }
}

/// The wall clock the source signs with: it moves with paused time (as the real one moves with real time), plus
/// an offset the test changes to make it jump.
#[derive(Debug, Clone)]
struct TestClock {
    start_wall: SystemTime,
    start: Instant,
    offset: Arc<Mutex<i64>>,
}

impl TestClock {
    fn new() -> Self {
        Self {
            start_wall: SystemTime::now(),
            start: Instant::now(),
            offset: Arc::default(),
        }
    }

    fn jump(&self, seconds: i64) {
        *self.offset.lock().unwrap() += seconds;
    }
}

impl aws_smithy_async::time::TimeSource for TestClock {
    fn now(&self) -> SystemTime {
        let offset = *self.offset.lock().unwrap();
        let magnitude = Duration::from_secs(offset.unsigned_abs());
        let now = self.start_wall + self.start.elapsed();
        if offset >= 0 {
            now + magnitude
        } else {
            now - magnitude
        }
    }
}

fn sdk_config(clock: &TestClock) -> aws_config::SdkConfig {
    let keys = AwsCredentials::new("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG", None, None, "test");
    aws_config::SdkConfig::builder()
        .credentials_provider(SharedCredentialsProvider::new(keys))
        .region(aws_config::Region::new("eu-west-1"))
        .time_source(clock.clone())
        .build()
}

fn source(sdk: &aws_config::SdkConfig) -> RdsIamAuth {
    RdsIamAuth::builder("db.cluster-abc.eu-west-1.rds.amazonaws.com", 5432, "app")
        .dbname("orders")
        .sdk_config(sdk)
        .build()
}

async fn pool(
    rds: &Arc<Rds>,
    source: RdsIamAuth,
    max_size: usize,
    proactive: Option<ProactiveRefresh>,
) -> Pool<RdsBackend> {
    PoolBuilder::new(RdsBackend(rds.clone()))
        .secret_source(Arc::new(Signed {
            source,
            rds: rds.clone(),
        }))
        .max_size(max_size)
        .drain(DrainPolicy::Keep)
        .proactive_refresh(proactive)
        .build()
        .await
        .expect("the pool builds")
}

/// One get() a second for `duration`; the errors they met.
async fn serve(pool: &Pool<RdsBackend>, duration: Duration) -> Vec<String> {
    let mut errors = Vec::new();
    let end = Instant::now() + duration;
    while Instant::now() < end {
        if let Err(e) = pool.get().await {
            errors.push(report(&e));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    errors
}

/// Every token after the first was first used before the one before it expired, and was signed no sooner than
/// `renew_after` (and not much later) after it. Returns the gaps between signings.
fn assert_renewed_in_time(rds: &Rds, renew_after: Duration) -> Vec<Duration> {
    let tokens = rds.tokens.lock().unwrap();
    let mut gaps = Vec::new();
    for pair in tokens.windows(2) {
        let (old, new) = (&pair[0], &pair[1]);
        let adopted = new.first_login.expect("every signed token was used");
        assert!(
            adopted < old.signed_at + TOKEN_LIFETIME,
            "a token was adopted {:?} after the previous one was signed, past its 15 minutes",
            adopted - old.signed_at
        );
        let gap = new.signed_at - old.signed_at;
        assert!(
            gap >= renew_after && gap <= renew_after + 2 * MINUTE,
            "tokens signed {gap:?} apart; renew_after is {renew_after:?}"
        );
        gaps.push(gap);
    }
    eprintln!(
        "{} tokens; signed apart: {gaps:?}; logins {}",
        tokens.len(),
        rds.logins.load(Ordering::Relaxed)
    );
    gaps
}

#[tokio::test(start_paused = true)]
async fn the_proactive_refresh_replaces_each_token_before_it_expires() {
    let rds = Arc::new(Rds::default());
    let source = source(&sdk_config(&TestClock::new()));
    let renew_after = source.renew_after();
    let pool = pool(&rds, source, 4, Some(ProactiveRefresh::default())).await;

    let errors = serve(&pool, 60 * MINUTE).await;

    assert_eq!(errors, Vec::<String>::new());
    assert_eq!(
        rds.expired.load(Ordering::Relaxed),
        0,
        "no login with an expired token"
    );
    assert_eq!(rds.refused.load(Ordering::Relaxed), 0);
    let gaps = assert_renewed_in_time(&rds, renew_after);
    // 10 min + the refresh's 60 s after the moment asked for: 5 renewals in the hour.
    assert!(gaps.len() >= 5, "{gaps:?}");
    assert_eq!(pool.generation(), gaps.len() as u64 + 1);
}

#[tokio::test(start_paused = true)]
async fn a_wall_clock_that_jumps_does_not_move_the_renewals() {
    let rds = Arc::new(Rds::default());
    let clock = TestClock::new();
    let source = source(&sdk_config(&clock));
    let renew_after = source.renew_after();
    let pool = pool(&rds, source, 4, Some(ProactiveRefresh::default())).await;

    let mut errors = serve(&pool, 15 * MINUTE).await;
    clock.jump(3600);
    errors.extend(serve(&pool, 15 * MINUTE).await);
    clock.jump(-2 * 3600);
    errors.extend(serve(&pool, 30 * MINUTE).await);

    assert_eq!(errors, Vec::<String>::new());
    assert_eq!(
        rds.expired.load(Ordering::Relaxed),
        0,
        "no login with an expired token"
    );
    let gaps = assert_renewed_in_time(&rds, renew_after);
    assert!(gaps.len() >= 5, "{gaps:?}");
    // The jumps reached the signer: each token's signing time was off the monotonic clock by 0, +1 h or -1 h,
    // and both jumps show.
    let offsets: std::collections::BTreeSet<i64> = rds
        .tokens
        .lock()
        .unwrap()
        .iter()
        .map(|t| {
            let signed: i64 = t.version_id.split('-').nth(1).unwrap().parse().unwrap();
            let unjumped = clock.start_wall + (t.signed_at - clock.start);
            let unjumped = unjumped.duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
            // To the hour: signing times count whole seconds.
            ((signed - unjumped) as f64 / 3600.0).round() as i64
        })
        .collect();
    assert_eq!(
        offsets,
        [-1, 0, 1].into(),
        "hours the signing clock was off"
    );
}

#[tokio::test(start_paused = true)]
async fn a_herd_rejected_at_once_signs_one_new_token() {
    let rds = Arc::new(Rds::default());
    // No proactive refresh: the token in use runs out, as it would if the refresh had failed.
    let pool = pool(&rds, source(&sdk_config(&TestClock::new())), 16, None).await;
    assert!(serve(&pool, Duration::from_secs(2)).await.is_empty());
    let signed_before = rds.tokens.lock().unwrap().len();

    tokio::time::sleep(TOKEN_LIFETIME).await;
    let herd: Vec<_> = (0..16)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move { pool.get().await.map(drop).map_err(|e| report(&e)) })
        })
        .collect();
    for caller in herd {
        caller
            .await
            .unwrap()
            .expect("every caller gets a connection");
    }

    assert_eq!(
        rds.tokens.lock().unwrap().len(),
        signed_before + 1,
        "one new token for the whole herd"
    );
    assert!(
        rds.expired.load(Ordering::Relaxed) >= 1,
        "the old token was rejected first"
    );
}

#[tokio::test]
async fn neither_debug_nor_errors_show_a_token() {
    let sdk = sdk_config(&TestClock::new());
    let source = source(&sdk);
    let version = source.fetch(Stage::Current).await.expect("a token");
    let token = version.credentials.password().to_owned();
    assert!(
        token.contains("X-Amz-Signature="),
        "a token, not something else"
    );
    assert!(version.version_id.starts_with("iam-"));
    assert!(!version.version_id.contains(&token));
    let signature = token.split("X-Amz-Signature=").nth(1).unwrap().to_owned();

    let mut shown = vec![
        format!("{source:?}"),
        format!("{version:?}"),
        format!(
            "{:?}",
            RdsIamAuth::builder("h", 5432, "app").sdk_config(&sdk)
        ),
    ];
    for stage in [Stage::Pending, Stage::Previous] {
        let error = source.fetch(stage).await.expect_err("only AWSCURRENT");
        assert!(
            matches!(error, SourceError::StageNotFound { .. }),
            "{error:?}"
        );
        shown.push(report(&error));
        shown.push(format!("{error:?}"));
    }

    let no_region = RdsIamAuth::builder("h", 5432, "app")
        .sdk_config(
            &aws_config::SdkConfig::builder()
                .credentials_provider(sdk.credentials_provider().unwrap())
                .build(),
        )
        .build()
        .fetch(Stage::Current)
        .await
        .expect_err("no region");
    assert!(
        matches!(no_region, SourceError::NotConfigured { .. }),
        "{no_region:?}"
    );
    assert!(
        report(&no_region).contains("AWS_REGION"),
        "{}",
        report(&no_region)
    );

    let no_credentials = RdsIamAuth::builder("h", 5432, "app")
        .region("eu-west-1")
        .sdk_config(&aws_config::SdkConfig::builder().build())
        .build()
        .fetch(Stage::Current)
        .await
        .expect_err("no credentials");
    assert!(
        matches!(no_credentials, SourceError::NotConfigured { .. }),
        "{no_credentials:?}"
    );
    assert!(report(&no_credentials).contains("AWS_ACCESS_KEY_ID"));

    let not_loaded = RdsIamAuth::builder("h", 5432, "app")
        .region("eu-west-1")
        .sdk_config(
            &aws_config::SdkConfig::builder()
                .credentials_provider(SharedCredentialsProvider::new(NoCredentials))
                .build(),
        )
        .build()
        .fetch(Stage::Current)
        .await
        .expect_err("the chain found nothing");
    assert!(
        matches!(not_loaded, SourceError::NotConfigured { .. }),
        "{not_loaded:?}"
    );
    assert!(
        report(&not_loaded).contains("role"),
        "{}",
        report(&not_loaded)
    );

    for error in [&no_region, &no_credentials, &not_loaded] {
        shown.push(report(error));
        shown.push(format!("{error:?}"));
    }
    // The messages name the text's place, never the text: it would print the token.
    for (i, text) in shown.iter().enumerate() {
        assert!(!text.contains(&token), "a token in shown[{i}]");
        assert!(!text.contains(&signature), "a signature in shown[{i}]");
    }
}

/// A credential chain that finds nothing, as on a machine with no role and no keys.
#[derive(Debug)]
struct NoCredentials;

impl aws_credential_types::provider::ProvideCredentials for NoCredentials {
    fn provide_credentials<'a>(
        &'a self,
    ) -> aws_credential_types::provider::future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        aws_credential_types::provider::future::ProvideCredentials::ready(Err(
            aws_credential_types::provider::error::CredentialsError::not_loaded(
                "no providers in chain provided credentials",
            ),
        ))
    }
}
