//! One client run: an account and a secret of its own, a pool, a workload, and rotations driven by
//! rotapool-rotator's real steps on a fixed schedule, so every client meets the same rotations at the same times.

use std::{
    ops::DerefMut,
    sync::Arc,
    time::{Duration, Instant},
};

use deadpool::managed::{Manager, Pool};
use rotapool_core::{
    source::SecretAdmin, Backend, Credentials, Error, PoolBuilder, PoolError, SecretSource, Stage,
};
use rotapool_rotator::{RotationTarget, Rotator, Strategy};
use rotapool_sqlx::RotatingPool;
use rotapool_testkit::{random_password, rotation_token, unique_name, TestServer};

use crate::{
    clients::{BaselineManager, ClientKind, CountingSource, Credentialing},
    login_log::{LoginLog, Observed},
    metrics::{Recorder, TaskLatencies, Timeline},
    sqlx_clients::{self, PlainSqlx, SqlxEngine},
    store::Store,
    switch::{self, Switches},
};

/// A backend the simulator can drive.
pub(crate) trait SimBackend: Backend + RotationTarget + Clone {
    /// The `engine` of the RDS secret.
    const ENGINE: &'static str;
    /// A database every account may open.
    const DBNAME: &'static str;
    /// Runs `SELECT 1`.
    fn ping(
        conn: &mut Self::Connection,
    ) -> impl std::future::Future<Output = Result<(), String>> + Send;
}

/// How connections are forced to log in again.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Churn {
    /// Connections older than this are not reused.
    MaxLifetime(Duration),
    /// The server ends every session of the account right after setSecret.
    KillAtSetSecret,
}

/// Which rotation strategy the rotator uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum StrategyKind {
    /// One user; between setSecret and finishSecret only AWSPENDING logs in.
    Single,
    /// Two users used in turn (needs a master account, which the simulator creates).
    Alternating,
}

/// The workload and the rotation schedule, the same for every client.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// Concurrent tasks looping `get()` + `SELECT 1`.
    pub tasks: usize,
    /// Pool size.
    pub pool_size: usize,
    /// Length of one client's run.
    pub duration: Duration,
    /// When the first rotation starts.
    pub first_rotation: Duration,
    /// Time between rotations.
    pub interval: Duration,
    /// Time between setSecret and finishSecret.
    pub window: Duration,
    /// How connections are churned.
    pub churn: Churn,
    /// Rotation strategy.
    pub strategy: StrategyKind,
    /// Added to every read of the secret by the client (not by the rotator).
    pub read_latency: Duration,
}

impl Settings {
    /// Start times of the rotations, each leaving room for its window before the end.
    pub(crate) fn rotation_times(&self) -> Vec<Duration> {
        let mut times = Vec::new();
        let mut at = self.first_rotation;
        while at + self.window + Duration::from_secs(1) < self.duration {
            times.push(at);
            at += self.interval();
        }
        times
    }

    /// A run length that holds exactly `rotations` rotations.
    pub(crate) fn duration_for(&self, rotations: u32) -> Duration {
        let last = self.first_rotation + self.interval() * rotations.saturating_sub(1);
        // `rotation_times` wants the last window and one second more to end before the run does.
        last + self.window + Duration::from_millis(1500)
    }

    /// The pool's max lifetime: the churn's, or none when the churn kills sessions instead.
    pub(crate) fn max_lifetime(&self) -> Option<Duration> {
        match self.churn {
            Churn::MaxLifetime(lifetime) => Some(lifetime),
            Churn::KillAtSetSecret => None,
        }
    }

    /// The time between rotations, at least 100 ms.
    fn interval(&self) -> Duration {
        self.interval.max(Duration::from_millis(100))
    }
}

/// One rotation as the run saw it, in seconds since the start.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RotationMark {
    /// When createSecret began: the rotation's first step.
    pub started_at: f64,
    /// When setSecret changed the password on the database.
    pub set_at: f64,
    /// When finishSecret moved AWSCURRENT.
    pub finish_at: f64,
}

/// Everything one client run measured.
pub(crate) struct ClientRun {
    /// Which client.
    pub kind: ClientKind,
    /// When the workload started: the zero of every time in seconds.
    pub start: Instant,
    /// Requests and errors over time.
    pub timeline: Timeline,
    /// Latencies of successful requests.
    pub latencies: TaskLatencies,
    /// The rotations.
    pub rotations: Vec<RotationMark>,
    /// Reads of the secret by the client (not by the rotator).
    pub secret_reads: u64,
    /// Reads of the secret before the workload started.
    pub secret_reads_at_start: u64,
    /// Logins attempted.
    pub logins: u64,
    /// Logins rejected as bad credentials.
    pub login_failures: u64,
    /// Per rotation, how the pool switched credentials (the `rotapool` client only).
    pub switches: Option<Switches>,
}

