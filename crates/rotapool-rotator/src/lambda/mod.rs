//! The rotation Lambda's handler (feature `lambda`): what `rotapool-rotation-lambda` runs for each event, usable
//! in tests without a Lambda runtime.
//!
//! Per container: one SDK client ([`RotationFunction::from_env`]). Per event: the checks AWS's own rotation
//! functions make (rotation enabled, the token a version of this secret, already `AWSCURRENT` means done, else it
//! must be `AWSPENDING`), then the step through [`Rotator`]. Secrets Manager is reached through rotapool-core's
//! [`AwsSecretsManager`], the adapter pools use, so a store error reads the same in a pool and in the function.

use std::{collections::HashMap, path::PathBuf, sync::Arc};

use async_trait::async_trait;
use aws_sdk_secretsmanager::Client;
use rotapool_core::{
    source::{AwsSecretsManager, SecretAdmin},
    Credentials, SourceError, SslMode, Stage,
};
use rotapool_mysql::MySqlBackend;
use rotapool_postgres::PgBackend;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use tracing::Instrument;

/// The runtime this function runs on, re-exported so that a test can build [`LambdaEvent`]s and install the very
/// log setup the binary uses (`lambda_runtime::tracing::init_default_subscriber`).
pub use lambda_runtime;
pub use lambda_runtime::{Context, Diagnostic, LambdaEvent};

use crate::{
    password::{LocalPasswords, PasswordSource},
    RotationError, RotationTarget, Rotator, Step, Strategy,
};

/// The event Secrets Manager sends to a rotation function, once per step.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RotationEvent {
    /// The secret's ARN (or name).
    pub secret_id: String,
    /// The version id of the rotation under way.
    pub client_request_token: String,
    /// `createSecret`, `setSecret`, `testSecret` or `finishSecret`.
    pub step: String,
    /// The token Secrets Manager checks on `PutSecretValue` (sent in newer events; absent in older ones).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation_token: Option<String>,
}

impl std::fmt::Debug for RotationEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RotationEvent")
            .field("secret_id", &self.secret_id)
            .field("client_request_token", &self.client_request_token)
            .field("step", &self.step)
            .field(
                "rotation_token",
                &self.rotation_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// What the function reads from its environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `PASSWORD_LENGTH`: length of new passwords. Defaults to 32.
    pub password_length: usize,
    /// `EXCLUDE_CHARACTERS`: characters new passwords never contain. Defaults to `/@"'\`, as AWS's rotation
    /// templates do. A backslash is always excluded: MySQL 8 receives the password as a string literal, where a
    /// backslash escapes.
    pub exclude_characters: String,
    /// `ROTAPOOL_SSL_MODE`: `disable`, `require` (default) or `verify-full`.
    pub ssl_mode: SslMode,
    /// `ROTAPOOL_CA_FILE`: the CA bundle to verify the database with (the RDS bundle, for verify-full).
    pub ca_file: Option<PathBuf>,
}

/// The default of `EXCLUDE_CHARACTERS`, the same as AWS's rotation templates.
pub const DEFAULT_EXCLUDE_CHARACTERS: &str = "/@\"'\\";

impl Default for Settings {
    fn default() -> Self {
        Self {
            password_length: crate::PASSWORD_LENGTH,
            exclude_characters: DEFAULT_EXCLUDE_CHARACTERS.to_owned(),
            ssl_mode: SslMode::Require,
            ca_file: None,
        }
    }
}

impl Settings {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, HandlerError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads variables through `lookup`, which returns a variable's value if it is set.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, HandlerError> {
        let defaults = Self::default();
        let password_length = match lookup("PASSWORD_LENGTH") {
            None => defaults.password_length,
            Some(text) => text
                .trim()
                .parse()
                .ok()
                .filter(|&n| (8..=4096).contains(&n))
                .ok_or_else(|| {
                    HandlerError::Config(format!(
                        "PASSWORD_LENGTH `{text}`: use a whole number from 8 to 4096"
                    ))
                })?,
        };
        let mut exclude_characters =
            lookup("EXCLUDE_CHARACTERS").unwrap_or(defaults.exclude_characters);
        if !exclude_characters.contains('\\') {
            exclude_characters.push('\\');
        }
        let ssl_mode = match lookup("ROTAPOOL_SSL_MODE").as_deref() {
            None | Some("require") => SslMode::Require,
            Some("disable") => SslMode::Disable,
            Some("verify-full") => SslMode::VerifyFull,
            Some(other) => {
                return Err(HandlerError::Config(format!(
                    "ROTAPOOL_SSL_MODE `{other}`: use disable, require or verify-full"
                )))
            }
        };
        Ok(Self {
            password_length,
            exclude_characters,
            ssl_mode,
            ca_file: lookup("ROTAPOOL_CA_FILE").map(PathBuf::from),
        })
    }
}

