//! The pool under test, behind a small trait, so that the rotation scenarios and the fault cases run, with the
//! same assertions, against every pool adapter over the rotating login: rotapool's own pool ([`Rotapool`]) and,
//! for PostgreSQL, deadpool-postgres's pool over `rotapool_postgres::RotatingConnect`
//! ([`super::postgres::DeadpoolPostgres`]), and rotapool-sqlx's `sqlx::Pool` for PostgreSQL and MariaDB
//! ([`super::sqlx::SqlxPostgres`], [`super::sqlx::SqlxMariaDb`]).

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use async_trait::async_trait;
use rotapool_core::{
    Backend, DrainPolicy, Object, Pool, PoolBuilder, ProactiveRefresh, SecretSource, Stats,
};

use super::TestDb;

/// The settings a scenario gives its pool, for any adapter. Unset ones keep the adapter's defaults.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    max_size: Option<usize>,
    max_lifetime: Option<Option<Duration>>,
    drain: Option<DrainPolicy>,
    proactive_refresh: Option<Option<ProactiveRefresh>>,
    lockout_threshold: Option<Option<u32>>,
}

impl Settings {
    pub fn max_size(mut self, size: usize) -> Self {
        self.max_size = Some(size);
        self
    }

    pub fn max_lifetime(mut self, lifetime: Option<Duration>) -> Self {
        self.max_lifetime = Some(lifetime);
        self
    }

    pub fn drain(mut self, policy: DrainPolicy) -> Self {
        self.drain = Some(policy);
        self
    }

    pub fn proactive_refresh(mut self, schedule: Option<ProactiveRefresh>) -> Self {
        self.proactive_refresh = Some(schedule);
        self
    }

    pub fn lockout_threshold(mut self, threshold: Option<u32>) -> Self {
        self.lockout_threshold = Some(threshold);
        self
    }

    /// The pool size, for adapters whose pool is sized elsewhere.
    pub fn size(&self) -> Option<usize> {
        self.max_size
    }

    /// Applies the settings to a rotating login's builder (rotapool's pool, or the login under another pool).
    pub fn apply<B: Backend>(&self, mut builder: PoolBuilder<B>) -> PoolBuilder<B> {
        if let Some(size) = self.max_size {
            builder = builder.max_size(size);
        }
        if let Some(lifetime) = self.max_lifetime {
            builder = builder.max_lifetime(lifetime);
        }
        if let Some(policy) = self.drain {
            builder = builder.drain(policy);
        }
        if let Some(schedule) = self.proactive_refresh {
            builder = builder.proactive_refresh(schedule);
        }
        if let Some(threshold) = self.lockout_threshold {
            builder = builder.lockout_threshold(threshold);
        }
        builder
    }
}

/// A pool, as the scenarios use it.
#[async_trait]
pub trait TestPool: Clone + Send + Sync + 'static {
    /// A connection checked out of the pool.
    type Conn: Send + 'static;

    /// `get()`, with the error as the application would log it.
    async fn get(&self) -> Result<Self::Conn, String>;
    /// A trivial query on a checked-out connection.
    async fn ping(&self, conn: &mut Self::Conn) -> Result<(), String>;
    /// The credentials generation `conn` logged in with.
    fn conn_generation(&self, conn: &Self::Conn) -> u64;
    /// When `conn` was created.
    fn conn_created(&self, conn: &Self::Conn) -> Instant;
    /// The rotating login's counters.
    fn stats(&self) -> Stats;
    /// The credentials generation now in use.
    fn generation(&self) -> u64 {
        self.stats().generation
    }
    /// The password now in use.
    fn password(&self) -> String;
    /// Connections the pool holds, idle or in use.
    fn size(&self) -> usize;
    /// Whether `message` (from [`TestPool::get`]) is the database's rejection of the secret's credentials.
    fn is_rejection(message: &str) -> bool;
    /// Whether `message` (from [`TestPool::get`]) says that the secret store could not be read.
    fn names_the_store(message: &str) -> bool;
}

/// A way to build a [`TestPool`] for the server `D`.
#[async_trait]
pub trait PoolKind<D: TestDb>: Send + Sync + 'static {
    /// The pool it builds.
    type Pool: TestPool;
    /// A pool that reads `source`, with `settings`.
    async fn build(db: &D, source: Arc<dyn SecretSource>, settings: Settings) -> Self::Pool;
}

/// rotapool's own pool.
pub struct Rotapool;

/// rotapool's own pool, with the server that pings its connections.
pub struct RotapoolPool<D: TestDb> {
    pub db: D,
    pub pool: Pool<D::Backend>,
}

impl<D: TestDb> Clone for RotapoolPool<D> {
    fn clone(&self) -> Self {
        Self {
            db: self.db.clone(),
            pool: self.pool.clone(),
        }
    }
}

#[async_trait]
impl<D: TestDb> PoolKind<D> for Rotapool {
    type Pool = RotapoolPool<D>;

    async fn build(db: &D, source: Arc<dyn SecretSource>, settings: Settings) -> RotapoolPool<D> {
        let pool = settings
            .apply(PoolBuilder::new(db.backend()).secret_source(source))
            .build()
            .await
            .expect("the pool builds");
        RotapoolPool {
            db: db.clone(),
            pool,
        }
    }
}

#[async_trait]
impl<D: TestDb> TestPool for RotapoolPool<D> {
    type Conn = Object<D::Backend>;

    async fn get(&self) -> Result<Self::Conn, String> {
        // Each message of the chain is printed once; the application logs the chain.
        self.pool
            .get()
            .await
            .map_err(|e| rotapool_testkit::error_chain(&e))
    }

    async fn ping(&self, conn: &mut Self::Conn) -> Result<(), String> {
        self.db.ping(conn).await
    }

    fn conn_generation(&self, conn: &Self::Conn) -> u64 {
        conn.credentials_generation()
    }

    fn conn_created(&self, conn: &Self::Conn) -> Instant {
        Object::metrics(conn).created
    }

    fn stats(&self) -> Stats {
        self.pool.stats()
    }

    fn password(&self) -> String {
        self.pool.login().credentials().password().to_owned()
    }

    fn size(&self) -> usize {
        self.pool.status().size
    }

    fn is_rejection(message: &str) -> bool {
        message.contains("the database rejected the credentials")
    }

    fn names_the_store(message: &str) -> bool {
        message.contains("secret store")
    }
}

/// A `K` pool for `db` that reads `source`, with `configure` applied to the default settings.
pub async fn build<D: TestDb, K: PoolKind<D>>(
    db: &D,
    source: Arc<dyn SecretSource>,
    configure: impl FnOnce(Settings) -> Settings,
) -> K::Pool {
    K::build(db, source, configure(Settings::default())).await
}
