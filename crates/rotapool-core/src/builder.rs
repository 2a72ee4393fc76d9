//! Assembling a rotating pool: secret source, backend, pool size and rotation policy.

use std::{fmt, sync::Arc, time::Duration};

use crate::{
    backend::Backend,
    error::BuildError,
    login::{proactive, refresh::Refresher, RotatingLogin},
    manager::RotatingManager,
    pool::Pool,
    settings::{ConnectPolicy, DrainPolicy, ProactiveRefresh, RefreshPolicy},
    source::{EngineChecked, SecretSource},
};

enum SourceSpec {
    Ready(Arc<dyn SecretSource>),
    #[cfg(feature = "aws")]
    Aws(Box<crate::source::AwsSecretsManagerBuilder>),
}

/// Builds a [`Pool`] for backend `B`.
///
/// ```no_run
/// # async fn demo<B: rotapool_core::Backend>(backend: B) -> Result<(), rotapool_core::BuildError> {
/// let pool = rotapool_core::PoolBuilder::new(backend)
///     .aws_secret("prod/orders/db")
///     .max_size(16)
///     .build()
///     .await?;
/// # Ok(()) }
/// ```
#[must_use]
pub struct PoolBuilder<B> {
    backend: B,
    source: Option<SourceSpec>,
    name: Option<String>,
    max_size: usize,
    wait_timeout: Option<Duration>,
    create_timeout: Option<Duration>,
    connect: ConnectPolicy,
    refresh: RefreshPolicy,
    proactive: Option<ProactiveRefresh>,
}

impl<B: Backend> PoolBuilder<B> {
    /// A builder for a pool of `backend` connections.
    pub fn new(backend: B) -> Self {
        Self {
            backend,
            source: None,
            name: None,
            max_size: default_max_size(),
            wait_timeout: None,
            create_timeout: None,
            connect: ConnectPolicy::default(),
            refresh: RefreshPolicy::default(),
            proactive: Some(ProactiveRefresh::default()),
        }
    }

    /// Reads credentials from `source`.
    pub fn secret_source(mut self, source: Arc<dyn SecretSource>) -> Self {
        self.source = Some(SourceSpec::Ready(source));
        self
    }

    /// Reads credentials from the AWS Secrets Manager secret `secret_id` (a name or an ARN), with the SDK's
    /// default configuration chain.
    #[cfg(feature = "aws")]
    #[cfg_attr(docsrs, doc(cfg(feature = "aws")))]
    pub fn aws_secret(mut self, secret_id: impl Into<String>) -> Self {
        self.source = Some(SourceSpec::Aws(Box::new(
            crate::source::AwsSecretsManager::builder(secret_id),
        )));
        self
    }

    /// Like [`PoolBuilder::aws_secret`], with a source built as the caller set it up.
    #[cfg(feature = "aws")]
    pub(crate) fn aws_source(mut self, source: crate::source::AwsSecretsManagerBuilder) -> Self {
        self.source = Some(SourceSpec::Aws(Box::new(source)));
        self
    }

    /// Builds the Secrets Manager client from the application's `SdkConfig`, so that its pools share one
    /// credential cache and one HTTP connection pool; call after [`PoolBuilder::aws_secret`]. The pool's read
    /// timeout still applies. Defaults to loading the SDK's default chain per pool.
    #[cfg(feature = "aws")]
    #[cfg_attr(docsrs, doc(cfg(feature = "aws")))]
    pub fn aws_sdk_config(mut self, config: &aws_config::SdkConfig) -> Self {
        if let Some(SourceSpec::Aws(source)) = self.source.take() {
            self.source = Some(SourceSpec::Aws(Box::new(source.sdk_config(config))));
        }
        self
    }

    /// Reads the secret with the application's own Secrets Manager client, used as it is; call after
    /// [`PoolBuilder::aws_secret`]. Each read is still bounded by the pool's read timeout.
    #[cfg(feature = "aws")]
    #[cfg_attr(docsrs, doc(cfg(feature = "aws")))]
    pub fn aws_client(mut self, client: aws_sdk_secretsmanager::Client) -> Self {
        if let Some(SourceSpec::Aws(source)) = self.source.take() {
            self.source = Some(SourceSpec::Aws(Box::new(source.client(client))));
        }
        self
    }