/// Why the function refused or failed an event. Messages name the secret, the version and the step, never a
/// password.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HandlerError {
    /// The environment is wrong.
    #[error("configuration: {0}")]
    Config(String),
    /// The secret's rotation is disabled: someone invoked the function outside a rotation.
    #[error("secret `{secret_id}` is not enabled for rotation")]
    RotationDisabled {
        /// The secret.
        secret_id: String,
    },
    /// The event's token is no version of this secret.
    #[error("version `{token}` has no stage for rotation of secret `{secret_id}`")]
    UnknownVersion {
        /// The secret.
        secret_id: String,
        /// The event's `ClientRequestToken`.
        token: String,
    },
    /// The event's token is a version of this secret, but not the one being rotated to.
    #[error("version `{token}` of secret `{secret_id}` is not labelled AWSPENDING for rotation")]
    NotPending {
        /// The secret.
        secret_id: String,
        /// The event's `ClientRequestToken`.
        token: String,
    },
    /// The secret's `engine` is not one this function rotates.
    #[error("secret `{secret_id}`: unsupported engine `{engine}`; expected postgres, aurora-postgresql, mysql, mariadb or aurora-mysql")]
    UnsupportedEngine {
        /// The secret.
        secret_id: String,
        /// The engine it names.
        engine: String,
    },
    /// Reading the secret's metadata or its current version failed.
    #[error(transparent)]
    Secret(#[from] SourceError),
    /// The step failed.
    #[error(transparent)]
    Rotation(#[from] RotationError),
}

impl From<HandlerError> for Diagnostic {
    fn from(error: HandlerError) -> Self {
        let kind = match &error {
            HandlerError::Config(_) => "Configuration",
            HandlerError::RotationDisabled { .. } => "RotationDisabled",
            HandlerError::UnknownVersion { .. } => "UnknownVersion",
            HandlerError::NotPending { .. } => "NotPending",
            HandlerError::UnsupportedEngine { .. } => "UnsupportedEngine",
            HandlerError::Secret(_) => "SecretStore",
            HandlerError::Rotation(_) => "RotationStep",
        };
        Diagnostic {
            error_type: kind.to_owned(),
            // The whole chain: the error prints its own message once, and its causes are its sources.
            error_message: rotapool_core::error::report(&error),
        }
    }
}

/// What the checks before a step decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The version is `AWSPENDING`: run the step.
    Run,
    /// The version is already `AWSCURRENT`: the rotation finished, nothing is left to do.
    AlreadyCurrent,
}

/// The checks AWS's rotation functions make before every step, on `DescribeSecret`'s answer: whether rotation
/// is enabled, and each version's stages.
pub fn check_version(
    secret_id: &str,
    token: &str,
    rotation_enabled: bool,
    versions: &HashMap<String, Vec<Stage>>,
) -> Result<Verdict, HandlerError> {
    if !rotation_enabled {
        return Err(HandlerError::RotationDisabled {
            secret_id: secret_id.to_owned(),
        });
    }
    let Some(labels) = versions.get(token) else {
        return Err(HandlerError::UnknownVersion {
            secret_id: secret_id.to_owned(),
            token: token.to_owned(),
        });
    };
    if labels.contains(&Stage::Current) {
        Ok(Verdict::AlreadyCurrent)
    } else if labels.contains(&Stage::Pending) {
        Ok(Verdict::Run)
    } else {
        Err(HandlerError::NotPending {
            secret_id: secret_id.to_owned(),
            token: token.to_owned(),
        })
    }
}

