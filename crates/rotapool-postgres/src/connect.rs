//! deadpool-postgres's own pool, with logins that survive rotation: a [`deadpool_postgres::Connect`] over the
//! rotating login, and the two hooks that retire old-credential connections gradually.
//!
//! deadpool-postgres's `Manager::from_connect` is the seam. Its `ClientWrapper` has no room for the generation
//! that logged in, so the tag travels beside it: [`Connect::connect`] leaves it in a hand-off slot keyed by the
//! task (or, outside a task, the thread), rotapool's `post_create` hook files it under the address of the
//! client's statement cache (an `Arc` that lives exactly as long as the client), and the `pre_recycle` hook asks
//! the login whether that generation should retire. deadpool 0.13 runs `create` and `post_create` in the
//! caller's future with no `.await` between them when rotapool's hooks come first, which [`RotatingConnect`]'s
//! builders ensure.

use std::{
    collections::HashMap,
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex, Weak},
    time::{Duration, Instant},
};

use deadpool_postgres::{
    ClientWrapper, ConfigError, Connect, Hook, HookError, Manager, ManagerConfig, Runtime,
    StatementCache,
};
use rotapool_core::{
    Backend, BuildError, Credentials, Error, Failure, Login, Reuse, RotatingLogin, Stats, Tag,
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    task::JoinHandle,
};
use tokio_postgres::{
    config::SslMode as PgSslMode,
    tls::{MakeTlsConnect, TlsConnect},
    Client, Config, NoTls, Socket,
};

use crate::{
    backend::{classify, describe, drive},
    template::{apply_secret, check_template},
};

/// The rotating login's settings for a [`RotatingConnect`]: secret source, attempts, drain, max lifetime and the
/// rest of [`rotapool_core::PoolBuilder`]. Its pool-size and timeout settings are ignored: deadpool-postgres's
/// `PoolConfig` has them.
pub type LoginBuilder<T> = rotapool_core::PoolBuilder<TemplateBackend<T>>;

/// The [`Backend`] behind a [`RotatingConnect`]: a `tokio_postgres::Config` template with the secret laid over
/// it (the precedence of [`PgBackend`](crate::PgBackend)), and the TLS connector deadpool-postgres would have used.
pub struct TemplateBackend<T> {
    template: Config,
    tls: T,
    /// The last login the database rejected as bad credentials, for [`replay`].
    rejection: Arc<Mutex<Option<Rejection>>>,
}

/// What the database said when it last rejected the secret's credentials.
#[derive(Debug, Clone)]
struct Rejection {
    code: String,
    message: String,
}

impl<T: DeadpoolTls> Backend for TemplateBackend<T> {
    type Connection = (Client, JoinHandle<()>);
    type Error = tokio_postgres::Error;

    async fn connect(
        &self,
        credentials: &Credentials,
    ) -> Result<(Client, JoinHandle<()>), tokio_postgres::Error> {
        let config = apply_secret(&self.template, credentials);
        let (client, connection) = config.connect(self.tls.clone()).await?;
        Ok((client, tokio::spawn(drive(connection))))
    }

    fn engines(&self) -> &'static [&'static str] {
        &["postgres", "aurora-postgresql"]
    }

    fn classify(&self, error: &tokio_postgres::Error) -> Failure {
        let failure = classify(error);
        if let (Failure::Auth, Some(db)) = (failure, error.as_db_error()) {
            *lock(&self.rejection) = Some(Rejection {
                code: db.code().code().to_owned(),
                message: db.message().to_owned(),
            });
        }
        failure
    }

    fn describe(&self, error: &tokio_postgres::Error) -> String {
        describe(error)
    }

    /// Never called on this path: deadpool-postgres recycles with its own `RecyclingMethod`.
    async fn check(&self, _: &mut (Client, JoinHandle<()>)) -> Reuse<tokio_postgres::Error> {
        Reuse::Keep
    }
}

impl<T> std::fmt::Debug for TemplateBackend<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TemplateBackend")
            // tokio-postgres's own Debug, which redacts a password.
            .field("template", &self.template)
            .finish_non_exhaustive()
    }
}

