//! Every error a login, a pool or a builder returns, in one place. The errors of one source of trouble live
//! beside it and are re-exported here: [`SourceError`] (reading the secret), [`CredentialsError`] (its
//! contents), [`TlsError`] (certificates) and the configuration's errors.

use std::sync::Arc;

use serde::Deserialize;

pub use crate::{credentials::CredentialsError, source::SourceError};

/// `error` and each of its causes, joined by `: `, for a log line or a response body. rotapool's errors print
/// each message once and return their cause as their [`source`](std::error::Error::source), so `{error}` alone
/// says what failed, and this says why as well (a store outage's network error, say).
pub fn report(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Why the pool could not open a connection. `E` is the driver's error type.
///
/// Messages name the step that failed and what to do about it; they never contain a password.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error<E: std::error::Error + 'static> {
    /// The database kept rejecting the credentials, and the secret offered nothing newer within the time budget.
    #[error(
        "the database rejected the credentials (generation {generation}) after {attempts} login attempt(s): \
         {detail}; {remedy}"
    )]
    AuthRejected {
        /// Logins this call made before giving up (0 if the generation was already known to be rejected).
        attempts: u32,
        /// The generation of the credentials that were rejected.
        generation: u64,
        /// The database's own words, e.g. `28P01: password authentication failed for user "app"`.
        detail: String,
        /// What to do about it, as the source of the credentials advises ([`SecretSource::remedy`]): for a
        /// Secrets Manager secret, check that the last rotation completed.
        ///
        /// [`SecretSource::remedy`]: crate::SecretSource::remedy
        remedy: String,
        /// The driver error of the last login this call made, if it made one. Its words are in `detail`; it
        /// is reached through [`Error::driver_error`], not as the error's source, so a chain prints them once.
        driver: Option<E>,
    },
    /// The account is locked, blocked or expired. The pool does not retry, to avoid extending a lockout.
    #[error(
        "the database account is locked, blocked or expired: {detail}; unlock or re-enable the account \
         (for example ALTER USER ... ACCOUNT UNLOCK or FLUSH PRIVILEGES), then the pool recovers by itself"
    )]
    AccountLocked {
        /// The database's own words.
        detail: String,
        /// The driver error (its words are in `detail`; see [`Error::driver_error`]).
        driver: E,
    },
    /// Connecting failed for a reason other than the credentials.
    #[error("could not connect to the database: {detail}")]
    Connect {
        /// The database's or the network's own words.
        detail: String,
        /// The driver error (its words are in `detail`; see [`Error::driver_error`]).
        driver: E,
    },
    /// A pooled connection failed its health check.
    #[error("a pooled connection failed its health check: {detail}")]
    Unhealthy {
        /// What the check reported.
        detail: String,
        /// The driver error (its words are in `detail`; see [`Error::driver_error`]).
        driver: E,
    },
    /// The credentials were rejected and re-reading the secret failed.
    #[error("the database rejected the credentials and the secret could not be re-read")]
    Refresh(#[source] Arc<SourceError>),
}

impl<E: std::error::Error + 'static> Error<E> {
    /// The driver's own error behind this one, if a login or a check produced one (not for [`Error::Refresh`],
    /// nor for a rejection known before this call made a login).
    pub fn driver_error(&self) -> Option<&E> {
        match self {
            Self::AuthRejected { driver, .. } => driver.as_ref(),
            Self::AccountLocked { driver, .. }
            | Self::Connect { driver, .. }
            | Self::Unhealthy { driver, .. } => Some(driver),
            Self::Refresh(_) => None,
        }
    }

    /// Like [`Error::driver_error`], by value: for an adapter whose pool can only return the driver's error.
    pub fn into_driver_error(self) -> Option<E> {
        match self {
            Self::AuthRejected { driver, .. } => driver,
            Self::AccountLocked { driver, .. }
            | Self::Connect { driver, .. }
            | Self::Unhealthy { driver, .. } => Some(driver),
            Self::Refresh(_) => None,
        }
    }
}

