//! Pool settings as data: a serde [`Config`], loadable from the environment the 12-factor way, that turns into a
//! [`PoolBuilder`]. `environment` reads the variables; `source` turns the settings into the source of the
//! credentials that `DB__SOURCE` selects.

mod environment;
mod source;
mod source_settings;

use std::{path::PathBuf, time::Duration};

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

pub use source_settings::{AgentConfig, FileConfig, IamConfig, SourceKind};

use crate::{
    backend::Backend,
    builder::PoolBuilder,
    error::{ConfigError, CreatePoolError},
    pool::Pool,
    settings::{DrainPolicy, ProactiveRefresh},
    tls::SslMode,
};

/// Every setting of a rotating pool, all optional, each defaulting as the builder method of the same name says.
///
/// [`Config::from_env`] reads it from variables such as `DB__SECRET_ID`, `DB__SSL_MODE` and
/// `DB__POOL__MAX_SIZE` (prefix `DB`, `__` between levels). Durations are written as `30s`, `15m` or `1h 30m`;
/// `0s` turns off `login.transient_retry` and `proactive_refresh`.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// # #[derive(Clone)] struct MyBackend;
/// # impl rotapool_core::Backend for MyBackend {
/// #   type Connection = (); type Error = std::io::Error;
/// #   async fn connect(&self, _: &rotapool_core::Credentials) -> Result<(), std::io::Error> { Ok(()) }
/// #   fn classify(&self, _: &std::io::Error) -> rotapool_core::Failure { rotapool_core::Failure::Other }
/// #   async fn check(&self, _: &mut ()) -> rotapool_core::Reuse<std::io::Error> { rotapool_core::Reuse::Keep }
/// # }
/// # impl rotapool_core::FromConfig for MyBackend {
/// #   fn from_config(_: &rotapool_core::Config) -> Result<Self, rotapool_core::ConfigError> { Ok(MyBackend) }
/// # }
/// let config = rotapool_core::Config::from_env("DB")?;
/// let pool: rotapool_core::Pool<MyBackend> = config.create_pool().await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Config {
    /// The pool's name in metrics and traces. Defaults to the secret id (for the `iam` source, `user@host`; for
    /// `file`, the path; for `env`, `env`).
    pub name: Option<String>,
    /// Where the credentials come from: `aws` (Secrets Manager's API, the default), `iam` (RDS IAM auth
    /// tokens), `agent` (the Secrets Manager Agent or Lambda extension), `file` (a mounted secret) or `env`
    /// (fixed credentials from the environment, for development).
    pub source: Option<SourceKind>,
    /// The Secrets Manager secret: a name or an ARN. Required by the `aws` and `agent` sources.
    pub secret_id: Option<String>,
    /// The AWS region, for the `aws` and `iam` sources. Defaults to the SDK's region chain (`AWS_REGION`,
    /// profile, instance metadata).
    pub region: Option<String>,
    /// Sends Secrets Manager requests here (`aws` source). Defaults to the SDK's choice, which honours
    /// `AWS_ENDPOINT_URL`.
    pub endpoint_url: Option<String>,
    /// The database account, for the `iam` and `env` sources. Read from the environment as written.
    pub username: Option<String>,
    /// The password, for the `env` source: read from the environment only, as written, and never printed.
    #[serde(skip)]
    password: Option<Hidden>,
    /// A URL such as `postgres://user:password@host:5432/dbname`, for the `env` source instead of `username`
    /// and `password`: read from the environment only, and never printed.
    #[serde(skip)]
    url: Option<Hidden>,
    /// Connects to this host instead of the secret's `host`. For the `iam` source, the database's endpoint,
    /// which the token is signed for: required.
    pub host: Option<String>,
    /// Connects to this port instead of the secret's `port`. For the `iam` source, the port the token is
    /// signed for: required.
    pub port: Option<u16>,
    /// Uses this database instead of the secret's `dbname`.
    pub dbname: Option<String>,
    /// `disable`, `require` or `verify-full`. Defaults to `require`.
    pub ssl_mode: Option<SslMode>,
    /// A PEM CA bundle (for RDS, the global bundle) that `verify-full` trusts besides the system's roots.
    /// Defaults to the system's roots alone.
    pub ca_file: Option<PathBuf>,
    /// Reported to the server as the application name, where the engine has one. Defaults to none.
    pub application_name: Option<String>,
    /// How long one connection attempt may take. Defaults to 10 s.
    #[serde(default, with = "humantime_serde")]
    pub connect_timeout: Option<Duration>,
    /// What the backend does before lending a connection again, where it has a choice: MySQL takes `fast` (no
    /// round trip), `verified` (a ping) or `clean` (`COM_RESET_CONNECTION`, the default). PostgreSQL ignores it.
    pub reuse: Option<String>,
    /// Pool size and waits.
    #[serde(default)]
    pub pool: PoolConfig,
    /// How hard logins are tried.
    #[serde(default)]
    pub login: LoginConfig,
    /// The `agent` source's settings.
    #[serde(default)]
    pub agent: AgentConfig,
    /// The `file` source's settings.
    #[serde(default)]
    pub file: FileConfig,
    /// The `iam` source's settings.
    #[serde(default)]
    pub iam: IamConfig,
    /// Connections older than this are closed instead of reused. Defaults to none.
    #[serde(default, with = "humantime_serde")]
    pub max_lifetime: Option<Duration>,
    /// Shortens each connection's lifetime by a share of this, spread evenly. Defaults to zero.
    #[serde(default, with = "humantime_serde")]
    pub max_lifetime_jitter: Option<Duration>,
    /// `keep`, `immediate`, `gradual` or `gradual:<duration>`. Defaults to `gradual:30s`.
    pub drain: Option<DrainPolicy>,
    /// The usual time between proactive reads of the secret; `0s` turns them off. Defaults to 15 minutes.
    #[serde(default, with = "humantime_serde")]
    pub proactive_refresh: Option<Duration>,
    /// The environment prefix this was read with, to name variables in errors.
    #[serde(skip)]
    prefix: Option<String>,
}

