//! The single-flight refresher: the pool's one copy of the credentials, and the only code that re-reads the secret.

use std::{
    fmt,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex, RwLock,
    },
    time::Duration,
};

use tokio::time::Instant;
use tracing::Instrument;

use crate::{
    credentials::Credentials,
    settings::RefreshPolicy,
    source::{RotationWindow, SecretSource, SecretVersion, SourceError, Stage},
    telemetry::{AdoptedBy, Telemetry},
};

/// One adopted version of the secret. Generation numbers start at 1 and grow by one per adoption.
#[derive(Debug)]
pub(crate) struct Generation {
    /// The generation number; connections are tagged with it.
    pub number: u64,
    /// The secret version id it came from.
    pub version_id: String,
    /// The credentials of that version.
    pub credentials: Arc<Credentials>,
    /// When the pool adopted this version.
    pub adopted_at: Instant,
    /// Whether a login with these credentials has succeeded.
    verified: AtomicBool,
}

impl Generation {
    fn new(number: u64, version_id: String, credentials: Arc<Credentials>) -> Self {
        Self {
            number,
            version_id,
            credentials,
            adopted_at: Instant::now(),
            verified: AtomicBool::new(false),
        }
    }

    /// Whether the database has accepted a login with these credentials.
    pub(crate) fn is_verified(&self) -> bool {
        self.verified.load(Ordering::Acquire)
    }

    /// Records that the database accepted a login with these credentials.
    pub(crate) fn mark_verified(&self) {
        self.verified.store(true, Ordering::Release);
    }
}

/// How the refresher reads the secret: how long one read may take, and how often it reads while logins fail.
///
/// What a trial login with candidate credentials showed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ProbeOutcome {
    /// The database accepted them.
    Accepted,
    /// The database rejected them as bad credentials.
    Rejected,
    /// The login failed for another reason, or was not made; nothing was learned about the credentials.
    Inconclusive,
}

/// What the database said about credentials the last time they were tried, which decides what a login with them
/// may cost (see [`crate::settings::ConnectPolicy::lockout_threshold`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Known {
    /// A login with them has succeeded.
    Accepted,
    /// No login with them has been made.
    Untried,
    /// The database rejected them; this login tries them again.
    Rejected,
}

/// Tries a login with candidate credentials. The refresher adopts a version only after the database has accepted
/// it, so that a secret store ahead of the database never takes the pool off a password that works.
#[async_trait::async_trait]
pub(crate) trait Probe: Send + Sync {
    /// Logs in with `credentials`, whose history is `known`, and reports the outcome; the connection, if any, is
    /// closed.
    async fn try_login(&self, credentials: &Credentials, known: Known) -> ProbeOutcome;
}

/// Why [`Refresher::refresh_after`] returned no usable generation.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum RefreshError {
    /// The last round found no version the database accepts.
    #[error("the secret holds no version the database accepts yet")]
    Unchanged,
    /// The last read of the secret failed.
    #[error(transparent)]
    Source(Arc<SourceError>),
}

/// Holds the current credentials and re-reads the secret, once for all callers, when they are rejected.
pub(crate) struct Refresher {
    source: Arc<dyn SecretSource>,
    policy: RefreshPolicy,
    current: RwLock<Arc<Generation>>,
    /// `current`'s number, readable without the lock: the check every reused connection goes through.
    number: AtomicU64,
    /// The versions the database rejected, each tried again at the failure pace.
    rejected: Mutex<Rejections>,
    /// Set while the current generation is rejected and the rounds so far found no way out.
    struggle: Mutex<Option<Struggle>>,
    /// The version ids of earlier generations, newest last (a few): a version the pool has moved past.
    superseded: Mutex<Vec<String>>,
    /// The `AWSCURRENT` version the database rejected, if the pool does not use it: a store ahead of the
    /// database, which the proactive refresh follows at the failure pace.
    ahead: Mutex<Option<String>>,
    /// Held by the one round in flight after a rejected login; callers that arrive meanwhile wait for its end.
    /// The proactive refresh never takes it, so a rejected login never waits for a background read.
    flight: Arc<tokio::sync::Mutex<()>>,
    /// Completed rounds of reading; callers wait on it for the round in flight to end.
    rounds: tokio::sync::watch::Sender<u64>,
    /// The number of the generation in use, sent on each adoption: an adapter whose pool keeps its own connect
    /// options (sqlx) updates them when it changes.
    adoptions: tokio::sync::watch::Sender<u64>,
    fetches: AtomicU64,
    telemetry: Telemetry,
}

/// A failure that the reads have not ended yet: the generation it is about, when it began, when the next round
/// may run, and what the last round found.
#[derive(Debug, Clone)]
struct Struggle {
    generation: u64,
    since: Instant,
    next_round_at: Instant,
    last: RefreshError,
}

/// One version the database rejected: never abandoned, because the store can be ahead of the database (a
/// lagging replica, a proxy's copy, an operator who updates the secret first) and a rejection can be spurious.
#[derive(Debug, Clone)]
struct Rejection {
    /// The database's words, for the error a caller gets.
    detail: String,
    /// When its current run of rejections began: the pace slows after [`RefreshPolicy::slow_after`].
    since: Instant,
    /// When it may be tried again.
    next_try_at: Instant,
}

/// The rejected versions by id; a few at most, since only versions read from the store's three labels get here.
#[derive(Debug, Default)]
struct Rejections(Vec<(String, Rejection)>);

impl Rejections {
    const KEPT: usize = 8;

    fn get(&self, version_id: &str) -> Option<&Rejection> {
        self.0
            .iter()
            .find(|(id, _)| id == version_id)
            .map(|(_, r)| r)
    }

    /// Records a rejection of `version_id`; returns whether it was news (the version was not rejected before).
    fn record(&mut self, version_id: &str, detail: String, policy: &RefreshPolicy) -> bool {
        let now = Instant::now();
        if let Some((_, known)) = self.0.iter_mut().find(|(id, _)| id == version_id) {
            known.detail = detail;
            known.next_try_at = now + policy.shortest_pause(known.since);
            return false;
        }
        if self.0.len() == Self::KEPT {
            self.0.remove(0);
        }
        let next_try_at = now + policy.shortest_pause(now);
        self.0.push((
            version_id.to_owned(),
            Rejection {
                detail,
                since: now,
                next_try_at,
            },
        ));
        true
    }