/// New passwords from Secrets Manager's `GetRandomPassword`, or, if the role may not call it, from the local
/// generator with the same length and exclusions. Logs which.
#[derive(Debug)]
struct RandomPasswords {
    secrets: Arc<AwsSecretsManager>,
    length: usize,
    exclude: String,
}

#[async_trait]
impl PasswordSource for RandomPasswords {
    async fn new_password(&self) -> Result<String, String> {
        match self
            .secrets
            .random_password(self.length, &self.exclude)
            .await
        {
            Ok(password) => {
                tracing::info!(
                    length = self.length,
                    "new password from secretsmanager:GetRandomPassword"
                );
                Ok(password.expose_secret().to_owned())
            }
            Err(SourceError::AccessDenied { .. }) => {
                tracing::warn!(
                    length = self.length,
                    "secretsmanager:GetRandomPassword denied; new password from the local generator"
                );
                LocalPasswords::new(self.length, self.exclude.as_str()).generate()
            }
            Err(e) => Err(format!("GetRandomPassword failed: {e}")),
        }
    }
}

/// The rotation function: one per container, one [`handle`](Self::handle) per event.
#[derive(Debug, Clone)]
pub struct RotationFunction {
    client: Client,
    settings: Arc<Settings>,
}

impl RotationFunction {
    /// Loads the SDK configuration (region, credentials, `AWS_ENDPOINT_URL`) and the [`Settings`] from the
    /// environment, once per container.
    pub async fn from_env() -> Result<Self, HandlerError> {
        let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        Ok(Self::new(Client::new(&config), Settings::from_env()?))
    }

    /// A function that reaches Secrets Manager through `client`.
    pub fn new(client: Client, settings: Settings) -> Self {
        Self {
            client,
            settings: Arc::new(settings),
        }
    }

    /// Runs one event: the checks, then the step.
    pub async fn handle(&self, event: LambdaEvent<RotationEvent>) -> Result<(), HandlerError> {
        let RotationEvent {
            secret_id,
            client_request_token: token,
            step,
            rotation_token,
        } = event.payload;
        let span = tracing::info_span!("rotation", secret = %secret_id, %step, token = %token);
        self.run_event(secret_id, token, step, rotation_token)
            .instrument(span)
            .await
    }

    async fn run_event(
        &self,
        secret_id: String,
        token: String,
        step: String,
        rotation_token: Option<String>,
    ) -> Result<(), HandlerError> {
        let step: Step = step.parse()?;
        let store = Arc::new(
            AwsSecretsManager::builder(&secret_id)
                .client(self.client.clone())
                .rotation_token(rotation_token)
                .build()
                .await,
        );
        let described = store.describe().await?;
        let verdict = check_version(
            &secret_id,
            &token,
            described.rotation_enabled,
            &described.versions,
        )
        .inspect_err(|e| tracing::error!(error = %e, "refused"))?;
        if verdict == Verdict::AlreadyCurrent {
            tracing::info!("version is already AWSCURRENT; rotation finished, nothing to do");
            return Ok(());
        }
        let current =
            store
                .read_stage(Stage::Current)
                .await?
                .ok_or_else(|| SourceError::StageNotFound {
                    secret_id: secret_id.clone(),
                    stage: Stage::Current,
                })?;
        let credentials = Credentials::from_secret_json(current.text()).map_err(|source| {
            RotationError::Malformed {
                step,
                which: Stage::Current.label().to_owned(),
                source,
            }
        })?;
        let strategy = match credentials.master_arn() {
            Some(arn) => Strategy::AlternatingUsers {
                master: Arc::new(
                    AwsSecretsManager::builder(arn)
                        .client(self.client.clone())
                        .build()
                        .await,
                ),
            },
            None => Strategy::SingleUser,
        };
        let engine = credentials.engine().unwrap_or("postgres").to_owned();
        tracing::info!(%engine, ?strategy, "checks passed: rotation enabled, version labelled AWSPENDING");
        let passwords = Arc::new(RandomPasswords {
            secrets: store.clone(),
            length: self.settings.password_length,
            exclude: self.settings.exclude_characters.clone(),
        });
        let secrets: Arc<dyn SecretAdmin> = store;
        let settings = &self.settings;
        let config = |e: String| HandlerError::Config(format!("ROTAPOOL_CA_FILE: {e}"));
        match engine.as_str() {
            "postgres" | "aurora-postgresql" => {
                let mut backend = PgBackend::new().ssl_mode(settings.ssl_mode);
                if let Some(path) = &settings.ca_file {
                    backend = backend
                        .ca_file(path)
                        .map_err(|e| config(rotapool_core::error::report(&e)))?;
                }
                run_step(secrets, backend, strategy, passwords, step, &token).await
            }
            "mysql" | "mariadb" | "aurora-mysql" | "aurora" => {
                let mut backend = MySqlBackend::new().ssl_mode(settings.ssl_mode);
                if let Some(path) = &settings.ca_file {
                    backend = backend
                        .ca_file(path)
                        .map_err(|e| config(rotapool_core::error::report(&e)))?;
                }
                run_step(secrets, backend, strategy, passwords, step, &token).await
            }
            _ => Err(HandlerError::UnsupportedEngine { secret_id, engine }),
        }
    }
}