    /// Names the pool in traces and metrics: the `db.client.connection.pool.name` field of every event and
    /// label of every series. Defaults to the secret id.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Connects to `host` instead of the secret's `host` (an RDS Proxy endpoint, a tunnel). Defaults to the
    /// secret's.
    pub fn host(mut self, host: impl Into<String>) -> Self {
        self.connect.endpoint.host = Some(host.into());
        self
    }

    /// Connects to `port` instead of the secret's `port`. Defaults to the secret's, then the engine's default.
    pub fn port(mut self, port: u16) -> Self {
        self.connect.endpoint.port = Some(port);
        self
    }

    /// Uses the database `dbname` instead of the secret's `dbname`. Defaults to the secret's.
    pub fn dbname(mut self, dbname: impl Into<String>) -> Self {
        self.connect.endpoint.dbname = Some(dbname.into());
        self
    }

    /// Most connections open at once. Defaults to 4 per CPU core, as deadpool does.
    pub fn max_size(mut self, max_size: usize) -> Self {
        self.max_size = max_size;
        self
    }

    /// How long `get()` waits for a free slot. Defaults to forever.
    pub fn wait_timeout(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.wait_timeout = timeout.into();
        self
    }

    /// How long opening one connection may take, refreshes included. Defaults to no limit beyond
    /// [`PoolBuilder::auth_budget`] and the driver's own connect timeout.
    pub fn create_timeout(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.create_timeout = timeout.into();
        self
    }

    /// Most rejected logins one connection attempt makes across refreshes. Defaults to 3.
    pub fn max_auth_attempts(mut self, attempts: u32) -> Self {
        self.connect.max_auth_attempts = attempts;
        self
    }

    /// Most logins in flight at once, which bounds the failed logins one password change can cause.
    /// Defaults to 2. With a [`PoolBuilder::lockout_threshold`], it must be below it: `build()` refuses it
    /// otherwise.
    pub fn max_concurrent_logins(mut self, logins: u32) -> Self {
        self.connect.max_concurrent_logins = logins;
        self
    }

    /// How long a connection attempt waits for the secret to change after a rejected login. Defaults to 10 s.
    pub fn auth_budget(mut self, budget: Duration) -> Self {
        self.connect.auth_budget = budget;
        self
    }

    /// How long one connection attempt keeps retrying logins that fail for passing reasons (refused, reset, a
    /// server restarting), with jittered backoff, before `get()` returns the error. `None` fails at once, as
    /// deadpool does. Defaults to 10 s; see [`crate::settings::ConnectPolicy::transient_retry`].
    pub fn transient_retry(mut self, budget: impl Into<Option<Duration>>) -> Self {
        self.connect.transient_retry = budget.into();
        self
    }

    /// Closes connections older than `lifetime` instead of reusing them. Defaults to none.
    pub fn max_lifetime(mut self, lifetime: impl Into<Option<Duration>>) -> Self {
        self.connect.max_lifetime = lifetime.into();
        self
    }

    /// Shortens each connection's lifetime by a share of `jitter`, spread evenly, so that connections opened
    /// together do not expire together. Defaults to zero.
    pub fn max_lifetime_jitter(mut self, jitter: Duration) -> Self {
        self.connect.max_lifetime_jitter = jitter;
        self
    }

    /// What happens to connections opened with older credentials after a rotation. Defaults to
    /// [`DrainPolicy::Gradual`] over 30 s.
    pub fn drain(mut self, policy: DrainPolicy) -> Self {
        self.connect.drain = policy;
        self
    }

    /// Re-reads the secret on a schedule, and soon after its `NextRotationDate`, so that a finished rotation is
    /// usually adopted before any login fails. `None` turns it off; rejected logins still trigger a refresh.
    /// Defaults to [`ProactiveRefresh::default`]: every 15 minutes, give or take a fifth.
    pub fn proactive_refresh(mut self, schedule: impl Into<Option<ProactiveRefresh>>) -> Self {
        self.proactive = schedule.into();
        self
    }

    /// How long a read of the secret may take, and how often the secret is re-read while logins fail. Defaults
    /// to [`RefreshPolicy::default`]: reads time out after 5 s; while failing, a round every second for a minute,
    /// then every 10 s.
    pub fn refresh_policy(mut self, policy: RefreshPolicy) -> Self {
        self.refresh = policy;
        self
    }

