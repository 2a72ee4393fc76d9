//! TEMPORARY, until the core's `RotatingLogin` lands: the contract the adapter is written against
//! (`connect` -> connection + tag, `retirement(tag, age)`, `stats`, `generation`, `backend`), built over
//! today's `RotatingManager` inside a `rotapool_core::Pool` whose object store is never used.

use std::{
    future::Future,
    pin::pin,
    sync::Mutex,
    task::{Context, Poll, Waker},
    time::{Duration, Instant},
};

use rotapool_core::{
    deadpool::managed::{Manager as _, Metrics, RecycleError},
    Backend, BuildError, Connection, Error, Pool, PoolBuilder, Stats,
};
use tokio::task::JoinHandle;
use tokio_postgres::Client;

/// A session handed from the backend to the adapter: the client and its driver task, taken out once.
pub struct Session(Mutex<Option<(Client, JoinHandle<()>)>>);

impl Session {
    pub(crate) fn new(client: Client, driver: JoinHandle<()>) -> Self {
        Self(Mutex::new(Some((client, driver))))
    }

    fn take(&self) -> Option<(Client, JoinHandle<()>)> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Session")
    }
}

/// Which login made a connection: counted in the stats while it lives.
pub(crate) type Tag = Connection<Session>;

/// One successful login.
pub(crate) struct Login {
    pub(crate) connection: (Client, JoinHandle<()>),
    pub(crate) tag: Tag,
}

/// The rotating login.
pub(crate) struct RotatingLogin<B: Backend> {
    pool: Pool<B>,
}

impl<B: Backend<Connection = Session>> RotatingLogin<B> {
    pub(crate) async fn build(builder: PoolBuilder<B>) -> Result<Self, BuildError> {
        Ok(Self {
            pool: builder.max_size(1).build().await?,
        })
    }

    pub(crate) async fn connect(&self) -> Result<Login, Error<B::Error>> {
        let tag = self.pool.manager().create().await?;
        let connection = tag
            .take()
            .expect("a new session is taken once, right after its login");
        Ok(Login { connection, tag })
    }

    /// Why the connection `tag` made should not be reused, at `age`, if it should not.
    pub(crate) fn retirement(&self, tag: &mut Tag, age: Duration) -> Option<&'static str> {
        let metrics = Metrics {
            created: Instant::now().checked_sub(age).unwrap_or_else(Instant::now),
            ..Metrics::default()
        };
        let manager = self.pool.manager();
        let recycle = pin!(manager.recycle(tag, &metrics));
        // The manager decides before it awaits anything, and the session check is ready at once.
        match recycle.poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(Err(RecycleError::Message(reason))) if reason.contains("lifetime") => {
                Some("reached its maximum lifetime")
            }
            Poll::Ready(Err(_)) => {
                Some("logged in with credentials older than the current generation")
            }
            _ => None,
        }
    }

    pub(crate) fn generation(&self) -> u64 {
        self.pool.manager().generation()
    }

    pub(crate) fn stats(&self) -> Stats {
        self.pool.manager().stats()
    }

    pub(crate) fn backend(&self) -> &B {
        self.pool.manager().backend()
    }
}

impl<B: Backend> Clone for RotatingLogin<B> {
    fn clone(&self) -> Self {
        Self {
            pool: self.pool.clone(),
        }
    }
}

/// The driver error inside `error`, if the login that failed made one.
pub(crate) fn into_driver_error<E: std::error::Error>(error: Error<E>) -> Option<E> {
    match error {
        Error::AuthRejected { source, .. } => source,
        Error::AccountLocked { source, .. }
        | Error::Connect { source, .. }
        | Error::Unhealthy { source, .. } => Some(source),
        _ => None,
    }
}