/// The TLS connectors deadpool-postgres takes (the bounds of its `ConfigConnectImpl`): `NoTls`,
/// [`RustlsConnect`](crate::RustlsConnect), `tokio-postgres-rustls`, `postgres-openssl`, ...
pub trait DeadpoolTls:
    MakeTlsConnect<
        Socket,
        Stream: Sync + Send,
        TlsConnect: Sync + Send + TlsConnect<Socket, Future: Send>,
    > + Clone
    + Sync
    + Send
    + 'static
{
}

impl<T> DeadpoolTls for T
where
    T: MakeTlsConnect<Socket> + Clone + Sync + Send + 'static,
    T::Stream: Sync + Send,
    T::TlsConnect: Sync + Send,
    <T::TlsConnect as TlsConnect<Socket>>::Future: Send,
{
}

/// A [`deadpool_postgres::Connect`] that logs in with the secret's current credentials and, when the database
/// rejects them, re-reads the secret once for every waiting caller and logs in again.
///
/// Cheap to clone; every clone shares the login, so [`RotatingConnect::stats`] works from any of them. Build one
/// with [`RotatingConnect::builder`] and [`RotatingConnect::build`], or let [`create_pool`] and
/// [`pool_builder`] do it.
///
/// What this path cannot do, next to rotapool's own [`Pool`](crate::Pool): `get()` returns deadpool-postgres's
/// errors, so a failed login is a [`tokio_postgres::Error`] (the database's rejection, replayed when the store is
/// down; the log and the `rotapool.*` metrics carry rotapool's own error); it has no wait or use-time metrics;
/// idle connections of an old generation are retired when next checked out, not before; and a pool built without
/// rotapool's hooks never retires old connections (they keep working until they end, as open sessions survive a
/// password change).
pub struct RotatingConnect<T: DeadpoolTls> {
    shared: Arc<Shared<T>>,
}

struct Shared<T: DeadpoolTls> {
    login: RotatingLogin<TemplateBackend<T>>,
    /// Tags of logins whose `post_create` has not run yet, by where they were made.
    handoff: Mutex<HashMap<Place, (Instant, Tag)>>,
    /// Tags of the pool's connections, by the address of their statement cache.
    registry: Mutex<HashMap<usize, Filed>>,
}

/// A connection's tag, filed under its statement cache's address.
struct Filed {
    /// Keeps the address from being reused while the entry exists, and tells when the client is gone.
    cache: Weak<StatementCache>,
    tag: Tag,
}

/// Where a `create` runs: its task, or outside any task (under `block_on`), its thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Place {
    Task(tokio::task::Id),
    Thread(std::thread::ThreadId),
}

impl Place {
    fn here() -> Self {
        match tokio::task::try_id() {
            Some(id) => Self::Task(id),
            None => Self::Thread(std::thread::current().id()),
        }
    }
}

/// A tag left longer than this in the hand-off slot belongs to a create whose `post_create` never ran (a hook
/// placed before rotapool's failed): it is dropped, so that the stats stop counting it.
const HANDOFF_PATIENCE: Duration = Duration::from_secs(60);

impl<T: DeadpoolTls> RotatingConnect<T> {
    /// The login's settings, to be completed with a secret (`aws_secret`, `secret_source`) and passed to
    /// [`RotatingConnect::build`]. Every login starts from `template` (see [`PgBackend`](crate::PgBackend) for
    /// what the secret fills in) and connects with `tls`, as deadpool-postgres would have.
    pub fn builder(template: Config, tls: T) -> LoginBuilder<T> {
        check_template(&template);
        rotapool_core::PoolBuilder::new(TemplateBackend {
            template,
            tls,
            rejection: Arc::default(),
        })
    }

    /// Reads the secret and starts the proactive refresh. Opens no connection.
    pub async fn build(login: LoginBuilder<T>) -> Result<Self, BuildError> {
        Ok(Self {
            shared: Arc::new(Shared {
                login: login.build_login().await?,
                handoff: Mutex::default(),
                registry: Mutex::default(),
            }),
        })
    }

    /// A deadpool-postgres `Manager` that connects through this login.
    pub fn manager(&self, config: ManagerConfig) -> Manager {
        Manager::from_connect(self.template().clone(), self.clone(), config)
    }

