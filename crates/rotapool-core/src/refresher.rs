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

use crate::{
    credentials::Credentials,
    source::{SecretSource, SecretVersion, SourceError, Stage},
    telemetry::{AdoptedBy, Telemetry},
};

/// One adopted version of the secret. Generation numbers start at 1 and grow by one per adoption.
#[derive(Debug)]
pub struct Generation {
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
    pub fn is_verified(&self) -> bool {
        self.verified.load(Ordering::Acquire)
    }

    /// Records that the database accepted a login with these credentials.
    pub fn mark_verified(&self) {
        self.verified.store(true, Ordering::Release);
    }
}

/// How the refresher reads the secret: how long one read may take, and how often it reads while logins fail.
///
/// While the database rejects the current credentials and the secret has nothing newer (or cannot be read), the
/// refresher reads it at a steady pace: one round (`AWSCURRENT`, then `AWSPENDING` if `AWSCURRENT` is unchanged)
/// every `retry_interval` for the first `slow_after` of the failure, then every `slow_retry_interval`. Each pause
/// is stretched or shrunk by up to a tenth at random, so replicas that failed together do not read together.
/// Between rounds, callers fail at once with the last round's answer instead of waiting. Adopting a new version
/// ends the failure, so the next rejection reads at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefreshPolicy {
    /// How long one read of the secret may take before it counts as failed ([`SourceError::TimedOut`]), so that
    /// a store that accepts connections but never answers cannot hold up the pool. Defaults to 5 s.
    pub read_timeout: Duration,
    /// The pause between two rounds of reads while logins fail. Defaults to 1 s.
    pub retry_interval: Duration,
    /// How long a failure lasts before the pace slows to `slow_retry_interval`. Defaults to 60 s.
    pub slow_after: Duration,
    /// The pause between two rounds once a failure has lasted `slow_after`. Defaults to 10 s.
    pub slow_retry_interval: Duration,
}

impl Default for RefreshPolicy {
    fn default() -> Self {
        Self {
            read_timeout: Duration::from_secs(5),
            retry_interval: Duration::from_secs(1),
            slow_after: Duration::from_secs(60),
            slow_retry_interval: Duration::from_secs(10),
        }
    }
}

impl RefreshPolicy {
    /// The pause before the next round of a failure that began at `since`.
    fn pause(&self, since: Instant) -> Duration {
        let base = if since.elapsed() < self.slow_after {
            self.retry_interval
        } else {
            self.slow_retry_interval
        };
        crate::random::scaled(base, 0.9, 1.1)
    }

    /// Why these settings are unusable, if they are.
    pub(crate) fn invalid(&self) -> Option<&'static str> {
        if self.read_timeout.is_zero() {
            Some("read_timeout must be above zero")
        } else if self.retry_interval.is_zero() || self.slow_retry_interval < self.retry_interval {
            Some("retry_interval must be above zero and at most slow_retry_interval")
        } else {
            None
        }
    }
}

/// What a trial login with candidate credentials showed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeOutcome {
    /// The database accepted them.
    Accepted,
    /// The database rejected them as bad credentials.
    Rejected,
    /// The login failed for another reason; nothing was learned about the credentials.
    Inconclusive,
}

/// Tries a login with candidate credentials. The refresher uses it for `AWSPENDING`, which it adopts only after
/// the database has accepted it.
#[async_trait::async_trait]
pub trait Probe: Send + Sync {
    /// Logs in with `credentials` and reports the outcome; the connection, if any, is closed.
    async fn try_login(&self, credentials: &Credentials) -> ProbeOutcome;
}

/// Why [`Refresher::refresh_after`] returned no newer generation.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum RefreshError {
    /// The last read found the version the pool already uses, and no usable `AWSPENDING`.
    #[error("the secret still holds the version the pool already uses")]
    Unchanged,
    /// The last read of the secret failed.
    #[error(transparent)]
    Source(Arc<SourceError>),
}

/// Holds the current credentials and re-reads the secret, once for all callers, when they are rejected.
pub struct Refresher {
    source: Arc<dyn SecretSource>,
    policy: RefreshPolicy,
    current: RwLock<Arc<Generation>>,
    /// `current`'s number, readable without the lock: the check every reused connection goes through.
    number: AtomicU64,
    /// The newest generation the database rejected, with the database's words for it.
    rejected: Mutex<Option<(u64, String)>>,
    /// Set while the current generation is rejected and the rounds so far found no way out.
    struggle: Mutex<Option<Struggle>>,
    /// The version ids of earlier generations, newest last (a few): a version the pool has moved past.
    superseded: Mutex<Vec<String>>,
    /// Held by the one caller that is reading the secret; the others queue behind it.
    flight: tokio::sync::Mutex<Flight>,
    /// Completed rounds of reading; lets a queued caller see that a round ran while it waited.
    rounds: AtomicU64,
    fetches: AtomicU64,
    telemetry: Telemetry,
}

