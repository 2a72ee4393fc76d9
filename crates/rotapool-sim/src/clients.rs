//! The pools the simulator compares. `rotapool`, `static` and `naive` are deadpool pools over the same backend,
//! so churn, timing and error accounting are identical; only the way they get credentials differs. The sqlx
//! clients, the same three ways over `sqlx::Pool`, are in `sqlx_clients`.

use std::{
    ops::{Deref, DerefMut},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::Instant,
};

use async_trait::async_trait;
use deadpool::managed::{self, Metrics, RecycleResult};
use rotapool_core::{
    source::RotationWindow, Backend, Credentials, Error, Failure, Reuse, SecretSource,
    SecretVersion, SourceError, Stage,
};

use crate::login_log::Fingerprint;

/// Which pool to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum ClientKind {
    /// A rotapool pool: refreshes on rejection, AWSPENDING in the window, gradual drain.
    Rotapool,
    /// A plain deadpool pool whose credentials are read once at start-up, as most services do today.
    Static,
    /// A deadpool pool that reads the secret before every new connection: no cache, no retry.
    Naive,
    /// rotapool-sqlx's `RotatingPool`: a real `sqlx::Pool` with a rotation-aware `acquire()`.
    SqlxRotapool,
    /// A plain `sqlx::Pool` built once from the secret read at start-up, never updated.
    SqlxStatic,
    /// A plain `sqlx::Pool` that, when a login is rejected, re-reads the secret and sets its connect options,
    /// every caller for itself: no cache, no retry.
    SqlxNaive,
}

impl ClientKind {
    /// The name used in the report.
    pub(crate) fn name(self) -> &'static str {
        match self {
            ClientKind::Rotapool => "rotapool",
            ClientKind::Static => "static",
            ClientKind::Naive => "naive",
            ClientKind::SqlxRotapool => "sqlx-rotapool",
            ClientKind::SqlxStatic => "sqlx-static",
            ClientKind::SqlxNaive => "sqlx-naive",
        }
    }

    /// The rotapool client over the same pool library, which this one is compared with (itself for those).
    pub(crate) fn rotapool_peer(self) -> ClientKind {
        match self {
            ClientKind::Rotapool | ClientKind::Static | ClientKind::Naive => ClientKind::Rotapool,
            ClientKind::SqlxRotapool | ClientKind::SqlxStatic | ClientKind::SqlxNaive => {
                ClientKind::SqlxRotapool
            }
        }
    }
}

/// Counts the reads of a secret source: the "secret API calls" of the report. With a read log, it also keeps
/// which credentials each successful read returned, for the switch time; with a latency, each read waits that
/// long first, as a read of a store over the network does.
#[derive(Debug)]
pub(crate) struct CountingSource {
    inner: Arc<dyn SecretSource>,
    reads: AtomicU64,
    log: Option<Mutex<Vec<ReadEvent>>>,
    latency: std::time::Duration,
    /// Where the store announces its next rotation window, if the run has one.
    schedule: Option<Arc<NextWindow>>,
    /// Asks for the rotation window (DescribeSecret).
    describes: AtomicU64,
}

/// The next rotation window of a secret, as its store announces it (Secrets Manager's `NextRotationDate`): set by
/// the run that drives the rotations, read by every replica's source.
#[derive(Debug, Default)]
pub(crate) struct NextWindow(Mutex<Option<RotationWindow>>);

impl NextWindow {
    /// Announces `window` as the next one.
    pub(crate) fn set(&self, window: RotationWindow) {
        *self.0.lock().unwrap() = Some(window);
    }

    /// The window announced last, if any.
    fn get(&self) -> Option<RotationWindow> {
        *self.0.lock().unwrap()
    }
}

/// A successful read of the secret.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReadEvent {
    /// When the read returned.
    pub at: Instant,
    /// The label read.
    pub stage: Stage,
    /// The credentials it returned.
    pub who: Fingerprint,
}

impl CountingSource {
    /// Wraps `inner`, counting its reads.
    pub(crate) fn new(inner: Arc<dyn SecretSource>) -> Self {
        Self {
            inner,
            reads: AtomicU64::new(0),
            log: None,
            latency: std::time::Duration::ZERO,
            schedule: None,
            describes: AtomicU64::new(0),
        }
    }

    /// The same source, its rotation window the one `schedule` announces.
    pub(crate) fn with_schedule(self, schedule: Arc<NextWindow>) -> Self {
        Self {
            schedule: Some(schedule),
            ..self
        }
    }

    /// Asks for the rotation window so far (DescribeSecret calls, for a store that has them).
    pub(crate) fn describes(&self) -> u64 {
        self.describes.load(Ordering::Relaxed)
    }

    /// The same source, each read waiting `latency` before it reaches the store.
    pub(crate) fn with_latency(self, latency: std::time::Duration) -> Self {
        Self { latency, ..self }
    }

    /// Wraps `inner`, counting its reads and keeping a log of them.
    pub(crate) fn with_read_log(inner: Arc<dyn SecretSource>) -> Self {
        Self {
            log: Some(Mutex::new(Vec::new())),
            ..Self::new(inner)
        }
    }

    /// Reads so far.
    pub(crate) fn reads(&self) -> u64 {
        self.reads.load(Ordering::Relaxed)
    }

    /// The successful reads so far, if this source keeps a log (empty otherwise).
    pub(crate) fn read_log(&self) -> Vec<ReadEvent> {
        self.log
            .as_ref()
            .map_or_else(Vec::new, |log| log.lock().unwrap().clone())
    }

    /// Waits the latency, if there is one (a zero sleep would still yield to the scheduler).
    async fn wait(&self) {
        if !self.latency.is_zero() {
            tokio::time::sleep(self.latency).await;
        }
    }

