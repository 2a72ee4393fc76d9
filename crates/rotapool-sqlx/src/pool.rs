//! [`RotatingPool`]: a real `sqlx::Pool` whose connect options follow the secret, with a rotation-aware
//! `acquire()` and `begin()`.

use std::{
    cell::{Cell, RefCell},
    fmt,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
};

use rotapool_core::{Backend, BuildError, Error, Failure, PoolBuilder, RotatingLogin, Stats};
use sqlx::{
    pool::{PoolConnection, PoolOptions},
    Pool, Transaction,
};
use tokio::{sync::RwLock, time::Instant};

use crate::{
    backend::SqlxBackend,
    database::RotatingDatabase,
    tracking::{Connecting, ConnectionInfo, Tracker, CONNECTING_AS, LENT},
};

/// A `sqlx::Pool` that survives password rotation.
///
/// - [`RotatingPool::acquire`] and [`RotatingPool::begin`] are rotation-aware: a login the database rejects
///   makes the pool re-read the secret once for all callers (trying `AWSPENDING` in the single-user window),
///   and the call logs in again with what it found. Logins are gated by the rotating login's permits, so a
///   rotation costs the same failed logins as rotapool's other pools.
/// - [`RotatingPool::sqlx`] is the pool itself, for code that takes `&PgPool` / `&MySqlPool`
///   (`query(..).execute(&pool)`, `migrate!`, other crates). Every adoption of new credentials (by a rejected
///   login on the rotation-aware path, or by the proactive refresh) updates its connect options at once, so its
///   logins use the new password too; but a login it makes between the database's password change and that
///   adoption fails with the database's error. See the crate's README for the window.
/// - Connections that logged in with older credentials retire gradually after an adoption (the drain policy),
///   through sqlx's `before_acquire` and `after_release` hooks.
///
/// Cheap to clone: clones share one pool.
pub struct RotatingPool<DB: RotatingDatabase> {
    shared: Arc<Shared<DB>>,
}

struct Shared<DB: RotatingDatabase> {
    pool: Pool<DB>,
    login: RotatingLogin<SqlxBackend<DB>>,
    /// The generation whose credentials the pool's connect options hold; changed only under `swap`.
    applied: AtomicU64,
    /// Held shared by a connect on the rotation-aware path, exclusively by a swap of the options, which so waits
    /// for those connects to end and cannot land in the middle of one. Never awaited on the rotation-aware path:
    /// a call that finds a swap pending connects without it (see [`RotatingPool::acquire_with_info`]).
    swap: RwLock<()>,
    tracker: Arc<Tracker>,
}

impl<DB: RotatingDatabase> RotatingPool<DB> {
    /// Starts the rotating login `login` (it reads the secret) and a `sqlx::Pool` with `options` over it.
    ///
    /// rotapool-sqlx sets the pool's `after_connect`, `before_acquire` and `after_release` hooks (any set on
    /// `options` are replaced) and its `max_lifetime` (the login's own, jittered, replaces it: set it on
    /// `login`). The pool connects lazily, as `PoolOptions::connect_lazy_with` does: the login has proven the
    /// secret's credentials already.
    pub async fn new(
        login: PoolBuilder<SqlxBackend<DB>>,
        options: PoolOptions<DB>,
    ) -> Result<Self, BuildError> {
        let login = login.build_login().await?;
        let tracker = Arc::new(Tracker::new(
            options.get_acquire_timeout(),
            options.get_max_connections(),
        ));
        let options = hooks(options, &login, &tracker).max_lifetime(None);
        // Subscribed, and the number read, before the credentials: an adoption in between is then caught up
        // at once by the adoption task (the options are labelled older than they are, never newer).
        let adoptions = login.adoptions();
        let generation = login.generation();
        let pool = options.connect_lazy_with(login.backend().options_for(&login.credentials()));
        let shared = Arc::new(Shared {
            applied: AtomicU64::new(generation),
            swap: RwLock::new(()),
            pool,
            login,
            tracker,
        });
        follow_adoptions(&shared, adoptions);
        Ok(Self { shared })
    }

