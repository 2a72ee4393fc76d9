//! The deadpool manager that logs in with the current credentials and refreshes them when they are rejected.

use std::{
    collections::BTreeMap,
    fmt,
    sync::{
        atomic::{AtomicU32, AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use deadpool::managed::{self, Metrics, RecycleError, RecycleResult};
use tokio::{sync::Semaphore, time::Instant};

use crate::{
    backend::{Backend, Failure, Reuse},
    connection::{Connection, LiveConnections},
    credentials::Credentials,
    error::Error,
    policy::{ConnectPolicy, DrainPolicy},
    refresher::{Generation, Known, Probe, ProbeOutcome, RefreshError, Refresher},
    telemetry::LoginOutcome,
};

/// Counters of what the pool has done, for metrics and tests.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Stats {
    /// The generation of the credentials now in use.
    pub generation: u64,
    /// Reads of the secret, the initial one included.
    pub secret_fetches: u64,
    /// Logins attempted, trial logins with `AWSPENDING` included.
    pub logins: u64,
    /// Logins the database rejected as bad credentials.
    pub auth_failures: u64,
    /// Open connections (idle or in use) per credentials generation.
    pub connections_by_generation: BTreeMap<u64, u64>,
    /// Login permits held right now (at most `max_concurrent_logins`); zero when no login is under way.
    pub login_permits_held: u64,
}

impl Stats {
    /// Open connections that logged in with credentials older than the current generation.
    pub fn old_generation_connections(&self) -> u64 {
        self.connections_by_generation
            .range(..self.generation)
            .map(|(_, count)| count)
            .sum()
    }
}

/// A [`deadpool::managed::Manager`] that survives password rotation. Backend crates alias it; users rarely name it.
pub struct RotatingManager<B> {
    logins: Arc<Logins<B>>,
}

/// The one door every login goes through, the refresher's trial logins and the proactive refresh's included:
/// login permits, counters, and the budget of consecutive failed logins.
struct Logins<B> {
    backend: B,
    refresher: Arc<Refresher>,
    policy: ConnectPolicy,
    /// One permit per login in flight; a login with unverified credentials takes them all.
    login_permits: Semaphore,
    live: Arc<LiveConnections>,
    logins: AtomicU64,
    auth_failures: AtomicU64,
    /// Failed logins since the last one that succeeded, as a server that blocks accounts counts them.
    consecutive_failures: AtomicU32,
}

/// Why one login failed: the backend's verdict, its words, and its error.
struct LoginFailure<E> {
    failure: Failure,
    detail: String,
    error: E,
}

impl<B: Backend> RotatingManager<B> {
    /// A manager that logs in through `backend` with the credentials `refresher` holds.
    pub fn new(backend: B, refresher: Arc<Refresher>, policy: ConnectPolicy) -> Self {
        Self {
            logins: Arc::new(Logins {
                backend,
                refresher,
                login_permits: Semaphore::new(policy.max_concurrent_logins.max(1) as usize),
                policy,
                live: Arc::default(),
                logins: AtomicU64::new(0),
                auth_failures: AtomicU64::new(0),
                consecutive_failures: AtomicU32::new(0),
            }),
        }
    }

    /// The backend.
    pub fn backend(&self) -> &B {
        &self.logins.backend
    }

    pub(crate) fn telemetry(&self) -> &crate::telemetry::Telemetry {
        self.logins.telemetry()
    }

    /// The trial logins the proactive refresh makes, through the same door as every other login.
    pub(crate) fn probe(&self) -> std::sync::Weak<dyn Probe> {
        let logins: std::sync::Weak<Logins<B>> = Arc::downgrade(&self.logins);
        logins
    }

    /// The refresher holding the credentials.
    pub fn refresher(&self) -> &Arc<Refresher> {
        &self.logins.refresher
    }

    /// The policy this manager follows.
    pub fn policy(&self) -> &ConnectPolicy {
        &self.logins.policy
    }

    /// The generation of the credentials now in use.
    pub fn generation(&self) -> u64 {
        self.logins.refresher.generation()
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> Stats {
        let logins = &self.logins;
        Stats {
            generation: self.generation(),
            secret_fetches: logins.refresher.fetch_count(),
            logins: logins.logins.load(Ordering::Relaxed),
            auth_failures: logins.auth_failures.load(Ordering::Relaxed),
            connections_by_generation: logins.live.snapshot(),
            login_permits_held: u64::from(logins.policy.max_concurrent_logins.max(1))
                - logins.login_permits.available_permits() as u64,
        }
    }
}

impl<B: Backend> Logins<B> {
    fn telemetry(&self) -> &crate::telemetry::Telemetry {
        self.refresher.telemetry()
    }

    /// One login with `credentials`, holding login permits: one for credentials the database has accepted
    /// before, all of them for credentials it has not, so that unproven credentials cost one failed login at most.
    ///
    /// With `generation`, the login is skipped (`Err(None)`) if, by the time the permits are granted, that
    /// generation has been rejected or replaced: logins queued behind a failing one must not fail too. A retry of
    /// rejected credentials is skipped too when it could bring the failed logins in a row to the server's lockout
    /// threshold ([`ConnectPolicy::lockout_threshold`]).
    async fn login(
        &self,
        credentials: &Credentials,
        known: Known,
        generation: Option<u64>,
    ) -> Result<B::Connection, Option<LoginFailure<B::Error>>> {
        let permits = if known == Known::Accepted {
            1
        } else {
            self.policy.max_concurrent_logins.max(1)
        };
        let _permits = self
            .login_permits
            .acquire_many(permits)
            .await
            .expect("the login semaphore is never closed");
        if let Some(number) = generation {
            let current = self.refresher.current();
            if current.number != number || self.refresher.rejection(&current).is_some() {
                return Err(None);
            }
        }
        if known == Known::Rejected && self.retry_would_risk_lockout() {
            self.telemetry().spared_lockout();
            return Err(None);
        }
        self.logins.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let connecting = if self.policy.endpoint.is_empty() {
            self.backend.connect(credentials).await
        } else {
            self.backend
                .connect(&self.policy.endpoint.apply(credentials))
                .await
        };
        let failure = connecting
            .as_ref()
            .err()
            .map(|error| self.backend.classify(error));
        let outcome = match failure {
            None => LoginOutcome::Ok,
            Some(Failure::Auth) => LoginOutcome::AuthRejected,
            Some(Failure::AccountLocked) => LoginOutcome::Locked,
            Some(_) => LoginOutcome::Error,
        };
        self.telemetry().login(outcome, started.elapsed());
        match failure {
            None => self.consecutive_failures.store(0, Ordering::Relaxed),
            Some(Failure::Auth) => {
                self.consecutive_failures.fetch_add(1, Ordering::Relaxed);
            }
            Some(_) => {}
        }
        connecting.map_err(|error| {
            let failure = failure.unwrap_or(Failure::Other);
            if failure == Failure::Auth {
                self.auth_failures.fetch_add(1, Ordering::Relaxed);
            }
            Some(LoginFailure {
                failure,
                detail: self.backend.describe(&error),
                error,
            })
        })
    }

    /// Whether one more failed login could reach the server's lockout threshold.
    fn retry_would_risk_lockout(&self) -> bool {
        self.policy.lockout_threshold.is_some_and(|threshold| {
            self.consecutive_failures.load(Ordering::Relaxed) + 1 >= threshold
        })
    }

    async fn open(self: &Arc<Self>) -> Result<Connection<B::Connection>, Error<B::Error>> {
        let started = Instant::now();
        let deadline = started + self.policy.auth_budget;
        let mut transient = self
            .policy
            .transient_retry
            .map(|budget| Backoff::new(started + budget));
        let mut attempts = 0;
        let mut last_rejection: Option<B::Error> = None;
        loop {
            let generation = self.refresher.current();
            if let Some(detail) = self.refresher.rejection(&generation) {
                // Known to be rejected: wait for the round that finds a usable version rather than spend a login.
                match self
                    .refresher
                    .refresh_after(generation.number, deadline, self.clone())
                    .await
                {
                    Ok(_) if attempts < self.policy.max_auth_attempts => continue,
                    Ok(_) | Err(RefreshError::Unchanged) => {
                        return Err(Error::AuthRejected {
                            attempts,
                            generation: generation.number,
                            detail,
                            source: last_rejection,
                        })
                    }
                    Err(RefreshError::Source(e)) => return Err(Error::Refresh(e)),
                }
            }
            let failed = match self
                .login(
                    &generation.credentials,
                    if generation.is_verified() {
                        Known::Accepted
                    } else {
                        Known::Untried
                    },
                    Some(generation.number),
                )
                .await
            {
                Ok(inner) => {
                    generation.mark_verified();
                    return Ok(Connection::new(inner, generation.number, &self.live));
                }
                Err(None) => continue,
                Err(Some(failed)) => failed,
            };
            let LoginFailure {
                failure,
                detail,
                error,
            } = failed;
            match failure {
                Failure::Auth => {
                    attempts += 1;
                    self.telemetry().rejected(generation.number, &detail);
                    self.refresher.mark_rejected(&generation, detail);
                    last_rejection = Some(error);
                }
                Failure::AccountLocked => {
                    return Err(Error::AccountLocked {
                        detail,
                        source: error,
                    })
                }
                Failure::Transient => {
                    let Some(pause) = transient.as_mut().and_then(Backoff::next) else {
                        return Err(Error::Connect {
                            detail,
                            source: error,
                        });
                    };
                    self.telemetry().retrying(&detail, pause);
                    tokio::time::sleep(pause).await;
                }
                _ => {
                    return Err(Error::Connect {
                        detail,
                        source: error,
                    })
                }
            }
        }
    }

    /// Why `conn` should not be reused, if it should not.
    fn retirement(
        &self,
        conn: &Connection<B::Connection>,
        metrics: &Metrics,
    ) -> Option<&'static str> {
        if let Some(max) = self.policy.max_lifetime {
            let jitter = self.policy.max_lifetime_jitter.mul_f64(conn.spread());
            if metrics.age() + jitter >= max {
                return Some("reached its maximum lifetime");
            }
        }
        if conn.credentials_generation() >= self.refresher.generation() {
            return None;
        }
        let current = self.refresher.current();
        if self.refresher.rejection(&current).is_some() {
            // While the current credentials are rejected, older sessions may be all that works.
            return None;
        }
        let drain_now = match self.policy.drain {
            DrainPolicy::Keep => false,
            DrainPolicy::Immediate => true,
            DrainPolicy::Gradual { over } => drained(&current, over.mul_f64(conn.spread())),
        };
        drain_now.then_some("logged in with credentials older than the current generation")
    }
}

/// The pauses between retries of a login that failed for a passing reason: doubling from 25 ms to 1 s, each
/// drawn at random between half and all of that so that callers that failed together do not retry together.
struct Backoff {
    until: Instant,
    ceiling: Duration,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(25);
    const LONGEST: Duration = Duration::from_secs(1);

    fn new(until: Instant) -> Self {
        Self {
            until,
            ceiling: Self::FIRST,
        }
    }

    /// The next pause, or `None` if it would end past the deadline.
    fn next(&mut self) -> Option<Duration> {
        let pause = crate::random::scaled(self.ceiling, 0.5, 1.0);
        self.ceiling = (self.ceiling * 2).min(Self::LONGEST);
        (Instant::now() + pause < self.until).then_some(pause)
    }
}

/// Whether the drain point `offset` after `current` was adopted has passed.
fn drained(current: &Generation, offset: Duration) -> bool {
    current.adopted_at.elapsed() >= offset
}

/// Trial logins for the refresher, through the same permits and counters as other logins.
#[async_trait::async_trait]
impl<B: Backend> Probe for Logins<B> {
    async fn try_login(&self, credentials: &Credentials, known: Known) -> ProbeOutcome {
        match self.login(credentials, known, None).await {
            Ok(_) => ProbeOutcome::Accepted,
            Err(Some(failed)) if failed.failure == Failure::Auth => ProbeOutcome::Rejected,
            Err(None) => ProbeOutcome::Inconclusive,
            Err(Some(failed)) => {
                self.telemetry().trial_failed(&failed.detail);
                ProbeOutcome::Inconclusive
            }
        }
    }
}

impl<B: Backend> managed::Manager for RotatingManager<B> {
    type Type = Connection<B::Connection>;
    type Error = Error<B::Error>;

    /// Runs in the caller's span: what a login and its refresh report shows up under the request that needed
    /// the connection.
    async fn create(&self) -> Result<Self::Type, Self::Error> {
        let opened = self.logins.open().await;
        if let Err(error) = &opened {
            self.telemetry()
                .gave_up(error, matches!(error, Error::AccountLocked { .. }));
        }
        opened
    }

    async fn recycle(
        &self,
        conn: &mut Self::Type,
        metrics: &Metrics,
    ) -> RecycleResult<Self::Error> {
        if let Some(reason) = self.logins.retirement(conn, metrics) {
            self.telemetry()
                .retired(conn.credentials_generation(), reason);
            return Err(RecycleError::message(reason));
        }
        let backend = self.backend();
        match backend.check(conn.inner_mut()).await {
            Reuse::Keep => Ok(()),
            Reuse::Retire(reason) => {
                self.telemetry()
                    .retired(conn.credentials_generation(), reason);
                Err(RecycleError::message(reason))
            }
            Reuse::Broken(source) => Err(RecycleError::Backend(Error::Unhealthy {
                detail: backend.describe(&source),
                source,
            })),
        }
    }
}

impl<B> fmt::Debug for RotatingManager<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let logins = &self.logins;
        f.debug_struct("RotatingManager")
            .field("refresher", &logins.refresher)
            .field("policy", &logins.policy)
            .field("logins", &logins.logins.load(Ordering::Relaxed))
            .field(
                "auth_failures",
                &logins.auth_failures.load(Ordering::Relaxed),
            )
            .finish_non_exhaustive()
    }
}
