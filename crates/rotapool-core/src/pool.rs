//! The pool an application holds and the connections it lends: a deadpool pool over the rotating login, with
//! every way of getting a connection (`get`, `timeout_get`, and both through a [`WeakPool`]) timed for the
//! wait-time and timeout series, and each borrow timed for the use-time series, when the `metrics` feature is on.

use std::{
    fmt,
    ops::{Deref, DerefMut},
    time::Duration,
};

use deadpool::managed::{Status, Timeouts};

use crate::{
    backend::Backend,
    error::PoolError,
    login::{RotatingLogin, Stats},
    manager::{Connection, RotatingManager},
};

/// deadpool's pool over the rotating login. It lends deadpool's objects, which [`Pool`] wraps in rotapool's
/// [`Object`] (not through deadpool's wrapper parameter: deadpool 0.13's `weak()` drops it).
type Inner<B> = deadpool::managed::Pool<RotatingManager<B>>;

/// A pool of connections that survive password rotation. Cheap to clone: clones share one pool.
pub struct Pool<B: Backend> {
    inner: Inner<B>,
}

impl<B: Backend> Pool<B> {
    pub(crate) fn new(inner: Inner<B>) -> Self {
        let pool = Self { inner };
        #[cfg(feature = "metrics")]
        sample(&pool);
        pool
    }

    /// Borrows a connection: an idle one that passes its checks, or a new one logged in with the current
    /// credentials (re-reading the secret if the database rejects them). Returns it to the pool on drop. Waits as
    /// long as the pool's configured timeouts allow.
    pub async fn get(&self) -> Result<Object<B>, PoolError<B::Error>> {
        self.timeout_get(&self.inner.timeouts()).await
    }

    /// Like [`Pool::get`], with `timeouts` instead of the pool's configured ones (a zero `wait` fails at once
    /// when no slot is free).
    pub async fn timeout_get(&self, timeouts: &Timeouts) -> Result<Object<B>, PoolError<B::Error>> {
        #[cfg(feature = "metrics")]
        let started = std::time::Instant::now();
        let got = self
            .inner
            .timeout_get(timeouts)
            .await
            .map(Object::from)
            .map_err(PoolError::from);
        #[cfg(feature = "metrics")]
        {
            let took = match &got {
                Ok(object) => object.lent_at().saturating_duration_since(started),
                Err(_) => started.elapsed(),
            };
            self.login()
                .telemetry()
                .waited(took, matches!(got, Err(PoolError::Timeout(_))));
        }
        got
    }

    /// The pool's size, idle connections and waiting callers.
    pub fn status(&self) -> Status {
        self.inner.status()
    }

    /// The timeouts [`Pool::get`] uses.
    pub fn timeouts(&self) -> Timeouts {
        self.inner.timeouts()
    }

    /// Changes the most connections open at once; shrinking closes idle connections first.
    pub fn resize(&self, max_size: usize) {
        self.inner.resize(max_size);
    }

    /// Closes the pool: `get()` fails from now on, idle connections are dropped, and connections in use are
    /// dropped when they come back. See [`Pool::close_gracefully`] for a polite close.
    pub fn close(&self) {
        self.inner.close();
    }

    /// Whether [`Pool::close`] or [`Pool::close_gracefully`] was called.
    pub fn is_closed(&self) -> bool {
        self.inner.is_closed()
    }

    /// Closes the pool and ends its idle connections through the backend's polite close (MySQL's `COM_QUIT`),
    /// waiting at most `timeout` for them all; `get()` fails from then on. Connections in use are dropped when
    /// they come back, as after [`Pool::close`].
    pub async fn close_gracefully(&self, timeout: Duration) {
        let idle = self.inner.retain(|_, _| false).removed;
        self.inner.close();
        let backend = self.login().backend();
        let all = async {
            for connection in idle {
                backend.close(connection.into_inner()).await;
            }
        };
        if tokio::time::timeout(timeout, all).await.is_err() {
            tracing::warn!(
                ?timeout,
                "closing the pool's idle connections took too long; the rest were dropped"
            );
        }
    }

    /// What the pool's login has done: generation, secret reads, logins, connections per generation.
    pub fn stats(&self) -> Stats {
        self.login().stats()
    }

    /// The generation of the credentials now in use: 1 at start-up, one more per adopted version.
    pub fn generation(&self) -> u64 {
        self.login().generation()
    }

    /// The backend the pool logs in through.
    pub fn backend(&self) -> &B {
        self.login().backend()
    }

    /// The rotating login the pool opens its connections with.
    pub fn login(&self) -> &RotatingLogin<B> {
        &self.inner.manager().login
    }

