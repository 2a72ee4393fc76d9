//! RDS IAM database authentication: the "password" is a short-lived token signed with the service's AWS
//! credentials by the SDK's own generator, and it is replaced before it expires.

use std::{
    fmt,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use async_trait::async_trait;
use aws_config::{Region, SdkConfig};
use aws_credential_types::provider::error::CredentialsError;
use aws_sdk_rds::auth_token::{AuthTokenGenerator, Config as TokenConfig};
use tokio::{sync::OnceCell, time::Instant};

use super::contract::{BoxError, SecretSource, SecretVersion, SourceError, Stage};
use crate::credentials::Credentials;

/// How long RDS accepts a token for new logins after it was signed (the SDK's fixed `X-Amz-Expires=900`).
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(15 * 60);

/// The longest [`RdsIamAuthBuilder::renew_after`] allowed: two minutes inside [`TOKEN_LIFETIME`], so that the
/// proactive refresh, which wakes [`ProactiveRefresh::after_rotation`](crate::ProactiveRefresh) (60 s by default)
/// and up to half of it again after the moment asked for (90 s at most), still replaces the token before it
/// expires.
pub const MAX_RENEW_AFTER: Duration = Duration::from_secs(13 * 60);

/// The shortest [`RdsIamAuthBuilder::renew_after`] allowed, so that a mistake cannot turn into a signing loop.
pub const MIN_RENEW_AFTER: Duration = Duration::from_secs(1);

/// Logs in to Amazon RDS or Aurora with IAM database authentication.
///
/// Each [`fetch`](SecretSource::fetch) of [`Stage::Current`] signs a new token with the SDK's RDS auth-token
/// generator (no network call beyond what the AWS credential chain needs) and returns it as the password of
/// `username`, with the host, port and database name given to the builder. A token is good for new logins for
/// 15 minutes; sessions opened with it stay open after that, since RDS checks the token only at login.
///
/// Renewal happens before expiry: [`next_rotation`](SecretSource::next_rotation) answers the moment the newest
/// token should be replaced ([`RdsIamAuthBuilder::renew_after`] after it was signed, measured on the monotonic
/// clock), which the pool's proactive refresh reads to schedule its next read. A login that is rejected anyway
/// (a token signed by a machine whose clock is off, a revoked role) renews at once through the pool's usual
/// single-flight refresh, since every read of `AWSCURRENT` signs a new token. There is no other stage: reading
/// `AWSPENDING` or `AWSPREVIOUS` gives [`SourceError::StageNotFound`].
///
/// The database must require TLS for IAM logins (RDS refuses them otherwise), and the database user must be
/// set up for IAM (PostgreSQL: `GRANT rds_iam TO app`; MySQL and MariaDB: `IDENTIFIED WITH
/// AWSAuthenticationPlugin AS 'RDS'`). The service's role needs `rds-db:connect` on
/// `arn:aws:rds-db:<region>:<account>:dbuser:<DbiResourceId>/<user>`.
///
/// Renewing a token must not retire healthy connections: build the pool with
/// [`DrainPolicy::Keep`](crate::DrainPolicy::Keep).
///
/// Neither [`Debug`](fmt::Debug) nor any error shows a token: the source keeps none, only when to renew.
pub struct RdsIamAuth {
    host: String,
    port: u16,
    username: String,
    dbname: Option<String>,
    region: Option<String>,
    renew_after: Duration,
    secret_id: String,
    sdk: OnceCell<SdkConfig>,
    signed: AtomicU64,
    renew_at: Mutex<Option<Instant>>,
}

/// Builds an [`RdsIamAuth`]; see [`RdsIamAuth::builder`].
#[must_use]
pub struct RdsIamAuthBuilder {
    host: String,
    port: u16,
    username: String,
    dbname: Option<String>,
    region: Option<String>,
    renew_after: Duration,
    sdk: Option<SdkConfig>,
}

impl RdsIamAuth {
    /// A builder for tokens that log in as `username` to the database at `host`:`port` (the instance or cluster
    /// endpoint, as the client connects to it: the token is signed for exactly this host and port).
    pub fn builder(
        host: impl Into<String>,
        port: u16,
        username: impl Into<String>,
    ) -> RdsIamAuthBuilder {
        RdsIamAuthBuilder {
            host: host.into(),
            port,
            username: username.into(),
            dbname: None,
            region: None,
            renew_after: RdsIamAuthBuilder::DEFAULT_RENEW_AFTER,
            sdk: None,
        }
    }

    /// Tokens signed so far.
    pub fn tokens_signed(&self) -> u64 {
        self.signed.load(Ordering::Relaxed)
    }

    /// How long after signing a token is replaced (after clamping; see [`RdsIamAuthBuilder::renew_after`]).
    pub fn renew_after(&self) -> Duration {
        self.renew_after
    }

    /// The application's `SdkConfig`, or the default chain's, loaded once on first use; with a wall clock
    /// for signing, which the generator needs and a hand-built `SdkConfig` may lack.
    async fn sdk_config(&self) -> &SdkConfig {
        self.sdk
            .get_or_init(|| async {
                with_wall_clock(
                    aws_config::defaults(aws_config::BehaviorVersion::latest())
                        .load()
                        .await,
                )
            })
            .await
    }

    fn not_configured(&self, what: &'static str, source: Option<BoxError>) -> SourceError {
        SourceError::NotConfigured {
            secret_id: self.secret_id.clone(),
            what,
            source,
        }
    }

    /// The source's error for the generator's `error`, which names no token.
    fn signing_error(&self, error: BoxError) -> SourceError {
        let secret_id = self.secret_id.clone();
        let Some(credentials) = error.downcast_ref::<CredentialsError>() else {
            return SourceError::Other {
                secret_id,
                source: error,
            };
        };
        match credentials {
            CredentialsError::CredentialsNotLoaded(_) => {
                self.not_configured(NO_CREDENTIALS, Some(error))
            }
            CredentialsError::InvalidConfiguration(_) => {
                self.not_configured(BAD_CREDENTIALS_CONFIG, Some(error))
            }
            CredentialsError::ProviderTimedOut(_) => SourceError::Unreachable {
                secret_id,
                source: error,
            },
            CredentialsError::ProviderError(_) => SourceError::Unauthenticated {
                secret_id,
                source: error,
            },
            _ => SourceError::Other {
                secret_id,
                source: error,
            },
        }
    }

    /// Remembers that a token signed at `signed_at` (monotonic) is to be replaced `renew_after` later; with
    /// concurrent reads, the latest deadline wins.
    fn schedule_renewal(&self, signed_at: Instant) {
        let due = signed_at + self.renew_after;
        let mut renew_at = self.renew_at.lock().unwrap_or_else(|e| e.into_inner());
        if renew_at.is_none_or(|at| at < due) {
            *renew_at = Some(due);
        }
    }
}

const NO_CREDENTIALS: &str = "no AWS credentials to sign an RDS IAM token with; give the service a role (ECS \
     task role, EKS pod identity or IRSA, EC2 instance profile) or set AWS_PROFILE or AWS_ACCESS_KEY_ID and \
     AWS_SECRET_ACCESS_KEY";
const BAD_CREDENTIALS_CONFIG: &str =
    "the AWS credential configuration is invalid; check the profile and the AWS_* variables";
const NO_REGION: &str =
    "no AWS region to sign an RDS IAM token for; set AWS_REGION (or the profile's region), \
     or the source's region";

impl RdsIamAuthBuilder {
    /// The default of [`RdsIamAuthBuilder::renew_after`]: 10 minutes, 5 inside the token's 15.
    pub const DEFAULT_RENEW_AFTER: Duration = Duration::from_secs(10 * 60);

    /// The region the database is in. Defaults to the `SdkConfig`'s region (`AWS_REGION`, the profile).
    pub fn region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }

    /// The database to connect to, passed on in the credentials. Defaults to none (the driver's default).
    pub fn dbname(mut self, dbname: impl Into<String>) -> Self {
        self.dbname = Some(dbname.into());
        self
    }

    /// Signs with the application's `SdkConfig` (its credentials, region and clock). Defaults to the SDK's
    /// default chain (environment, profile, web identity, ECS and EC2 roles), loaded once on the first read.
    pub fn sdk_config(mut self, config: &SdkConfig) -> Self {
        self.sdk = Some(config.clone());
        self
    }

    /// How long after signing a token is replaced. Defaults to 10 minutes.
    ///
    /// Clamped to [`MIN_RENEW_AFTER`]..=[`MAX_RENEW_AFTER`] (1 s to 13 min), with a warning, so that the
    /// proactive refresh (which wakes up to 1.5 × `after_rotation` past the moment) replaces a token before its
    /// 15 minutes run out. Configuration code that wants an error instead checks against those constants.
    pub fn renew_after(mut self, renew_after: Duration) -> Self {
        self.renew_after = renew_after;
        self
    }

    /// Builds the source. Nothing is loaded or signed yet: the first read does that.
    pub fn build(self) -> RdsIamAuth {
        let renew_after = self.renew_after.clamp(MIN_RENEW_AFTER, MAX_RENEW_AFTER);
        if renew_after != self.renew_after {
            tracing::warn!(
                asked = ?self.renew_after,
                used = ?renew_after,
                "RDS IAM token renew_after is outside 1 s ..= 13 min; clamped"
            );
        }
        let secret_id = format!("rds-iam://{}@{}:{}", self.username, self.host, self.port);
        let sdk = match self.sdk {
            Some(config) => OnceCell::new_with(Some(with_wall_clock(config))),
            None => OnceCell::new(),
        };
        RdsIamAuth {
            host: self.host,
            port: self.port,
            username: self.username,
            dbname: self.dbname,
            region: self.region,
            renew_after,
            secret_id,
            sdk,
            signed: AtomicU64::new(0),
            renew_at: Mutex::new(None),
        }
    }
}