    /// Counts one read of `stage`, and logs what it returned.
    fn counted(
        &self,
        stage: Stage,
        result: Result<SecretVersion, SourceError>,
    ) -> Result<SecretVersion, SourceError> {
        self.reads.fetch_add(1, Ordering::Relaxed);
        if let (Some(log), Ok(version)) = (&self.log, &result) {
            log.lock().unwrap().push(ReadEvent {
                at: Instant::now(),
                stage,
                who: Fingerprint::of(&version.credentials),
            });
        }
        result
    }
}

#[async_trait]
impl SecretSource for CountingSource {
    async fn fetch(&self, stage: Stage) -> Result<SecretVersion, SourceError> {
        self.wait().await;
        self.counted(stage, self.inner.fetch(stage).await)
    }

    async fn refetch(&self, stage: Stage) -> Result<SecretVersion, SourceError> {
        self.wait().await;
        self.counted(stage, self.inner.refetch(stage).await)
    }

    fn secret_id(&self) -> &str {
        self.inner.secret_id()
    }

    async fn next_rotation(&self) -> Result<Option<std::time::SystemTime>, SourceError> {
        self.inner.next_rotation().await
    }

    async fn rotation_window(&self) -> Result<Option<RotationWindow>, SourceError> {
        self.describes.fetch_add(1, Ordering::Relaxed);
        match &self.schedule {
            Some(schedule) => Ok(schedule.get()),
            None => self.inner.rotation_window().await,
        }
    }

    fn remedy(&self) -> String {
        self.inner.remedy()
    }
}

/// A driver connection, for the baseline managers (rotapool's own is `rotapool_core::Connection`).
pub(crate) struct Plain<C>(C);

impl<C> Deref for Plain<C> {
    type Target = C;
    fn deref(&self) -> &C {
        &self.0
    }
}

impl<C> DerefMut for Plain<C> {
    fn deref_mut(&mut self) -> &mut C {
        &mut self.0
    }
}

/// Login counters of a baseline manager.
#[derive(Debug, Default)]
pub(crate) struct Logins {
    attempts: AtomicU64,
    rejected: AtomicU64,
}

impl Logins {
    /// Logins attempted.
    pub(crate) fn attempts(&self) -> u64 {
        self.attempts.load(Ordering::Relaxed)
    }

    /// Logins rejected as bad credentials.
    pub(crate) fn rejected(&self) -> u64 {
        self.rejected.load(Ordering::Relaxed)
    }

    /// Counts one login, `rejected` as bad credentials or not (for the sqlx clients, which see a login's
    /// outcome in two places: sqlx's `after_connect` and `acquire()`'s error).
    pub(crate) fn count(&self, rejected: bool) {
        self.attempts.fetch_add(1, Ordering::Relaxed);
        if rejected {
            self.rejected.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Where a baseline manager gets credentials from.
pub(crate) enum Credentialing {
    /// Read once at start-up.
    Fixed(Arc<Credentials>),
    /// Read before every login.
    EveryLogin(Arc<CountingSource>),
}

/// The manager of the `static` and `naive` baselines: one login, no refresh, no retry.
pub(crate) struct BaselineManager<B> {
    backend: B,
    credentials: Credentialing,
    max_lifetime: Option<std::time::Duration>,
    /// What the logins did.
    pub logins: Logins,
}

impl<B: Backend> BaselineManager<B> {
    /// A baseline manager; connections older than `max_lifetime` are not reused, as in rotapool's pool.
    pub(crate) fn new(
        backend: B,
        credentials: Credentialing,
        max_lifetime: Option<std::time::Duration>,
    ) -> Self {
        Self {
            backend,
            credentials,
            max_lifetime,
            logins: Logins::default(),
        }
    }
}

impl<B: Backend> managed::Manager for BaselineManager<B> {
    type Type = Plain<B::Connection>;
    type Error = Error<B::Error>;

    async fn create(&self) -> Result<Self::Type, Self::Error> {
        let credentials = match &self.credentials {
            Credentialing::Fixed(credentials) => Arc::clone(credentials),
            Credentialing::EveryLogin(source) => {
                source
                    .fetch(Stage::Current)
                    .await
                    .map_err(|e| Error::Refresh(Arc::new(e)))?
                    .credentials
            }
        };
        self.logins.attempts.fetch_add(1, Ordering::Relaxed);
        self.backend
            .connect(&credentials)
            .await
            .map(Plain)
            .map_err(|source| {
                let detail = self.backend.describe(&source);
                if self.backend.classify(&source) == Failure::Auth {
                    self.logins.rejected.fetch_add(1, Ordering::Relaxed);
                    Error::AuthRejected {
                        attempts: 1,
                        generation: 1,
                        detail,
                        remedy: "the static client never re-reads the secret".to_owned(),
                        driver: Some(source),
                    }
                } else {
                    Error::Connect {
                        detail,
                        driver: source,
                    }
                }
            })
    }

    async fn recycle(
        &self,
        conn: &mut Self::Type,
        metrics: &Metrics,
    ) -> RecycleResult<Self::Error> {
        if self.max_lifetime.is_some_and(|max| metrics.age() >= max) {
            return Err(managed::RecycleError::message(
                "reached its maximum lifetime",
            ));
        }
        match self.backend.check(&mut conn.0).await {
            Reuse::Keep => Ok(()),
            Reuse::Retire(reason) => Err(managed::RecycleError::message(reason)),
            Reuse::Broken(driver) => Err(managed::RecycleError::Backend(Error::Unhealthy {
                detail: self.backend.describe(&driver),
                driver,
            })),
        }
    }
}
