//! The pool an application holds: deadpool's pool, whose `get()` is also timed for the wait-time and timeout
//! series when the `metrics` feature is on.

use std::{fmt, ops::Deref};

use crate::{
    backend::Backend,
    builder::{Object, PoolError},
    manager::RotatingManager,
};

/// A pool of connections that survive password rotation. Derefs to [`deadpool::managed::Pool`], so `status()`,
/// `manager()`, `resize()` and the rest work as they do there. Cheap to clone: clones share one pool.
pub struct Pool<B: Backend> {
    inner: deadpool::managed::Pool<RotatingManager<B>>,
}

impl<B: Backend> Pool<B> {
    /// Borrows a connection: an idle one that passes its checks, or a new one logged in with the current
    /// credentials (re-reading the secret if the database rejects them). Returns it to the pool on drop.
    pub async fn get(&self) -> Result<Object<B>, PoolError<B>> {
        #[cfg(feature = "metrics")]
        {
            let started = std::time::Instant::now();
            let got = self.inner.get().await;
            let timed_out = matches!(got, Err(deadpool::managed::PoolError::Timeout(_)));
            self.inner
                .manager()
                .telemetry()
                .waited(started.elapsed(), timed_out);
            got
        }
        #[cfg(not(feature = "metrics"))]
        self.inner.get().await
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