    /// A connection, logged in with the current credentials. A login the database rejects is retried after the
    /// secret is read again (once for all callers), up to the login's attempts cap and auth budget; then the
    /// database's own error is returned. With the secret store down or hung during a rejection, the error is
    /// [`sqlx::Error::Configuration`] whose source, a [`rotapool_core::Error::Refresh`], names the store. A login
    /// that fails for a passing reason (a server restarting) is tried again on the rotating login's schedule,
    /// within its `transient_retry` budget.
    pub async fn acquire(&self) -> Result<PoolConnection<DB>, sqlx::Error> {
        self.acquire_with_info()
            .await
            .map(|(connection, _)| connection)
    }

    /// [`RotatingPool::acquire`], and what rotapool knows about the connection: the credentials generation it
    /// logged in with and when it was made (for metrics and tests). `None` for a connection lent while the
    /// current credentials are rejected, which skips sqlx's hooks.
    pub async fn acquire_with_info(
        &self,
    ) -> Result<(PoolConnection<DB>, Option<ConnectionInfo>), sqlx::Error> {
        let shared = &self.shared;
        let login = &shared.login;
        let started = Instant::now();
        let mut attempts = 0;
        let mut transient = login.transient_retries(started);
        loop {
            shared.try_sync();
            if login.is_rejected() {
                // Sessions that logged in before the rejection still work: lend one rather than spend a login.
                if let Some(connection) = shared.pool.try_acquire() {
                    return Ok((connection, None));
                }
                let seen = login.generation();
                login
                    .recover(seen, attempts, started, None)
                    .await
                    .map_err(into_sqlx)?;
                continue;
            }
            // With a swap pending, the connect may read the old options or the new: it is labelled with the old
            // generation, so that at worst it retires once more than it had to. Without one, the label is exact.
            let connecting_guard = shared.swap.try_read().ok();
            let generation = shared.applied.load(Ordering::Acquire);
            // An idle connection needs no login; otherwise hold a login permit, as every login of the rotating
            // login does, so that a rotation costs no more failed logins here than in rotapool's other pools.
            // (An idle connection that retires at check-out is followed by a login: the hook takes the permit.)
            let permit = if shared.pool.num_idle() == 0 {
                let Some(permit) = login.permit(generation).await else {
                    // Rejected or replaced while this call queued: look again.
                    continue;
                };
                Some(permit)
            } else {
                None
            };
            let connecting = Connecting {
                generation,
                permit: RefCell::new(permit),
            };
            let lent = LENT.scope(
                Cell::new(None),
                CONNECTING_AS.scope(connecting, async {
                    let acquired = shared.pool.acquire().await;
                    let permit = CONNECTING_AS.with(|connecting| connecting.permit.take());
                    (acquired, LENT.with(Cell::get), permit)
                }),
            );
            let (acquired, info, permit) = lent.await;
            drop(connecting_guard);
            let error = match acquired {
                Ok(connection) => return Ok((connection, info)),
                Err(error) => error,
            };
            match login.backend().classify(&error) {
                Failure::Auth => {
                    attempts += 1;
                    // Before the permit goes: the next holder must see the rejection and skip its login.
                    login.rejected(generation, &error);
                    drop(permit);
                    login
                        .recover(generation, attempts, started, Some(error))
                        .await
                        .map_err(into_sqlx)?;
                }
                // A login that failed for a passing reason (a server restarting closes it mid-login): tried again
                // on the rotating login's schedule. sqlx's own connect retries only a refused connection.
                Failure::Transient => {
                    drop(permit);
                    let retry = match transient.as_mut() {
                        Some(retries) => login.pause_before_retry(retries, &error).await,
                        None => false,
                    };
                    if !retry {
                        return Err(error);
                    }
                }
                _ => return Err(error),
            }
        }
    }

    /// A transaction on a connection from [`RotatingPool::acquire`].
    pub async fn begin(&self) -> Result<Transaction<'static, DB>, sqlx::Error> {
        let connection = self.acquire().await?;
        // What `sqlx::Pool::begin` does with its own connection (sqlx 0.8's `Transaction::begin`).
        Transaction::begin(connection, None).await
    }

    /// The `sqlx::Pool` itself, for code that takes `&Pool<DB>`. Its connect options follow every adoption;
    /// its own logins are not rotation-aware (see [`RotatingPool`]).
    pub fn sqlx(&self) -> &Pool<DB> {
        &self.shared.pool
    }

    /// The rotating login under the pool: its counters, its generation, its credentials.
    pub fn login(&self) -> &RotatingLogin<SqlxBackend<DB>> {
        &self.shared.login
    }

    /// A snapshot of the rotating login's counters. Logins sqlx's pool made are counted; those that failed
    /// are counted only on the rotation-aware path (sqlx reports the others to their caller alone).
    pub fn stats(&self) -> Stats {
        self.shared.login.stats()
    }

    /// Closes the pool: waits for connections in use to come back, and closes them all.
    pub async fn close(&self) {
        self.shared.pool.close().await;
    }
}

