//! What a secret source is: the [`SecretSource`] trait, the versions and rotation windows it reports, and the
//! errors it returns. Every source in this module's siblings implements it.

use std::{
    fmt,
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use async_trait::async_trait;

use crate::credentials::{Credentials, CredentialsError};

/// A staging label of a secret version, as AWS Secrets Manager defines them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    /// `AWSCURRENT`: the version clients should use.
    Current,
    /// `AWSPENDING`: the version a rotation is installing. Not valid on the database before `setSecret`.
    Pending,
    /// `AWSPREVIOUS`: the version that was current before the last rotation finished.
    Previous,
}

impl Stage {
    /// Every label, in the order a refresh reads them: `AWSCURRENT`, `AWSPENDING`, `AWSPREVIOUS`. The one list of
    /// stages in the workspace: code that walks the labels walks this.
    pub const ALL: [Stage; 3] = [Stage::Current, Stage::Pending, Stage::Previous];

    /// The label as Secrets Manager spells it, e.g. `AWSCURRENT`.
    pub fn label(self) -> &'static str {
        match self {
            Stage::Current => "AWSCURRENT",
            Stage::Pending => "AWSPENDING",
            Stage::Previous => "AWSPREVIOUS",
        }
    }

    /// The stage a Secrets Manager label names, or `None` for a custom label.
    pub fn from_label(label: &str) -> Option<Stage> {
        Stage::ALL.into_iter().find(|stage| stage.label() == label)
    }

    /// The stages among `labels`, in [`Stage::ALL`]'s order; custom labels are left out.
    pub fn all_in<S: AsRef<str>>(labels: &[S]) -> Vec<Stage> {
        Stage::ALL
            .into_iter()
            .filter(|stage| labels.iter().any(|label| label.as_ref() == stage.label()))
            .collect()
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// When a scheduled rotation may run: Secrets Manager starts it at some moment between `opens` (the secret's
/// `NextRotationDate`) and `closes` (set by the rotation rules' `Duration`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RotationWindow {
    /// When the window opens: the rotation may run from then on.
    pub opens: SystemTime,
    /// When it closes, if the store says. `None` is taken to mean Secrets Manager's rule for a schedule in
    /// days: the end of `opens`'s UTC day.
    pub closes: Option<SystemTime>,
}

impl RotationWindow {
    /// When the window closes: `closes`, or else the end of `opens`'s UTC day; never before `opens`.
    pub fn closes_at(&self) -> SystemTime {
        self.closes
            .unwrap_or_else(|| end_of_utc_day(self.opens))
            .max(self.opens)
    }
}

/// Midnight UTC after `at` (at itself if it is midnight exactly).
pub(crate) fn end_of_utc_day(at: SystemTime) -> SystemTime {
    const DAY: u64 = 24 * 60 * 60;
    let since_epoch = at
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs().div_ceil(DAY) * DAY);
    UNIX_EPOCH + Duration::from_secs(since_epoch)
}

/// One version of a secret: its id and the credentials it holds.
#[derive(Debug, Clone)]
pub struct SecretVersion {
    /// The version id (a UUID in Secrets Manager). Two fetches returning the same id returned the same password.
    pub version_id: String,
    /// The parsed credentials.
    pub credentials: Arc<Credentials>,
}

/// A place credentials are read from. Object safe, so a pool holds an `Arc<dyn SecretSource>`.
#[async_trait]
pub trait SecretSource: Send + Sync + fmt::Debug {
    /// Fetches the version that carries `stage`. Every call reaches the store: caching is the refresher's job.
    async fn fetch(&self, stage: Stage) -> Result<SecretVersion, SourceError>;

    /// Fetches the version that carries `stage` after the database rejected the credentials in use. A source
    /// with a cache of its own (the Secrets Manager Agent) bypasses that cache here, because a rejection says
    /// that what it holds may be stale. Defaults to [`SecretSource::fetch`].
    async fn refetch(&self, stage: Stage) -> Result<SecretVersion, SourceError> {
        self.fetch(stage).await
    }

    /// The secret's name or ARN, for messages. Defaults to `"secret"`.
    fn secret_id(&self) -> &str {
        "secret"
    }

    /// When the next rotation is scheduled (Secrets Manager's `NextRotationDate`), if the store knows.
    /// Defaults to `None`.
    async fn next_rotation(&self) -> Result<Option<std::time::SystemTime>, SourceError> {
        Ok(None)
    }

    /// The window the next scheduled rotation runs in, if the store knows: it opens at
    /// [`SecretSource::next_rotation`] and closes when the secret's rotation rules say. The proactive refresh
    /// reads soon after the window opens, less and less often while it stays open, and once more after it
    /// closes. Defaults to a window that opens at [`SecretSource::next_rotation`], with no known end.
    async fn rotation_window(&self) -> Result<Option<RotationWindow>, SourceError> {
        Ok(self.next_rotation().await?.map(|opens| RotationWindow {
            opens,
            closes: None,
        }))
    }

    /// What to do when the database keeps rejecting this source's credentials and reading the source again
    /// found nothing it accepts: the advice that ends [`Error::AuthRejected`](crate::Error::AuthRejected)'s
    /// message. Defaults to advice for a secret that a rotation keeps in step with the database: check that the
    /// last rotation completed, or put the right password in the secret.
    fn remedy(&self) -> String {
        ROTATING_SECRET_REMEDY.to_owned()
    }
}