    /// A deadpool-postgres `PoolBuilder` over [`RotatingConnect::manager`], with rotapool's `post_create` and
    /// `pre_recycle` hooks already attached, first. Hooks added to it run after rotapool's.
    pub fn pool_builder(&self, config: ManagerConfig) -> deadpool_postgres::PoolBuilder {
        deadpool_postgres::Pool::builder(self.manager(config))
            .runtime(Runtime::Tokio1)
            .post_create(self.post_create_hook())
            .pre_recycle(self.pre_recycle_hook())
    }

    /// The hook that files each new connection's credentials generation. For a `PoolBuilder` built by hand:
    /// attach it as the first `post_create` hook; a hook placed before it must not `.await`.
    pub fn post_create_hook(&self) -> Hook {
        let shared = Arc::clone(&self.shared);
        Hook::sync_fn(move |client, _| {
            shared.file(client);
            Ok(())
        })
    }

    /// The hook that retires a connection of an older generation (spread over the drain period) or past its
    /// maximum lifetime when it is next checked out; deadpool then drops it and takes another. For a
    /// `PoolBuilder` built by hand: attach it as a `pre_recycle` hook.
    pub fn pre_recycle_hook(&self) -> Hook {
        let shared = Arc::clone(&self.shared);
        Hook::sync_fn(
            move |client, metrics| match shared.retirement(client, || metrics.age()) {
                Some(reason) => Err(HookError::message(reason)),
                None => Ok(()),
            },
        )
    }
}

impl<T: DeadpoolTls> RotatingConnect<T> {
    /// The rotating login under the pool: its credentials, counters and backend.
    pub fn login(&self) -> &RotatingLogin<TemplateBackend<T>> {
        &self.shared.login
    }

    /// The template every login starts from.
    pub fn template(&self) -> &Config {
        &self.shared.login.backend().template
    }

    /// The generation of the credentials now in use.
    pub fn generation(&self) -> u64 {
        self.shared.login.generation()
    }

    /// The credentials generation `client` logged in with, if rotapool's `post_create` hook filed it.
    pub fn generation_of(&self, client: &ClientWrapper) -> Option<u64> {
        lock(&self.shared.registry)
            .get(&address(&client.statement_cache))
            .map(|filed| filed.tag.generation())
    }

    /// The login's counters. `connections_by_generation` counts the connections the hooks have seen that are
    /// still alive.
    pub fn stats(&self) -> Stats {
        self.shared.purge();
        self.shared.login.stats()
    }
}

impl<T: DeadpoolTls> Shared<T> {
    fn hand_off(&self, tag: Tag) {
        let now = Instant::now();
        let mut slots = lock(&self.handoff);
        slots.retain(|_, (left, _)| now.duration_since(*left) < HANDOFF_PATIENCE);
        slots.insert(Place::here(), (now, tag));
    }

    fn file(&self, client: &ClientWrapper) {
        let Some((_, tag)) = lock(&self.handoff).remove(&Place::here()) else {
            tracing::debug!(
                "a new connection reached rotapool's post_create hook without a login tag; it will not be \
                 retired after a rotation (was it made by another Connect, or did a hook before rotapool's \
                 .await?)"
            );
            return;
        };
        self.purge();
        let filed = Filed {
            cache: Arc::downgrade(&client.statement_cache),
            tag,
        };
        lock(&self.registry).insert(address(&client.statement_cache), filed);
    }

    fn purge(&self) {
        lock(&self.registry).retain(|_, filed| filed.cache.strong_count() > 0);
    }
}

impl<T: DeadpoolTls> Shared<T> {
    fn retirement(
        &self,
        client: &ClientWrapper,
        age: impl FnOnce() -> Duration,
    ) -> Option<&'static str> {
        let registry = lock(&self.registry);
        let filed = registry.get(&address(&client.statement_cache))?;
        // The login reports the retirement (log and metrics). The entry stays until deadpool has dropped the
        // client, so that the stats count what is really open.
        self.login.retirement(&filed.tag, age)
    }

    /// The `tokio_postgres::Error` that stands for `error` before deadpool-postgres: the driver's own error when
    /// a login made one; otherwise (the store could not be read after a rejection, or this call made no login)
    /// the database's last rejection, replayed, while the log names the real cause.
    async fn driver_error(&self, error: Error<tokio_postgres::Error>) -> tokio_postgres::Error {
        // The whole chain: the store's own words are in a source.
        let cause = rotapool_core::error::report(&error);
        if let Some(driver) = error.into_driver_error() {
            return driver;
        }
        let rejection = lock(&self.login.backend().rejection)
            .clone()
            .unwrap_or_else(|| Rejection {
                code: "28P01".to_owned(),
                message: "the database rejected the secret's credentials".to_owned(),
            });
        tracing::warn!(
            error = %cause,
            "no login could be made; deadpool-postgres gets the database's last rejection ({}), replayed",
            rejection.code
        );
        replay(&rejection).await
    }
}