/// `config` with the system clock as its time source if it has none: the token generator refuses to sign
/// without one, and an `SdkConfig::builder()` sets none.
fn with_wall_clock(config: SdkConfig) -> SdkConfig {
    if config.time_source().is_some() {
        return config;
    }
    config
        .into_builder()
        .time_source(aws_smithy_async::time::SystemTimeSource::new())
        .build()
}

#[async_trait]
impl SecretSource for RdsIamAuth {
    async fn fetch(&self, stage: Stage) -> Result<SecretVersion, SourceError> {
        if stage != Stage::Current {
            return Err(SourceError::StageNotFound {
                secret_id: self.secret_id.clone(),
                stage,
            });
        }
        let sdk = self.sdk_config().await;
        let region = self
            .region
            .clone()
            .or_else(|| sdk.region().map(|r| r.to_string()))
            // The generator would quietly sign for us-east-1, whose tokens every other region rejects.
            .ok_or_else(|| self.not_configured(NO_REGION, None))?;
        if sdk.credentials_provider().is_none() {
            return Err(self.not_configured(NO_CREDENTIALS, None));
        }
        let config = TokenConfig::builder()
            .hostname(&self.host)
            .port(u64::from(self.port))
            .username(&self.username)
            .region(Region::new(region))
            .build()
            .map_err(|e| SourceError::Other {
                secret_id: self.secret_id.clone(),
                source: e,
            })?;
        // Taken before signing, so the renewal deadline errs early, never past the token's own expiry.
        let signed_at = Instant::now();
        let wall = sdk
            .time_source()
            .map_or_else(SystemTime::now, |clock| clock.now());
        let token = AuthTokenGenerator::new(config)
            .auth_token(sdk)
            .await
            .map_err(|e| self.signing_error(e))?;
        let n = self.signed.fetch_add(1, Ordering::Relaxed) + 1;
        self.schedule_renewal(signed_at);
        let unix = wall.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let mut credentials = Credentials::new(self.username.clone(), token.as_str())
            .with_host(self.host.clone())
            .with_port(self.port);
        if let Some(dbname) = &self.dbname {
            credentials = credentials.with_dbname(dbname.clone());
        }
        Ok(SecretVersion {
            version_id: format!("iam-{unix}-{n}"),
            credentials: Arc::new(credentials),
        })
    }

