//! The rotating login: the one component every pool adapter calls to open a connection.
//!
//! It owns the current credentials (through [`refresh`]), the login permits, the attempts cap, the transient
//! retry and the classification of a failed login, and says when a connection should retire. An adapter (the
//! deadpool manager in [`crate::Pool`], the deadpool-postgres `Connect` in rotapool-postgres) calls
//! [`RotatingLogin::connect`] to open a connection and [`RotatingLogin::retirement`] before lending one again,
//! and adds only what its pool needs.
//!
//! A rotation, read in order: [`RotatingLogin::connect`] logs in; the database rejects the password;
//! `refresh::Refresher::refresh_after` re-reads the secret once for every waiting caller (`AWSCURRENT`, then a
//! trial login with `AWSPENDING`) through [`crate::source`]; the new generation is adopted, the login is tried
//! again, and [`RotatingLogin::retirement`] retires older connections spread over the drain window.

pub(crate) mod proactive;
pub(crate) mod refresh;

use std::{
    collections::BTreeMap,
    fmt,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use tokio::{sync::Semaphore, time::Instant};

use self::refresh::{Generation, Known, Probe, ProbeOutcome, RefreshError, Refresher};
use crate::{
    backend::{Backend, Failure},
    credentials::Credentials,
    error::Error,
    random::{golden, scaled},
    settings::{ConnectPolicy, DrainPolicy},
    telemetry::{LoginOutcome, Telemetry},
};

/// Counters of what the pool has done, for metrics and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// The generation of the credentials now in use.
    pub generation: u64,
    /// The secret version they came from (Secrets Manager's `VersionId`).
    pub version_id: String,
    /// When they were adopted.
    pub adopted_at: std::time::Instant,
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

/// Opens connections with the current credentials, and re-reads the secret once for all callers when the
/// database rejects them. Cheap to clone: clones share one state. Built by
/// [`PoolBuilder::build_login`](crate::PoolBuilder::build_login), or inside every [`crate::Pool`].
pub struct RotatingLogin<B> {
    logins: Arc<Logins<B>>,
}

/// A connection just opened, and the [`Tag`] that counts it under its credentials generation while it lives.
/// An adapter keeps the tag beside the connection and asks [`RotatingLogin::retirement`] about it.
#[derive(Debug)]
#[non_exhaustive]
pub struct Login<C> {
    /// The driver's connection.
    pub connection: C,
    /// Its generation and place among its peers; counted in [`Stats::connections_by_generation`] until dropped.
    pub tag: Tag,
}

/// The one door every login goes through, the refresher's trial logins and the proactive refresh's included:
/// login permits, counters, and the budget of consecutive failed logins.
struct Logins<B> {
    backend: B,
    refresher: Arc<Refresher>,
    policy: ConnectPolicy,
    /// One permit per login in flight; a login with unverified credentials takes them all.
    login_permits: Arc<Semaphore>,
    live: Arc<LiveConnections>,
    logins: AtomicU64,
    auth_failures: AtomicU64,
    /// How many of `auth_failures` a later login that succeeded has wiped from the server's count of failed
    /// logins in a row: the rest are that count as the pool must assume it (see [`Logins::failed_in_a_row`]).
    forgiven: AtomicU64,
}

/// Why one login failed: the backend's verdict, its words, and its error.
struct LoginFailure<E> {
    failure: Failure,
    detail: String,
    error: E,
}

impl<B: Backend> RotatingLogin<B> {
    /// A login through `backend` with the credentials `refresher` holds.
    pub(crate) fn new(backend: B, refresher: Arc<Refresher>, policy: ConnectPolicy) -> Self {
        Self {
            logins: Arc::new(Logins {
                backend,
                refresher,
                login_permits: Arc::new(Semaphore::new(
                    policy.max_concurrent_logins.max(1) as usize
                )),
                policy,
                live: Arc::default(),
                logins: AtomicU64::new(0),
                auth_failures: AtomicU64::new(0),
                forgiven: AtomicU64::new(0),
            }),
        }
    }

    /// Opens one connection with the current credentials. On a rejected login it waits for the re-read of the
    /// secret (one for all callers) and logs in again, up to the attempts cap and the auth budget; a login that
    /// fails for a passing reason is retried with backoff. Runs in the caller's span.
    pub async fn connect(&self) -> Result<Login<B::Connection>, Error<B::Error>> {
        let opened = self.logins.open().await;
        if let Err(error) = &opened {
            self.telemetry()
                .gave_up(error, matches!(error, Error::AccountLocked { .. }));
        }
        opened
    }

    /// Why a connection tagged `tag`, open for `age()`, should not be lent again, if it should not: its maximum
    /// lifetime (less its share of the jitter) has passed, or it logged in with older credentials and its
    /// point in the drain window has come. While the current credentials are rejected, every connection is kept:
    /// its replacement could not log in. `age` is called only when a maximum lifetime is set, so that a pool
    /// without one reads no clock per reuse.
    pub fn retirement(&self, tag: &Tag, age: impl FnOnce() -> Duration) -> Option<&'static str> {
        let reason = self.logins.retirement(tag, age);
        if let Some(reason) = reason {
            self.telemetry().retired(tag.generation, reason);
        }
        reason
    }

    /// The backend.
    pub fn backend(&self) -> &B {
        &self.logins.backend
    }

    /// The generation of the credentials now in use: 1 at start-up, one more per adopted version.
    pub fn generation(&self) -> u64 {
        self.logins.refresher.generation()
    }

    /// The credentials now in use, with the builder's host, port and database overrides applied: what a login
    /// uses, and what an adapter whose pool keeps its own connect options (sqlx) sets them from after each
    /// adoption. Their `Debug` and `Display` never show the password.
    pub fn credentials(&self) -> Arc<Credentials> {
        let current = Arc::clone(&self.logins.refresher.current().credentials);
        let endpoint = &self.logins.policy.endpoint;
        if endpoint.is_empty() {
            current
        } else {
            Arc::new(endpoint.apply(&current))
        }
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> Stats {
        let logins = &self.logins;
        let current = logins.refresher.current();
        Stats {
            generation: current.number,
            version_id: current.version_id.clone(),
            adopted_at: current.adopted_at.into_std(),
            secret_fetches: logins.refresher.fetch_count(),
            logins: logins.logins.load(Ordering::Relaxed),
            auth_failures: logins.auth_failures.load(Ordering::Relaxed),
            connections_by_generation: logins.live.snapshot(),
            login_permits_held: u64::from(logins.policy.max_concurrent_logins.max(1))
                - logins.login_permits.available_permits() as u64,
        }
    }

    pub(crate) fn telemetry(&self) -> &Telemetry {
        self.logins.telemetry()
    }

    /// The trial logins the proactive refresh makes, through the same door as every other login.
    pub(crate) fn probe(&self) -> std::sync::Weak<dyn Probe> {
        let logins: std::sync::Weak<Logins<B>> = Arc::downgrade(&self.logins);
        logins
    }
}

/// # For a pool that logs in by itself
///
/// sqlx's pool opens its connections itself, with connect options it keeps. Its adapter sets those options from
/// [`RotatingLogin::credentials`] on each adoption ([`RotatingLogin::adoptions`]), holds a [`LoginPermit`] while
/// the pool may log in, and reports what the pool's logins found ([`RotatingLogin::opened`],
/// [`RotatingLogin::rejected`]), so that the single re-read, the attempts cap, the login permits and the counters
/// work as they do for [`RotatingLogin::connect`].
impl<B: Backend> RotatingLogin<B> {
    /// A receiver that sees the generation number change each time new credentials are adopted, by a re-read
    /// after a rejected login or by the proactive refresh.
    pub fn adoptions(&self) -> tokio::sync::watch::Receiver<u64> {
        self.logins.refresher.adoptions()
    }

    /// Whether the database rejected the current credentials and no round has found usable ones since: a login
    /// with them now would be spent in vain. Wait with [`RotatingLogin::recover`] instead.
    pub fn is_rejected(&self) -> bool {
        let refresher = &self.logins.refresher;
        refresher.rejection(&refresher.current()).is_some()
    }

    /// Waits for the login permits a login with `generation`'s credentials holds: one if the database has
    /// accepted them before, all of them if not, so that unproven credentials cost one failed login at most.
    /// Hold it while the pool may log in. `None` if, by the time the permits are granted, `generation` has been
    /// rejected or replaced: a login queued behind a failing one must not fail too (call
    /// [`RotatingLogin::recover`], or look again).
    pub async fn permit(&self, generation: u64) -> Option<LoginPermit> {
        let logins = &self.logins;
        let current = logins.refresher.current();
        let known = if current.is_verified() {
            Known::Accepted
        } else {
            Known::Untried
        };
        let permits = logins.permits(known).await;
        let failed_before = logins.auth_failures.load(Ordering::Relaxed);
        let current = logins.refresher.current();
        (current.number == generation && logins.refresher.rejection(&current).is_none()).then_some(
            LoginPermit {
                _permits: permits,
                failed_before,
            },
        )
    }

    /// The retries a login that failed for a passing reason ([`Failure::Transient`]) gets in a call that began
    /// at `started`: the rotating login's own schedule, within [`ConnectPolicy::transient_retry`]. `None` if
    /// such logins are not retried.
    pub fn transient_retries(&self, started: Instant) -> Option<TransientRetries> {
        self.logins.transient_retries(started)
    }

    /// After a login failed for a passing reason (`error`): waits out the next pause of `retries` and returns
    /// `true`, or returns `false` at once if the next pause would end past their budget.
    pub async fn pause_before_retry(
        &self,
        retries: &mut TransientRetries,
        error: &B::Error,
    ) -> bool {
        let detail = self.logins.backend.describe(error);
        self.logins.pause_before_retry(Some(retries), &detail).await
    }

    /// Counts a connection the pool opened itself with `generation`'s credentials: a login that succeeded,
    /// which also proves those credentials. The returned tag counts the connection in [`Stats`] while it lives.
    ///
    /// `permit` is the one the login was made under ([`RotatingLogin::permit`]), if any. The login wipes the
    /// failures counted before that permit was granted from the failed logins in a row that
    /// [`ConnectPolicy::lockout_threshold`] keeps below the server's threshold; a failure counted later may have
    /// reached the server after this login, so it stays. Without a permit, the pool cannot tell when the login
    /// began, and wipes none.
    pub fn opened(&self, generation: u64, permit: Option<&LoginPermit>) -> Tag {
        let logins = &self.logins;
        logins.logins.fetch_add(1, Ordering::Relaxed);
        if let Some(permit) = permit {
            logins.forgive_up_to(permit.failed_before);
        }
        let current = logins.refresher.current();
        if current.number == generation {
            current.mark_verified();
        }
        Tag::new(generation, &logins.live)
    }

    /// Records that the database rejected a login the pool made with `generation`'s credentials (`error`,
    /// which [`Backend::classify`] says is [`Failure::Auth`]): counted, and, if they are still current, marked
    /// rejected so that [`RotatingLogin::recover`] re-reads the secret.
    pub fn rejected(&self, generation: u64, error: &B::Error) {
        let logins = &self.logins;
        logins.logins.fetch_add(1, Ordering::Relaxed);
        logins.auth_failures.fetch_add(1, Ordering::Relaxed);
        let current = logins.refresher.current();
        if current.number == generation {
            logins.note_rejection(&current, logins.backend.describe(error));
        }
    }

    /// After the database rejected generation `seen`: waits for the re-read of the secret (one for all
    /// callers, with the trial of `AWSPENDING`) and returns once usable credentials are current; the pool's next
    /// login uses them. `attempts` rejected logins were spent since `started`; past the attempts cap, or when
    /// the round finds nothing before the auth budget from `started` runs out, it returns
    /// [`Error::AuthRejected`] carrying `rejection`, or [`Error::Refresh`] if the secret could not be read.
    pub async fn recover(
        &self,
        seen: u64,
        attempts: u32,
        started: Instant,
        rejection: Option<B::Error>,
    ) -> Result<(), Error<B::Error>> {
        let logins = &self.logins;
        let current = logins.refresher.current();
        let Some(detail) = (current.number == seen)
            .then(|| logins.refresher.rejection(&current))
            .flatten()
        else {
            // Moved on already, or the rejection has passed.
            return Ok(());
        };
        let mut rejection = rejection;
        let deadline = started + logins.policy.auth_budget;
        let recovered = logins
            .after_rejection(seen, detail, deadline, attempts, &mut rejection)
            .await;
        if let Err(error) = &recovered {
            self.telemetry()
                .gave_up(error, matches!(error, Error::AccountLocked { .. }));
        }
        recovered
    }
}

/// Login permits held while a pool that logs in by itself may open a connection; see
/// [`RotatingLogin::permit`]. Released when dropped.
#[derive(Debug)]
pub struct LoginPermit {
    _permits: tokio::sync::OwnedSemaphorePermit,
    /// The failed logins counted when the permits were granted: a login made under them began after these.
    failed_before: u64,
}

impl<B> Clone for RotatingLogin<B> {
    fn clone(&self) -> Self {
        Self {
            logins: Arc::clone(&self.logins),
        }
    }
}

impl<B: Backend> Logins<B> {
    fn telemetry(&self) -> &Telemetry {
        self.refresher.telemetry()
    }

    /// One login with `credentials`, holding login permits: one for credentials the database has accepted
    /// before, all of them for credentials it has not, so that unproven credentials cost one failed login at most.
    ///
    /// With `generation` (whose credentials `credentials` are), the login is skipped (`Err(None)`) if, by the
    /// time the permits are granted, that generation has been rejected or replaced: logins queued behind a failing
    /// one must not fail too. So a rejection of its credentials is noted before the permits go. A retry of
    /// rejected credentials is skipped too when it could bring the failed logins in a row to the server's lockout
    /// threshold ([`ConnectPolicy::lockout_threshold`]).
    async fn login(
        &self,
        credentials: &Credentials,
        known: Known,
        generation: Option<&Generation>,
    ) -> Result<B::Connection, Option<LoginFailure<B::Error>>> {
        let _permits = self.permits(known).await;
        if let Some(generation) = generation {
            let current = self.refresher.current();
            if current.number != generation.number || self.refresher.rejection(&current).is_some() {
                return Err(None);
            }
        }
        if known == Known::Rejected && self.retry_would_risk_lockout() {
            self.telemetry().spared_lockout();
            return Err(None);
        }
        // A failure counted by now was the server's before this login reached it: its success would wipe it.
        let failed_before = self.auth_failures.load(Ordering::Relaxed);
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
        connecting
            .map_err(|error| {
                let failure = failure.unwrap_or(Failure::Other);
                let detail = self.backend.describe(&error);
                if failure == Failure::Auth {
                    self.auth_failures.fetch_add(1, Ordering::Relaxed);
                    if let Some(generation) = generation {
                        self.note_rejection(generation, detail.clone());
                    }
                }
                Some(LoginFailure {
                    failure,
                    detail,
                    error,
                })
            })
            .inspect(|_| self.forgive_up_to(failed_before))
    }

    /// Records that a login succeeded after the first `failures` failed logins were counted: the server no
    /// longer counts those among the failed logins in a row.
    fn forgive_up_to(&self, failures: u64) {
        self.forgiven.fetch_max(failures, Ordering::Relaxed);
    }

    /// The failed logins in a row the server may count: every failed login but those a login that began after
    /// them and succeeded has wiped. A login that succeeded while another failed may have reached the server
    /// first, so it wipes only what was counted before it began.
    fn failed_in_a_row(&self) -> u64 {
        let failed = self.auth_failures.load(Ordering::Relaxed);
        failed.saturating_sub(self.forgiven.load(Ordering::Relaxed))
    }

    /// Whether one more failed login could reach the server's lockout threshold.
    fn retry_would_risk_lockout(&self) -> bool {
        self.policy
            .lockout_threshold
            .is_some_and(|threshold| self.failed_in_a_row() + 1 >= u64::from(threshold))
    }

    async fn open(self: &Arc<Self>) -> Result<Login<B::Connection>, Error<B::Error>> {
        let started = Instant::now();
        let deadline = started + self.policy.auth_budget;
        let mut transient = self.transient_retries(started);
        let mut attempts = 0;
        let mut last_rejection: Option<B::Error> = None;
        loop {
            let generation = self.refresher.current();
            if let Some(detail) = self.refresher.rejection(&generation) {
                // Known to be rejected: wait for the round that finds a usable version rather than spend a login.
                self.after_rejection(
                    generation.number,
                    detail,
                    deadline,
                    attempts,
                    &mut last_rejection,
                )
                .await?;
                continue;
            }
            let failed = match self
                .login(
                    &generation.credentials,
                    if generation.is_verified() {
                        Known::Accepted
                    } else {
                        Known::Untried
                    },
                    Some(&generation),
                )
                .await
            {
                Ok(inner) => {
                    generation.mark_verified();
                    return Ok(Login {
                        connection: inner,
                        tag: Tag::new(generation.number, &self.live),
                    });
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
                    last_rejection = Some(error);
                }
                Failure::AccountLocked => {
                    return Err(Error::AccountLocked {
                        detail,
                        driver: error,
                    })
                }
                Failure::Transient => {
                    if !self.pause_before_retry(transient.as_mut(), &detail).await {
                        return Err(Error::Connect {
                            detail,
                            driver: error,
                        });
                    }
                }
                _ => {
                    return Err(Error::Connect {
                        detail,
                        driver: error,
                    })
                }
            }
        }
    }

    /// The login permits a login with credentials the database is `known` to accept or not must hold.
    async fn permits(&self, known: Known) -> tokio::sync::OwnedSemaphorePermit {
        let permits = if known == Known::Accepted {
            1
        } else {
            self.policy.max_concurrent_logins.max(1)
        };
        Arc::clone(&self.login_permits)
            .acquire_many_owned(permits)
            .await
            .expect("the login semaphore is never closed")
    }

    /// Records that the database rejected `generation`'s credentials, saying `detail`, so that no other caller
    /// spends a login on them before the next round tries them again.
    fn note_rejection(&self, generation: &Generation, detail: String) {
        self.telemetry().rejected(generation.number, &detail);
        self.refresher.mark_rejected(generation, detail);
    }

    /// After the database rejected generation `seen` (saying `detail`): waits for the round that finds a usable
    /// version, or says why there is none. `attempts` logins were spent so far, `rejection` is the last one's error.
    async fn after_rejection(
        self: &Arc<Self>,
        seen: u64,
        detail: String,
        deadline: Instant,
        attempts: u32,
        rejection: &mut Option<B::Error>,
    ) -> Result<(), Error<B::Error>> {
        match self
            .refresher
            .refresh_after(seen, deadline, self.clone())
            .await
        {
            Ok(_) if attempts < self.policy.max_auth_attempts => Ok(()),
            Ok(_) | Err(RefreshError::Unchanged) => Err(Error::AuthRejected {
                attempts,
                generation: seen,
                detail,
                remedy: self.refresher.remedy(),
                driver: rejection.take(),
            }),
            Err(RefreshError::Source(e)) => Err(Error::Refresh(e)),
        }
    }

    /// The retries a login that failed for a passing reason gets in a call that began at `started`, if any.
    fn transient_retries(&self, started: Instant) -> Option<TransientRetries> {
        self.policy
            .transient_retry
            .map(|budget| TransientRetries::new(started + budget))
    }

    /// Waits out the next pause of `retries` after a login failed for a passing reason (`detail`); `false`, at
    /// once, if there are no retries or the next would end past their budget.
    async fn pause_before_retry(
        &self,
        retries: Option<&mut TransientRetries>,
        detail: &str,
    ) -> bool {
        let Some(pause) = retries.and_then(TransientRetries::next) else {
            return false;
        };
        self.telemetry().retrying(detail, pause);
        tokio::time::sleep(pause).await;
        true
    }

    /// Why the connection tagged `tag` should not be reused, if it should not.
    fn retirement(&self, tag: &Tag, age: impl FnOnce() -> Duration) -> Option<&'static str> {
        if let Some(max) = self.policy.max_lifetime {
            let jitter = self.policy.max_lifetime_jitter.mul_f64(tag.spread);
            // While the current credentials are rejected, the login that would replace this session fails: a
            // source behind the database (a mounted file before its next sync) keeps serving from the sessions
            // it has. Checked only once the lifetime is up, off the hot path.
            if age() + jitter >= max
                && self
                    .refresher
                    .rejection(&self.refresher.current())
                    .is_none()
            {
                return Some("reached its maximum lifetime");
            }
        }
        if tag.generation >= self.refresher.generation() {
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
            DrainPolicy::Gradual { over } => drained(&current, over.mul_f64(tag.spread)),
        };
        drain_now.then_some("logged in with credentials older than the current generation")
    }
}

