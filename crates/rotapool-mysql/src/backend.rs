//! The [`Backend`] for mysql_async: connect with the secret's credentials, classify errors by server error code.

use std::{fmt, path::Path, time::Duration};

use mysql_async::{Conn, Error, OptsBuilder, SslOpts};
use rotapool_core::{
    error::TlsError, tls::system_roots, Backend, CaFile, Credentials, Failure, Reuse, SslMode,
};

/// How to log in to MySQL or MariaDB. The secret (or the pool builder's overrides) supplies host, port, database,
/// user and password; this adds TLS and the connect timeout.
#[derive(Clone)]
#[must_use]
pub struct MySqlBackend {
    ssl_mode: SslMode,
    ca: Option<CaFile>,
    /// Built from the two above whenever they change, so a connect only clones it.
    ssl_opts: Option<SslOpts>,
    connect_timeout: Duration,
}

impl Default for MySqlBackend {
    fn default() -> Self {
        Self::new()
    }
}

impl MySqlBackend {
    /// Settings taken from the secret, with [`SslMode::Require`] and a 10 s connect timeout.
    pub fn new() -> Self {
        Self {
            ssl_mode: SslMode::default(),
            ca: None,
            ssl_opts: ssl_opts(SslMode::default(), None),
            connect_timeout: Duration::from_secs(10),
        }
    }

    /// Gives up a connection attempt after `timeout`. Defaults to 10 s.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Uses TLS as `mode` says. Defaults to [`SslMode::Require`].
    pub fn ssl_mode(mut self, mode: SslMode) -> Self {
        self.ssl_mode = mode;
        self.ssl_opts = ssl_opts(mode, self.ca.as_ref());
        self
    }

    /// Trusts the certificates in the PEM file at `path` (for RDS, the global bundle) as well as the system's
    /// roots when [`SslMode::VerifyFull`] checks the server. The file is read now, so a bad path fails here.
    pub fn ca_file(mut self, path: impl AsRef<Path>) -> Result<Self, TlsError> {
        self.ca = Some(CaFile::read(path.as_ref())?);
        self.ssl_opts = ssl_opts(self.ssl_mode, self.ca.as_ref());
        Ok(self)
    }

    fn opts(&self, credentials: &Credentials) -> OptsBuilder {
        OptsBuilder::default()
            .ip_or_hostname(credentials.host().unwrap_or("localhost"))
            .tcp_port(credentials.port().unwrap_or(3306))
            .user(Some(credentials.username()))
            .pass(Some(credentials.password()))
            .db_name(credentials.dbname())
            .prefer_socket(false)
            .ssl_opts(self.ssl_opts.clone())
    }
}

impl rotapool_core::FromConfig for MySqlBackend {
    /// Takes `ssl_mode`, `ca_file` and `connect_timeout` (MySQL has no application name: `application_name` is ignored) from `config`.
    fn from_config(config: &rotapool_core::Config) -> Result<Self, rotapool_core::ConfigError> {
        let mut backend = Self::new();
        if let Some(mode) = config.ssl_mode {
            backend = backend.ssl_mode(mode);
        }
        if let Some(path) = &config.ca_file {
            backend = backend.ca_file(path)?;
        }
        if let Some(timeout) = config.connect_timeout {
            backend = backend.connect_timeout(timeout);
        }
        Ok(backend)
    }
}

impl Backend for MySqlBackend {
    type Connection = Conn;
    type Error = Error;

    async fn connect(&self, credentials: &Credentials) -> Result<Conn, Error> {
        let connecting = Conn::new(self.opts(credentials));
        match tokio::time::timeout(self.connect_timeout, connecting).await {
            Ok(result) => result,
            Err(_) => Err(Error::Io(mysql_async::IoError::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!(
                    "no answer from the server within {:?}",
                    self.connect_timeout
                ),
            )))),
        }
    }

    /// The RDS secret engines this backend speaks; a secret naming another is refused at start-up.
    fn engines(&self) -> &'static [&'static str] {
        &["mysql", "mariadb", "aurora-mysql"]
    }

    fn classify(&self, error: &Error) -> Failure {
        classify(error)
    }

    fn describe(&self, error: &Error) -> String {
        match error {
            Error::Server(e) => format!("{} ({}): {}", e.code, e.state, e.message),
            other => other.to_string(),
        }
    }

    /// Resets session state (`COM_RESET_CONNECTION`: variables, temporary tables, prepared statements) so one
    /// borrower's session never leaks into the next. It does not log in again, so it works after a rotation.
    async fn check(&self, connection: &mut Conn) -> Reuse<Error> {
        match connection.reset().await {
            Ok(true) => {}
            Ok(false) => tracing::warn!(
                "the server does not support COM_RESET_CONNECTION (MySQL < 5.7.3, MariaDB < 10.2.4); \
                 session state is not reset between borrowers"
            ),
            Err(error) => return Reuse::Broken(error),
        }
        Reuse::Keep
    }

    /// Says goodbye with `COM_QUIT` and waits for the socket to close, so the server counts no aborted client.
    async fn close(&self, connection: Conn) {
        if let Err(error) = connection.disconnect().await {
            tracing::debug!(%error, "closing a mysql connection failed");
        }
    }
}

