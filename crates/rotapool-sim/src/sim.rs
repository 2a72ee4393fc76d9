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
use rotapool_sqlx::{ConnectOptions, RotatingDatabase, RotatingPool};
use rotapool_testkit::{random_password, rotation_token, unique_name, TestServer};

use crate::{
    clients::{BaselineManager, ClientKind, CountingSource, Credentialing},
    metrics::{Recorder, TaskLatencies, Timeline},
    sqlx_clients::{self, PlainSqlx},
    store::Store,
};

/// A backend the simulator can drive.
pub(crate) trait SimBackend: Backend + RotationTarget + Clone {
    /// The `engine` of the RDS secret.
    const ENGINE: &'static str;
    /// A database every account may open.
    const DBNAME: &'static str;
    /// The same engine through sqlx.
    type Sqlx: RotatingDatabase;
    /// Runs `SELECT 1`.
    fn ping(
        conn: &mut Self::Connection,
    ) -> impl std::future::Future<Output = Result<(), String>> + Send;
    /// sqlx's connect options for the engine, as the simulator's own backends connect (no TLS); the secret's
    /// credentials, host, port and database go over them.
    fn sqlx_options() -> ConnectOptions<Self::Sqlx>;
    /// Runs `SELECT 1` on a sqlx connection, through the same simple (text) protocol as [`SimBackend::ping`].
    fn sqlx_ping(
        conn: &mut <Self::Sqlx as sqlx::Database>::Connection,
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
}

impl Settings {
    /// Start times of the rotations, each leaving room for its window before the end.
    pub(crate) fn rotation_times(&self) -> Vec<Duration> {
        let mut times = Vec::new();
        let mut at = self.first_rotation;
        while at + self.window + Duration::from_secs(1) < self.duration {
            times.push(at);
            at += self.interval.max(Duration::from_millis(100));
        }
        times
    }
}

/// One rotation as the run saw it, in seconds since the start.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RotationMark {
    /// When setSecret changed the password on the database.
    pub set_at: f64,
    /// When finishSecret moved AWSCURRENT.
    pub finish_at: f64,
}

/// Everything one client run measured.
pub(crate) struct ClientRun {
    /// Which client.
    pub kind: ClientKind,
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
}

/// Runs `kind` against `server` with `settings`, reporting progress through `progress`.
pub(crate) async fn run_client<B: SimBackend>(
    kind: ClientKind,
    settings: &Settings,
    backend: B,
    server: &'static dyn TestServer,
    store: &Store,
    progress: impl Fn(&Recorder) + Send + Sync + 'static,
) -> Result<ClientRun, String> {
    let (user, password) = (unique_name(kind.name()), random_password());
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
        .create(
            &unique_name(&format!("rotapool-sim/{}", kind.name())),
            &secret,
        )
        .await?;
    let source = Arc::new(CountingSource::new(admin.clone()));
    let rotator = Rotator::new(admin, backend.clone(), strategy);
    let max_lifetime = match settings.churn {
        Churn::MaxLifetime(lifetime) => Some(lifetime),
        Churn::KillAtSetSecret => None,
    };

    macro_rules! run_with {
        ($pool:expr, $logins:expr) => {{
            let pool = $pool;
            let secret_reads_at_start = source.reads();
            let (timeline, latencies, rotations) =
                drive(&pool, settings, &rotator, server, &user, progress).await?;
            let (logins, login_failures) = $logins(&pool);
            Ok(ClientRun {
                kind,
                timeline,
                latencies,
                rotations,
                secret_reads: source.reads(),
                secret_reads_at_start,
                logins,
                login_failures,
            })
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
    match kind {
        ClientKind::Rotapool => run_with!(
            PoolBuilder::new(backend.clone())
                .secret_source(source.clone())
                .max_size(settings.pool_size)
                .max_lifetime(max_lifetime)
                .build()
                .await
                .map_err(|e| e.to_string())?,
            |pool: &rotapool_core::Pool<B>| {
                let stats = pool.stats();
                (stats.logins, stats.auth_failures)
            }
        ),
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
    }
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

/// Runs the workload and the rotations on `pool` for the run's duration.
async fn drive<B, P>(
    pool: &P,
    settings: &Settings,
    rotator: &Rotator<B>,
    server: &'static dyn TestServer,
    user: &str,
    progress: impl Fn(&Recorder) + Send + Sync + 'static,
) -> Result<(Timeline, TaskLatencies, Vec<RotationMark>), String>
where
    B: SimBackend,
    P: SimPool<B>,
{
    let recorder = Arc::new(Recorder::new(settings.duration));
    let deadline = recorder.start() + settings.duration;
    let tasks: Vec<_> = (0..settings.tasks)
        .map(|_| tokio::spawn(work::<B, P>(pool.clone(), recorder.clone(), deadline)))
        .collect();
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
        let token = rotation_token();
        let step = |e: rotapool_rotator::RotationError| format!("rotation at {at:?}: {e}");
        rotator.create_secret(&token).await.map_err(step)?;
        rotator.set_secret(&token).await.map_err(step)?;
        let set_at = recorder.seconds(Instant::now());
        if let Churn::KillAtSetSecret = settings.churn {
            server.kill_sessions(user).await;
        }
        rotator.test_secret(&token).await.map_err(step)?;
        tokio::time::sleep(settings.window).await;
        rotator.finish_secret(&token).await.map_err(step)?;
        rotations.push(RotationMark {
            set_at,
            finish_at: recorder.seconds(Instant::now()),
        });
    }
    let mut latencies = TaskLatencies::new();
    for task in tasks {
        latencies.merge(
            &task
                .await
                .map_err(|e| format!("a workload task failed: {e}"))?,
        );
    }
    ticker.await.ok();
    Ok((recorder.timeline(settings.duration), latencies, rotations))
}

/// One workload task: `get()` + `SELECT 1` until `deadline`.
async fn work<B, P>(pool: P, recorder: Arc<Recorder>, deadline: Instant) -> TaskLatencies
where
    B: SimBackend,
    P: SimPool<B>,
{
    let mut latencies = TaskLatencies::new();
    while Instant::now() < deadline {
        let started = Instant::now();
        let (mut conn, created) = match pool.checkout().await {
            Ok(got) => got,
            Err(kind) => {
                recorder.error(Instant::now(), kind);
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
                recorder.ok(Instant::now(), fresh);
            }
            Err(_) => recorder.error(Instant::now(), "query"),
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

impl<B: SimBackend> SimPool<B> for rotapool_core::Pool<B> {
    type Conn = rotapool_core::Object<B>;

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