/// Why [`Pool::get`](crate::Pool::get) returned no connection. `E` is the driver's error type.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PoolError<E: std::error::Error + 'static> {
    /// No connection within the timeout: every slot stayed busy (`Wait`), or a login (`Create`) or a check
    /// (`Recycle`) took too long.
    #[error(
        "no connection within the pool's {0} timeout; raise the pool's size or timeout, or look for \
         connections held too long"
    )]
    Timeout(TimeoutType),
    /// A connection could not be opened or checked: the rotating login's own error.
    #[error(transparent)]
    Backend(Error<E>),
    /// The pool was closed.
    #[error("the pool is closed")]
    Closed,
}

/// Which of the pool's timeouts ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeoutType {
    /// Waiting for a free slot.
    Wait,
    /// Opening a connection.
    Create,
    /// Checking an idle connection.
    Recycle,
}

impl std::fmt::Display for TimeoutType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Wait => "wait",
            Self::Create => "create",
            Self::Recycle => "recycle",
        })
    }
}

impl<E: std::error::Error + 'static> From<deadpool::managed::PoolError<Error<E>>> for PoolError<E> {
    fn from(error: deadpool::managed::PoolError<Error<E>>) -> Self {
        use deadpool::managed::{PoolError as Deadpool, TimeoutType as Phase};
        match error {
            Deadpool::Timeout(Phase::Wait) => Self::Timeout(TimeoutType::Wait),
            Deadpool::Timeout(Phase::Create) => Self::Timeout(TimeoutType::Create),
            Deadpool::Timeout(Phase::Recycle) => Self::Timeout(TimeoutType::Recycle),
            Deadpool::Backend(error) => Self::Backend(error),
            // rotapool's pools always have a runtime and no hooks, so these two cannot happen; closed is the
            // nearest truth if a future deadpool adds a way.
            Deadpool::Closed | Deadpool::NoRuntimeSpecified | Deadpool::PostCreateHook(_) => {
                Self::Closed
            }
        }
    }
}

/// Why a pool could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// No secret source was given.
    #[error("no secret source: call `secret_source(..)` or `aws_secret(..)` on the builder")]
    NoSource,
    /// A setting is out of range.
    #[error("invalid pool setting `{setting}`: {reason}")]
    InvalidSetting {
        /// The builder method's name.
        setting: &'static str,
        /// What is wrong with the value.
        reason: &'static str,
    },
    /// The initial read of the secret failed.
    #[error("could not read the secret at start-up")]
    Source(#[from] SourceError),
}

/// A value a `FromStr` of this crate does not take. Names what it takes, never echoes the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be {expected}")]
pub struct InvalidValue {
    expected: &'static str,
}

impl InvalidValue {
    pub(crate) fn new(expected: &'static str) -> Self {
        Self { expected }
    }
}

/// Deserializes `T` from a string through its `FromStr`.
pub(crate) fn from_str_value<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: std::str::FromStr<Err = InvalidValue>,
{
    let text = String::deserialize(deserializer)?;
    text.parse().map_err(serde::de::Error::custom)
}

/// Why a CA file could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// The file could not be read.
    #[error("could not read the CA bundle `{path}`")]
    Read {
        /// The path given.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file holds no PEM certificate.
    #[error(
        "the CA bundle `{path}` holds no usable PEM certificate; for RDS, download the global bundle \
         (https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem)"
    )]
    NoCertificates {
        /// The path given.
        path: String,
    },
}

/// Why a [`Config`](crate::Config) could not be read or used. Messages name the variable and what it takes; never a value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A variable holds a value of the wrong kind.
    #[error("invalid `{variable}`: {reason}")]
    Invalid {
        /// The variable, e.g. `DB__SSL_MODE`, or the setting's path without a prefix.
        variable: String,
        /// What it must be.
        reason: String,
    },
    /// A required variable is not set.
    #[error("`{variable}` is not set: {what}")]
    Missing {
        /// The variable.
        variable: String,
        /// What it is for.
        what: &'static str,
    },
    /// The CA bundle could not be used.
    #[error(transparent)]
    Tls(#[from] TlsError),
}

/// Why a pool could not be created from a [`Config`](crate::Config).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CreatePoolError {
    /// The configuration is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The pool could not be built (e.g. the secret could not be read).
    #[error(transparent)]
    Build(#[from] BuildError),
}
