//! The pool an application holds and the connections it lends: deadpool's, with `get()` timed for the wait-time
//! and timeout series and each borrow timed for the use-time series when the `metrics` feature is on.

use std::{
    fmt,
    ops::{Deref, DerefMut},
};

use crate::{
    backend::Backend, builder::PoolError, connection::Connection, manager::RotatingManager,
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
            got.map(|inner| Object {
                inner,
                borrowed_at: std::time::Instant::now(),
            })
        }
        #[cfg(not(feature = "metrics"))]
        self.inner.get().await.map(|inner| Object { inner })
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
