//! The [`Backend`] for tokio-postgres: connect with the secret's credentials, classify errors by SQLSTATE.

use std::{fmt, path::Path, time::Duration};

use rotapool_core::{error::TlsError, Backend, CaFile, Credentials, Failure, Reuse, SslMode};
use tokio_postgres::{Config, Error, NoTls};

use crate::{client::PgClient, template::apply_secret, tls::RustlsConnect};

/// How to log in to Postgres: a [`tokio_postgres::Config`] template with the secret laid over it, plus TLS.
///
/// Each login clones the template and fills it from the secret:
///
/// | field | taken from, the first that is set |
/// |---|---|
/// | user, password | the secret, always: a template's are ignored, with one warning naming the field |
/// | host / hostaddr | the template (any host or hostaddr), else the secret (or the builder's `host`), else `localhost` |
/// | port | the template (any port), else the secret (or the builder's `port`), else 5432 |
/// | dbname | the template, else the secret (or the builder's `dbname`), else the user name |
/// | connect_timeout | the template, else 10 s |
/// | options, application_name, keepalives, target_session_attrs, channel_binding, load_balance_hosts, ... | the template |
///
/// The user comes from the secret even when the template names one, because alternating-users rotation changes
/// it. TLS is this type's: [`PgBackend::ssl_mode`] and [`PgBackend::ca_file`] choose the connector, and the
/// template's `ssl_mode` says whether to use it (tokio-postgres's default, `prefer`, unless the template says).
#[derive(Clone)]
#[must_use]
pub struct PgBackend {
    template: Config,
    ssl_mode: SslMode,
    ca: Option<CaFile>,
    tls: Option<RustlsConnect>,
}

impl Default for PgBackend {
    fn default() -> Self {
        Self::new()
    }
}

impl PgBackend {
    /// Settings taken from the secret, with [`SslMode::Require`] and a 10 s connect timeout.
    pub fn new() -> Self {
        Self {
            template: Config::new(),
            ssl_mode: SslMode::default(),
            ca: None,
            tls: RustlsConnect::for_mode(SslMode::default(), None),
        }
    }

    /// Starts every login from `template`: keepalives, `options`, `application_name`, `target_session_attrs`,
    /// timeouts and, where it sets them, host, port and dbname (see the table above). Its user and password are
    /// ignored. Defaults to an empty `Config`.
    pub fn template(mut self, template: Config) -> Self {
        crate::template::check_template(&template);
        self.template = template;
        self
    }

    /// Reports `name` as `application_name` to the server (written into the template). Defaults to none.
    pub fn application_name(mut self, name: impl Into<String>) -> Self {
        self.template.application_name(name.into());
        self
    }

    /// Gives up a connection attempt after `timeout` (written into the template). Defaults to 10 s.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.template.connect_timeout(timeout);
        self
    }

    /// Uses TLS as `mode` says. Defaults to [`SslMode::Require`].
    pub fn ssl_mode(mut self, mode: SslMode) -> Self {
        self.ssl_mode = mode;
        self.tls = RustlsConnect::for_mode(mode, self.ca.as_ref());
        self
    }

    /// Trusts the certificates in the PEM file at `path` (for RDS, the global bundle) as well as the system's
    /// roots when [`SslMode::VerifyFull`] checks the server. The file is read now, so a bad path fails here.
    pub fn ca_file(mut self, path: impl AsRef<Path>) -> Result<Self, TlsError> {
        self.ca = Some(CaFile::read(path.as_ref())?);
        self.tls = RustlsConnect::for_mode(self.ssl_mode, self.ca.as_ref());
        Ok(self)
    }
}

impl rotapool_core::FromConfig for PgBackend {
    /// Takes `ssl_mode`, `ca_file`, `application_name` and `connect_timeout` from `config`.
    fn from_config(config: &rotapool_core::Config) -> Result<Self, rotapool_core::ConfigError> {
        let mut backend = Self::new();
        if let Some(mode) = config.ssl_mode {
            backend = backend.ssl_mode(mode);
        }
        if let Some(path) = &config.ca_file {
            backend = backend.ca_file(path)?;
        }
        if let Some(name) = &config.application_name {
            backend = backend.application_name(name);
        }
        if let Some(timeout) = config.connect_timeout {
            backend = backend.connect_timeout(timeout);
        }
        Ok(backend)
    }
}

impl Backend for PgBackend {
    type Connection = PgClient;
    type Error = Error;

    async fn connect(&self, credentials: &Credentials) -> Result<PgClient, Error> {
        let config = apply_secret(&self.template, credentials);
        let (client, driver) = match &self.tls {
            None => {
                let (client, connection) = config.connect(NoTls).await?;
                (client, tokio::spawn(drive(connection)))
            }
            Some(tls) => {
                let (client, connection) = config.connect(tls.clone()).await?;
                (client, tokio::spawn(drive(connection)))
            }
        };
        Ok(PgClient::new(client, driver))
    }

    /// The RDS secret engines this backend speaks; a secret naming another is refused at start-up.
    fn engines(&self) -> &'static [&'static str] {
        &["postgres", "aurora-postgresql"]
    }

    fn classify(&self, error: &Error) -> Failure {
        classify(error)
    }

    fn describe(&self, error: &Error) -> String {
        describe(error)
    }

    async fn check(&self, connection: &mut PgClient) -> Reuse<Error> {
        if connection.is_closed() {
            // A closed client fails at once with the driver's own "connection closed" error. Boxed: this rare
            // path's query state would otherwise sit inline in every `get()` future, and be moved with it.
            return Box::pin(connection.simple_query("")).await.map(drop).into();
        }
        Reuse::Keep
    }
}

/// Runs the connection's I/O until the client is dropped or the server goes away.
pub(crate) async fn drive<F: std::future::Future<Output = Result<(), Error>>>(connection: F) {
    if let Err(error) = connection.await {
        tracing::debug!(%error, "postgres connection ended");
    }
}

/// The SQLSTATE and the server's words, or for other errors the whole chain of causes.
pub(crate) fn describe(error: &Error) -> String {
    match error.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        // tokio-postgres prints only its error kind ("error performing TLS handshake"); the cause says why.
        None => rotapool_core::error::report(error),
    }
}

/// Server errors by SQLSTATE ([`Failure::of_sqlstate`]); a closed connection or a socket error may pass.
pub(crate) fn classify(error: &Error) -> Failure {
    match error.code() {
        Some(code) => Failure::of_sqlstate(code.code()),
        None if error.is_closed()
            || std::error::Error::source(error).is_some_and(|s| s.is::<std::io::Error>()) =>
        {
            Failure::Transient
        }
        None => Failure::Other,
    }
}

impl fmt::Debug for PgBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgBackend")
            // tokio-postgres's own Debug, which redacts a password.
            .field("template", &self.template)
            .field("ssl_mode", &self.ssl_mode)
            .field("ca_file", &self.ca)
            .finish()
    }
}