/// The advice [`SecretSource::remedy`] gives by default.
const ROTATING_SECRET_REMEDY: &str =
    "the password in the secret does not match the database: check that the \
     last rotation completed, or put the right password in the secret";

/// Boxed underlying error, so that SDK types stay out of the public API.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a secret could not be read. Messages name the secret and the stage, never the secret's value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// The secret does not exist.
    #[error("secret `{secret_id}` was not found; check the secret name or ARN and the region")]
    NotFound {
        /// The secret name or ARN that was asked for.
        secret_id: String,
    },
    /// The secret exists but has no version with this staging label.
    #[error("secret `{secret_id}` has no version labelled {stage}")]
    StageNotFound {
        /// The secret name or ARN.
        secret_id: String,
        /// The label that was asked for.
        stage: Stage,
    },
    /// The secret has no version with this id.
    #[error("secret `{secret_id}` has no version `{version_id}`; check the version id (a rotation's token)")]
    VersionNotFound {
        /// The secret name or ARN.
        secret_id: String,
        /// The version id that was asked for.
        version_id: String,
    },
    /// The caller may not make this request on the secret.
    #[error(
        "secretsmanager:{action} on secret `{secret_id}` was denied; grant secretsmanager:{action}{kms} to this \
         service's role",
        kms = kms_hint(action)
    )]
    AccessDenied {
        /// The secret name or ARN.
        secret_id: String,
        /// The Secrets Manager action that was denied, e.g. `GetSecretValue`.
        action: &'static str,
        /// The store's own error.
        #[source]
        source: BoxError,
    },
    /// The store did not accept the caller's own credentials: an unknown or deactivated access key, a wrong
    /// secret key, an expired session token, or a clock too far off.
    #[error(
        "the secret store did not accept this service's credentials while asked about `{secret_id}`; check the \
         access key and its secret, renew an expired session token, and check the clock"
    )]
    Unauthenticated {
        /// The secret name or ARN.
        secret_id: String,
        /// The store's own error.
        #[source]
        source: BoxError,
    },
    /// The store throttled the request.
    #[error("reading secret `{secret_id}` was throttled; the pool backs off and retries")]
    Throttled {
        /// The secret name or ARN.
        secret_id: String,
        /// The store's own error.
        #[source]
        source: BoxError,
    },
    /// The store could not be reached or failed for a reason that may pass.
    #[error("secret store unreachable while reading `{secret_id}`; check network access to the endpoint")]
    Unreachable {
        /// The secret name or ARN.
        secret_id: String,
        /// The store's own error.
        #[source]
        source: BoxError,
    },
    /// The store did not answer within the read timeout (see `RefreshPolicy::read_timeout`).
    #[error(
        "secret store did not answer within {after:?} while reading `{secret_id}` ({stage}); check network \
         access to the endpoint and the store's health"
    )]
    TimedOut {
        /// The secret name or ARN.
        secret_id: String,
        /// The label that was asked for.
        stage: Stage,
        /// The read timeout that ran out.
        after: std::time::Duration,
    },
    /// The secret was read but its content is not a usable RDS secret.
    #[error("secret `{secret_id}` ({stage}) is malformed")]
    InvalidContent {
        /// The secret name or ARN.
        secret_id: String,
        /// The label that was read.
        stage: Stage,
        /// What is wrong with it.
        #[source]
        source: CredentialsError,
    },
    /// The source lacks a setting it needs to produce credentials, e.g. the AWS region or credentials that an
    /// IAM auth token is signed with. The message says what to configure.
    #[error("cannot produce credentials for `{secret_id}`: {what}")]
    NotConfigured {
        /// The secret name, or what stands for it (e.g. `rds-iam://app@host:5432`).
        secret_id: String,
        /// What is missing and how to provide it.
        what: &'static str,
        /// The underlying error, if there was one.
        #[source]
        source: Option<BoxError>,
    },
    /// Any other failure of the store.
    #[error("a request for secret `{secret_id}` failed")]
    Other {
        /// The secret name or ARN.
        secret_id: String,
        /// The store's own error.
        #[source]
        source: BoxError,
    },
}

/// The KMS permission an action needs on the secret's key besides its own, as a clause of a message.
fn kms_hint(action: &str) -> &'static str {
    match action {
        "GetSecretValue" => " (and kms:Decrypt on the secret's key)",
        "PutSecretValue" => " (and kms:GenerateDataKey and kms:Decrypt on the secret's key)",
        _ => "",
    }
}

impl SourceError {
    /// Whether retrying later may succeed (throttling, network trouble, no answer).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::Throttled { .. } | Self::Unreachable { .. } | Self::TimedOut { .. }
        )
    }
}

/// Parses `text` as the secret `secret_id` at `stage`, mapping a bad document to [`SourceError::InvalidContent`].
pub(crate) fn parse_version(
    secret_id: &str,
    stage: Stage,
    version_id: String,
    text: &str,
) -> Result<SecretVersion, SourceError> {
    let credentials =
        Credentials::from_secret_json(text).map_err(|source| SourceError::InvalidContent {
            secret_id: secret_id.to_owned(),
            stage,
            source,
        })?;
    Ok(SecretVersion {
        version_id,
        credentials: Arc::new(credentials),
    })
}