    fn secret_id(&self) -> &str {
        &self.secret_id
    }

    /// When the newest token should be replaced, or `None` before the first one.
    ///
    /// The deadline is kept on the monotonic clock and turned into a wall-clock time only now, as "the wall
    /// clock now plus what is left": the pool subtracts its own reading of the wall clock a moment later, so a
    /// wall clock that jumped since the token was signed shifts both readings alike and cannot delay renewal.
    async fn next_rotation(&self) -> Result<Option<SystemTime>, SourceError> {
        let due = *self.renew_at.lock().unwrap_or_else(|e| e.into_inner());
        Ok(due.map(|due| wall_time_of(due, Instant::now(), SystemTime::now())))
    }
}

/// The wall-clock time of the monotonic instant `due`, given one reading of each clock taken together.
fn wall_time_of(due: Instant, now: Instant, wall_now: SystemTime) -> SystemTime {
    let moved = if due >= now {
        wall_now.checked_add(due - now)
    } else {
        wall_now.checked_sub(now - due)
    };
    moved.unwrap_or(wall_now)
}

impl fmt::Debug for RdsIamAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RdsIamAuth")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("dbname", &self.dbname)
            .field("region", &self.region)
            .field("renew_after", &self.renew_after)
            .field("tokens_signed", &self.tokens_signed())
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for RdsIamAuthBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RdsIamAuthBuilder")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("dbname", &self.dbname)
            .field("region", &self.region)
            .field("renew_after", &self.renew_after)
            .field("sdk_config", &self.sdk.is_some())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deadline_becomes_the_wall_clock_now_plus_what_is_left() {
        let now = Instant::now();
        let wall = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let left = Duration::from_secs(90);
        assert_eq!(wall_time_of(now + left, now, wall), wall + left);
        assert_eq!(wall_time_of(now, now + left, wall), wall - left);
        // Whatever the wall clock reads, the distance to the deadline is what the monotonic clock says.
        let jumped = wall + Duration::from_secs(3600);
        assert_eq!(
            wall_time_of(now + left, now, jumped)
                .duration_since(jumped)
                .unwrap(),
            left
        );
    }

    #[test]
    fn renew_after_is_kept_inside_the_token_lifetime() {
        let built = |d| RdsIamAuth::builder("h", 5432, "app").renew_after(d).build();
        assert_eq!(
            built(Duration::from_secs(20 * 60)).renew_after(),
            MAX_RENEW_AFTER
        );
        assert_eq!(built(TOKEN_LIFETIME).renew_after(), MAX_RENEW_AFTER);
        assert_eq!(built(Duration::ZERO).renew_after(), MIN_RENEW_AFTER);
        assert_eq!(
            RdsIamAuth::builder("h", 5432, "app").build().renew_after(),
            RdsIamAuthBuilder::DEFAULT_RENEW_AFTER
        );
        const { assert!(MAX_RENEW_AFTER.as_secs() + 60 < TOKEN_LIFETIME.as_secs()) };
    }
}