/// A value read from the environment that is never printed (a password, a URL holding one).
#[derive(Clone)]
struct Hidden(SecretString);

impl Hidden {
    fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl PartialEq for Hidden {
    fn eq(&self, other: &Self) -> bool {
        self.expose() == other.expose()
    }
}

impl std::fmt::Debug for Hidden {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// The pool's size and how long callers wait. Variables `<PREFIX>__POOL__*`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct PoolConfig {
    /// Most connections open at once. Defaults to 4 per CPU core.
    pub max_size: Option<usize>,
    /// How long `get()` waits for a free slot. Defaults to forever.
    #[serde(default, with = "humantime_serde")]
    pub wait_timeout: Option<Duration>,
    /// How long opening one connection may take, refreshes and retries included. Defaults to no limit.
    #[serde(default, with = "humantime_serde")]
    pub create_timeout: Option<Duration>,
}

/// How hard logins are tried. Variables `<PREFIX>__LOGIN__*`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct LoginConfig {
    /// Most rejected logins one connection attempt makes. Defaults to 3.
    pub max_auth_attempts: Option<u32>,
    /// Most logins in flight at once. Defaults to 2.
    pub max_concurrent_logins: Option<u32>,
    /// How long a connection attempt may wait on other callers' reads of the secret. Defaults to 10 s.
    #[serde(default, with = "humantime_serde")]
    pub auth_budget: Option<Duration>,
    /// How long logins refused for passing reasons are retried; `0s` fails at once. Defaults to 10 s.
    #[serde(default, with = "humantime_serde")]
    pub transient_retry: Option<Duration>,
    /// How many failed logins in a row make the database block the account (MariaDB `max_password_errors`).
    /// Defaults to none.
    pub lockout_threshold: Option<u32>,
}

/// A backend that can be set up from a [`Config`]'s TLS, timeout and application-name settings.
pub trait FromConfig: Backend + Sized {
    /// The backend `config` describes.
    fn from_config(config: &Config) -> Result<Self, ConfigError>;
}

impl Config {
    /// Reads `<prefix>__*` variables: `DB__SECRET_ID`, `DB__POOL__MAX_SIZE`, ... for prefix `DB`. Unknown
    /// variables under the prefix are errors, so a misspelt one does not pass silently.
    pub fn from_env(prefix: &str) -> Result<Self, ConfigError> {
        environment::read(prefix)
    }

    /// The variable that holds `path` (e.g. `pool.max_size`), or the path itself when not read from the
    /// environment.
    pub fn variable(&self, path: &str) -> String {
        environment::variable(self.prefix.as_deref(), path)
    }

