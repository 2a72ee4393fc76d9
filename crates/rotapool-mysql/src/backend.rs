//! The [`Backend`] for mysql_async: connect with the secret's credentials, classify errors by server error code.

use std::{fmt, path::Path, time::Duration};

use mysql_async::{prelude::Queryable, Conn, Error, OptsBuilder, SslOpts};
use rotapool_core::{
    error::TlsError, tls::system_roots, Backend, CaFile, Credentials, Failure, Reuse, SslMode,
};

/// How to log in to MySQL or MariaDB, and how to check a connection before it is lent again.
///
/// Per login the backend takes a clone of its [template](MySqlBackend::template) (by default an empty
/// `OptsBuilder`), and then sets, whatever the template says:
/// - the address: host and port from the pool builder's overrides, else the secret (else `localhost` and 3306),
///   always over TCP (`prefer_socket(false)`, no `socket`);
/// - the account: user and password from the secret;
/// - the database: the builder's override, else the secret's `dbname`; the template's only where both are silent;
/// - TLS, if [`ssl_mode`](MySqlBackend::ssl_mode) or [`ca_file`](MySqlBackend::ca_file) was called, or if there
///   is no template (then [`SslMode::Require`]).
#[derive(Clone)]
#[must_use]
pub struct MySqlBackend {
    template: Option<OptsBuilder>,
    /// `None` until [`MySqlBackend::ssl_mode`] or [`MySqlBackend::ca_file`] is called.
    ssl_mode: Option<SslMode>,
    ca: Option<CaFile>,
    /// Built from the two above whenever they change, so a connect only clones it.
    ssl_opts: Option<SslOpts>,
    connect_timeout: Duration,
    reuse: MySqlReuse,
    cleartext: bool,
}

/// How a pooled connection is checked before it is lent again: deadpool-postgres's three `RecyclingMethod`
/// choices, from the cheapest to the most thorough. Set with [`MySqlBackend::reuse`].
///
/// Whatever the choice, mysql_async rolls back a transaction its borrower dropped unfinished, and reads away a
/// result left unread, before the connection's next command.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MySqlReuse {
    /// No round trip: the connection is lent again unless the driver already knows it is closed (an I/O error on
    /// its last command). A connection the server ended while it sat idle (`wait_timeout`, `KILL`, a failover) is
    /// lent anyway, and its borrower's first command fails. Session state stays: user variables, `SET SESSION`
    /// settings, temporary tables and prepared statements pass to the next borrower.
    Fast,
    /// `COM_PING`: one round trip that proves the connection alive. Session state stays, as with
    /// [`MySqlReuse::Fast`].
    Verified,
    /// `COM_RESET_CONNECTION`: one round trip that proves the connection alive and resets its session (user
    /// variables, `SET SESSION` settings, temporary tables, prepared statements), so nothing leaks from one borrower
    /// to the next. The template's `setup` commands run again after it; its `init` commands do not. It does not log
    /// in again, so it works after a rotation. The default.
    #[default]
    Clean,
}

impl std::str::FromStr for MySqlReuse {
    type Err = InvalidReuse;

    /// `fast`, `verified` or `clean`, in any case.
    fn from_str(text: &str) -> Result<Self, InvalidReuse> {
        match text.to_ascii_lowercase().as_str() {
            "fast" => Ok(Self::Fast),
            "verified" => Ok(Self::Verified),
            "clean" => Ok(Self::Clean),
            _ => Err(InvalidReuse),
        }
    }
}

/// A name [`MySqlReuse`]'s `FromStr` does not take. It never echoes the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("must be `fast`, `verified` or `clean`")]
pub struct InvalidReuse;

impl Default for MySqlBackend {
    fn default() -> Self {
        Self::new()
    }
}

impl MySqlBackend {
    /// Settings taken from the secret, with [`SslMode::Require`], a 10 s connect timeout and
    /// [`MySqlReuse::Clean`].
    pub fn new() -> Self {
        Self {
            template: None,
            ssl_mode: None,
            ca: None,
            ssl_opts: ssl_opts(SslMode::default(), None),
            connect_timeout: Duration::from_secs(10),
            reuse: MySqlReuse::default(),
            cleartext: false,
        }
    }