/// Runs `kind` against `server` with `settings`, reporting progress through `progress`.
pub(crate) async fn run_client<B: SqlxEngine>(
    kind: ClientKind,
    settings: &Settings,
    backend: B,
    server: &'static dyn TestServer,
    store: &Store,
    progress: impl Fn(&Recorder) + Send + Sync + 'static,
) -> Result<ClientRun, String> {
    let Prepared {
        user,
        admin,
        rotator,
    } = prepare(kind.name(), settings, backend.clone(), server, store).await?;
    let source = Arc::new(
        if kind == ClientKind::Rotapool {
            CountingSource::with_read_log(admin)
        } else {
            CountingSource::new(admin)
        }
        .with_latency(settings.read_latency),
    );
    let max_lifetime = settings.max_lifetime();

    macro_rules! run_with {
        ($pool:expr, $logins:expr) => {{
            let pool = $pool;
            let secret_reads_at_start = source.reads();
            let driven = drive(&pool, settings, &rotator, server, &user, progress).await?;
            let (logins, login_failures) = $logins(&pool);
            ClientRun {
                kind,
                start: driven.start,
                timeline: driven.timeline,
                latencies: driven.latencies,
                rotations: driven.rotations,
                secret_reads: source.reads(),
                secret_reads_at_start,
                logins,
                login_failures,
                switches: None,
            }
        }};
    }
    let baseline = |credentials| {
        let manager = BaselineManager::new(backend.clone(), credentials, max_lifetime);
        Pool::builder(manager)
            .max_size(settings.pool_size)
            .runtime(deadpool::Runtime::Tokio1)
            .build()
            .map_err(|e| e.to_string())
    };
    let baseline_logins = |pool: &Pool<BaselineManager<B>>| {
        let logins = &pool.manager().logins;
        (logins.attempts(), logins.rejected())
    };
    let run = match kind {
        ClientKind::Rotapool => {
            let log = Arc::new(LoginLog::default());
            let mut run = run_with!(
                rotapool_pool(
                    Observed::new(backend.clone(), log.clone()),
                    &source,
                    settings
                )
                .await?,
                |pool: &rotapool_core::Pool<Observed<B>>| {
                    let stats = pool.stats();
                    (stats.logins, stats.auth_failures)
                }
            );
            run.switches = Some(switch::measure(
                &run.rotations,
                &log.events(),
                &source.read_log(),
                run.start,
            ));
            run
        }
        ClientKind::Static => run_with!(
            baseline(Credentialing::Fixed(read_once(&source).await?))?,
            baseline_logins
        ),
        ClientKind::Naive => run_with!(
            baseline(Credentialing::EveryLogin(source.clone()))?,
            baseline_logins
        ),
        ClientKind::SqlxRotapool => run_with!(
            sqlx_clients::rotating::<B>(source.clone(), settings, max_lifetime).await?,
            |pool: &RotatingPool<B::Sqlx>| {
                let stats = pool.stats();
                (stats.logins, stats.auth_failures)
            }
        ),
        ClientKind::SqlxStatic => run_with!(
            PlainSqlx::<B>::new(read_once(&source).await?, None, settings, max_lifetime),
            PlainSqlx::logins
        ),
        ClientKind::SqlxNaive => run_with!(
            PlainSqlx::<B>::new(
                read_once(&source).await?,
                Some(source.clone()),
                settings,
                max_lifetime
            ),
            PlainSqlx::logins
        ),
    };
    Ok(run)
}

/// What a run needs before its pool: an account on `server`, its secret in `store`, and a rotator for both.
pub(crate) struct Prepared<B: SimBackend> {
    /// The account's user name.
    pub user: String,
    /// The secret, for the client's source.
    pub admin: Arc<dyn SecretAdmin>,
    /// Runs the rotation steps on the account and the secret.
    pub rotator: Rotator<B>,
}

/// Creates an account on `server` for the client `name`, its secret in `store`, and the rotator for
/// `settings.strategy` (with a master account and secret of its own for the alternating strategy).
pub(crate) async fn prepare<B: SimBackend>(
    name: &str,
    settings: &Settings,
    backend: B,
    server: &'static dyn TestServer,
    store: &Store,
) -> Result<Prepared<B>, String> {
    let (user, password) = (unique_name(name), random_password());
    server.create_account(&user, &password).await;
    let mut secret = secret_for::<B>(server, &user, &password);
    let strategy = match settings.strategy {
        StrategyKind::Single => Strategy::SingleUser,
        StrategyKind::Alternating => {
            let (master, master_password) = (unique_name("master"), random_password());
            server.create_admin_account(&master, &master_password).await;
            let name = unique_name("rotapool-sim/master");
            let master_secret = store
                .create(&name, &secret_for::<B>(server, &master, &master_password))
                .await?;
            secret = secret.replacen('{', &format!("{{\"masterarn\":\"{name}\","), 1);
            Strategy::AlternatingUsers {
                master: master_secret,
            }
        }
    };
    let admin: Arc<dyn SecretAdmin> = store
        .create(&unique_name(&format!("rotapool-sim/{name}")), &secret)
        .await?;
    Ok(Prepared {
        user,
        admin: admin.clone(),
        rotator: Rotator::new(admin, backend, strategy),
    })
}