/// A failure that the reads have not ended yet: when it began, when the next round may run, and what the last
/// round found.
#[derive(Debug, Clone)]
struct Struggle {
    since: Instant,
    next_round_at: Instant,
    last: RefreshError,
}

#[derive(Debug, Default)]
struct Flight {
    /// An `AWSPENDING` version the database rejected: a rotation that never reached setSecret. Never retried.
    rejected_pending: Option<String>,
}

impl Refresher {
    /// Reads `AWSCURRENT` once and adopts it as generation 1.
    pub async fn new(
        source: Arc<dyn SecretSource>,
        policy: RefreshPolicy,
    ) -> Result<Self, SourceError> {
        let name = source.secret_id().to_owned();
        Self::named(source, policy, &name).await
    }

    /// Like [`Refresher::new`], naming the pool it serves in traces and metrics.
    pub async fn named(
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
            rejected: Mutex::new(None),
            struggle: Mutex::new(None),
            superseded: Mutex::new(Vec::new()),
            flight: tokio::sync::Mutex::new(Flight::default()),
            rounds: AtomicU64::new(0),
            fetches: AtomicU64::new(1),
            telemetry,
            source,
        })
    }

    pub(crate) fn telemetry(&self) -> &Telemetry {
        &self.telemetry
    }

    /// The generation in use. Cheap: one `Arc` clone under a lock that is never held across an await.
    pub fn current(&self) -> Arc<Generation> {
        Arc::clone(&self.current.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// The number of the generation in use; cheaper than [`Refresher::current`].
    pub fn generation(&self) -> u64 {
        self.number.load(Ordering::Acquire)
    }

    /// How many times the secret has been read, the first read included.
    pub fn fetch_count(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    /// The policy this refresher follows.
    pub fn policy(&self) -> &RefreshPolicy {
        &self.policy
    }

    /// Records that the database rejected generation `number`, so no other caller spends a login on it.
    pub fn mark_rejected(&self, number: u64, detail: String) {
        let mut rejected = self.rejected.lock().unwrap_or_else(|e| e.into_inner());
        if rejected.as_ref().is_none_or(|(n, _)| *n <= number) {
            *rejected = Some((number, detail));
        }
    }

    /// If the database rejected generation `number`, what it said.
    pub fn rejection(&self, number: u64) -> Option<String> {
        let rejected = self.rejected.lock().unwrap_or_else(|e| e.into_inner());
        rejected
            .as_ref()
            .filter(|(n, _)| *n == number)
            .map(|(_, detail)| detail.clone())
    }

    /// Returns a generation newer than `seen`, reading the secret if need be. Call it after the database rejected
    /// generation `seen`.
    ///
    /// Single flight: callers that saw the same generation share one round of reads. A caller that arrives after
    /// the generation moved gets the new one without a read, and one that queued while a round came back
    /// empty-handed gets that round's answer. A round reads `AWSCURRENT`; if that is unchanged, the rotation may
    /// be between setSecret and finishSecret, so it reads `AWSPENDING` and adopts it if `probe` logs in with it.
    /// After a round that found nothing, callers get its answer at once until the next round is due (see
    /// [`RefreshPolicy`]); `deadline` bounds only the wait for another caller's round.
    pub async fn refresh_after(
        &self,
        seen: u64,
        deadline: Instant,
        probe: &dyn Probe,
    ) -> Result<Arc<Generation>, RefreshError> {
        let current = self.current();
        if current.number > seen {
            return Ok(current);
        }
        if let Some(answer) = self.answer_until_next_round() {
            return Err(answer);
        }
        let round_at_entry = self.rounds.load(Ordering::Acquire);
        let Ok(mut flight) = tokio::time::timeout_at(deadline, self.flight.lock()).await else {
            return Err(self.last_answer());
        };
        let current = self.current();
        if current.number > seen {
            return Ok(current);
        }
        if self.rounds.load(Ordering::Acquire) != round_at_entry {
            return Err(self.last_answer());
        }
        let outcome = self.round(&mut flight, &current, probe).await;
        if let Err(last) = &outcome {
            let mut struggle = self.struggle.lock().unwrap_or_else(|e| e.into_inner());
            let since = struggle.as_ref().map_or_else(Instant::now, |s| s.since);
            *struggle = Some(Struggle {
                since,
                next_round_at: Instant::now() + self.policy.pause(since),
                last: last.clone(),
            });
        }
        self.rounds.fetch_add(1, Ordering::Release);
        outcome
    }

    /// The last round's answer if the next round is not due yet.
    fn answer_until_next_round(&self) -> Option<RefreshError> {
        let struggle = self.struggle.lock().unwrap_or_else(|e| e.into_inner());
        struggle
            .as_ref()
            .filter(|s| Instant::now() < s.next_round_at)
            .map(|s| s.last.clone())
    }

    /// The last round's answer, for a caller that queued behind it.
    fn last_answer(&self) -> RefreshError {
        let struggle = self.struggle.lock().unwrap_or_else(|e| e.into_inner());
        struggle
            .as_ref()
            .map_or(RefreshError::Unchanged, |s| s.last.clone())
    }

    /// One round: `AWSCURRENT`, then `AWSPENDING` if `AWSCURRENT` holds nothing new.
    async fn round(
        &self,
        flight: &mut Flight,
        current: &Generation,
        probe: &dyn Probe,
    ) -> Result<Arc<Generation>, RefreshError> {
        match self.read(Stage::Current).await {
            Ok(version) if version.version_id != current.version_id => {
                Ok(self.adopt(current, version, AdoptedBy::Current))
            }
            Ok(_) => self
                .try_pending(flight, current, probe)
                .await
                .ok_or(RefreshError::Unchanged),
            Err(e) => Err(RefreshError::Source(Arc::new(e))),
        }
    }

    /// The single-user window: the database may already have the `AWSPENDING` password while `AWSCURRENT` still
    /// holds the old one. Adopt the pending version only once a login with it succeeds; before setSecret it exists
    /// but is not valid, and a rejected one is remembered so that it costs one login at most.
    async fn try_pending(
        &self,
        flight: &mut Flight,
        current: &Generation,
        probe: &dyn Probe,
    ) -> Option<Arc<Generation>> {
        let pending = match self.read(Stage::Pending).await {
            Ok(pending) => pending,
            Err(SourceError::StageNotFound { .. }) => return None,
            Err(error) => {
                tracing::warn!(%error, "could not read AWSPENDING");
                return None;
            }
        };
        if pending.version_id == current.version_id
            || flight.rejected_pending.as_deref() == Some(pending.version_id.as_str())
        {
            return None;
        }
        match probe.try_login(&pending.credentials).await {
            ProbeOutcome::Accepted => {
                let adopted = self.adopt(current, pending, AdoptedBy::Pending);
                adopted.mark_verified();
                Some(adopted)
            }
            ProbeOutcome::Rejected => {
                tracing::info!(version_id = %pending.version_id, "AWSPENDING is not valid on the database yet");
                flight.rejected_pending = Some(pending.version_id);
                None
            }
            ProbeOutcome::Inconclusive => None,
        }
    }

    /// Reads `AWSCURRENT` once, outside any failure, and adopts it if it changed: the proactive refresh that picks
    /// up a finished rotation before any login fails. Returns whether a new generation was adopted. Skipped
    /// (`Ok(false)`) while another caller is reading, and never delays a read that a rejected login asks for.
    ///
    /// A version the pool has moved past is not adopted again: after `AWSPENDING` was adopted between setSecret
    /// and finishSecret, `AWSCURRENT` still names the old version, whose password the database no longer takes.
    pub async fn refresh_proactively(&self) -> Result<bool, Arc<SourceError>> {
        let Ok(_flight) = self.flight.try_lock() else {
            return Ok(false);
        };
        let current = self.current();
        match self.read(Stage::Current).await {
            Ok(version)
                if version.version_id != current.version_id
                    && !self.is_superseded(&version.version_id) =>
            {
                self.adopt(&current, version, AdoptedBy::Proactive);
                self.rounds.fetch_add(1, Ordering::Release);
                Ok(true)
            }
            Ok(_) => Ok(false),
            Err(e) => Err(Arc::new(e)),
        }
    }

    /// The secret's next scheduled rotation, read within the read timeout.
    pub async fn next_rotation(&self) -> Result<Option<std::time::SystemTime>, SourceError> {
        let source = self.source.as_ref();
        within(
            self.policy.read_timeout,
            source,
            Stage::Current,
            source.next_rotation(),
        )
        .await
    }

    /// The secret store.
    pub fn source(&self) -> &Arc<dyn SecretSource> {
        &self.source
    }

    async fn read(&self, stage: Stage) -> Result<SecretVersion, SourceError> {
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let read = read(self.source.as_ref(), stage, self.policy.read_timeout).await;
        self.telemetry
            .read(stage, read.as_ref().map(|_| ()), started.elapsed());
        read
    }

    fn is_superseded(&self, version_id: &str) -> bool {
        let superseded = self.superseded.lock().unwrap_or_else(|e| e.into_inner());
        superseded.iter().any(|v| v == version_id)
    }

    fn adopt(
        &self,
        previous: &Generation,
        version: SecretVersion,
        by: AdoptedBy,
    ) -> Arc<Generation> {
        {
            let mut superseded = self.superseded.lock().unwrap_or_else(|e| e.into_inner());
            if superseded.len() == 8 {
                superseded.remove(0);
            }
            superseded.push(previous.version_id.clone());
        }
        let next = Arc::new(Generation::new(
            previous.number + 1,
            version.version_id,
            version.credentials,
        ));
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::clone(&next);
        self.number.store(next.number, Ordering::Release);
        // A new version ends any failure: the next rejection reads at once, whatever the last one cost.
        *self.struggle.lock().unwrap_or_else(|e| e.into_inner()) = None;
        self.telemetry.adopted(next.number, &next.version_id, by);
        next
    }
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

    /// A probe that answers the same for every login and counts them.
    struct FixedProbe(ProbeOutcome, AtomicU64);

    impl FixedProbe {
        fn new(outcome: ProbeOutcome) -> Self {
            Self(outcome, AtomicU64::new(0))
        }
        fn logins(&self) -> u64 {
            self.1.load(Ordering::Relaxed)
        }
    }

    #[async_trait::async_trait]
    impl Probe for FixedProbe {
        async fn try_login(&self, _: &Credentials) -> ProbeOutcome {
            self.1.fetch_add(1, Ordering::Relaxed);
            self.0
        }
    }

    fn reject() -> FixedProbe {
        FixedProbe::new(ProbeOutcome::Rejected)
    }

    #[tokio::test(start_paused = true)]
    async fn many_callers_after_a_rotation_cause_one_fetch() {
        let (store, refresher) = setup().await;
        store.put_current(&creds("two"));
        let callers: Vec<_> = (0..32)
            .map(|_| {
                let r = refresher.clone();
                tokio::spawn(async move { r.refresh_after(1, soon(), &reject()).await })
            })
            .collect();
        for c in callers {
            let generation = c.await.unwrap().unwrap();
            assert_eq!(generation.number, 2);
            assert_eq!(generation.credentials.password(), "two");
        }
        assert_eq!(
            store.fetch_count(),
            2,
            "initial read plus exactly one refresh"
        );
        assert_eq!(refresher.fetch_count(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_caller_behind_the_times_gets_the_new_generation_without_a_fetch() {
        let (store, refresher) = setup().await;
        store.put_current(&creds("two"));
        refresher.refresh_after(1, soon(), &reject()).await.unwrap();
        let fetches = store.fetch_count();
        let late = refresher.refresh_after(1, soon(), &reject()).await.unwrap();
        assert_eq!(late.number, 2);
        assert_eq!(store.fetch_count(), fetches);
    }

    #[tokio::test(start_paused = true)]
    async fn an_unchanged_secret_is_read_once_then_answered_at_once_until_the_next_round() {
        let (store, refresher) = setup().await;
        let err = refresher
            .refresh_after(1, soon(), &reject())
            .await
            .unwrap_err();
        assert!(matches!(err, RefreshError::Unchanged));
        assert_eq!(
            store.fetch_count(),
            1 + 2,
            "one round: AWSCURRENT and AWSPENDING"
        );
        let asked_at = Instant::now();
        for _ in 0..10 {
            assert!(refresher.refresh_after(1, soon(), &reject()).await.is_err());
        }
        assert_eq!(Instant::now(), asked_at, "answered without waiting");
        assert_eq!(store.fetch_count(), 1 + 2, "and without reading");
        tokio::time::sleep(Duration::from_millis(1100)).await;
        assert!(refresher.refresh_after(1, soon(), &reject()).await.is_err());
        assert_eq!(
            store.fetch_count(),
            1 + 2 * 2,
            "the next round, a second later"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn callers_queued_behind_an_empty_round_share_its_answer() {
        let (store, refresher) = setup().await;
        let callers: Vec<_> = (0..8)
            .map(|_| {
                let r = refresher.clone();
                tokio::spawn(async move { r.refresh_after(1, soon(), &reject()).await })
            })
            .collect();
        for c in callers {
            assert!(matches!(c.await.unwrap(), Err(RefreshError::Unchanged)));
        }
        assert_eq!(store.fetch_count(), 1 + 2, "one round for all eight");
    }

    #[tokio::test(start_paused = true)]
    async fn a_rotation_after_an_empty_round_is_adopted_at_the_next_round() {
        let (store, refresher) = setup().await;
        assert!(refresher.refresh_after(1, soon(), &reject()).await.is_err());
        store.put_current(&creds("two"));
        assert!(refresher.refresh_after(1, soon(), &reject()).await.is_err());
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let generation = refresher.refresh_after(1, soon(), &reject()).await.unwrap();
        assert_eq!(generation.credentials.password(), "two");
    }

    #[tokio::test(start_paused = true)]
    async fn a_malformed_new_version_is_an_error_and_is_not_adopted() {
        let (store, refresher) = setup().await;
        store.put_current_text(r#"{"username":"app"}"#);
        let err = refresher
            .refresh_after(1, soon(), &reject())
            .await
            .unwrap_err();
        assert!(
            matches!(err, RefreshError::Source(ref e) if matches!(**e, SourceError::InvalidContent { .. }))
        );
        assert_eq!(refresher.current().number, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn pending_is_adopted_only_after_a_successful_login() {
        let (store, refresher) = setup().await;
        let first = store.version_of(Stage::Current).unwrap();
        store.put_pending("token-2", &creds("two"));

        let rejecting = FixedProbe::new(ProbeOutcome::Rejected);
        for _ in 0..3 {
            let err = refresher
                .refresh_after(1, soon(), &rejecting)
                .await
                .unwrap_err();
            assert!(matches!(err, RefreshError::Unchanged));
            tokio::time::sleep(Duration::from_millis(1100)).await;
        }
        assert_eq!(
            rejecting.logins(),
            1,
            "a rejected pending version is tried once, not every round"
        );
        assert_eq!(refresher.current().version_id, first);

        let accepting = FixedProbe::new(ProbeOutcome::Accepted);
        store.put_pending("token-3", &creds("three"));
        let adopted = refresher
            .refresh_after(1, soon(), &accepting)
            .await
            .unwrap();
        assert_eq!(adopted.version_id, "token-3");
        assert_eq!(adopted.credentials.password(), "three");
        assert!(adopted.is_verified());

        // finishSecret moves AWSCURRENT to the version already in use: nothing new to adopt.
        store.promote("token-3");
        assert!(!refresher.refresh_proactively().await.unwrap());
        assert_eq!(refresher.current().number, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn the_proactive_refresh_never_goes_back_to_the_version_pending_replaced() {
        let (store, refresher) = setup().await;
        store.put_pending("token-2", &creds("two"));
        let accepting = FixedProbe::new(ProbeOutcome::Accepted);
        let adopted = refresher
            .refresh_after(1, soon(), &accepting)
            .await
            .unwrap();
        assert_eq!(adopted.version_id, "token-2");
        // Between setSecret and finishSecret, AWSCURRENT still holds the old version.
        assert!(!refresher.refresh_proactively().await.unwrap());
        assert_eq!(refresher.current().version_id, "token-2");
        store.promote("token-2");
        assert!(!refresher.refresh_proactively().await.unwrap());
        store.put_current(&creds("three"));
        assert!(refresher.refresh_proactively().await.unwrap());
        assert_eq!(refresher.current().number, 3);
    }

    #[tokio::test(start_paused = true)]
    async fn pending_is_not_read_while_current_has_news() {
        let (store, refresher) = setup().await;
        store.put_pending("token-2", &creds("pending"));
        store.put_current(&creds("current"));
        let probe = FixedProbe::new(ProbeOutcome::Accepted);
        let adopted = refresher.refresh_after(1, soon(), &probe).await.unwrap();
        assert_eq!(adopted.credentials.password(), "current");
        assert_eq!(probe.logins(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn proactive_refresh_adopts_a_finished_rotation() {
        let (store, refresher) = setup().await;
        assert!(!refresher.refresh_proactively().await.unwrap());
        store.put_current(&creds("two"));
        assert!(refresher.refresh_proactively().await.unwrap());
        assert_eq!(refresher.current().credentials.password(), "two");
    }

    #[test]
    fn rejections_are_remembered_per_generation() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let (_, refresher) = rt.block_on(setup());
        assert_eq!(refresher.rejection(1), None);
        refresher.mark_rejected(1, "28P01".into());
        assert_eq!(refresher.rejection(1).as_deref(), Some("28P01"));
        refresher.mark_rejected(0, "older".into());
        assert_eq!(refresher.rejection(1).as_deref(), Some("28P01"));
        assert_eq!(refresher.rejection(2), None);
    }
}