    /// How many failed logins in a row make the database block the account, if it does (MariaDB
    /// `max_password_errors`, MySQL `FAILED_LOGIN_ATTEMPTS`): retries of rejected credentials then never reach
    /// it. Defaults to none (see [`crate::settings::ConnectPolicy::lockout_threshold`]).
    pub fn lockout_threshold(mut self, threshold: impl Into<Option<u32>>) -> Self {
        self.connect.lockout_threshold = threshold.into();
        self
    }

    /// Validates the settings, reads the secret once, and creates the pool. Opens no connection.
    pub async fn build(self) -> Result<Pool<B>, BuildError> {
        if self.max_size == 0 {
            return Err(BuildError::InvalidSetting {
                setting: "max_size",
                reason: "must be at least 1",
            });
        }
        let (max_size, wait_timeout, create_timeout) =
            (self.max_size, self.wait_timeout, self.create_timeout);
        let login = self.build_login().await?;
        let inner = deadpool::managed::Pool::builder(RotatingManager { login })
            .max_size(max_size)
            .wait_timeout(wait_timeout)
            .create_timeout(create_timeout)
            .runtime(deadpool::Runtime::Tokio1)
            .build()
            .map_err(|_| BuildError::InvalidSetting {
                setting: "timeouts",
                reason: "deadpool refused the pool configuration",
            })?;
        Ok(Pool::new(inner))
    }

    /// Validates the login settings, reads the secret once, and starts the proactive refresh: the
    /// [`RotatingLogin`] alone, for a pool of another library (deadpool-postgres, sqlx, bb8) to open its
    /// connections with. The pool settings (`max_size`, the timeouts) are the other pool's to set.
    pub async fn build_login(self) -> Result<RotatingLogin<B>, BuildError> {
        if self.connect.max_concurrent_logins == 0 {
            return Err(BuildError::InvalidSetting {
                setting: "max_concurrent_logins",
                reason: "must be at least 1",
            });
        }
        if self.connect.max_auth_attempts == 0 {
            return Err(BuildError::InvalidSetting {
                setting: "max_auth_attempts",
                reason: "must be at least 1",
            });
        }
        match self.connect.lockout_threshold {
            Some(0) => {
                return Err(BuildError::InvalidSetting {
                    setting: "lockout_threshold",
                    reason: "must be at least 1, or none",
                })
            }
            Some(threshold) if self.connect.max_concurrent_logins >= threshold => {
                return Err(BuildError::InvalidSetting {
                    setting: "max_concurrent_logins",
                    reason: "must be below lockout_threshold: the logins in flight when the password changes each \
                             fail once, so as many as lockout_threshold of them could block the account; lower \
                             max_concurrent_logins or raise lockout_threshold",
                })
            }
            _ => {}
        }
        if let Some(reason) = self.refresh.invalid() {
            return Err(BuildError::InvalidSetting {
                setting: "refresh_policy",
                reason,
            });
        }
        // Without the `aws` feature the match has one arm; it stays a match so both builds read alike.
        #[cfg_attr(not(feature = "aws"), allow(clippy::infallible_destructuring_match))]
        let source: Arc<dyn SecretSource> = match self.source.ok_or(BuildError::NoSource)? {
            SourceSpec::Ready(source) => source,
            #[cfg(feature = "aws")]
            SourceSpec::Aws(builder) => {
                Arc::new(builder.timeout(self.refresh.read_timeout).build().await)
            }
        };
        let supported = self.backend.engines();
        let source: Arc<dyn SecretSource> = if supported.is_empty() {
            source
        } else {
            Arc::new(EngineChecked {
                inner: source,
                supported,
            })
        };
        let refresher = Arc::new(match &self.name {
            Some(name) => Refresher::named(source, self.refresh, name).await?,
            None => Refresher::new(source, self.refresh).await?,
        });
        let login = RotatingLogin::new(self.backend, Arc::clone(&refresher), self.connect);
        if let Some(schedule) = self.proactive {
            proactive::spawn(schedule, Arc::downgrade(&refresher), login.probe());
        }
        Ok(login)
    }
}

fn default_max_size() -> usize {
    std::thread::available_parallelism().map_or(4, |n| n.get() * 4)
}

impl<B> fmt::Debug for PoolBuilder<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolBuilder")
            .field("name", &self.name)
            .field("max_size", &self.max_size)
            .field("wait_timeout", &self.wait_timeout)
            .field("create_timeout", &self.create_timeout)
            .field("connect", &self.connect)
            .field("refresh", &self.refresh)
            .field("proactive", &self.proactive)
            .finish_non_exhaustive()
    }
}