/// mysql_async's TLS options for `mode`. mysql_async builds its rustls config itself, from rustls's process-wide
/// provider: with rotapool's features only aws-lc-rs is compiled in, and rustls picks it by itself (an application
/// that compiles ring as well must install one provider at start-up, as rustls requires). `VerifyFull` trusts the
/// system's roots and the CA file, in place of mysql_async's built-in Mozilla roots.
fn ssl_opts(mode: SslMode, ca: Option<&CaFile>) -> Option<SslOpts> {
    match mode {
        SslMode::Disable => None,
        SslMode::Require => Some(
            SslOpts::default()
                .with_danger_accept_invalid_certs(true)
                .with_danger_skip_domain_validation(true),
        ),
        SslMode::VerifyFull => {
            // DER buffers: mysql_async reads a buffer with no PEM block as one DER certificate. The system's
            // roots live for the whole process, so they are borrowed, not copied.
            let system = system_roots().iter().map(|cert| cert.as_ref().into());
            let extra = ca.into_iter().flat_map(|ca| ca.certificates());
            let extra = extra.map(|cert| cert.as_ref().to_vec().into());
            Some(
                SslOpts::default()
                    .with_root_certs(system.chain(extra).collect())
                    .with_disable_built_in_roots(true),
            )
        }
    }
}

/// Server error codes that mean the account itself is unusable, whatever the password: retrying can only make
/// a lockout longer.
const ACCOUNT_LOCKED: &[u16] = &[
    1129, // ER_HOST_IS_BLOCKED: too many connection errors from this host
    1862, // ER_MUST_CHANGE_PASSWORD_LOGIN: password expired
    3118, // ER_ACCOUNT_HAS_BEEN_LOCKED (MySQL)
    3955, // ER_USER_ACCESS_DENIED_FOR_USER_ACCOUNT_BLOCKED_BY_PASSWORD_LOCK (MySQL 8 FAILED_LOGIN_ATTEMPTS)
    4150, // ER_USER_IS_BLOCKED (MariaDB max_password_errors)
    4151, // ER_ACCOUNT_HAS_BEEN_LOCKED (MariaDB)
];

/// Server error codes that may pass by themselves.
const TRANSIENT: &[u16] = &[
    1040, // ER_CON_COUNT_ERROR: too many connections
    1053, // ER_SERVER_SHUTDOWN
    1203, // ER_TOO_MANY_USER_CONNECTIONS
    1205, // ER_LOCK_WAIT_TIMEOUT
    1927, // ER_CONNECTION_KILLED (MariaDB)
];

/// 1045 and 1698 mean bad credentials; see [`ACCOUNT_LOCKED`] and [`TRANSIENT`] for the rest.
pub(crate) fn classify(error: &Error) -> Failure {
    match error {
        Error::Server(e) if e.code == 1045 || e.code == 1698 => Failure::Auth,
        Error::Server(e) if ACCOUNT_LOCKED.contains(&e.code) => Failure::AccountLocked,
        Error::Server(e) if TRANSIENT.contains(&e.code) => Failure::Transient,
        Error::Io(_) => Failure::Transient,
        Error::Driver(mysql_async::DriverError::ConnectionClosed) => Failure::Transient,
        _ => Failure::Other,
    }
}

impl fmt::Debug for MySqlBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MySqlBackend")
            .field("ssl_mode", &self.ssl_mode)
            .field("ca_file", &self.ca)
            .field("connect_timeout", &self.connect_timeout)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rds_secrets_of_every_mysql_engine_default_to_port_3306() {
        for engine in ["mysql", "mariadb", "aurora-mysql"] {
            let json = format!(
                r#"{{"engine":"{engine}","host":"db.example","username":"app","password":"pw","dbname":"shop"}}"#
            );
            let credentials = Credentials::from_secret_json(&json).unwrap();
            let opts = mysql_async::Opts::from(MySqlBackend::new().opts(&credentials));
            assert_eq!(opts.tcp_port(), 3306, "{engine}");
            assert_eq!(opts.ip_or_hostname(), "db.example");
            assert_eq!(opts.db_name(), Some("shop"));
            assert_eq!(opts.user(), Some("app"));
        }
    }

    #[test]
    fn server_codes_are_classified() {
        let server = |code| {
            Error::Server(mysql_async::ServerError {
                code,
                message: String::new(),
                state: String::new(),
            })
        };
        for (code, failure) in [
            (1045, Failure::Auth),
            (1698, Failure::Auth),
            (1862, Failure::AccountLocked),
            (3118, Failure::AccountLocked),
            (3955, Failure::AccountLocked),
            (4150, Failure::AccountLocked),
            (4151, Failure::AccountLocked),
            (1040, Failure::Transient),
            (1049, Failure::Other),
            (1064, Failure::Other),
        ] {
            assert_eq!(classify(&server(code)), failure, "error {code}");
        }
    }
}
