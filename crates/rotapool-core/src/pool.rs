//! The pool an application holds and the connections it lends: deadpool's, with every way of getting a connection
//! (`get`, `timeout_get`, and both through a [`WeakPool`]) timed for the wait-time and timeout series, and each
//! borrow timed for the use-time series, when the `metrics` feature is on.

use std::{
    fmt,
    ops::{Deref, DerefMut},
};

use deadpool::managed::Timeouts;

use crate::{
    backend::Backend, builder::PoolError, connection::Connection, manager::RotatingManager,
};

/// A pool of connections that survive password rotation. Derefs to [`deadpool::managed::Pool`], so `status()`,
/// `manager()`, `resize()` and the rest work as they do there; the ways of getting a connection (`get`,
/// `timeout_get`, `weak`) are rotapool's own, so that each one is measured. Cheap to clone: clones share one pool.
pub struct Pool<B: Backend> {
    inner: deadpool::managed::Pool<RotatingManager<B>>,
}

impl<B: Backend> Pool<B> {
    /// Borrows a connection: an idle one that passes its checks, or a new one logged in with the current
    /// credentials (re-reading the secret if the database rejects them). Returns it to the pool on drop. Waits as
    /// long as the pool's configured timeouts allow.
    pub async fn get(&self) -> Result<Object<B>, PoolError<B>> {
        self.timeout_get(&self.inner.timeouts()).await
    }

    /// Like [`Pool::get`], with `timeouts` instead of the pool's configured ones (a zero `wait` fails at once
    /// when no slot is free).
    pub async fn timeout_get(&self, timeouts: &Timeouts) -> Result<Object<B>, PoolError<B>> {
        #[cfg(feature = "metrics")]
        let started = std::time::Instant::now();
        let got = self.inner.timeout_get(timeouts).await;
        #[cfg(feature = "metrics")]
        self.inner.manager().telemetry().waited(
            started.elapsed(),
            matches!(got, Err(deadpool::managed::PoolError::Timeout(_))),
        );
        got.map(|inner| Object {
            inner,
            #[cfg(feature = "metrics")]
            borrowed_at: std::time::Instant::now(),
        })
    }

    /// Closes the pool and ends its idle connections through the backend's polite close (MySQL's `COM_QUIT`),
    /// waiting at most `timeout` for them all; `get()` fails from then on. Connections in use are dropped when
    /// they come back, as after [`deadpool::managed::Pool::close`].
    pub async fn close_gracefully(&self, timeout: std::time::Duration) {
        let idle = self.inner.retain(|_, _| false).removed;
        self.inner.close();
        let backend = self.inner.manager().backend();
        let closing = idle
            .into_iter()
            .map(|connection| backend.close(connection.into_inner()));
        let all = async {
            for close in closing {
                close.await;
            }
        };
        if tokio::time::timeout(timeout, all).await.is_err() {
            tracing::warn!(
                ?timeout,
                "closing the pool's idle connections took too long; the rest were dropped"
            );
        }
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
        self.inner.upgrade().map(Pool::from)
    }
}

impl<B: Backend> fmt::Debug for WeakPool<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WeakPool").finish_non_exhaustive()
    }
}

impl<B: Backend> From<deadpool::managed::Pool<RotatingManager<B>>> for Pool<B> {
    fn from(inner: deadpool::managed::Pool<RotatingManager<B>>) -> Self {
        Self { inner }
    }
}

impl<B: Backend> Deref for Pool<B> {
    type Target = deadpool::managed::Pool<RotatingManager<B>>;

    fn deref(&self) -> &Self::Target {
        &self.inner
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
        fmt::Debug::fmt(&self.inner, f)
    }
}

/// A connection borrowed from a [`Pool`]; returns to the pool on drop. Derefs to the driver's connection (through
/// [`Connection`], which knows its credentials generation), so it is used exactly like one.
pub struct Object<B: Backend> {
    inner: deadpool::managed::Object<RotatingManager<B>>,
    #[cfg(feature = "metrics")]
    borrowed_at: std::time::Instant,
}

impl<B: Backend> Object<B> {
    /// When this connection was created and recycled, as deadpool counts it.
    pub fn metrics(this: &Self) -> &deadpool::managed::Metrics {
        deadpool::managed::Object::metrics(&this.inner)
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
        if let Some(pool) = deadpool::managed::Object::pool(&self.inner) {
            pool.manager().telemetry().used(self.borrowed_at.elapsed());
        }
    }
}

impl<B: Backend> fmt::Debug for Object<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.inner, f)
    }
}
