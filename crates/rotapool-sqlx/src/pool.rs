//! [`RotatingPool`]: a real `sqlx::Pool` whose connect options follow the secret, with a rotation-aware
//! `acquire()` and `begin()`.

use std::{cell::Cell, fmt, sync::Arc, time::Duration};

use rotapool_core::{Backend, BuildError, Error, Failure, PoolBuilder, RotatingLogin, Stats};
use sqlx::{
    pool::{PoolConnection, PoolOptions},
    Pool, Transaction,
};
use tokio::{sync::RwLock, time::Instant};

use crate::{
    backend::SqlxBackend,
    database::RotatingDatabase,
    tracking::{ConnectionInfo, Tracker, CONNECTING_AS, LENT, RETIRED_UNPERMITTED},
};

/// The first pause before a login that failed for a passing reason is tried again; it doubles up to
/// [`TRANSIENT_PAUSE_LONGEST`], as the rotating login's own retries do.
const TRANSIENT_PAUSE_FIRST: Duration = Duration::from_millis(25);
const TRANSIENT_PAUSE_LONGEST: Duration = Duration::from_secs(1);

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
    /// The generation whose credentials the pool's connect options hold. A connect on the rotation-aware path
    /// holds it read; a swap of the options holds it written, so it waits for those connects to end.
    applied: RwLock<u64>,
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
        let pool = options.connect_lazy_with(login.backend().options_for(&login.credentials()));
        let shared = Arc::new(Shared {
            applied: RwLock::new(login.generation()),
            pool,
            login,
            tracker,
        });
        follow_adoptions(&shared);
        Ok(Self { shared })
    }

    /// A connection, logged in with the current credentials. A login the database rejects is retried after the
    /// secret is read again (once for all callers), up to the login's attempts cap and auth budget; then the
    /// database's own error is returned. With the secret store down or hung during a rejection, the error is
    /// [`sqlx::Error::Configuration`] whose source, a [`rotapool_core::Error::Refresh`], names the store. A login
    /// that fails for a passing reason (a server restarting) is tried again, with a doubling pause, within sqlx's
    /// `acquire_timeout`.
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
        let mut pause = TRANSIENT_PAUSE_FIRST;
        loop {
            shared.sync().await;
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
            let applied = shared.applied.read().await;
            let generation = *applied;
            // An idle connection needs no login; otherwise hold a login permit, as every login of the rotating
            // login does, so that a rotation costs no more failed logins here than in rotapool's other pools.
            let permit = if shared.pool.num_idle() == 0 {
                Some(login.permit().await)
            } else {
                None
            };
            // Rejected or replaced while this call waited for the permit (a login queued behind a failing one):
            // a login with them now would fail too, as the rotating login's own logins skip theirs.
            if permit.is_some() && (login.generation() != generation || login.is_rejected()) {
                continue;
            }
            let unpermitted = permit.is_none();
            let lent = LENT.scope(
                Cell::new(None),
                CONNECTING_AS.scope(generation, async {
                    let (acquired, retired) = if unpermitted {
                        // sqlx's acquire() logs in at once to replace an idle connection its before_acquire hook
                        // retires: without a permit, the hook lends it marked instead, and it is closed below.
                        // (It also logs in when another caller took the idle connection first: a narrow race, in
                        // which this login holds no permit.)
                        RETIRED_UNPERMITTED
                            .scope(Cell::new(false), async {
                                let acquired = shared.pool.acquire().await;
                                (acquired, RETIRED_UNPERMITTED.with(Cell::get))
                            })
                            .await
                    } else {
                        (shared.pool.acquire().await, false)
                    };
                    (acquired, retired, LENT.with(Cell::get))
                }),
            );
            let (acquired, retired, info) = lent.await;
            let error = match acquired {
                Ok(connection) if retired => {
                    if let Err(error) = connection.close().await {
                        tracing::debug!(%error, "closing a retired sqlx connection failed");
                    }
                    continue;
                }
                Ok(connection) => return Ok((connection, info)),
                Err(error) => error,
            };
            match login.backend().classify(&error) {
                Failure::Auth => {}
                // A login that failed for a passing reason (a server restarting resets or closes it): tried again
                // with a doubling pause, within sqlx's acquire timeout from the start of the call. sqlx's own
                // connect retries only a refused connection.
                Failure::Transient => {
                    let deadline = started + shared.pool.options().get_acquire_timeout();
                    if Instant::now() + pause >= deadline {
                        return Err(error);
                    }
                    drop((permit, applied));
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(TRANSIENT_PAUSE_LONGEST);
                    continue;
                }
                _ => return Err(error),
            }
            attempts += 1;
            // Before the permit goes: the next holder must see the rejection.
            login.rejected(generation, &error);
            drop((permit, applied));
            login
                .recover(generation, attempts, started, Some(error))
                .await
                .map_err(into_sqlx)?;
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
    /// Sets the pool's connect options from the current credentials, if they are newer than the options'.
    async fn sync(&self) {
        let wanted = self.login.generation();
        if *self.applied.read().await >= wanted {
            return;
        }
        let mut applied = self.applied.write().await;
        // Read the number before the credentials: a race with the next adoption then labels the newer
        // credentials with the older number (their connections retire once more), never the reverse.
        let wanted = self.login.generation();
        if *applied >= wanted {
            return;
        }
        let credentials = self.login.credentials();
        self.pool
            .set_connect_options(self.login.backend().options_for(&credentials));
        *applied = wanted;
        self.tracker.applied(wanted);
        tracing::debug!(
            generation = wanted,
            "sqlx pool's connect options now log in with the new credentials"
        );
    }
}

/// Updates the pool's connect options on each adoption, until the pool is dropped: the plain `&Pool` path and
/// sqlx's `min_connections` upkeep log in with new credentials as soon as rotapool has them.
fn follow_adoptions<DB: RotatingDatabase>(shared: &Arc<Shared<DB>>) {
    let mut adoptions = shared.login.adoptions();
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
            let keep = acquired.keep(&acquired_login, meta.age);
            Box::pin(std::future::ready(Ok(keep)))
        })
        .after_release(move |_, meta| {
            let keep = released.keep(&released_login, meta.age);
            Box::pin(std::future::ready(Ok(keep)))
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