    /// A handle that does not keep the pool alive (for background tasks); [`WeakPool::upgrade`] gives this
    /// [`Pool`] back while a clone of it lives.
    pub fn weak(&self) -> WeakPool<B> {
        WeakPool {
            inner: self.inner.weak(),
        }
    }
}

/// A reference to a [`Pool`] that does not keep it alive, from [`Pool::weak`].
pub struct WeakPool<B: Backend> {
    inner: deadpool::managed::WeakPool<RotatingManager<B>>,
}

impl<B: Backend> WeakPool<B> {
    /// The pool, unless every [`Pool`] handle has been dropped.
    pub fn upgrade(&self) -> Option<Pool<B>> {
        self.inner.upgrade().map(|inner| Pool { inner })
    }
}

impl<B: Backend> fmt::Debug for WeakPool<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WeakPool").finish_non_exhaustive()
    }
}

impl<B: Backend> Clone for Pool<B> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<B: Backend> fmt::Debug for Pool<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("login", self.login())
            .field("status", &self.status())
            .finish()
    }
}

/// A connection borrowed from a [`Pool`]; returns to the pool on drop. Derefs to the driver's connection (through
/// [`Connection`], which knows its credentials generation), so it is used exactly like one.
pub struct Object<B: Backend> {
    inner: deadpool::managed::Object<RotatingManager<B>>,
}

impl<B: Backend> From<deadpool::managed::Object<RotatingManager<B>>> for Object<B> {
    fn from(inner: deadpool::managed::Object<RotatingManager<B>>) -> Self {
        Self { inner }
    }
}

impl<B: Backend> Object<B> {
    /// When this connection was created, and how often it has been lent again.
    pub fn metrics(this: &Self) -> &deadpool::managed::Metrics {
        deadpool::managed::Object::metrics(&this.inner)
    }

    /// When this connection was lent: deadpool stamps a connection when it creates it and each time it recycles
    /// one for a caller, so the wait ends and the use starts there, with no clock read of rotapool's own (and no
    /// copy of the stamp in the object, which every `get()` and return moves).
    #[cfg(feature = "metrics")]
    fn lent_at(&self) -> std::time::Instant {
        let metrics = Self::metrics(self);
        metrics.recycled.unwrap_or(metrics.created)
    }
}

impl<B: Backend> Deref for Object<B> {
    type Target = Connection<B::Connection>;

    fn deref(&self) -> &Self::Target {
        &self.inner
    }
}

impl<B: Backend> DerefMut for Object<B> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.inner
    }
}

#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
impl<B: Backend> Drop for Object<B> {
    fn drop(&mut self) {
        // The connection carries its pool's telemetry: no reach through deadpool's weak pointer to the pool,
        // whose count every task's return would touch.
        self.inner.telemetry().used(self.lent_at().elapsed());
    }
}

impl<B: Backend> fmt::Debug for Object<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.inner, f)
    }
}

/// Samples a pool's state every second into the `db.client.connection.*` gauges and
/// `rotapool.connections.open`, until the pool is dropped.
#[cfg(feature = "metrics")]
fn sample<B: Backend>(pool: &Pool<B>) {
    use crate::telemetry::POOL_NAME;

    let weak = pool.weak();
    let name = pool.login().telemetry().name().to_owned();
    tokio::spawn(async move {
        const STATE: &str = "db.client.connection.state";
        const CREDENTIALS: &str = "rotapool.connection.credentials";
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            let Some(pool) = weak.upgrade() else { return };
            let status = pool.status();
            let stats = pool.stats();
            let label = || name.clone();
            let used = status.size.saturating_sub(status.available);
            metrics::gauge!("db.client.connection.count", POOL_NAME => label(), STATE => "idle")
                .set(status.available as f64);
            metrics::gauge!("db.client.connection.count", POOL_NAME => label(), STATE => "used")
                .set(used as f64);
            metrics::gauge!("db.client.connection.max", POOL_NAME => label())
                .set(status.max_size as f64);
            metrics::gauge!("db.client.connection.pending_requests", POOL_NAME => label())
                .set(status.waiting as f64);
            let old = stats.old_generation_connections();
            let all: u64 = stats.connections_by_generation.values().sum();
            metrics::gauge!("rotapool.connections.open", POOL_NAME => label(), CREDENTIALS => "current")
                .set((all - old) as f64);
            metrics::gauge!("rotapool.connections.open", POOL_NAME => label(), CREDENTIALS => "old")
                .set(old as f64);
            metrics::gauge!("rotapool.credentials.generation", POOL_NAME => label())
                .set(stats.generation as f64);
        }
    });
}