/// A rotapool pool over `backend`, reading `source`, sized and churned as `settings` say.
pub(crate) async fn rotapool_pool<B: Backend>(
    backend: B,
    source: &Arc<CountingSource>,
    settings: &Settings,
) -> Result<rotapool_core::Pool<B>, String> {
    PoolBuilder::new(backend)
        .secret_source(source.clone())
        .max_size(settings.pool_size)
        .max_lifetime(settings.max_lifetime())
        .build()
        .await
        .map_err(|e| e.to_string())
}

/// The credentials a read-once client starts with (AWSCURRENT).
async fn read_once(source: &CountingSource) -> Result<Arc<Credentials>, String> {
    source
        .fetch(Stage::Current)
        .await
        .map(|version| version.credentials)
        .map_err(|e| e.to_string())
}

/// The RDS secret JSON for an account on `server`.
fn secret_for<B: SimBackend>(server: &dyn TestServer, user: &str, password: &str) -> String {
    Credentials::new(user, password)
        .with_engine(B::ENGINE)
        .with_host(server.host())
        .with_port(server.port())
        .with_dbname(B::DBNAME)
        .to_secret_json()
}

/// What [`drive`] measured.
struct Driven {
    /// When the run started: the zero of every time in seconds.
    start: Instant,
    /// Requests and errors over time.
    timeline: Timeline,
    /// Latencies of successful requests.
    latencies: TaskLatencies,
    /// The rotations.
    rotations: Vec<RotationMark>,
}