impl<T: DeadpoolTls> Connect for RotatingConnect<T> {
    fn connect(
        &self,
        pg_config: &Config,
    ) -> Pin<
        Box<
            dyn Future<Output = Result<(Client, JoinHandle<()>), tokio_postgres::Error>>
                + Send
                + '_,
        >,
    > {
        debug_assert!(
            pg_config == self.template(),
            "the Manager's config is the template the login uses (build it with RotatingConnect::manager)"
        );
        Box::pin(async move {
            match self.shared.login.connect().await {
                Ok(Login {
                    connection, tag, ..
                }) => {
                    self.shared.hand_off(tag);
                    Ok(connection)
                }
                Err(error) => Err(self.shared.driver_error(error).await),
            }
        })
    }
}

impl<T: DeadpoolTls> Clone for RotatingConnect<T> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<T: DeadpoolTls> std::fmt::Debug for RotatingConnect<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RotatingConnect")
            .field("template", &self.shared.login.backend().template)
            .field("generation", &self.shared.login.generation())
            .finish_non_exhaustive()
    }
}

fn address(cache: &Arc<StatementCache>) -> usize {
    Arc::as_ptr(cache) as usize
}

fn lock<V>(mutex: &Mutex<V>) -> std::sync::MutexGuard<'_, V> {
    // Maps of tags and plain values: a panic elsewhere cannot leave them inconsistent.
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// The hint a replayed rejection carries.
const REPLAY_HINT: &str =
    "rotapool: the secret store could not be read after this rejection; see the log";

/// A real `tokio_postgres::Error` of kind `Db` carrying `rejection`, made without the network: tokio-postgres
/// sends its startup message down an in-memory pipe, and the other end answers with one `ErrorResponse`, as the
/// server did.
async fn replay(rejection: &Rejection) -> tokio_postgres::Error {
    let (client_end, mut server_end) = tokio::io::duplex(8192);
    let answer = async move {
        // The startup message: its length (itself included), then the rest.
        let mut length = [0u8; 4];
        server_end.read_exact(&mut length).await?;
        let mut startup = vec![0u8; (u32::from_be_bytes(length) as usize).saturating_sub(4)];
        server_end.read_exact(&mut startup).await?;
        let mut fields = Vec::new();
        for (field, value) in [
            (b'S', "FATAL"),
            (b'V', "FATAL"),
            (b'C', rejection.code.as_str()),
            (b'M', rejection.message.as_str()),
            (b'H', REPLAY_HINT),
        ] {
            fields.push(field);
            fields.extend_from_slice(value.as_bytes());
            fields.push(0);
        }
        fields.push(0);
        let mut message = vec![b'E'];
        message.extend_from_slice(&(fields.len() as u32 + 4).to_be_bytes());
        message.extend_from_slice(&fields);
        server_end.write_all(&message).await?;
        // Closing our end only once tokio-postgres has read the answer.
        let mut rest = Vec::new();
        server_end.read_to_end(&mut rest).await.map(drop)
    };
    let mut config = Config::new();
    // A user, so that tokio-postgres does not ask the OS for one; no TLS on a pipe.
    config.user("rotapool").ssl_mode(PgSslMode::Disable);
    let connecting = async {
        let outcome = config.connect_raw(client_end, NoTls).await;
        outcome.err()
    };
    let (error, _) = tokio::join!(connecting, answer);
    match error {
        Some(error) => error,
        // Unreachable: the answer is always an ErrorResponse. Still, never panic: a closed pipe is an error too.
        None => {
            let (closed, _) = tokio::io::duplex(1);
            let outcome = config.connect_raw(closed, NoTls).await;
            outcome.err().expect("a login over a closed pipe fails")
        }
    }
}

