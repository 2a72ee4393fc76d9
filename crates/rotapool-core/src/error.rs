//! The errors a rotating pool returns when it cannot hand out a connection.

use std::sync::Arc;

use crate::source::SourceError;

/// Why the pool could not open a connection. `E` is the driver's error type.
///
/// Messages name the step that failed and what to do about it; they never contain a password.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error<E: std::error::Error + 'static> {
    /// The database kept rejecting the credentials, and the secret offered nothing newer within the time budget.
    #[error(
        "the database rejected the secret's credentials (generation {generation}) after {attempts} login \
         attempt(s): {detail}; the password in the secret does not match the database: check that the last \
         rotation completed, or put the right password in the secret"
    )]
    AuthRejected {
        /// Logins this call made before giving up (0 if the generation was already known to be rejected).
        attempts: u32,
        /// The generation of the credentials that were rejected.
        generation: u64,
        /// The database's own words, e.g. `28P01: password authentication failed for user "app"`.
        detail: String,
        /// The driver error of the last login this call made, if it made one.
        #[source]
        source: Option<E>,
    },
    /// The account is locked, blocked or expired. The pool does not retry, to avoid extending a lockout.
    #[error(
        "the database account is locked, blocked or expired: {detail}; unlock or re-enable the account \
         (for example ALTER USER ... ACCOUNT UNLOCK or FLUSH PRIVILEGES), then the pool recovers by itself"
    )]
    AccountLocked {
        /// The database's own words.
        detail: String,
        /// The driver error.
        #[source]
        source: E,
    },
    /// Connecting failed for a reason other than the credentials.
    #[error("could not connect to the database: {detail}")]
    Connect {
        /// The database's or the network's own words.
        detail: String,
        /// The driver error.
        #[source]
        source: E,
    },
    /// A pooled connection failed its health check.
    #[error("a pooled connection failed its health check: {detail}")]
    Unhealthy {
        /// What the check reported.
        detail: String,
        /// The driver error.
        #[source]
        source: E,
    },
    /// The credentials were rejected and re-reading the secret failed.
    #[error("the database rejected the credentials and the secret could not be re-read: {0}")]
    Refresh(#[source] Arc<SourceError>),
}