    /// Starts every login from a clone of `template`: statement cache size, `init` and `setup` commands,
    /// keepalives, compression, its TLS options unless [`ssl_mode`](Self::ssl_mode) or
    /// [`ca_file`](Self::ca_file) is called, and every other option mysql_async takes. Defaults to an empty
    /// `OptsBuilder` with rotapool's TLS.
    ///
    /// The template never supplies the address or the account: `OptsBuilder` cannot say whether a field was set,
    /// so host, port, user and password always come from the secret (or the pool builder's overrides), over TCP;
    /// the template's `socket` and `prefer_socket` are overridden. Its database is used only where the secret and
    /// the builder name none. Its `pool_opts` are ignored: deadpool is the pool. Its `init` commands run once per
    /// connection, and its `setup` commands after every [`MySqlReuse::Clean`] reset as well.
    pub fn template(mut self, template: OptsBuilder) -> Self {
        self.template = Some(template);
        self
    }

    /// Gives up a connection attempt after `timeout`. Defaults to 10 s.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Uses TLS as `mode` says, replacing the template's TLS options. Defaults to [`SslMode::Require`] without a
    /// template, and to the template's TLS options with one.
    pub fn ssl_mode(mut self, mode: SslMode) -> Self {
        self.ssl_mode = Some(mode);
        self.ssl_opts = ssl_opts(mode, self.ca.as_ref());
        self
    }

    /// Trusts the certificates in the PEM file at `path` (for RDS, the global bundle) as well as the system's
    /// roots when [`SslMode::VerifyFull`] checks the server. The file is read now, so a bad path fails here. Like
    /// [`ssl_mode`](Self::ssl_mode), it replaces the template's TLS options.
    pub fn ca_file(mut self, path: impl AsRef<Path>) -> Result<Self, TlsError> {
        self.ca = Some(CaFile::read(path.as_ref())?);
        let mode = *self.ssl_mode.get_or_insert_with(SslMode::default);
        self.ssl_opts = ssl_opts(mode, self.ca.as_ref());
        Ok(self)
    }

    /// Checks a connection before it is lent again as `mode` says. Defaults to [`MySqlReuse::Clean`].
    pub fn reuse(mut self, mode: MySqlReuse) -> Self {
        self.reuse = mode;
        self
    }

    /// Sends the password as it is when the server asks for `mysql_clear_password`, as RDS does for IAM
    /// database authentication (the token is the password): use it only with TLS. Defaults to off, so that a
    /// server cannot make the client send a password in the clear; [`FromConfig`](rotapool_core::FromConfig)
    /// turns it on for `DB__SOURCE=iam`, which already requires TLS.
    pub fn enable_cleartext_plugin(mut self, enable: bool) -> Self {
        self.cleartext = enable;
        self
    }

    fn opts(&self, credentials: &Credentials) -> OptsBuilder {
        let base = match &self.template {
            Some(template) => template.clone(),
            None => OptsBuilder::default(),
        };
        // The template's database stands only where the secret and the builder name none.
        let base = match credentials.dbname() {
            Some(db) => base.db_name(Some(db)),
            None => base,
        };
        let opts = base
            .ip_or_hostname(credentials.host().unwrap_or("localhost"))
            .tcp_port(credentials.port().unwrap_or(3306))
            .socket(None::<String>)
            .prefer_socket(false)
            .user(Some(credentials.username()))
            .pass(Some(credentials.password()));
        // Only ever turned on here: a template's own setting stands otherwise.
        let opts = if self.cleartext {
            opts.enable_cleartext_plugin(true)
        } else {
            opts
        };
        if self.template.is_none() || self.ssl_mode.is_some() {
            opts.ssl_opts(self.ssl_opts.clone())
        } else {
            opts
        }
    }
}

