//! The configured source, built: the check that no setting of another source was given by mistake, and each
//! source made from its settings.

use std::sync::Arc;

use super::{
    source_settings::{AgentConfig, FileConfig, IamConfig, SourceKind},
    Config,
};
use crate::{
    backend::Backend, builder::PoolBuilder, credentials::Credentials, error::ConfigError,
    source::StaticSource,
};

impl Config {
    /// `builder` reading credentials from the source `kind`, and the pool's name when none is configured.
    pub(super) fn with_source<B: Backend>(
        &self,
        kind: SourceKind,
        builder: PoolBuilder<B>,
    ) -> Result<(PoolBuilder<B>, String), ConfigError> {
        self.refuse_foreign(kind)?;
        match kind {
            SourceKind::Aws => {
                let secret_id = self
                    .secret_id_for("the Secrets Manager secret that holds the database account")?;
                Ok((self.with_secret(builder, &secret_id)?, secret_id))
            }
            SourceKind::Env => Ok((
                builder.secret_source(Arc::new(self.env_source()?)),
                "env".to_owned(),
            )),
            SourceKind::Agent => self.agent_source(builder),
            SourceKind::File => self.file_source(builder),
            SourceKind::Iam => self.iam_source(builder),
        }
    }

    /// Refuses a setting that only another source reads, so that a half-switched configuration does not pass
    /// silently.
    fn refuse_foreign(&self, kind: SourceKind) -> Result<(), ConfigError> {
        use SourceKind::{Agent, Aws, Env, File, Iam};
        let settings: [(&str, bool, &[SourceKind]); 9] = [
            ("secret_id", self.secret_id.is_some(), &[Aws, Agent]),
            ("region", self.region.is_some(), &[Aws, Iam]),
            ("endpoint_url", self.endpoint_url.is_some(), &[Aws]),
            ("username", self.username.is_some(), &[Iam, Env]),
            ("password", self.password.is_some(), &[Env]),
            ("url", self.url.is_some(), &[Env]),
            ("agent", self.agent != AgentConfig::default(), &[Agent]),
            ("file", self.file != FileConfig::default(), &[File]),
            ("iam", self.iam != IamConfig::default(), &[Iam]),
        ];
        match settings
            .iter()
            .find(|(_, set, readers)| *set && !readers.contains(&kind))
        {
            Some((path, _, readers)) => {
                Err(ConfigError::Invalid {
                    variable: self.variable(path),
                    reason: format!(
                    "is read by the {} source, but `{}` is `{}`; remove it, or choose that source",
                    readers.iter().map(|r| r.name()).collect::<Vec<_>>().join(" and "),
                    self.variable("source"),
                    kind.name()
                ),
                })
            }
            None => Ok(()),
        }
    }

    /// The secret id, which the source needs for `what`.
    fn secret_id_for(&self, what: &'static str) -> Result<String, ConfigError> {
        self.secret_id.clone().ok_or_else(|| ConfigError::Missing {
            variable: self.variable("secret_id"),
            what,
        })
    }

    /// The `env` source: `username` and `password`, or `url`, read once.
    pub(super) fn env_source(&self) -> Result<StaticSource, ConfigError> {
        let (credentials, origin) =
            match (&self.url, &self.username, &self.password) {
                (Some(url), None, None) => {
                    let credentials =
                        Credentials::from_url(url.expose()).map_err(|e| ConfigError::Invalid {
                            variable: self.variable("url"),
                            reason: e.to_string(),
                        })?;
                    (credentials, format!("`{}`", self.variable("url")))
                }
                (Some(_), _, _) => {
                    return Err(ConfigError::Invalid {
                        variable: self.variable("url"),
                        reason: format!(
                            "is set beside `{}` or `{}`; set the URL or those two, not both",
                            self.variable("username"),
                            self.variable("password")
                        ),
                    })
                }
                (None, Some(username), Some(password)) => (
                    Credentials::new(username, password.expose()),
                    format!(
                        "`{}` and `{}`",
                        self.variable("username"),
                        self.variable("password")
                    ),
                ),
                (None, None, _) => return Err(ConfigError::Missing {
                    variable: self.variable("username"),
                    what:
                        "the database account of the env source (or set the URL variable instead)",
                }),
                (None, Some(_), None) => {
                    return Err(ConfigError::Missing {
                        variable: self.variable("password"),
                        what: "the database account's password, for the env source",
                    })
                }
            };
        Ok(StaticSource::new(credentials).described_as(origin))
    }

    /// `builder` reading the Secrets Manager secret `secret_id`, in the region and at the endpoint configured.
    #[cfg(feature = "aws")]
    fn with_secret<B: Backend>(
        &self,
        builder: PoolBuilder<B>,
        secret_id: &str,
    ) -> Result<PoolBuilder<B>, ConfigError> {
        let mut source = crate::source::AwsSecretsManager::builder(secret_id);
        if let Some(region) = &self.region {
            source = source.region(region);
        }
        if let Some(url) = &self.endpoint_url {
            source = source.endpoint_url(url);
        }
        Ok(builder.aws_source(source))
    }

    /// Without the `aws` feature there is no Secrets Manager source to configure.
    #[cfg(not(feature = "aws"))]
    fn with_secret<B: Backend>(
        &self,
        _: PoolBuilder<B>,
        secret_id: &str,
    ) -> Result<PoolBuilder<B>, ConfigError> {
        Err(ConfigError::Invalid {
            variable: self.variable("secret_id"),
            reason: format!("`{secret_id}` needs the `aws` feature of rotapool-core"),
        })
    }