/// The pauses between retries of a login that failed for a passing reason: doubling from 25 ms to 1 s, each
/// drawn at random between half and all of that so that callers that failed together do not retry together,
/// within [`ConnectPolicy::transient_retry`] from the start of the call. See
/// [`RotatingLogin::transient_retries`].
#[derive(Debug)]
pub struct TransientRetries {
    until: Instant,
    ceiling: Duration,
}

impl TransientRetries {
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
        let pause = scaled(self.ceiling, 0.5, 1.0);
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

/// What a connection's adapter keeps beside it: the generation of the credentials it logged in with, and its
/// place among its peers, for spreading drains and lifetimes. Counted per generation in [`Stats`] while it lives.
pub struct Tag {
    generation: u64,
    /// Where this connection falls in [0, 1) among its peers.
    spread: f64,
    /// The count this connection is in, for its generation; it leaves the count when dropped.
    live: Arc<LiveConnections>,
}

impl Tag {
    fn new(generation: u64, live: &Arc<LiveConnections>) -> Self {
        Self {
            generation,
            spread: live.next_spread(),
            live: live.counted(generation),
        }
    }

    /// The generation of the credentials the connection logged in with.
    pub fn generation(&self) -> u64 {
        self.generation
    }
}

impl fmt::Debug for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tag")
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

/// How many connections are open per credentials generation.
#[derive(Debug, Default)]
pub(crate) struct LiveConnections {
    by_generation: Mutex<BTreeMap<u64, u64>>,
    opened: AtomicU64,
}

impl LiveConnections {
    /// Open connections per generation.
    pub(crate) fn snapshot(&self) -> BTreeMap<u64, u64> {
        self.lock().clone()
    }

