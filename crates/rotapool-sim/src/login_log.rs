//! The record the switch time is measured from: every login a pool makes, with when it ended, how, and which
//! credentials it used. [`Observed`] wraps the backend the pool is built over, so the record is taken in the
//! simulator, not in rotapool. Credentials are kept as a [`Fingerprint`], never as a password.

use std::{
    hash::{DefaultHasher, Hash, Hasher},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use rotapool_core::{Backend, Credentials, Failure, Reuse};

/// Tells credentials apart without keeping their password: a hash of the user name and password, held in memory
/// and never printed.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Fingerprint(u64);

impl Fingerprint {
    /// The fingerprint of `credentials`.
    pub(crate) fn of(credentials: &Credentials) -> Self {
        let mut hasher = DefaultHasher::new();
        credentials.username().hash(&mut hasher);
        credentials.password().hash(&mut hasher);
        Self(hasher.finish())
    }
}

impl std::fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Even a hash of a password stays out of logs.
        f.write_str("Fingerprint(..)")
    }
}

/// How a login ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The database accepted the credentials.
    Ok,
    /// The database rejected them as bad credentials.
    Rejected,
    /// It failed for another reason (network, locked account, ...).
    Failed,
}

/// One login, as it ended.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LoginEvent {
    /// When the login returned.
    pub at: Instant,
    /// How long it took.
    pub took: Duration,
    /// The credentials it used.
    pub who: Fingerprint,
    /// How it ended.
    pub outcome: Outcome,
}

/// Every login of one pool, in the order they ended.
#[derive(Debug, Default)]
pub(crate) struct LoginLog {
    events: Mutex<Vec<LoginEvent>>,
}

impl LoginLog {
    fn push(&self, event: LoginEvent) {
        self.events.lock().unwrap().push(event);
    }

    /// The logins so far.
    pub(crate) fn events(&self) -> Vec<LoginEvent> {
        self.events.lock().unwrap().clone()
    }
}

/// A backend that records every login of `inner` in a [`LoginLog`], and otherwise is `inner`.
#[derive(Clone)]
pub(crate) struct Observed<B> {
    inner: B,
    log: Arc<LoginLog>,
}

impl<B> Observed<B> {
    /// `inner`, its logins recorded in `log`.
    pub(crate) fn new(inner: B, log: Arc<LoginLog>) -> Self {
        Self { inner, log }
    }
}

impl<B: Backend> Backend for Observed<B> {
    type Connection = B::Connection;
    type Error = B::Error;

    async fn connect(&self, credentials: &Credentials) -> Result<B::Connection, B::Error> {
        let started = Instant::now();
        let result = self.inner.connect(credentials).await;
        let outcome = match &result {
            Ok(_) => Outcome::Ok,
            Err(error) if self.inner.classify(error) == Failure::Auth => Outcome::Rejected,
            Err(_) => Outcome::Failed,
        };
        self.log.push(LoginEvent {
            at: Instant::now(),
            took: started.elapsed(),
            who: Fingerprint::of(credentials),
            outcome,
        });
        result
    }

    fn engines(&self) -> &'static [&'static str] {
        self.inner.engines()
    }

    fn classify(&self, error: &B::Error) -> Failure {
        self.inner.classify(error)
    }

    fn describe(&self, error: &B::Error) -> String {
        self.inner.describe(error)
    }

    async fn check(&self, connection: &mut B::Connection) -> Reuse<B::Error> {
        self.inner.check(connection).await
    }

    async fn close(&self, connection: B::Connection) {
        self.inner.close(connection).await
    }
}