/// The template deadpool-postgres's `Config::get_pg_config` would build from `config`, without its three
/// defaults: no user from `$USER`, no Unix-socket hosts when none is set, and no error when `dbname` is missing
/// (the secret fills all three). Also applies `target_session_attrs`, `channel_binding` and
/// `load_balance_hosts`, which deadpool-postgres 0.14 leaves out.
pub fn template_from(config: &deadpool_postgres::Config) -> Result<Config, ConfigError> {
    let mut template = match &config.url {
        Some(url) => url.parse().map_err(ConfigError::InvalidUrl)?,
        None => Config::new(),
    };
    if let Some(user) = config.user.as_ref().filter(|s| !s.is_empty()) {
        template.user(user);
    }
    if let Some(password) = &config.password {
        template.password(password);
    }
    if let Some(dbname) = config.dbname.as_ref().filter(|s| !s.is_empty()) {
        template.dbname(dbname);
    }
    if let Some(options) = &config.options {
        template.options(options);
    }
    if let Some(name) = &config.application_name {
        template.application_name(name);
    }
    for host in config.host.iter().chain(config.hosts.iter().flatten()) {
        template.host(host);
    }
    for hostaddr in config
        .hostaddr
        .iter()
        .chain(config.hostaddrs.iter().flatten())
    {
        template.hostaddr(*hostaddr);
    }
    for port in config.port.iter().chain(config.ports.iter().flatten()) {
        template.port(*port);
    }
    if let Some(timeout) = config.connect_timeout {
        template.connect_timeout(timeout);
    }
    if let Some(keepalives) = config.keepalives {
        template.keepalives(keepalives);
    }
    if let Some(idle) = config.keepalives_idle {
        template.keepalives_idle(idle);
    }
    if let Some(mode) = config.ssl_mode {
        template.ssl_mode(mode.into());
    }
    if let Some(attrs) = config.target_session_attrs {
        template.target_session_attrs(attrs.into());
    }
    if let Some(binding) = config.channel_binding {
        template.channel_binding(binding.into());
    }
    if let Some(balance) = config.load_balance_hosts {
        template.load_balance_hosts(balance.into());
    }
    Ok(template)
}

