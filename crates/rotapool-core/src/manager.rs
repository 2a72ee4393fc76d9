//! The deadpool manager that logs in with the current credentials and refreshes them when they are rejected.

use std::{
    fmt,
    ops::{Deref, DerefMut},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use deadpool::managed::{self, Metrics, RecycleError, RecycleResult};
use tokio::{sync::Semaphore, time::Instant};

use crate::{
    backend::{Backend, Failure},
    credentials::Credentials,
    error::Error,
    refresher::{RefreshError, Refresher},
};

/// How hard `create` tries when the database rejects the credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectPolicy {
    /// Most logins one `create` makes with credentials that turn out to be rejected, across refreshes.
    /// Defaults to 3. Keep it below the database's lockout threshold (MariaDB's `max_password_errors`).
    pub max_auth_attempts: u32,
    /// How long one `create` may wait for the secret to change after a rejected login. Defaults to 10 s.
    pub auth_budget: Duration,
    /// Most logins in flight at once. Defaults to 2. When the password changes under the pool, the logins
    /// already in flight all fail, so this bounds the failed logins one password change can cause; a
    /// generation no login has yet succeeded with is tried by one login at a time.
    pub max_concurrent_logins: u32,
    /// Connections older than this are closed instead of reused. Defaults to none.
    pub max_lifetime: Option<Duration>,
    /// Host, port and database to use instead of the secret's. Defaults to none.
    pub endpoint: EndpointOverrides,
}

impl Default for ConnectPolicy {
    fn default() -> Self {
        Self {
            max_auth_attempts: 3,
            auth_budget: Duration::from_secs(10),
            max_concurrent_logins: 2,
            max_lifetime: None,
            endpoint: EndpointOverrides::default(),
        }
    }
}

/// Connection details that replace the secret's own, e.g. to go through RDS Proxy or an SSH tunnel.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointOverrides {
    /// Replaces the secret's `host`.
    pub host: Option<String>,
    /// Replaces the secret's `port`.
    pub port: Option<u16>,
    /// Replaces the secret's `dbname`.
    pub dbname: Option<String>,
}

impl EndpointOverrides {
    fn is_empty(&self) -> bool {
        self.host.is_none() && self.port.is_none() && self.dbname.is_none()
    }

    /// `credentials` with the overridden fields replaced.
    pub fn apply(&self, credentials: &Credentials) -> Credentials {
        let mut out = credentials.clone();
        if let Some(host) = &self.host {
            out = out.with_host(host.clone());
        }
        if let Some(port) = self.port {
            out = out.with_port(port);
        }
        if let Some(dbname) = &self.dbname {
            out = out.with_dbname(dbname.clone());
        }
        out
    }
}

/// A pooled connection tagged with the generation of the credentials that opened it.
///
/// Derefs to the driver's connection, so it is used exactly like one.
pub struct Connection<C> {
    inner: C,
    generation: u64,
}

impl<C> Connection<C> {
    /// The generation of the credentials this connection logged in with.
    pub fn credentials_generation(&self) -> u64 {
        self.generation
    }

    /// The driver's connection.
    pub fn into_inner(self) -> C {
        self.inner
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
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

/// Counters of what the pool has done, for metrics and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Stats {
    /// The generation of the credentials now in use.
    pub generation: u64,
    /// Reads of the secret, the initial one included.
    pub secret_fetches: u64,
    /// Logins attempted.
    pub logins: u64,
    /// Logins the database rejected as bad credentials.
    pub auth_failures: u64,
}

/// A [`deadpool::managed::Manager`] that survives password rotation. Backend crates alias it; users rarely name it.
pub struct RotatingManager<B> {
    backend: B,
    refresher: Arc<Refresher>,
    policy: ConnectPolicy,
    /// One permit per login in flight; a login with unverified credentials takes them all.
    login_permits: Semaphore,
    logins: AtomicU64,
    auth_failures: AtomicU64,
}

impl<B: Backend> RotatingManager<B> {
    /// A manager that logs in through `backend` with the credentials `refresher` holds.
    pub fn new(backend: B, refresher: Arc<Refresher>, policy: ConnectPolicy) -> Self {
        Self {
            backend,
            refresher,
            login_permits: Semaphore::new(policy.max_concurrent_logins.max(1) as usize),
            policy,
            logins: AtomicU64::new(0),
            auth_failures: AtomicU64::new(0),
        }
    }

    /// The backend.
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// The refresher holding the credentials.
    pub fn refresher(&self) -> &Arc<Refresher> {
        &self.refresher
    }