    /// The error for a source whose feature is off.
    #[allow(dead_code)] // With every feature on, no source lacks its feature.
    fn needs_feature(&self, kind: SourceKind) -> ConfigError {
        ConfigError::Invalid {
            variable: self.variable("source"),
            reason: format!(
                "`{0}` needs the `{0}` feature of rotapool-core (or of the rotapool, rotapool-postgres or \
                 rotapool-mysql crate)",
                kind.name()
            ),
        }
    }

    /// `builder` reading the secret through the Secrets Manager Agent.
    #[cfg(feature = "agent")]
    fn agent_source<B: Backend>(
        &self,
        builder: PoolBuilder<B>,
    ) -> Result<(PoolBuilder<B>, String), ConfigError> {
        let secret_id = self.secret_id_for("the secret the Secrets Manager Agent reads")?;
        let mut source = crate::source::SecretsManagerAgent::builder(&secret_id);
        if let Some(url) = &self.agent.url {
            source = source.url(url);
        }
        if let Some(path) = &self.agent.token_file {
            source = source.token_file(path);
        }
        let source = source.build().map_err(|e| ConfigError::Invalid {
            variable: self.variable("agent.url"),
            reason: e.to_string(),
        })?;
        Ok((builder.secret_source(Arc::new(source)), secret_id))
    }

    #[cfg(not(feature = "agent"))]
    fn agent_source<B: Backend>(
        &self,
        _: PoolBuilder<B>,
    ) -> Result<(PoolBuilder<B>, String), ConfigError> {
        Err(self.needs_feature(SourceKind::Agent))
    }

    /// `builder` reading a mounted secret: one JSON file, or a directory of one file per field.
    #[cfg(feature = "file")]
    fn file_source<B: Backend>(
        &self,
        builder: PoolBuilder<B>,
    ) -> Result<(PoolBuilder<B>, String), ConfigError> {
        use crate::source::SecretFile;
        let (source, path) = match (&self.file.path, &self.file.dir) {
            (Some(path), None) => (SecretFile::json(path), path),
            (None, Some(dir)) => (SecretFile::dir(dir), dir),
            (Some(_), Some(_)) => {
                return Err(ConfigError::Invalid {
                    variable: self.variable("file.path"),
                    reason: format!(
                        "is set beside `{}`; set one of the two",
                        self.variable("file.dir")
                    ),
                })
            }
            (None, None) => return Err(ConfigError::Missing {
                variable: self.variable("file.path"),
                what:
                    "the mounted secret: a file holding its JSON, or the FILE__DIR variable for a \
                           directory of `username` and `password` files",
            }),
        };
        Ok((
            builder.secret_source(Arc::new(source)),
            path.display().to_string(),
        ))
    }

    #[cfg(not(feature = "file"))]
    fn file_source<B: Backend>(
        &self,
        _: PoolBuilder<B>,
    ) -> Result<(PoolBuilder<B>, String), ConfigError> {
        Err(self.needs_feature(SourceKind::File))
    }

    /// `builder` logging in with RDS IAM auth tokens for `username` at `host:port`.
    #[cfg(feature = "iam")]
    fn iam_source<B: Backend>(
        &self,
        builder: PoolBuilder<B>,
    ) -> Result<(PoolBuilder<B>, String), ConfigError> {
        use crate::source::{RdsIamAuth, MAX_RENEW_AFTER, MIN_RENEW_AFTER};
        let missing = |path: &str, what| ConfigError::Missing {
            variable: self.variable(path),
            what,
        };
        let username = (self.username.clone())
            .ok_or_else(|| missing("username", "the database user that logs in with IAM tokens"))?;
        let host = (self.host.clone())
            .ok_or_else(|| missing("host", "the database endpoint the IAM token is signed for"))?;
        let port = self.port.ok_or_else(|| {
            missing(
                "port",
                "the port the IAM token is signed for (5432 for PostgreSQL, 3306 for MySQL)",
            )
        })?;
        if self.ssl_mode == Some(crate::tls::SslMode::Disable) {
            return Err(ConfigError::Invalid {
                variable: self.variable("ssl_mode"),
                reason: "is `disable`, but RDS takes IAM tokens only over TLS; use require or verify-full"
                    .to_owned(),
            });
        }
        if self.proactive_refresh == Some(std::time::Duration::ZERO) {
            return Err(ConfigError::Invalid {
                variable: self.variable("proactive_refresh"),
                reason:
                    "is 0s, which turns off the reads that renew an IAM token before it expires; \
                         remove it"
                        .to_owned(),
            });
        }
        let mut source = RdsIamAuth::builder(&host, port, &username);
        if let Some(region) = &self.region {
            source = source.region(region);
        }
        if let Some(dbname) = &self.dbname {
            source = source.dbname(dbname);
        }
        if let Some(renew_after) = self.iam.renew_after {
            if !(MIN_RENEW_AFTER..=MAX_RENEW_AFTER).contains(&renew_after) {
                return Err(ConfigError::Invalid {
                    variable: self.variable("iam.renew_after"),
                    reason: "must be from 1s to 13m: a token is valid for 15 minutes, and the renewal may \
                             come a minute after its time"
                        .to_owned(),
                });
            }
            source = source.renew_after(renew_after);
        }
        Ok((
            builder.secret_source(Arc::new(source.build())),
            format!("{username}@{host}"),
        ))
    }

    #[cfg(not(feature = "iam"))]
    fn iam_source<B: Backend>(
        &self,
        _: PoolBuilder<B>,
    ) -> Result<(PoolBuilder<B>, String), ConfigError> {
        Err(self.needs_feature(SourceKind::Iam))
    }
}