    /// A builder for a pool of `backend` with these settings applied; set more on it before `build()`.
    pub fn builder<B: Backend>(&self, backend: B) -> Result<PoolBuilder<B>, ConfigError> {
        let kind = self.source.unwrap_or_default();
        let (mut builder, default_name) = self.with_source(kind, PoolBuilder::new(backend))?;
        builder = builder.name(self.name.clone().unwrap_or(default_name));
        if let Some(host) = &self.host {
            builder = builder.host(host);
        }
        if let Some(port) = self.port {
            builder = builder.port(port);
        }
        if let Some(dbname) = &self.dbname {
            builder = builder.dbname(dbname);
        }
        if let Some(max_size) = self.pool.max_size {
            builder = builder.max_size(max_size);
        }
        builder = builder
            .wait_timeout(self.pool.wait_timeout)
            .create_timeout(self.pool.create_timeout);
        if let Some(attempts) = self.login.max_auth_attempts {
            builder = builder.max_auth_attempts(attempts);
        }
        if let Some(logins) = self.login.max_concurrent_logins {
            builder = builder.max_concurrent_logins(logins);
        }
        if let Some(budget) = self.login.auth_budget {
            builder = builder.auth_budget(budget);
        }
        if self.login.lockout_threshold.is_some() {
            builder = builder.lockout_threshold(self.login.lockout_threshold);
        }
        if let Some(retry) = self.login.transient_retry {
            builder = builder.transient_retry((!retry.is_zero()).then_some(retry));
        }
        if self.max_lifetime.is_some() {
            builder = builder.max_lifetime(self.max_lifetime);
        }
        if let Some(jitter) = self.max_lifetime_jitter {
            builder = builder.max_lifetime_jitter(jitter);
        }
        if let Some(drain) = self.drain.or(kind.default_drain()) {
            builder = builder.drain(drain);
        }
        if let Some(interval) = self.proactive_refresh {
            builder = builder.proactive_refresh((!interval.is_zero()).then(|| ProactiveRefresh {
                interval,
                ..ProactiveRefresh::default()
            }));
        }
        Ok(builder)
    }