async fn run_step<T: RotationTarget>(
    secrets: Arc<dyn SecretAdmin>,
    target: T,
    strategy: Strategy,
    passwords: Arc<RandomPasswords>,
    step: Step,
    token: &str,
) -> Result<(), HandlerError> {
    Rotator::new(secrets, target, strategy)
        .with_passwords(passwords)
        .run(step, token)
        .await
        .inspect(|()| tracing::info!("step finished"))
        .inspect_err(|e| tracing::error!(error = %e, "step failed"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn versions(pairs: &[(&str, &[Stage])]) -> HashMap<String, Vec<Stage>> {
        pairs
            .iter()
            .map(|(id, stages)| (id.to_string(), stages.to_vec()))
            .collect()
    }

    #[test]
    fn checks_before_a_step_follow_aws_templates() {
        let v = versions(&[("old", &[Stage::Current]), ("new", &[Stage::Pending])]);
        assert_eq!(check_version("s", "new", true, &v).unwrap(), Verdict::Run);
        assert!(matches!(
            check_version("s", "new", false, &v),
            Err(HandlerError::RotationDisabled { .. })
        ));
        assert!(matches!(
            check_version("s", "other", true, &v),
            Err(HandlerError::UnknownVersion { .. })
        ));
        assert_eq!(
            check_version("s", "old", true, &v).unwrap(),
            Verdict::AlreadyCurrent
        );
        let v = versions(&[("old", &[Stage::Previous]), ("new", &[Stage::Current])]);
        assert!(matches!(
            check_version("s", "old", true, &v),
            Err(HandlerError::NotPending { .. })
        ));
    }

    #[test]
    fn settings_read_aws_template_names_and_always_exclude_backslash() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert_eq!(
            Settings::from_lookup(env(&[])).unwrap(),
            Settings::default()
        );
        let s = Settings::from_lookup(env(&[
            ("PASSWORD_LENGTH", "40"),
            ("EXCLUDE_CHARACTERS", ":%"),
            ("ROTAPOOL_SSL_MODE", "disable"),
        ]))
        .unwrap();
        assert_eq!(
            (s.password_length, s.exclude_characters.as_str(), s.ssl_mode),
            (40, ":%\\", SslMode::Disable)
        );
        for bad in [("PASSWORD_LENGTH", "7"), ("ROTAPOOL_SSL_MODE", "prefer")] {
            let pairs: &'static [(&str, &str)] = Box::leak(Box::new([bad]));
            let e = Settings::from_lookup(env(pairs)).unwrap_err();
            assert!(e.to_string().contains(bad.0), "{e}");
        }
    }

    #[test]
    fn event_debug_hides_the_rotation_token() {
        let event: RotationEvent = serde_json::from_str(
            r#"{"SecretId":"s","ClientRequestToken":"t","Step":"createSecret","RotationToken":"rt-123"}"#,
        )
        .unwrap();
        assert_eq!(event.rotation_token.as_deref(), Some("rt-123"));
        assert!(!format!("{event:?}").contains("rt-123"));
    }
}
