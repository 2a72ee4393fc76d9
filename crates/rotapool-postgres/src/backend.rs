//! The [`Backend`] for tokio-postgres: connect with the secret's credentials, classify errors by SQLSTATE.

use std::{fmt, path::Path, time::Duration};

use rotapool_core::{error::TlsError, Backend, CaFile, Credentials, Failure, Reuse, SslMode};
use tokio_postgres::{error::SqlState, Config, Error, NoTls};

use crate::{client::PgClient, tls::RustlsConnect};

/// How to log in to Postgres. The secret (or the pool builder's overrides) supplies host, port, database, user
/// and password; this adds TLS, timeouts and the application name.
#[derive(Clone)]
#[must_use]
pub struct PgBackend {
    application_name: Option<String>,
    connect_timeout: Duration,
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
            application_name: None,
            connect_timeout: Duration::from_secs(10),
            ssl_mode: SslMode::default(),
            ca: None,
            tls: RustlsConnect::for_mode(SslMode::default(), None),
        }
    }

    /// Reports `name` as `application_name` to the server. Defaults to none.
    pub fn application_name(mut self, name: impl Into<String>) -> Self {
        self.application_name = Some(name.into());
        self
    }

    /// Gives up a connection attempt after `timeout`. Defaults to 10 s.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
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

    fn config(&self, credentials: &Credentials) -> Config {
        let mut config = Config::new();
        config
            .user(credentials.username())
            .password(credentials.password())
            .host(credentials.host().unwrap_or("localhost"))
            .port(credentials.port().unwrap_or(5432))
            .dbname(credentials.dbname().unwrap_or(credentials.username()))
            .connect_timeout(self.connect_timeout);
        if let Some(name) = &self.application_name {
            config.application_name(name);
        }
        config
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
        let config = self.config(credentials);
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
        match error.as_db_error() {
            Some(db) => format!("{}: {}", db.code().code(), db.message()),
            None => {
                // tokio-postgres prints only its error kind ("error performing TLS handshake"); the cause says why.
                let mut text = error.to_string();
                let mut cause = std::error::Error::source(error);
                while let Some(inner) = cause {
                    text.push_str(": ");
                    text.push_str(&inner.to_string());
                    cause = inner.source();
                }
                text
            }
        }
    }

    async fn check(&self, connection: &mut PgClient) -> Reuse<Error> {
        if connection.is_closed() {
            // A closed client fails at once with the driver's own "connection closed" error.
            return connection.simple_query("").await.map(drop).into();
        }
        Reuse::Keep
    }
}

/// Runs the connection's I/O until the client is dropped or the server goes away.
async fn drive<F: std::future::Future<Output = Result<(), Error>>>(connection: F) {
    if let Err(error) = connection.await {
        tracing::debug!(%error, "postgres connection ended");
    }
}

/// SQLSTATE class 28 means bad credentials; class 08, 57P0x and 53300 may pass by themselves.
pub(crate) fn classify(error: &Error) -> Failure {
    match error.code() {
        Some(code)
            if *code == SqlState::INVALID_PASSWORD
                || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION =>
        {
            Failure::Auth
        }
        Some(code)
            if code.code().starts_with("08")
                || *code == SqlState::CANNOT_CONNECT_NOW
                || *code == SqlState::ADMIN_SHUTDOWN
                || *code == SqlState::CRASH_SHUTDOWN
                || *code == SqlState::TOO_MANY_CONNECTIONS =>
        {
            Failure::Transient
        }
        Some(_) => Failure::Other,
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
            .field("application_name", &self.application_name)
            .field("connect_timeout", &self.connect_timeout)
            .field("ssl_mode", &self.ssl_mode)
            .field("ca_file", &self.ca)
            .finish()
    }
}