    /// Builds the backend from these settings, then the pool; reads the secret once.
    pub async fn create_pool<B: FromConfig>(&self) -> Result<Pool<B>, CreatePoolError> {
        let backend = B::from_config(self)?;
        Ok(self.builder(backend)?.build().await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sets `vars` (under a prefix of the test's own, so tests do not meet), reads them, and clears them.
    fn read(prefix: &str, vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        for (name, value) in vars {
            std::env::set_var(format!("{prefix}__{name}"), value);
        }
        let config = Config::from_env(prefix);
        for (name, _) in vars {
            std::env::remove_var(format!("{prefix}__{name}"));
        }
        config
    }

    #[test]
    fn every_setting_reads_from_the_environment() {
        let config = read(
            "RPT_ALL",
            &[
                ("SECRET_ID", "prod/orders/db"),
                ("REGION", "eu-west-1"),
                ("ENDPOINT_URL", "http://127.0.0.1:5000"),
                ("HOST", "proxy.example"),
                ("PORT", "6432"),
                ("DBNAME", "orders"),
                ("SSL_MODE", "verify-full"),
                ("CA_FILE", "/etc/rds/global-bundle.pem"),
                ("APPLICATION_NAME", "orders-api"),
                ("CONNECT_TIMEOUT", "3s"),
                ("POOL__MAX_SIZE", "16"),
                ("POOL__WAIT_TIMEOUT", "2s"),
                ("POOL__CREATE_TIMEOUT", "20s"),
                ("LOGIN__MAX_AUTH_ATTEMPTS", "2"),
                ("LOGIN__MAX_CONCURRENT_LOGINS", "1"),
                ("LOGIN__AUTH_BUDGET", "5s"),
                ("LOGIN__TRANSIENT_RETRY", "0s"),
                ("MAX_LIFETIME", "30m"),
                ("MAX_LIFETIME_JITTER", "5m"),
                ("DRAIN", "gradual:45s"),
                ("PROACTIVE_REFRESH", "10m"),
                ("NAME", "orders"),
            ],
        )
        .unwrap();
        assert_eq!(config.secret_id.as_deref(), Some("prod/orders/db"));
        assert_eq!(config.port, Some(6432));
        assert_eq!(config.dbname.as_deref(), Some("orders"));
        assert_eq!(config.ssl_mode, Some(SslMode::VerifyFull));
        assert_eq!(config.connect_timeout, Some(Duration::from_secs(3)));
        assert_eq!(config.pool.max_size, Some(16));
        assert_eq!(config.pool.create_timeout, Some(Duration::from_secs(20)));
        assert_eq!(config.login.max_concurrent_logins, Some(1));
        assert_eq!(config.login.transient_retry, Some(Duration::ZERO));
        assert_eq!(config.max_lifetime, Some(Duration::from_secs(1800)));
        assert_eq!(
            config.drain,
            Some(DrainPolicy::Gradual {
                over: Duration::from_secs(45)
            })
        );
        assert_eq!(config.proactive_refresh, Some(Duration::from_secs(600)));
        assert_eq!(config.name.as_deref(), Some("orders"));
        assert_eq!(config.region.as_deref(), Some("eu-west-1"));
    }

    #[test]
    fn a_bad_value_names_the_variable_and_what_it_takes_without_echoing_it() {
        let cases: &[(&str, &str, &str)] = &[
            (
                "SSL_MODE",
                "sekrit-mode",
                "one of disable, require, verify-full",
            ),
            ("DRAIN", "sekrit-drain", "one of keep, immediate, gradual"),
            ("POOL__MAX_SIZE", "sekrit-size", "must be"),
            ("PORT", "sekrit-port", "must be"),
            ("MAX_LIFETIME", "sekrit-duration", "duration such as 30s"),
            ("POOL__MAX_SIZ", "8", "check its spelling"),
        ];
        for (i, (name, value, expected)) in cases.iter().enumerate() {
            let prefix = format!("RPT_BAD{i}");
            let err = read(&prefix, &[(name, value)]).expect_err(name);
            let text = err.to_string();
            assert!(
                text.contains(&format!("`{prefix}__{name}`")),
                "{name}: {text}"
            );
            assert!(text.contains(expected), "{name}: {text}");
            assert!(!text.contains("sekrit"), "{name} echoed its value: {text}");
        }
    }

    /// A backend that never connects: enough to assemble a builder.
    struct NoBackend;

    impl crate::backend::Backend for NoBackend {
        type Connection = ();
        type Error = std::io::Error;
        async fn connect(&self, _: &crate::credentials::Credentials) -> Result<(), std::io::Error> {
            Err(std::io::ErrorKind::Unsupported.into())
        }
        fn classify(&self, _: &std::io::Error) -> crate::backend::Failure {
            crate::backend::Failure::Other
        }
        async fn check(&self, _: &mut ()) -> crate::backend::Reuse<std::io::Error> {
            crate::backend::Reuse::Keep
        }
    }

    #[test]
    fn a_missing_secret_id_names_its_variable() {
        let config = read("RPT_NOID", &[("POOL__MAX_SIZE", "4")]).unwrap();
        let err = config.builder(NoBackend).unwrap_err();
        assert!(
            err.to_string().contains("`RPT_NOID__SECRET_ID` is not set"),
            "{err}"
        );
    }

    #[test]
    fn a_setting_of_another_source_is_refused_by_name() {
        let config = read(
            "RPT_FOREIGN",
            &[
                ("SOURCE", "env"),
                ("SECRET_ID", "prod/db"),
                ("USERNAME", "app"),
                ("PASSWORD", "pw"),
            ],
        )
        .unwrap();
        let err = config.builder(NoBackend).unwrap_err().to_string();
        assert!(err.contains("`RPT_FOREIGN__SECRET_ID`"), "{err}");
        assert!(err.contains("read by the aws and agent source"), "{err}");
        let config = read("RPT_FOREIGN2", &[("PASSWORD", "pw")]).unwrap();
        let err = config.builder(NoBackend).unwrap_err().to_string();
        assert!(err.contains("`RPT_FOREIGN2__PASSWORD`: is read by the env source, but `RPT_FOREIGN2__SOURCE` is `aws`"), "{err}");
    }

    #[test]
    fn an_unknown_source_lists_the_ones_there_are() {
        let err = read("RPT_SRC", &[("SOURCE", "vault")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("`RPT_SRC__SOURCE`"), "{err}");
        assert!(err.contains("one of aws, iam, agent, file, env"), "{err}");
    }

    #[test]
    fn the_env_source_takes_a_user_and_password_or_a_url_and_never_prints_them() {
        for (prefix, vars) in [
            (
                "RPT_ENV1",
                &[
                    ("SOURCE", "env"),
                    ("USERNAME", "app"),
                    ("PASSWORD", "sekrit"),
                ][..],
            ),
            (
                "RPT_ENV2",
                &[
                    ("SOURCE", "env"),
                    ("URL", "postgres://app:sekrit@db.example:5432/orders"),
                ][..],
            ),
        ] {
            let config = read(prefix, vars).unwrap();
            assert!(!format!("{config:?}").contains("sekrit"), "{config:?}");
            let source = config.env_source().unwrap();
            assert!(!format!("{source:?}").contains("sekrit"));
            let remedy = crate::source::SecretSource::remedy(&source);
            assert!(remedy.contains(&format!("`{prefix}__")), "{remedy}");
            assert!(
                remedy.contains("never reads the credentials again"),
                "{remedy}"
            );
            assert!(config.builder(NoBackend).is_ok());
        }
        let missing = read("RPT_ENV3", &[("SOURCE", "env"), ("USERNAME", "app")]).unwrap();
        let err = missing.builder(NoBackend).unwrap_err().to_string();
        assert!(err.contains("`RPT_ENV3__PASSWORD` is not set"), "{err}");
        let both = read(
            "RPT_ENV4",
            &[
                ("SOURCE", "env"),
                ("USERNAME", "app"),
                ("URL", "postgres://a:sekrit@h/d"),
            ],
        )
        .unwrap();
        let err = both.builder(NoBackend).unwrap_err().to_string();
        assert!(err.contains("not both") && !err.contains("sekrit"), "{err}");
        let bad = read(
            "RPT_ENV5",
            &[("SOURCE", "env"), ("URL", "postgres://app@h/d")],
        )
        .unwrap();
        let err = bad.builder(NoBackend).unwrap_err().to_string();
        assert!(
            err.contains("`RPT_ENV5__URL`") && err.contains("no password"),
            "{err}"
        );
    }

    #[test]
    fn each_source_names_the_variable_it_lacks_or_refuses() {
        type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
        let cases: &[Case] = &[
            (
                "RPT_IAM1",
                &[
                    ("SOURCE", "iam"),
                    ("USERNAME", "app"),
                    ("HOST", "db.example"),
                ],
                "`RPT_IAM1__PORT` is not set",
            ),
            (
                "RPT_IAM2",
                &[
                    ("SOURCE", "iam"),
                    ("USERNAME", "app"),
                    ("HOST", "h"),
                    ("PORT", "5432"),
                    ("SSL_MODE", "disable"),
                ],
                "RDS takes IAM tokens only over TLS",
            ),
            (
                "RPT_IAM3",
                &[
                    ("SOURCE", "iam"),
                    ("USERNAME", "app"),
                    ("HOST", "h"),
                    ("PORT", "5432"),
                    ("IAM__RENEW_AFTER", "20m"),
                ],
                "`RPT_IAM3__IAM__RENEW_AFTER`: must be from 1s to 13m",
            ),
            (
                "RPT_IAM4",
                &[
                    ("SOURCE", "iam"),
                    ("USERNAME", "app"),
                    ("HOST", "h"),
                    ("PORT", "5432"),
                    ("PROACTIVE_REFRESH", "0s"),
                ],
                "renew an IAM token",
            ),
            (
                "RPT_AGENT1",
                &[("SOURCE", "agent")],
                "`RPT_AGENT1__SECRET_ID` is not set",
            ),
            (
                "RPT_FILE1",
                &[("SOURCE", "file")],
                "`RPT_FILE1__FILE__PATH` is not set",
            ),
            (
                "RPT_FILE2",
                &[
                    ("SOURCE", "file"),
                    ("FILE__PATH", "/a.json"),
                    ("FILE__DIR", "/b"),
                ],
                "set one of the two",
            ),
        ];
        for (prefix, vars, expected) in cases {
            let config = read(prefix, vars).unwrap();
            let err = config
                .builder(NoBackend)
                .map(|_| ())
                .unwrap_err()
                .to_string();
            assert!(err.contains(expected), "{prefix}: {err}");
        }
        for (prefix, vars) in [
            (
                "RPT_IAM_OK",
                &[
                    ("SOURCE", "iam"),
                    ("USERNAME", "app"),
                    ("HOST", "h"),
                    ("PORT", "5432"),
                    ("IAM__RENEW_AFTER", "5m"),
                ][..],
            ),
            (
                "RPT_AGENT_OK",
                &[
                    ("SOURCE", "agent"),
                    ("SECRET_ID", "prod/db"),
                    ("AGENT__URL", "http://127.0.0.1:2773"),
                ][..],
            ),
            (
                "RPT_FILE_OK",
                &[("SOURCE", "file"), ("FILE__DIR", "/mnt/secrets-store")][..],
            ),
        ] {
            let config = read(prefix, vars).unwrap();
            assert!(config.builder(NoBackend).is_ok(), "{prefix}");
        }
    }
}