    fn clear(&mut self, version_id: &str) {
        self.0.retain(|(id, _)| id != version_id);
    }

    /// Makes every rejected version but `except` due for a try now.
    fn all_due_except(&mut self, except: &str) {
        let now = Instant::now();
        for (_, rejection) in self.0.iter_mut().filter(|(id, _)| id != except) {
            rejection.next_try_at = now;
        }
    }
}

impl Refresher {
    /// Reads `AWSCURRENT` once and adopts it as generation 1.
    pub(crate) async fn new(
        source: Arc<dyn SecretSource>,
        policy: RefreshPolicy,
    ) -> Result<Self, SourceError> {
        let name = source.secret_id().to_owned();
        Self::named(source, policy, &name).await
    }

    /// Like [`Refresher::new`], naming the pool it serves in traces and metrics.
    pub(crate) async fn named(
        source: Arc<dyn SecretSource>,
        policy: RefreshPolicy,
        name: &str,
    ) -> Result<Self, SourceError> {
        let telemetry = Telemetry::new(name, source.secret_id());
        let started = Instant::now();
        let first = read(source.as_ref(), Stage::Current, policy.read_timeout).await;
        telemetry.read(
            Stage::Current,
            first.as_ref().map(|_| ()),
            started.elapsed(),
        );
        let first = first?;
        Ok(Self {
            policy,
            current: RwLock::new(Arc::new(Generation::new(
                1,
                first.version_id,
                first.credentials,
            ))),
            number: AtomicU64::new(1),
            rejected: Mutex::new(Rejections::default()),
            struggle: Mutex::new(None),
            superseded: Mutex::new(Vec::new()),
            ahead: Mutex::new(None),
            flight: Arc::default(),
            rounds: tokio::sync::watch::Sender::new(0),
            adoptions: tokio::sync::watch::Sender::new(1),
            fetches: AtomicU64::new(1),
            telemetry,
            source,
        })
    }

    /// What the source advises when the database keeps rejecting its credentials.
    pub(crate) fn remedy(&self) -> String {
        self.source.remedy()
    }

    pub(crate) fn telemetry(&self) -> &Telemetry {
        &self.telemetry
    }