    /// The generation of the credentials now in use.
    pub fn generation(&self) -> u64 {
        self.refresher.current().number
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> Stats {
        Stats {
            generation: self.generation(),
            secret_fetches: self.refresher.fetch_count(),
            logins: self.logins.load(Ordering::Relaxed),
            auth_failures: self.auth_failures.load(Ordering::Relaxed),
        }
    }

    async fn open(&self) -> Result<Connection<B::Connection>, Error<B::Error>> {
        let deadline = Instant::now() + self.policy.auth_budget;
        let mut attempts = 0;
        let mut last_rejection: Option<B::Error> = None;
        loop {
            let generation = self.refresher.current();
            if let Some(detail) = self.refresher.rejection(generation.number) {
                // Known to be rejected: wait for a newer version rather than spend a login on it.
                match self
                    .refresher
                    .refresh_after(generation.number, deadline)
                    .await
                {
                    Ok(_) if attempts < self.policy.max_auth_attempts => continue,
                    Ok(_) | Err(RefreshError::Unchanged) => {
                        return Err(Error::AuthRejected {
                            attempts,
                            generation: generation.number,
                            detail,
                            source: last_rejection,
                        })
                    }
                    Err(RefreshError::Source(e)) => return Err(Error::Refresh(e)),
                }
            }
            let permits = if generation.is_verified() {
                1
            } else {
                self.policy.max_concurrent_logins.max(1)
            };
            let _permit = self
                .login_permits
                .acquire_many(permits)
                .await
                .expect("the login semaphore is never closed");
            if self.refresher.current().number != generation.number
                || self.refresher.rejection(generation.number).is_some()
            {
                // The generation moved or was rejected while this call waited for its turn.
                continue;
            }
            attempts += 1;
            self.logins.fetch_add(1, Ordering::Relaxed);
            let connecting = if self.policy.endpoint.is_empty() {
                self.backend.connect(&generation.credentials).await
            } else {
                let credentials = self.policy.endpoint.apply(&generation.credentials);
                self.backend.connect(&credentials).await
            };
            let error = match connecting {
                Ok(inner) => {
                    generation.mark_verified();
                    return Ok(Connection {
                        inner,
                        generation: generation.number,
                    });
                }
                Err(error) => error,
            };
            let detail = self.backend.describe(&error);
            match self.backend.classify(&error) {
                Failure::Auth => {
                    self.auth_failures.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(
                        generation = generation.number,
                        %detail,
                        "the database rejected the credentials"
                    );
                    self.refresher.mark_rejected(generation.number, detail);
                    last_rejection = Some(error);
                }
                Failure::AccountLocked => {
                    return Err(Error::AccountLocked {
                        detail,
                        source: error,
                    })
                }
                _ => {
                    return Err(Error::Connect {
                        detail,
                        source: error,
                    })
                }
            }
        }
    }
}

impl<B: Backend> managed::Manager for RotatingManager<B> {
    type Type = Connection<B::Connection>;
    type Error = Error<B::Error>;

    async fn create(&self) -> Result<Self::Type, Self::Error> {
        self.open().await
    }

    async fn recycle(
        &self,
        conn: &mut Self::Type,
        metrics: &Metrics,
    ) -> RecycleResult<Self::Error> {
        if self
            .policy
            .max_lifetime
            .is_some_and(|max| metrics.age() >= max)
        {
            return Err(RecycleError::message("reached its maximum lifetime"));
        }
        self.backend.check(&mut conn.inner).await.map_err(|source| {
            RecycleError::Backend(Error::Unhealthy {
                detail: self.backend.describe(&source),
                source,
            })
        })
    }
}

impl<B> fmt::Debug for RotatingManager<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RotatingManager")
            .field("refresher", &self.refresher)
            .field("policy", &self.policy)
            .field("logins", &self.logins.load(Ordering::Relaxed))
            .field("auth_failures", &self.auth_failures.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_overrides_replace_only_what_they_name() {
        let secret = Credentials::new("app", "pw")
            .with_host("db.example")
            .with_port(5432)
            .with_dbname("orders");
        let overrides = EndpointOverrides {
            host: Some("proxy.example".into()),
            port: None,
            dbname: Some("reports".into()),
        };
        let out = overrides.apply(&secret);
        assert_eq!(out.host(), Some("proxy.example"));
        assert_eq!(out.port(), Some(5432));
        assert_eq!(out.dbname(), Some("reports"));
        assert_eq!((out.username(), out.password()), ("app", "pw"));
        assert!(EndpointOverrides::default().is_empty());
    }
}