/// Why a deadpool-postgres pool over a rotating login could not be created.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CreateError {
    /// The `deadpool_postgres::Config` is invalid (its `url` does not parse).
    #[error("the deadpool_postgres::Config is invalid")]
    Config(#[source] ConfigError),
    /// The rotating login could not start: the secret could not be read, or a setting is invalid.
    #[error("the rotating login could not start")]
    Login(#[source] BuildError),
    /// deadpool refused the pool configuration.
    #[error("deadpool refused the pool configuration")]
    Pool(#[source] deadpool_postgres::BuildError),
}

/// A `deadpool_postgres::Pool` that logs in with the AWS Secrets Manager secret `secret_id`, built from `config`
/// as `config.create_pool(Some(Runtime::Tokio1), tls)` would build it.
///
/// `config`'s fields are the template (see [`template_from`] and [`PgBackend`](crate::PgBackend)); its `pool`
/// and `manager` settings are kept. Its `user` and `password` are ignored: the secret's are used.
#[cfg(feature = "aws")]
#[cfg_attr(docsrs, doc(cfg(feature = "aws")))]
pub async fn create_pool<T: DeadpoolTls>(
    config: &deadpool_postgres::Config,
    secret_id: impl Into<String>,
    tls: T,
) -> Result<deadpool_postgres::Pool, CreateError> {
    pool_builder(config, secret_id, tls)
        .await?
        .build()
        .map_err(CreateError::Pool)
}

/// [`create_pool`]'s `PoolBuilder`, before `build()`, with rotapool's hooks attached first: add your own hooks
/// or settings, then build.
#[cfg(feature = "aws")]
#[cfg_attr(docsrs, doc(cfg(feature = "aws")))]
pub async fn pool_builder<T: DeadpoolTls>(
    config: &deadpool_postgres::Config,
    secret_id: impl Into<String>,
    tls: T,
) -> Result<deadpool_postgres::PoolBuilder, CreateError> {
    let secret_id = secret_id.into();
    let (builder, _) = pool_builder_with(config, tls, |login| login.aws_secret(secret_id)).await?;
    Ok(builder)
}

/// [`pool_builder`] with the login's settings in your hands: `configure` gets them with `config`'s template and
/// must give them a secret (`aws_secret`, `secret_source`); it may also set the drain, the maximum lifetime and
/// the rest of [`LoginBuilder`]. Returns the [`RotatingConnect`] too, for its [`stats`](RotatingConnect::stats).
pub async fn pool_builder_with<T: DeadpoolTls>(
    config: &deadpool_postgres::Config,
    tls: T,
    configure: impl FnOnce(LoginBuilder<T>) -> LoginBuilder<T>,
) -> Result<(deadpool_postgres::PoolBuilder, RotatingConnect<T>), CreateError> {
    let template = template_from(config).map_err(CreateError::Config)?;
    let login = configure(RotatingConnect::builder(template, tls));
    let connect = RotatingConnect::build(login)
        .await
        .map_err(CreateError::Login)?;
    let builder = connect
        .pool_builder(config.get_manager_config())
        .config(config.get_pool_config());
    Ok((builder, connect))
}

#[cfg(test)]
mod tests {
    use std::{net::IpAddr, time::Duration};

    use deadpool_postgres::{
        ChannelBinding, LoadBalanceHosts, ManagerConfig, PoolConfig, SslMode, TargetSessionAttrs,
    };
    use tokio_postgres::error::SqlState;

    use super::*;

    #[test]
    fn a_deadpool_config_gives_the_template_deadpool_would_build_without_its_defaults() {
        // Every field, by name: a field deadpool-postgres adds breaks this literal, and so is noticed.
        let config = deadpool_postgres::Config {
            url: Some("postgres://url_user@url-host:5555/url_db?application_name=url_app".into()),
            user: Some("app".into()),
            password: Some("from-the-config".into()),
            dbname: Some("orders".into()),
            options: Some("-c statement_timeout=5s".into()),
            application_name: Some("orders-api".into()),
            ssl_mode: Some(SslMode::Require),
            host: Some("db1.example".into()),
            hosts: Some(vec!["db2.example".into()]),
            hostaddr: Some(IpAddr::from([10, 0, 0, 1])),
            hostaddrs: Some(vec![IpAddr::from([10, 0, 0, 2])]),
            port: Some(6432),
            ports: Some(vec![6433]),
            connect_timeout: Some(Duration::from_secs(3)),
            keepalives: Some(false),
            keepalives_idle: Some(Duration::from_secs(7)),
            target_session_attrs: Some(TargetSessionAttrs::ReadWrite),
            channel_binding: Some(ChannelBinding::Require),
            load_balance_hosts: Some(LoadBalanceHosts::Random),
            manager: Some(ManagerConfig::default()),
            pool: Some(PoolConfig::default()),
        };
        let mut deadpools = config.get_pg_config().expect("deadpool builds it");
        // deadpool-postgres 0.14 forgets these three; rotapool applies them, as their docs promise.
        deadpools
            .target_session_attrs(tokio_postgres::config::TargetSessionAttrs::ReadWrite)
            .channel_binding(tokio_postgres::config::ChannelBinding::Require)
            .load_balance_hosts(tokio_postgres::config::LoadBalanceHosts::Random);
        assert_eq!(template_from(&config).expect("the template"), deadpools);

        // Without the three defaults: no $USER, no socket paths, no DbnameMissing.
        let empty = template_from(&deadpool_postgres::Config::new()).expect("an empty template");
        assert_eq!(empty, Config::new());
    }

    #[tokio::test]
    async fn a_replayed_rejection_is_a_28p01_db_error_with_the_servers_words() {
        let error = replay(&Rejection {
            code: "28P01".into(),
            message: "password authentication failed for user \"app\"".into(),
        })
        .await;
        assert_eq!(error.code(), Some(&SqlState::INVALID_PASSWORD));
        let db = error.as_db_error().expect("a database error");
        assert_eq!(
            db.message(),
            "password authentication failed for user \"app\""
        );
        assert_eq!(db.severity(), "FATAL");
        assert_eq!(db.hint(), Some(REPLAY_HINT));
        assert_eq!(
            classify(&error),
            Failure::Auth,
            "rotapool's own classification agrees"
        );
    }
}