    /// The generation in use. Cheap: one `Arc` clone under a lock that is never held across an await.
    pub(crate) fn current(&self) -> Arc<Generation> {
        Arc::clone(&self.current.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// The number of the generation in use; cheaper than [`Refresher::current`].
    pub(crate) fn generation(&self) -> u64 {
        self.number.load(Ordering::Acquire)
    }

    /// A receiver that sees the generation number change on each adoption.
    pub(crate) fn adoptions(&self) -> tokio::sync::watch::Receiver<u64> {
        self.adoptions.subscribe()
    }

    /// How many times the secret has been read, the first read included.
    pub(crate) fn fetch_count(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    /// The policy this refresher follows.
    pub(crate) fn policy(&self) -> &RefreshPolicy {
        &self.policy
    }

    fn rejections(&self) -> std::sync::MutexGuard<'_, Rejections> {
        // Plain bookkeeping: a panic elsewhere cannot leave it inconsistent.
        self.rejected.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records that the database rejected `generation`, so that no other caller spends a login on it before the
    /// next round tries it again. The first rejection of the version in use is news about the database: every
    /// version it rejected before becomes due for a try at once.
    pub(crate) fn mark_rejected(&self, generation: &Generation, detail: String) {
        let mut rejected = self.rejections();
        let news = rejected.record(&generation.version_id, detail, &self.policy);
        if news && generation.number == self.generation() {
            rejected.all_due_except(&generation.version_id);
        }
    }

    /// If the database rejected `generation` and it has not logged in since, what the database said.
    pub(crate) fn rejection(&self, generation: &Generation) -> Option<String> {
        self.rejections()
            .get(&generation.version_id)
            .map(|r| r.detail.clone())
    }

    /// When the next try of an `AWSCURRENT` the database rejected is due, if the store is ahead of the database:
    /// the proactive refresh wakes then, so that it follows the database at the failure pace.
    pub(crate) fn next_retry_at(&self) -> Option<Instant> {
        let ahead = self
            .ahead
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()?;
        self.rejections().get(&ahead).map(|r| r.next_try_at)
    }

    /// Returns a usable generation after the database rejected generation `seen`, reading the secret if need be:
    /// a newer one, or `seen` itself once a retry shows the rejection has passed.
    ///
    /// Single flight: callers that saw the same generation share one round. A caller that arrives after the
    /// generation moved gets the new one without a read, and one that arrives while a round runs gets that
    /// round's answer. The round runs as a task of its own, so a caller that gives up (a cancelled `get()`, a
    /// timeout) never abandons the read the others wait on, and impatient callers cannot start one read each. A
    /// round tries, through `probe`, each version the database has not rejected recently: `AWSCURRENT`;
    /// `AWSPENDING` (between setSecret and finishSecret, the live password); `AWSPREVIOUS` (the password a store
    /// ahead of the database replaced), unless the pool has moved past it; and last the rejected generation
    /// itself. It adopts the first one the database accepts. After a round that found nothing, callers get its
    /// answer at once until the next round is due (see [`RefreshPolicy`]); `deadline` bounds only the wait for
    /// the round in flight.
    pub(crate) async fn refresh_after(
        self: &Arc<Self>,
        seen: u64,
        deadline: Instant,
        probe: Arc<dyn Probe>,
    ) -> Result<Arc<Generation>, RefreshError> {
        if let Some(usable) = self.usable_after(seen) {
            return Ok(usable);
        }
        if let Some(answer) = self.answer_until_next_round(seen) {
            return Err(answer);
        }
        let mut rounds = self.rounds.subscribe();
        let at_entry = *rounds.borrow_and_update();
        if let Ok(flight) = Arc::clone(&self.flight).try_lock_owned() {
            // No round in flight. One may have ended since the checks above: then its answer stands.
            if *self.rounds.borrow() == at_entry && self.answer_until_next_round(seen).is_none() {
                let refresher = Arc::clone(self);
                // The round's span is a child of the caller's and closes when the round ends, so that what the
                // round finds shows up under the request that asked for it.
                let round = self.telemetry.round_span();
                tokio::spawn(
                    async move {
                        refresher.run_round(probe.as_ref()).await;
                        drop(flight);
                    }
                    .instrument(round),
                );
            }
        }
        // A deadline that passes leaves the last answer, as a round that ended would.
        let _ = tokio::time::timeout_at(deadline, rounds.wait_for(|n| *n != at_entry)).await;
        self.usable_after(seen)
            .ok_or_else(|| self.last_answer(seen))
    }

    /// One round for the generation in use, if it is still rejected, and the struggle it leaves.
    ///
    /// The struggle is about that generation only. If the pool left it while the round ran (the proactive refresh
    /// adopted a rotation it saw too), the adoption ended the failure, and the round's empty answer must not be
    /// given to callers of the new generation: a second rotation close behind would fail them without a read.
    async fn run_round(&self, probe: &dyn Probe) {
        let current = self.current();
        if self.rejection(&current).is_some() {
            let found = self.round(&current, probe).await;
            let mut struggle = self.struggle.lock().unwrap_or_else(|e| e.into_inner());
            match found {
                // Checked under the struggle's lock, which an adoption takes after it moves the pool on.
                Err(last) if self.generation() == current.number => {
                    let since = struggle
                        .as_ref()
                        .filter(|s| s.generation == current.number)
                        .map_or_else(Instant::now, |s| s.since);
                    *struggle = Some(Struggle {
                        generation: current.number,
                        since,
                        next_round_at: Instant::now() + self.policy.pause(since),
                        last,
                    });
                }
                Err(_) => {}
                // Accepted again: the rejection has passed, and with it the failure.
                Ok(_) => *struggle = None,
            }
        }
        self.rounds.send_modify(|n| *n += 1);
    }

    /// The current generation if it is newer than `seen` or no longer rejected.
    fn usable_after(&self, seen: u64) -> Option<Arc<Generation>> {
        let current = self.current();
        (current.number > seen || self.rejection(&current).is_none()).then_some(current)
    }

    /// The last round's answer about generation `seen`, if the next round is not due yet.
    fn answer_until_next_round(&self, seen: u64) -> Option<RefreshError> {
        let struggle = self.struggle.lock().unwrap_or_else(|e| e.into_inner());
        struggle
            .as_ref()
            .filter(|s| s.generation == seen && Instant::now() < s.next_round_at)
            .map(|s| s.last.clone())
    }

    /// The last round's answer about generation `seen`, for a caller that queued behind it.
    fn last_answer(&self, seen: u64) -> RefreshError {
        let struggle = self.struggle.lock().unwrap_or_else(|e| e.into_inner());
        struggle
            .as_ref()
            .filter(|s| s.generation == seen)
            .map_or(RefreshError::Unchanged, |s| s.last.clone())
    }

    /// One round after `current` was rejected: the store's three labels, then `current` again.
    async fn round(
        &self,
        current: &Arc<Generation>,
        probe: &dyn Probe,
    ) -> Result<Arc<Generation>, RefreshError> {
        let mut outcome = Err(RefreshError::Unchanged);
        let mut seen = vec![current.version_id.clone()];
        // What AWSCURRENT held when this round read it.
        let mut current_label = None;
        for stage in Stage::ALL {
            // A login was rejected: the source's own cache, if it keeps one, may hold what the database refused.
            let mut version = match self.read(stage, Read::AfterRejection).await {
                Ok(version) => version,
                Err(SourceError::StageNotFound { .. }) => continue,
                // The store is down or hung: the other labels would fail the same way, or time out one by one.
                Err(error) if stage == Stage::Current => {
                    outcome = Err(RefreshError::Source(Arc::new(error)));
                    break;
                }
                Err(error) => {
                    self.telemetry.read_failed(stage, &error);
                    continue;
                }
            };
            let mut by = AdoptedBy::from(stage);
            match stage {
                Stage::Current => current_label = Some(version.version_id.clone()),
                // AWSPREVIOUS holds what AWSCURRENT held a moment ago: finishSecret ran between the two reads
                // (AWSPENDING was read gone), and AWSCURRENT now holds the new version. Read it again rather than
                // answer "nothing" to every caller until the next round.
                Stage::Previous if current_label.as_ref() == Some(&version.version_id) => {
                    match self.read(Stage::Current, Read::AfterRejection).await {
                        Ok(moved) => (version, by) = (moved, AdoptedBy::Current),
                        Err(error) => {
                            self.telemetry.read_failed(Stage::Current, &error);
                            continue;
                        }
                    }
                }
                _ => {}
            }
            // AWSPREVIOUS is the way back for a store ahead of the database, not to a version the pool left.
            if seen.contains(&version.version_id)
                || (by == AdoptedBy::Previous && self.is_superseded(&version.version_id))
            {
                continue;
            }
            seen.push(version.version_id.clone());
            if let Ok(adopted) = self.adopt_if_accepted(current, version, by, probe).await {
                return Ok(adopted);
            }
        }
        if self.retry_due(&current.version_id) {
            match probe.try_login(&current.credentials, Known::Rejected).await {
                ProbeOutcome::Accepted => {
                    self.telemetry.accepted_again(current.number);
                    self.rejections().clear(&current.version_id);
                    current.mark_verified();
                    return Ok(Arc::clone(current));
                }
                ProbeOutcome::Rejected => {
                    let detail = self.rejection(current).unwrap_or_default();
                    self.rejections()
                        .record(&current.version_id, detail, &self.policy);
                }
                ProbeOutcome::Inconclusive => {}
            }
        }
        outcome
    }

    /// Whether `version_id` is not rejected, or its next try is due.
    fn retry_due(&self, version_id: &str) -> bool {
        self.rejections()
            .get(version_id)
            .is_none_or(|r| r.next_try_at <= Instant::now())
    }

    /// Tries `version` through `probe`, unless it was rejected and its next try is not due, and adopts it if the
    /// database accepts it and the pool is still on `current`. Otherwise says what the try showed
    /// ([`ProbeOutcome::Inconclusive`] if none was made).
    async fn adopt_if_accepted(
        &self,
        current: &Generation,
        version: SecretVersion,
        by: AdoptedBy,
        probe: &dyn Probe,
    ) -> Result<Arc<Generation>, ProbeOutcome> {
        let known = match self.rejections().get(&version.version_id) {
            Some(rejection) if rejection.next_try_at > Instant::now() => {
                return Err(ProbeOutcome::Inconclusive)
            }
            Some(_) => Known::Rejected,
            None => Known::Untried,
        };
        match probe.try_login(&version.credentials, known).await {
            ProbeOutcome::Accepted => {
                self.rejections().clear(&version.version_id);
                let adopted = self
                    .adopt(current, version, by)
                    .ok_or(ProbeOutcome::Inconclusive)?;
                adopted.mark_verified();
                Ok(adopted)
            }
            ProbeOutcome::Rejected => {
                self.telemetry.not_accepted_yet(&version.version_id, by);
                self.rejections().record(
                    &version.version_id,
                    "rejected by the database".to_owned(),
                    &self.policy,
                );
                if matches!(by, AdoptedBy::Current | AdoptedBy::Proactive) {
                    *self.ahead.lock().unwrap_or_else(|e| e.into_inner()) =
                        Some(version.version_id);
                }
                Err(ProbeOutcome::Rejected)
            }
            ProbeOutcome::Inconclusive => Err(ProbeOutcome::Inconclusive),
        }
    }

    /// Reads `AWSCURRENT` outside any failure and adopts it once the database accepts it: the proactive refresh
    /// that picks up a finished rotation before any login fails. Returns whether a new generation was adopted.
    ///
    /// It takes no lock across its read or its login, so it never delays a read that a rejected login asks for.
    /// A version the database rejects (a store ahead of the database) is not adopted, and is tried again at the
    /// failure pace; after each such try, the version in use proves that it still logs in, which also resets a
    /// server's count of consecutive failed logins. A version the pool has moved past is not adopted again: after
    /// `AWSPENDING` was adopted between setSecret and finishSecret, `AWSCURRENT` still names the old version.
    pub(crate) async fn refresh_proactively(
        &self,
        probe: &dyn Probe,
    ) -> Result<bool, Arc<SourceError>> {
        let current = self.current();
        let version = self
            .read(Stage::Current, Read::Routine)
            .await
            .map_err(Arc::new)?;
        if version.version_id == current.version_id || self.is_superseded(&version.version_id) {
            return Ok(false);
        }
        let tried = self
            .adopt_if_accepted(&current, version, AdoptedBy::Proactive, probe)
            .await;
        if tried.is_ok() {
            self.rounds.send_modify(|n| *n += 1);
            return Ok(true);
        }
        // Only after a refused try: the login that proves the version in use still works also resets the
        // server's count of failed logins in a row.
        if matches!(tried, Err(ProbeOutcome::Rejected))
            && current.is_verified()
            && self.rejection(&current).is_none()
        {
            let still = probe.try_login(&current.credentials, Known::Accepted).await;
            if still == ProbeOutcome::Rejected {
                self.mark_rejected(&current, "rejected by the database".to_owned());
            }
        }
        Ok(false)
    }

    /// The window of the secret's next scheduled rotation, read within the read timeout.
    pub(crate) async fn rotation_window(&self) -> Result<Option<RotationWindow>, SourceError> {
        let source = self.source.as_ref();
        within(
            self.policy.read_timeout,
            source,
            Stage::Current,
            source.rotation_window(),
        )
        .await
    }

    async fn read(&self, stage: Stage, kind: Read) -> Result<SecretVersion, SourceError> {
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let source = self.source.as_ref();
        let request = match kind {
            Read::Routine => source.fetch(stage),
            Read::AfterRejection => source.refetch(stage),
        };
        let read = within(self.policy.read_timeout, source, stage, request).await;
        self.telemetry
            .read(stage, read.as_ref().map(|_| ()), started.elapsed());
        read
    }

    fn is_superseded(&self, version_id: &str) -> bool {
        let superseded = self.superseded.lock().unwrap_or_else(|e| e.into_inner());
        superseded.iter().any(|v| v == version_id)
    }

    /// Makes `version` the current generation, if `previous` still is (a round and the proactive refresh can
    /// race); returns the new generation.
    fn adopt(
        &self,
        previous: &Generation,
        version: SecretVersion,
        by: AdoptedBy,
    ) -> Option<Arc<Generation>> {
        let next = {
            let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
            if current.number != previous.number {
                return None;
            }
            let next = Arc::new(Generation::new(
                previous.number + 1,
                version.version_id,
                version.credentials,
            ));
            *current = Arc::clone(&next);
            self.number.store(next.number, Ordering::Release);
            next
        };
        // Falling back to AWSPREVIOUS is no move past the version it replaces: that one is retried at the pace.
        if by != AdoptedBy::Previous {
            let mut superseded = self.superseded.lock().unwrap_or_else(|e| e.into_inner());
            if superseded.len() == 8 {
                superseded.remove(0);
            }
            superseded.push(previous.version_id.clone());
        }
        {
            let mut ahead = self.ahead.lock().unwrap_or_else(|e| e.into_inner());
            if by != AdoptedBy::Previous {
                // A move forward: whatever the store held ahead is adopted or left behind.
                *ahead = None;
            } else if ahead.is_none() {
                // The version given up for AWSPREVIOUS is the store's newest: follow it.
                *ahead = Some(previous.version_id.clone());
            }
        }
        // A new version ends any failure: the next rejection reads at once, whatever the last one cost.
        *self.struggle.lock().unwrap_or_else(|e| e.into_inner()) = None;
        self.telemetry.adopted(next.number, &next.version_id, by);
        self.adoptions.send_replace(next.number);
        Some(next)
    }
}

/// Why the refresher reads the secret, which decides whether a source's own cache may answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Read {
    /// The first read, and the proactive refresh: [`SecretSource::fetch`].
    Routine,
    /// A round after the database rejected the credentials in use: [`SecretSource::refetch`].
    AfterRejection,
}

/// Reads the version labelled `stage`, giving up after `timeout`.
async fn read(
    source: &dyn SecretSource,
    stage: Stage,
    timeout: Duration,
) -> Result<SecretVersion, SourceError> {
    within(timeout, source, stage, source.fetch(stage)).await
}

/// `request` to `source` about `stage`, turned into [`SourceError::TimedOut`] if it takes longer than `timeout`.
async fn within<T>(
    timeout: Duration,
    source: &dyn SecretSource,
    stage: Stage,
    request: impl std::future::Future<Output = Result<T, SourceError>>,
) -> Result<T, SourceError> {
    tokio::time::timeout(timeout, request)
        .await
        .unwrap_or_else(|_| {
            Err(SourceError::TimedOut {
                secret_id: source.secret_id().to_owned(),
                stage,
                after: timeout,
            })
        })
}

impl fmt::Debug for Refresher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let current = self.current();
        f.debug_struct("Refresher")
            .field("source", &self.source)
            .field("generation", &current.number)
            .field("version_id", &current.version_id)
            .field("fetches", &self.fetch_count())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::InMemorySecretStore;

    fn creds(pw: &str) -> Credentials {
        Credentials::new("app", pw)
    }

    async fn setup() -> (Arc<InMemorySecretStore>, Arc<Refresher>) {
        let store = Arc::new(InMemorySecretStore::new("db", &creds("one")));
        let refresher = Refresher::new(store.clone(), RefreshPolicy::default())
            .await
            .unwrap();
        (store, Arc::new(refresher))
    }

    fn soon() -> Instant {
        Instant::now() + Duration::from_secs(5)
    }

    /// A database that takes one password, as trial logins see it; counts logins per password.
    struct Db {
        password: Mutex<String>,
        logins: Mutex<Vec<(String, Known)>>,
    }

    impl Db {
        fn taking(password: &str) -> Arc<Self> {
            Arc::new(Self {
                password: Mutex::new(password.to_owned()),
                logins: Mutex::new(Vec::new()),
            })
        }
        fn set_password(&self, password: &str) {
            *self.password.lock().unwrap() = password.to_owned();
        }
        /// Logins tried with `password`.
        fn logins_with(&self, password: &str) -> usize {
            let logins = self.logins.lock().unwrap();
            logins.iter().filter(|(p, _)| p == password).count()
        }
        fn logins(&self) -> usize {
            self.logins.lock().unwrap().len()
        }
    }

    #[async_trait::async_trait]
    impl Probe for Db {
        async fn try_login(&self, credentials: &Credentials, known: Known) -> ProbeOutcome {
            let password = credentials.password().to_owned();
            let accepted = password == *self.password.lock().unwrap();
            self.logins.lock().unwrap().push((password, known));
            if accepted {
                ProbeOutcome::Accepted
            } else {
                ProbeOutcome::Rejected
            }
        }
    }

    /// Marks the generation in use rejected, as a failed login does.
    fn reject_current(refresher: &Refresher) -> u64 {
        let current = refresher.current();
        refresher.mark_rejected(&current, "28P01".into());
        current.number
    }

    #[tokio::test(start_paused = true)]
    async fn many_callers_after_a_rotation_cause_one_fetch_and_one_trial_login() {
        let (store, refresher) = setup().await;
        let db = Db::taking("two");
        store.put_current(&creds("two"));
        let seen = reject_current(&refresher);
        let callers: Vec<_> = (0..32)
            .map(|_| {
                let (r, db) = (refresher.clone(), db.clone());
                tokio::spawn(async move { r.refresh_after(seen, soon(), db).await })
            })
            .collect();
        for c in callers {
            let generation = c.await.unwrap().unwrap();
            assert_eq!(generation.number, 2);
            assert_eq!(generation.credentials.password(), "two");
            assert!(generation.is_verified());
        }
        assert_eq!(
            store.fetch_count(),
            2,
            "initial read plus exactly one refresh"
        );
        assert_eq!(refresher.fetch_count(), 2);
        assert_eq!(db.logins(), 1, "one trial login for all 32");
    }

    #[tokio::test(start_paused = true)]
    async fn a_caller_behind_the_times_gets_the_new_generation_without_a_fetch() {
        let (store, refresher) = setup().await;
        let db = Db::taking("two");
        store.put_current(&creds("two"));
        let seen = reject_current(&refresher);
        refresher
            .refresh_after(seen, soon(), db.clone())
            .await
            .unwrap();
        let fetches = store.fetch_count();
        let late = refresher
            .refresh_after(seen, soon(), db.clone())
            .await
            .unwrap();
        assert_eq!(late.number, 2);
        assert_eq!(store.fetch_count(), fetches);
    }

    #[tokio::test(start_paused = true)]
    async fn an_unchanged_secret_is_read_once_then_answered_at_once_until_the_next_round() {
        let (store, refresher) = setup().await;
        let db = Db::taking("elsewhere");
        let seen = reject_current(&refresher);
        let err = refresher
            .refresh_after(seen, soon(), db.clone())
            .await
            .unwrap_err();
        assert!(matches!(err, RefreshError::Unchanged));
        assert_eq!(
            store.fetch_count(),
            1 + 3,
            "one round: AWSCURRENT, AWSPENDING and AWSPREVIOUS"
        );
        assert_eq!(
            db.logins(),
            0,
            "the version just rejected is not tried again at once"
        );
        let asked_at = Instant::now();
        for _ in 0..10 {
            assert!(refresher
                .refresh_after(seen, soon(), db.clone())
                .await
                .is_err());
        }
        assert_eq!(Instant::now(), asked_at, "answered without waiting");
        assert_eq!(store.fetch_count(), 1 + 3, "and without reading");
        tokio::time::sleep(Duration::from_millis(1100)).await;
        assert!(refresher
            .refresh_after(seen, soon(), db.clone())
            .await
            .is_err());
        assert_eq!(
            store.fetch_count(),
            1 + 2 * 3,
            "the next round, a second later"
        );
        assert_eq!(
            db.logins_with("one"),
            1,
            "which tries the rejected version again"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn callers_queued_behind_an_empty_round_share_its_answer() {
        let (store, refresher) = setup().await;
        let db = Db::taking("elsewhere");
        let seen = reject_current(&refresher);
        let callers: Vec<_> = (0..8)
            .map(|_| {
                let (r, db) = (refresher.clone(), db.clone());
                tokio::spawn(async move { r.refresh_after(seen, soon(), db).await })
            })
            .collect();
        for c in callers {
            assert!(matches!(c.await.unwrap(), Err(RefreshError::Unchanged)));
        }
        assert_eq!(store.fetch_count(), 1 + 3, "one round for all eight");
    }

    #[tokio::test(start_paused = true)]
    async fn a_rotation_after_an_empty_round_is_adopted_at_the_next_round() {
        let (store, refresher) = setup().await;
        let db = Db::taking("two");
        let seen = reject_current(&refresher);
        assert!(refresher
            .refresh_after(seen, soon(), db.clone())
            .await
            .is_err());
        store.put_current(&creds("two"));
        assert!(refresher
            .refresh_after(seen, soon(), db.clone())
            .await
            .is_err());
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let generation = refresher
            .refresh_after(seen, soon(), db.clone())
            .await
            .unwrap();
        assert_eq!(generation.credentials.password(), "two");
    }

    #[tokio::test(start_paused = true)]
    async fn a_malformed_new_version_is_an_error_and_is_not_adopted() {
        let (store, refresher) = setup().await;
        store.put_current_text(r#"{"username":"app"}"#);
        let seen = reject_current(&refresher);
        let err = refresher
            .refresh_after(seen, soon(), Db::taking("one"))
            .await
            .unwrap_err();
        assert!(
            matches!(err, RefreshError::Source(ref e) if matches!(**e, SourceError::InvalidContent { .. }))
        );
        assert_eq!(refresher.current().number, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_rejected_pending_version_is_tried_again_each_round_and_adopted_once_accepted() {
        let (store, refresher) = setup().await;
        let first = store.version_of(Stage::Current).unwrap();
        store.put_pending("token-2", &creds("two"));
        // Before setSecret: the database still takes only "one", which it just refused (a spurious refusal).
        let db = Db::taking("elsewhere");
        let seen = reject_current(&refresher);
        for _ in 0..3 {
            let err = refresher
                .refresh_after(seen, soon(), db.clone())
                .await
                .unwrap_err();
            assert!(matches!(err, RefreshError::Unchanged));
            tokio::time::sleep(Duration::from_millis(1100)).await;
        }
        assert_eq!(
            db.logins_with("two"),
            3,
            "AWSPENDING once a round, never abandoned"
        );
        assert_eq!(refresher.current().version_id, first);

        db.set_password("two");
        let adopted = refresher
            .refresh_after(seen, soon(), db.clone())
            .await
            .unwrap();
        assert_eq!(adopted.version_id, "token-2");
        assert_eq!(adopted.credentials.password(), "two");
        assert!(adopted.is_verified());

        // finishSecret moves AWSCURRENT to the version already in use: nothing new to adopt.
        store.promote("token-2");
        assert!(!refresher.refresh_proactively(db.as_ref()).await.unwrap());
        assert_eq!(refresher.current().number, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn the_proactive_refresh_never_goes_back_to_the_version_pending_replaced() {
        let (store, refresher) = setup().await;
        store.put_pending("token-2", &creds("two"));
        // Alternating users: the old version still logs in, and must not be gone back to.
        let db = Db::taking("two");
        let seen = reject_current(&refresher);
        let adopted = refresher
            .refresh_after(seen, soon(), db.clone())
            .await
            .unwrap();
        assert_eq!(adopted.version_id, "token-2");
        db.set_password("one");
        // Between setSecret and finishSecret, AWSCURRENT still holds the old version.
        assert!(!refresher.refresh_proactively(db.as_ref()).await.unwrap());
        assert_eq!(refresher.current().version_id, "token-2");
        assert_eq!(db.logins_with("one"), 0);
        db.set_password("three");
        store.promote("token-2");
        assert!(!refresher.refresh_proactively(db.as_ref()).await.unwrap());
        store.put_current(&creds("three"));
        assert!(refresher.refresh_proactively(db.as_ref()).await.unwrap());
        assert_eq!(refresher.current().number, 3);
    }

    #[tokio::test(start_paused = true)]
    async fn pending_is_not_read_while_current_has_news() {
        let (store, refresher) = setup().await;
        store.put_pending("token-2", &creds("pending"));
        store.put_current(&creds("current"));
        let db = Db::taking("current");
        let seen = reject_current(&refresher);
        let adopted = refresher
            .refresh_after(seen, soon(), db.clone())
            .await
            .unwrap();
        assert_eq!(adopted.credentials.password(), "current");
        assert_eq!(db.logins_with("pending"), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn proactive_refresh_adopts_a_finished_rotation_once_it_logs_in() {
        let (store, refresher) = setup().await;
        let db = Db::taking("two");
        assert!(!refresher.refresh_proactively(db.as_ref()).await.unwrap());
        store.put_current(&creds("two"));
        assert!(refresher.refresh_proactively(db.as_ref()).await.unwrap());
        assert_eq!(refresher.current().credentials.password(), "two");
        assert!(refresher.current().is_verified());
    }

    #[tokio::test(start_paused = true)]
    async fn a_store_ahead_of_the_database_keeps_the_pool_on_the_password_that_works() {
        let (store, refresher) = setup().await;
        refresher.current().mark_verified();
        let db = Db::taking("one");
        store.put_current(&creds("two"));
        assert!(!refresher.refresh_proactively(db.as_ref()).await.unwrap());
        assert_eq!(refresher.current().credentials.password(), "one");
        assert_eq!(db.logins_with("two"), 1);
        assert_eq!(
            db.logins_with("one"),
            1,
            "the version in use proved it still logs in"
        );
        let retry_at = refresher
            .next_retry_at()
            .expect("the new version waits for a retry");
        let wait = retry_at - Instant::now();
        assert_eq!(
            wait,
            Duration::from_millis(900),
            "the soonest the next round can come"
        );

        // Not due yet: no login spent on it, nor on the version in use.
        assert!(!refresher.refresh_proactively(db.as_ref()).await.unwrap());
        assert_eq!(db.logins(), 2);

        db.set_password("two");
        tokio::time::sleep_until(retry_at).await;
        assert!(refresher.refresh_proactively(db.as_ref()).await.unwrap());
        assert_eq!(refresher.current().credentials.password(), "two");
        assert_eq!(refresher.next_retry_at(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_store_that_moves_on_while_ahead_is_followed_no_longer_once_the_pool_moves_forward() {
        let (store, refresher) = setup().await;
        refresher.current().mark_verified();
        let db = Db::taking("one");
        store.put_current(&creds("two"));
        assert!(!refresher.refresh_proactively(db.as_ref()).await.unwrap());
        assert!(refresher.next_retry_at().is_some());
        // A second rotation lands before the database took the first: the pool moves to it.
        store.put_current(&creds("three"));
        db.set_password("three");
        let seen = reject_current(&refresher);
        let adopted = refresher
            .refresh_after(seen, soon(), db.clone())
            .await
            .unwrap();
        assert_eq!(adopted.credentials.password(), "three");
        assert_eq!(
            refresher.next_retry_at(),
            None,
            "nothing is ahead any more: the proactive refresh returns to its usual pace"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_first_rejection_of_the_version_in_use_makes_the_newer_one_due_at_once() {
        let (store, refresher) = setup().await;
        refresher.current().mark_verified();
        let db = Db::taking("one");
        store.put_current(&creds("two"));
        assert!(!refresher.refresh_proactively(db.as_ref()).await.unwrap());
        // The database takes the new password half a second later: the old one is refused.
        tokio::time::sleep(Duration::from_millis(500)).await;
        db.set_password("two");
        let seen = reject_current(&refresher);
        let adopted = refresher
            .refresh_after(seen, soon(), db.clone())
            .await
            .unwrap();
        assert_eq!(adopted.credentials.password(), "two");
    }

    #[tokio::test(start_paused = true)]
    async fn a_pool_started_while_awscurrent_is_rejected_falls_back_to_awsprevious() {
        let (store, _) = setup().await;
        store.put_current(&creds("two"));
        let refresher = Arc::new(
            Refresher::new(store.clone(), RefreshPolicy::default())
                .await
                .unwrap(),
        );
        let db = Db::taking("one");
        let seen = reject_current(&refresher);
        let fallback = refresher
            .refresh_after(seen, soon(), db.clone())
            .await
            .unwrap();
        assert_eq!(fallback.credentials.password(), "one");
        assert!(fallback.is_verified());

        // The newer version is not given up: the proactive refresh follows it at the failure pace.
        let retry_at = refresher
            .next_retry_at()
            .expect("AWSCURRENT is tried again");
        db.set_password("two");
        tokio::time::sleep_until(retry_at).await;
        assert!(refresher.refresh_proactively(db.as_ref()).await.unwrap());
        assert_eq!(refresher.current().credentials.password(), "two");
    }

    #[tokio::test(start_paused = true)]
    async fn a_spurious_rejection_is_tried_again_and_the_same_version_serves_again() {
        let (_, refresher) = setup().await;
        let db = Db::taking("nothing for now");
        let seen = reject_current(&refresher);
        assert!(refresher
            .refresh_after(seen, soon(), db.clone())
            .await
            .is_err());
        db.set_password("one");
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let again = refresher
            .refresh_after(seen, soon(), db.clone())
            .await
            .unwrap();
        assert_eq!(again.number, seen, "the same generation");
        assert_eq!(refresher.rejection(&again), None);
        assert!(again.is_verified());
    }

    /// A database whose password moves on while a round after a rejection is under way: the first trial login
    /// of `meddle_at` lets the proactive refresh adopt it first (as it does when both notice one rotation), and
    /// `then` becomes the password right after (a second rotation close behind, or an IAM token renewed).
    struct RotatesMidRound {
        db: Arc<Db>,
        refresher: Arc<Refresher>,
        meddle_at: &'static str,
        then: &'static str,
        done: AtomicBool,
    }

    #[async_trait::async_trait]
    impl Probe for RotatesMidRound {
        async fn try_login(&self, credentials: &Credentials, known: Known) -> ProbeOutcome {
            if credentials.password() == self.meddle_at && !self.done.swap(true, Ordering::SeqCst) {
                assert!(self
                    .refresher
                    .refresh_proactively(self.db.as_ref())
                    .await
                    .unwrap());
                self.db.set_password(self.then);
            }
            self.db.try_login(credentials, known).await
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_empty_round_for_a_generation_the_pool_has_left_does_not_answer_for_the_next_one() {
        let (store, refresher) = setup().await;
        let db = Db::taking("two");
        store.put_current(&creds("two"));
        let probe = Arc::new(RotatesMidRound {
            db: db.clone(),
            refresher: refresher.clone(),
            meddle_at: "two",
            then: "three",
            done: AtomicBool::new(false),
        });
        let seen = reject_current(&refresher);
        // The round for generation 1 finds that the pool moved to generation 2 under it, and nothing it could adopt.
        let moved = refresher
            .refresh_after(seen, soon(), probe.clone())
            .await
            .expect("the generation the proactive refresh adopted");
        assert_eq!(moved.number, 2);

        // Generation 2 is rejected at once: its own round reads the secret instead of repeating the last answer.
        store.put_current(&creds("three"));
        let fetches = refresher.fetch_count();
        let seen = reject_current(&refresher);
        let adopted = refresher
            .refresh_after(seen, soon(), db.clone())
            .await
            .expect("a round of its own finds the next version");
        assert_eq!(adopted.credentials.password(), "three");
        assert!(refresher.fetch_count() > fetches);
    }

    /// A store whose rotation finishes while a round reads it: the first read of `AWSPENDING` after `arm` moves
    /// the labels (finishSecret) before it answers, so the round sees `AWSCURRENT` old and `AWSPENDING` gone.
    #[derive(Debug)]
    struct FinishesMidRound {
        store: Arc<InMemorySecretStore>,
        pending: Mutex<Option<String>>,
    }

    #[async_trait::async_trait]
    impl SecretSource for FinishesMidRound {
        async fn fetch(&self, stage: Stage) -> Result<SecretVersion, SourceError> {
            if stage == Stage::Pending {
                if let Some(id) = self.pending.lock().unwrap().take() {
                    assert!(self.store.promote(&id));
                }
            }
            self.store.fetch(stage).await
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_rotation_that_finishes_between_two_reads_of_a_round_is_adopted_in_that_round() {
        let store = Arc::new(InMemorySecretStore::new("db", &creds("one")));
        let source = Arc::new(FinishesMidRound {
            store: store.clone(),
            pending: Mutex::new(None),
        });
        let refresher = Arc::new(
            Refresher::new(source.clone(), RefreshPolicy::default())
                .await
                .unwrap(),
        );
        // setSecret: the database takes the pending password; finishSecret comes during the round.
        store.put_pending("v2", &creds("two"));
        *source.pending.lock().unwrap() = Some("v2".to_owned());
        let db = Db::taking("two");
        let seen = reject_current(&refresher);
        let adopted = refresher
            .refresh_after(seen, soon(), db.clone())
            .await
            .expect("the round reads AWSCURRENT again and adopts the finished rotation");
        assert_eq!(adopted.credentials.password(), "two");
        assert_eq!(store.version_of(Stage::Current).as_deref(), Some("v2"));
    }

    /// A store behind a cache that never expires, as a Secrets Manager Agent with a long TTL is: `fetch` answers
    /// from the cache, `refetch` reads the store and refreshes the cache.
    #[derive(Debug)]
    struct CachedStore {
        store: Arc<InMemorySecretStore>,
        cache: Mutex<Vec<(Stage, SecretVersion)>>,
        fetches: AtomicU64,
        refetches: AtomicU64,
    }

    impl CachedStore {
        async fn refresh(&self, stage: Stage) -> Result<SecretVersion, SourceError> {
            let version = self.store.fetch(stage).await?;
            let mut cache = self.cache.lock().unwrap();
            cache.retain(|(s, _)| *s != stage);
            cache.push((stage, version.clone()));
            Ok(version)
        }
    }

    #[async_trait::async_trait]
    impl SecretSource for CachedStore {
        async fn fetch(&self, stage: Stage) -> Result<SecretVersion, SourceError> {
            self.fetches.fetch_add(1, Ordering::Relaxed);
            let cached = self
                .cache
                .lock()
                .unwrap()
                .iter()
                .find(|(s, _)| *s == stage)
                .cloned();
            match cached {
                Some((_, version)) => Ok(version),
                None => self.refresh(stage).await,
            }
        }

        async fn refetch(&self, stage: Stage) -> Result<SecretVersion, SourceError> {
            self.refetches.fetch_add(1, Ordering::Relaxed);
            self.refresh(stage).await
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_round_after_a_rejection_refetches_past_the_sources_cache_and_the_proactive_read_does_not(
    ) {
        let store = Arc::new(InMemorySecretStore::new("db", &creds("one")));
        let cached = Arc::new(CachedStore {
            store: store.clone(),
            cache: Mutex::new(Vec::new()),
            fetches: AtomicU64::new(0),
            refetches: AtomicU64::new(0),
        });
        let refresher = Arc::new(
            Refresher::new(cached.clone(), RefreshPolicy::default())
                .await
                .unwrap(),
        );
        let db = Db::taking("two");
        store.put_current(&creds("two"));

        // The proactive refresh reads through the cache, which still holds the old version.
        assert!(!refresher.refresh_proactively(db.as_ref()).await.unwrap());
        assert_eq!(cached.fetches.load(Ordering::Relaxed), 2);
        assert_eq!(cached.refetches.load(Ordering::Relaxed), 0);

        // A rejected login reads past it, and finds the rotation.
        let seen = reject_current(&refresher);
        let adopted = refresher
            .refresh_after(seen, soon(), db.clone())
            .await
            .unwrap();
        assert_eq!(adopted.credentials.password(), "two");
        assert_eq!(
            cached.refetches.load(Ordering::Relaxed),
            1,
            "AWSCURRENT, read past the cache"
        );
        assert_eq!(
            cached.fetches.load(Ordering::Relaxed),
            2,
            "no cached read in the round"
        );
        assert_eq!(refresher.fetch_count(), 3, "every read counted, both kinds");

        store.put_current(&creds("three"));
        assert!(!refresher.refresh_proactively(db.as_ref()).await.unwrap());
        assert_eq!(cached.fetches.load(Ordering::Relaxed), 3);
        assert_eq!(cached.refetches.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn rejections_are_remembered_per_version() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let (store, refresher) = rt.block_on(setup());
        let first = refresher.current();
        assert_eq!(refresher.rejection(&first), None);
        refresher.mark_rejected(&first, "28P01".into());
        assert_eq!(refresher.rejection(&first).as_deref(), Some("28P01"));
        store.put_current(&creds("two"));
        let other = Generation::new(
            2,
            store.version_of(Stage::Current).unwrap(),
            Arc::new(creds("two")),
        );
        assert_eq!(refresher.rejection(&other), None);
    }
}