impl<DB: RotatingDatabase> Shared<DB> {
    /// Sets the pool's connect options from the current credentials, if they are newer than the options', once
    /// the connects under way on the rotation-aware path have ended.
    async fn sync(&self) {
        if self.is_behind() {
            let _swap = self.swap.write().await;
            self.swap_options();
        }
    }

    /// [`Shared::sync`] if it can be done at once; else the adoption task does it.
    fn try_sync(&self) {
        if self.is_behind() {
            if let Ok(_swap) = self.swap.try_write() {
                self.swap_options();
            }
        }
    }

    fn is_behind(&self) -> bool {
        self.applied.load(Ordering::Acquire) < self.login.generation()
    }

    /// Under `swap`: sets the options from the current credentials if they are newer.
    fn swap_options(&self) {
        // Read the number before the credentials: a race with the next adoption then labels the newer
        // credentials with the older number (their connections retire once more), never the reverse.
        let wanted = self.login.generation();
        if self.applied.load(Ordering::Acquire) >= wanted {
            return;
        }
        let credentials = self.login.credentials();
        self.pool
            .set_connect_options(self.login.backend().options_for(&credentials));
        self.applied.store(wanted, Ordering::Release);
        self.tracker.applied(wanted);
        tracing::debug!(
            generation = wanted,
            "sqlx pool's connect options now log in with the new credentials"
        );
    }
}

/// Updates the pool's connect options on each adoption, until the pool is dropped: the plain `&Pool` path and
/// sqlx's `min_connections` upkeep log in with new credentials as soon as rotapool has them.
fn follow_adoptions<DB: RotatingDatabase>(
    shared: &Arc<Shared<DB>>,
    mut adoptions: tokio::sync::watch::Receiver<u64>,
) {
    // An adoption since the subscription is caught up at once.
    adoptions.mark_changed();
    let shared = Arc::downgrade(shared);
    tokio::spawn(async move {
        while adoptions.changed().await.is_ok() {
            let Some(shared) = shared.upgrade() else {
                return;
            };
            shared.sync().await;
        }
    });
}

/// `options` with rotapool's hooks: file new connections under their generation, and retire old ones.
fn hooks<DB: RotatingDatabase>(
    options: PoolOptions<DB>,
    login: &RotatingLogin<SqlxBackend<DB>>,
    tracker: &Arc<Tracker>,
) -> PoolOptions<DB> {
    let (connected_login, connected) = (login.clone(), Arc::clone(tracker));
    let (acquired_login, acquired) = (login.clone(), Arc::clone(tracker));
    let (released_login, released) = (login.clone(), Arc::clone(tracker));
    options
        .after_connect(move |_, _| {
            connected.connected(&connected_login);
            Box::pin(std::future::ready(Ok(())))
        })
        .before_acquire(move |_, meta| {
            let (tracker, login) = (Arc::clone(&acquired), acquired_login.clone());
            Box::pin(async move { Ok(tracker.keep(&login, meta.age).await) })
        })
        .after_release(move |_, meta| {
            let (tracker, login) = (Arc::clone(&released), released_login.clone());
            Box::pin(async move { Ok(tracker.keep(&login, meta.age).await) })
        })
}

/// A rotating-login error as the `sqlx::Error` a sqlx user handles: the database's own rejection where there
/// is one, else a configuration error whose source names what went wrong (the secret store, most often).
fn into_sqlx(error: Error<sqlx::Error>) -> sqlx::Error {
    match error {
        Error::AuthRejected {
            driver: Some(rejection),
            ..
        } => rejection,
        other => sqlx::Error::Configuration(Box::new(other)),
    }
}

impl<DB: RotatingDatabase> Clone for RotatingPool<DB> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<DB: RotatingDatabase> fmt::Debug for RotatingPool<DB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RotatingPool")
            .field("login", &self.shared.login)
            .field("size", &self.shared.pool.size())
            .field("idle", &self.shared.pool.num_idle())
            .finish_non_exhaustive()
    }
}