impl rotapool_core::FromConfig for MySqlBackend {
    /// Takes `ssl_mode`, `ca_file`, `connect_timeout` and `reuse` (`DB__REUSE`: `fast`, `verified` or `clean`)
    /// from `config`, and turns on [the cleartext plugin](MySqlBackend::enable_cleartext_plugin) for the `iam`
    /// source; MySQL has no application name, so `application_name` is ignored. A
    /// [template](MySqlBackend::template) is not a setting of [`Config`](rotapool_core::Config): a pool from it
    /// has none.
    fn from_config(config: &rotapool_core::Config) -> Result<Self, rotapool_core::ConfigError> {
        let mut backend = Self::new()
            .enable_cleartext_plugin(config.source == Some(rotapool_core::SourceKind::Iam));
        if let Some(mode) = config.ssl_mode {
            backend = backend.ssl_mode(mode);
        }
        if let Some(path) = &config.ca_file {
            backend = backend.ca_file(path)?;
        }
        if let Some(timeout) = config.connect_timeout {
            backend = backend.connect_timeout(timeout);
        }
        if let Some(text) = &config.reuse {
            let mode =
                text.parse()
                    .map_err(|e: InvalidReuse| rotapool_core::ConfigError::Invalid {
                        variable: config.variable("reuse"),
                        reason: e.to_string(),
                    })?;
            backend = backend.reuse(mode);
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

    /// Checks a connection as [`MySqlBackend::reuse`] says: nothing, `COM_PING`, or `COM_RESET_CONNECTION` (the
    /// default). None of them logs in again, so all work after a rotation.
    async fn check(&self, connection: &mut Conn) -> Reuse<Error> {
        match self.reuse {
            MySqlReuse::Fast if connection.is_disconnected() => {
                Reuse::Retire("the driver already saw the connection close")
            }
            MySqlReuse::Fast => Reuse::Keep,
            MySqlReuse::Verified => connection.ping().await.into(),
            MySqlReuse::Clean => match connection.reset().await {
                Ok(true) => Reuse::Keep,
                Ok(false) => {
                    tracing::warn!(
                        "the server does not support COM_RESET_CONNECTION (MySQL < 5.7.3, MariaDB < 10.2.4); \
                         session state is not reset between borrowers"
                    );
                    Reuse::Keep
                }
                Err(error) => Reuse::Broken(error),
            },
        }
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

/// Server errors by number ([`Failure::of_mysql_error`]); a broken socket may pass by itself.
pub(crate) fn classify(error: &Error) -> Failure {
    match error {
        Error::Server(e) => Failure::of_mysql_error(e.code),
        Error::Io(_) => Failure::Transient,
        Error::Driver(mysql_async::DriverError::ConnectionClosed) => Failure::Transient,
        _ => Failure::Other,
    }
}

impl fmt::Debug for MySqlBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MySqlBackend")
            // The template's own Debug would print its password.
            .field("template", &self.template.as_ref().map(|_| ".."))
            .field("ssl_mode", &self.ssl_mode)
            .field("ca_file", &self.ca)
            .field("connect_timeout", &self.connect_timeout)
            .field("reuse", &self.reuse)
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

    fn secret() -> Credentials {
        Credentials::new("app", "secret-password")
            .with_host("db.example")
            .with_port(3307)
    }

    /// Everything a test can read back of what a login would use.
    fn login_opts(backend: &MySqlBackend, credentials: &Credentials) -> mysql_async::Opts {
        backend.opts(credentials).into()
    }

    #[test]
    fn the_cleartext_plugin_is_on_only_for_iam_tokens() {
        let from_env = |prefix: &str, vars: &[(&str, &str)]| {
            for (name, value) in vars {
                std::env::set_var(format!("{prefix}__{name}"), value);
            }
            let config = rotapool_core::Config::from_env(prefix).unwrap();
            for (name, _) in vars {
                std::env::remove_var(format!("{prefix}__{name}"));
            }
            <MySqlBackend as rotapool_core::FromConfig>::from_config(&config).unwrap()
        };
        let cleartext =
            |backend: &MySqlBackend| login_opts(backend, &secret()).enable_cleartext_plugin();
        assert!(!cleartext(&MySqlBackend::new()));
        assert!(!cleartext(&from_env(
            "RPM_AWS",
            &[("SECRET_ID", "prod/db")]
        )));
        assert!(cleartext(&from_env("RPM_IAM", &[("SOURCE", "iam")])));
        assert!(cleartext(
            &MySqlBackend::new().enable_cleartext_plugin(true)
        ));
    }

    #[test]
    fn a_template_never_supplies_the_address_or_the_account() {
        let template = OptsBuilder::default()
            .ip_or_hostname("template.example")
            .tcp_port(1234)
            .socket(Some("/tmp/template.sock"))
            .prefer_socket(true)
            .user(Some("template_user"))
            .pass(Some("template-password"))
            .db_name(Some("template_db"))
            .stmt_cache_size(7)
            .init(vec!["SET @rotapool_tpl = 7"]);
        let backend = MySqlBackend::new().template(template);

        let opts = login_opts(&backend, &secret());
        assert_eq!(opts.ip_or_hostname(), "db.example");
        assert_eq!(opts.tcp_port(), 3307);
        assert_eq!((opts.socket(), opts.prefer_socket()), (None, false));
        assert_eq!(opts.user(), Some("app"));
        assert_eq!(opts.pass(), Some("secret-password"));
        assert_eq!(
            opts.db_name(),
            Some("template_db"),
            "the secret names no database"
        );
        assert_eq!(opts.stmt_cache_size(), 7);
        assert_eq!(opts.init(), ["SET @rotapool_tpl = 7"]);

        let opts = login_opts(&backend, &secret().with_dbname("shop"));
        assert_eq!(opts.db_name(), Some("shop"), "the secret's database wins");
    }

    #[test]
    fn rotapools_tls_replaces_the_templates_only_when_asked() {
        let template = || OptsBuilder::default().ssl_opts(None::<SslOpts>);
        let tls = |backend: &MySqlBackend| login_opts(backend, &secret()).ssl_opts().is_some();
        assert!(tls(&MySqlBackend::new()), "no template: Require by default");
        assert!(!tls(&MySqlBackend::new().template(template())));
        assert!(tls(&MySqlBackend::new()
            .template(template())
            .ssl_mode(SslMode::Require)));
        assert!(!tls(&MySqlBackend::new()
            .template(OptsBuilder::default().ssl_opts(SslOpts::default()))
            .ssl_mode(SslMode::Disable)));
    }

    #[test]
    fn without_a_template_a_login_is_what_it_was() {
        let opts = login_opts(&MySqlBackend::new(), &Credentials::new("app", "pw"));
        assert_eq!(
            (opts.ip_or_hostname(), opts.tcp_port()),
            ("localhost", 3306)
        );
        assert!(!opts.prefer_socket());
        assert_eq!(opts.db_name(), None);
        assert!(opts.ssl_opts().is_some());
    }

    #[test]
    fn the_backends_debug_never_shows_the_templates_password() {
        let backend =
            MySqlBackend::new().template(OptsBuilder::default().pass(Some("template-password")));
        let debug = format!("{backend:?}");
        assert!(!debug.contains("template-password"), "{debug}");
        assert!(debug.contains("template: Some"), "{debug}");
    }

    #[test]
    fn reuse_modes_parse_from_their_names() {
        for (text, mode) in [
            ("fast", MySqlReuse::Fast),
            ("Verified", MySqlReuse::Verified),
            ("CLEAN", MySqlReuse::Clean),
        ] {
            assert_eq!(text.parse(), Ok(mode));
        }
        let err = "quick".parse::<MySqlReuse>().unwrap_err();
        assert_eq!(err.to_string(), "must be `fast`, `verified` or `clean`");
    }

    #[test]
    fn the_reuse_setting_comes_from_the_config_and_a_bad_one_names_its_variable() {
        use rotapool_core::{Config, ConfigError, FromConfig};
        let mut config = Config::default();
        assert_eq!(
            MySqlBackend::from_config(&config).unwrap().reuse,
            MySqlReuse::Clean
        );
        config.reuse = Some("verified".into());
        assert_eq!(
            MySqlBackend::from_config(&config).unwrap().reuse,
            MySqlReuse::Verified
        );
        config.reuse = Some("sometimes".into());
        match MySqlBackend::from_config(&config) {
            Err(ConfigError::Invalid { variable, reason }) => {
                assert_eq!(variable, "reuse");
                assert!(reason.contains("`fast`, `verified` or `clean`"), "{reason}");
            }
            other => panic!("expected an invalid setting, got {other:?}"),
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