    /// The next point of the golden-ratio sequence: any k consecutive connections land in k evenly spaced spots
    /// of [0, 1).
    fn next_spread(&self) -> f64 {
        golden(0.0, self.opened.fetch_add(1, Ordering::Relaxed))
    }

    /// Counts one more connection of `generation`; the [`Tag`] that holds the returned handle uncounts it.
    fn counted(self: &Arc<Self>, generation: u64) -> Arc<Self> {
        *self.lock().entry(generation).or_default() += 1;
        Arc::clone(self)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, u64>> {
        // Plain counters: a panic elsewhere cannot leave them inconsistent.
        self.by_generation.lock().unwrap_or_else(|e| e.into_inner())
    }
}

// A connection leaves its generation's count of live connections when it is dropped.
impl Drop for Tag {
    fn drop(&mut self) {
        let mut counts = self.live.lock();
        if let Some(count) = counts.get_mut(&self.generation) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.generation);
            }
        }
    }
}

impl<B> fmt::Debug for RotatingLogin<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let logins = &self.logins;
        f.debug_struct("RotatingLogin")
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A pool that logs in by itself reports each login under the permit it was made with
    /// ([`RotatingLogin::opened`]): a success wipes the failed logins counted before that permit, which the
    /// server saw before it, and keeps those counted after, which may have reached the server later.
    #[cfg(feature = "fake")]
    #[tokio::test(start_paused = true)]
    async fn a_login_under_a_permit_wipes_only_the_failures_counted_before_the_permit() {
        use crate::{
            fake::{rotate, FakeBackend, FakeDb, FakeError, FaultyStore},
            PoolBuilder,
        };

        let (db, store) = (FakeDb::new("one"), FaultyStore::new("one"));
        let login = PoolBuilder::new(FakeBackend(db.clone()))
            .secret_source(store.clone())
            .proactive_refresh(None)
            .lockout_threshold(Some(3))
            .build_login()
            .await
            .expect("the login builds");
        let in_a_row = || login.logins.failed_in_a_row();

        // Granted first; then another login of the same generation fails; then this one succeeds.
        let early = login.permit(1).await.expect("generation 1 is not rejected");
        login.rejected(1, &FakeError::BadPassword);
        assert_eq!(in_a_row(), 1);
        drop((login.opened(1, Some(&early)), early));
        assert_eq!(in_a_row(), 1, "a failure counted after the permit stays");

        // After a rotation, whose trial login wipes the count, a login with the old password fails; a permit
        // granted after that failure, then its success, wipes it.
        rotate(&db, &store, "two");
        login
            .recover(1, 1, Instant::now(), None)
            .await
            .expect("the re-read adopts generation 2");
        assert_eq!(in_a_row(), 0);
        login.rejected(1, &FakeError::BadPassword);
        assert_eq!(in_a_row(), 1);
        let late = login.permit(2).await.expect("generation 2 is not rejected");
        drop(login.opened(2, Some(&late)));
        assert_eq!(
            in_a_row(),
            0,
            "a failure counted before the permit is wiped"
        );
    }

    #[test]
    fn live_counts_follow_connections_per_generation() {
        let live = Arc::new(LiveConnections::default());
        let a = Tag::new(1, &live);
        let b = Tag::new(1, &live);
        let c = Tag::new(2, &live);
        assert_eq!(live.snapshot(), BTreeMap::from([(1, 2), (2, 1)]));
        drop((a, c));
        assert_eq!(live.snapshot(), BTreeMap::from([(1, 1)]));
        drop(b);
        assert!(live.snapshot().is_empty());
    }

    #[test]
    fn spreads_cover_the_unit_interval_evenly() {
        let live = Arc::new(LiveConnections::default());
        let mut spreads: Vec<f64> = (0..8).map(|_| live.next_spread()).collect();
        spreads.sort_by(f64::total_cmp);
        // Eight golden-ratio points leave no gap wider than a quarter of the interval.
        let widest = spreads
            .windows(2)
            .map(|w| w[1] - w[0])
            .fold(spreads[0], f64::max);
        assert!(widest < 0.25, "{spreads:?}");
    }
}
