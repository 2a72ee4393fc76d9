//! The deadpool adapter over the rotating login: a [`deadpool::managed::Manager`] whose `create` is
//! [`RotatingLogin::connect`] and whose `recycle` asks [`RotatingLogin::retirement`], then the backend's check.

use std::{
    fmt,
    ops::{Deref, DerefMut},
};

use deadpool::managed::{self, Metrics, RecycleError, RecycleResult};

#[cfg(feature = "metrics")]
use crate::telemetry::Telemetry;
use crate::{
    backend::{Backend, Reuse},
    error::Error,
    login::{Login, RotatingLogin, Tag},
};

/// The manager of [`crate::Pool`]: one [`RotatingLogin`] and nothing else.
pub(crate) struct RotatingManager<B> {
    pub(crate) login: RotatingLogin<B>,
}

/// A pooled connection: the driver's connection and the [`Tag`] of the login that opened it.
///
/// Derefs to the driver's connection, so it is used exactly like one.
pub struct Connection<C> {
    inner: C,
    tag: Tag,
    /// Its pool's telemetry, for the use-time series recorded on each return.
    #[cfg(feature = "metrics")]
    telemetry: Telemetry,
}

impl<C> Connection<C> {
    /// The generation of the credentials this connection logged in with.
    pub fn credentials_generation(&self) -> u64 {
        self.tag.generation()
    }

    /// The driver's connection, no longer counted as live.
    pub(crate) fn into_inner(self) -> C {
        self.inner
    }

    /// Its pool's telemetry.
    #[cfg(feature = "metrics")]
    pub(crate) fn telemetry(&self) -> &Telemetry {
        &self.telemetry
    }
}

impl<C> Deref for Connection<C> {
    type Target = C;
    fn deref(&self) -> &C {
        &self.inner
    }
}

impl<C> DerefMut for Connection<C> {
    fn deref_mut(&mut self) -> &mut C {
        &mut self.inner
    }
}

impl<C> fmt::Debug for Connection<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("generation", &self.tag.generation())
            .finish_non_exhaustive()
    }
}

impl<B: Backend> managed::Manager for RotatingManager<B> {
    /// Boxed: deadpool moves its pooled value by value several times per `get()` and return (out of the idle
    /// queue, through the recycle step, into the object and its result, and back into the queue), so a pointer
    /// moves instead of the whole connection (200 B for Postgres). The box is made once per login.
    type Type = Box<Connection<B::Connection>>;
    type Error = Error<B::Error>;

    /// Runs in the caller's span: what a login and its refresh report shows up under the request that needed
    /// the connection.
    async fn create(&self) -> Result<Self::Type, Self::Error> {
        // Boxed: the login (TLS, authentication, a round of reads) is a large state machine, and inline it would
        // make every `get()` future carry it, for a reused connection too.
        let Login { connection, tag } = Box::pin(self.login.connect()).await?;
        Ok(Box::new(Connection {
            inner: connection,
            tag,
            #[cfg(feature = "metrics")]
            telemetry: self.login.telemetry().clone(),
        }))
    }

    async fn recycle(
        &self,
        conn: &mut Self::Type,
        metrics: &Metrics,
    ) -> RecycleResult<Self::Error> {
        // The age is read only if a maximum lifetime is set: a clock read per reuse otherwise wasted.
        if let Some(reason) = self.login.retirement(&conn.tag, || metrics.age()) {
            return Err(RecycleError::message(reason));
        }
        let backend = self.login.backend();
        match backend.check(&mut conn.inner).await {
            Reuse::Keep => Ok(()),
            Reuse::Retire(reason) => {
                self.login
                    .telemetry()
                    .retired(conn.credentials_generation(), reason);
                Err(RecycleError::message(reason))
            }
            Reuse::Broken(driver) => Err(RecycleError::Backend(Error::Unhealthy {
                detail: backend.describe(&driver),
                driver,
            })),
        }
    }
}

impl<B> fmt::Debug for RotatingManager<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.login, f)
    }
}

#[cfg(test)]
mod tests {
    use deadpool::managed::{Manager, Object};

    use super::RotatingManager;
    use crate::{
        backend::{Backend, Failure, Reuse},
        credentials::Credentials,
    };

    /// A driver whose connection is a kilobyte.
    struct Bulky;

    impl Backend for Bulky {
        type Connection = [u8; 1024];
        type Error = std::io::Error;

        async fn connect(&self, _: &Credentials) -> Result<[u8; 1024], std::io::Error> {
            Ok([0; 1024])
        }

        fn classify(&self, _: &std::io::Error) -> Failure {
            Failure::Other
        }

        async fn check(&self, _: &mut [u8; 1024]) -> Reuse<std::io::Error> {
            Reuse::Keep
        }
    }

    /// What deadpool moves on every `get()` and return is a pointer and deadpool's own bookkeeping, whatever the
    /// size of the driver's connection.
    #[test]
    fn a_pooled_connection_moves_as_a_pointer() {
        let pooled = size_of::<<RotatingManager<Bulky> as Manager>::Type>();
        assert_eq!(pooled, size_of::<usize>());
        let lent = size_of::<Object<RotatingManager<Bulky>>>();
        assert!(lent <= 128, "deadpool's object is {lent} bytes");
    }
}