/// Runs the workload and the rotations on `pool` for the run's duration.
async fn drive<B, P>(
    pool: &P,
    settings: &Settings,
    rotator: &Rotator<B>,
    server: &'static dyn TestServer,
    user: &str,
    progress: impl Fn(&Recorder) + Send + Sync + 'static,
) -> Result<Driven, String>
where
    B: SimBackend,
    P: SimPool<B>,
{
    let recorder = Arc::new(Recorder::new(settings.duration));
    let deadline = recorder.start() + settings.duration;
    let tasks = spawn_workload::<B, P, Recorder>(pool, settings, &recorder);
    let ticker = {
        let recorder = recorder.clone();
        tokio::spawn(async move {
            while Instant::now() < deadline {
                progress(&recorder);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };
    let mut rotations = Vec::new();
    for at in settings.rotation_times() {
        tokio::time::sleep_until((recorder.start() + at).into()).await;
        rotations.push(rotate(rotator, settings, server, user, recorder.start()).await?);
    }
    let latencies = join_workload(tasks).await?;
    ticker.await.ok();
    Ok(Driven {
        start: recorder.start(),
        timeline: recorder.timeline(settings.duration),
        latencies,
        rotations,
    })
}

/// Runs the four steps of one rotation now, `settings.window` between setSecret and finishSecret (killing the
/// account's sessions at setSecret with `--churn kill`); times in seconds since `start`.
pub(crate) async fn rotate<B: SimBackend>(
    rotator: &Rotator<B>,
    settings: &Settings,
    server: &'static dyn TestServer,
    user: &str,
    start: Instant,
) -> Result<RotationMark, String> {
    let seconds = || {
        Instant::now()
            .saturating_duration_since(start)
            .as_secs_f64()
    };
    let started_at = seconds();
    let token = rotation_token();
    let step = |e: rotapool_rotator::RotationError| format!("rotation at {started_at:.3} s: {e}");
    rotator.create_secret(&token).await.map_err(step)?;
    rotator.set_secret(&token).await.map_err(step)?;
    let set_at = seconds();
    if let Churn::KillAtSetSecret = settings.churn {
        server.kill_sessions(user).await;
    }
    rotator.test_secret(&token).await.map_err(step)?;
    tokio::time::sleep(settings.window).await;
    rotator.finish_secret(&token).await.map_err(step)?;
    Ok(RotationMark {
        started_at,
        set_at,
        finish_at: seconds(),
    })
}

/// Where workload tasks report their requests, and say when to stop.
pub(crate) trait Sink: Send + Sync + 'static {
    /// Whether the tasks should go on.
    fn running(&self) -> bool;
    /// A request that succeeded at `at`; `fresh` if it ran on a connection opened for it.
    fn ok(&self, at: Instant, fresh: bool);
    /// A request that failed at `at` with an error of `kind`.
    fn error(&self, at: Instant, kind: &'static str);
}

/// Starts `settings.tasks` workload tasks on `pool`, reporting to `sink`; each returns its latencies.
pub(crate) fn spawn_workload<B, P, S>(
    pool: &P,
    settings: &Settings,
    sink: &Arc<S>,
) -> Vec<tokio::task::JoinHandle<TaskLatencies>>
where
    B: SimBackend,
    P: SimPool<B>,
    S: Sink,
{
    (0..settings.tasks)
        .map(|_| tokio::spawn(work::<B, P, S>(pool.clone(), sink.clone())))
        .collect()
}

/// Waits for the workload `tasks` and merges their latencies.
pub(crate) async fn join_workload(
    tasks: Vec<tokio::task::JoinHandle<TaskLatencies>>,
) -> Result<TaskLatencies, String> {
    let mut latencies = TaskLatencies::new();
    for task in tasks {
        latencies.merge(
            &task
                .await
                .map_err(|e| format!("a workload task failed: {e}"))?,
        );
    }
    Ok(latencies)
}

/// One workload task: `get()` + `SELECT 1` while `sink` says so.
async fn work<B, P, S>(pool: P, sink: Arc<S>) -> TaskLatencies
where
    B: SimBackend,
    P: SimPool<B>,
    S: Sink,
{
    let mut latencies = TaskLatencies::new();
    while sink.running() {
        let started = Instant::now();
        let (mut conn, created) = match pool.checkout().await {
            Ok(got) => got,
            Err(kind) => {
                sink.error(Instant::now(), kind);
                // A failing pool answers at once; do not spin on it.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let got = started.elapsed();
        let fresh = created.is_some_and(|created| created >= started);
        match P::ping(&mut conn).await {
            Ok(()) => {
                latencies.record(got, started.elapsed());
                sink.ok(Instant::now(), fresh);
            }
            Err(_) => sink.error(Instant::now(), "query"),
        }
    }
    latencies
}

/// What the workload needs of a pool: a connection and when it was opened (if the pool knows), or the report's
/// name for why not; and `SELECT 1` on the connection.
pub(crate) trait SimPool<B: SimBackend>: Clone + Send + Sync + 'static {
    /// A borrowed connection.
    type Conn: Send;
    /// Borrows a connection.
    fn checkout(
        &self,
    ) -> impl std::future::Future<Output = Result<(Self::Conn, Option<Instant>), &'static str>> + Send;
    /// Runs `SELECT 1` on a borrowed connection.
    fn ping(conn: &mut Self::Conn) -> impl std::future::Future<Output = Result<(), String>> + Send;
}

/// The baseline pools: plain deadpool pools.
impl<B, M> SimPool<B> for Pool<M>
where
    B: SimBackend,
    M: Manager<Error = Error<B::Error>> + 'static,
    M::Type: DerefMut<Target = B::Connection>,
{
    type Conn = deadpool::managed::Object<M>;

    async fn checkout(&self) -> Result<(Self::Conn, Option<Instant>), &'static str> {
        let conn = self.get().await.map_err(|e| match e {
            deadpool::managed::PoolError::Timeout(_) => "get:timeout",
            deadpool::managed::PoolError::Backend(e) => error_kind(&e),
            _ => "get:other",
        })?;
        let created = deadpool::managed::Object::metrics(&conn).created;
        Ok((conn, Some(created)))
    }

    async fn ping(conn: &mut Self::Conn) -> Result<(), String> {
        B::ping(conn).await
    }
}

/// A rotapool pool, over `B` or over a wrapper of it with the same connections (the switch time's [`Observed`]).
impl<B, O> SimPool<B> for rotapool_core::Pool<O>
where
    B: SimBackend,
    O: Backend<Connection = B::Connection, Error = B::Error>,
{
    type Conn = rotapool_core::Object<O>;

    async fn checkout(&self) -> Result<(Self::Conn, Option<Instant>), &'static str> {
        let conn = self.get().await.map_err(|e| match e {
            PoolError::Timeout(_) => "get:timeout",
            PoolError::Backend(e) => error_kind(&e),
            _ => "get:other",
        })?;
        let created = rotapool_core::Object::metrics(&conn).created;
        Ok((conn, Some(created)))
    }

    async fn ping(conn: &mut Self::Conn) -> Result<(), String> {
        B::ping(conn).await
    }
}

/// The report's name for a failed login.
pub(crate) fn error_kind<E: std::error::Error>(error: &Error<E>) -> &'static str {
    match error {
        Error::AuthRejected { .. } => "get:auth",
        Error::AccountLocked { .. } => "get:locked",
        Error::Refresh(_) => "get:secret",
        _ => "get:connect",
    }
}
