//! AWS Secrets Manager, through the official SDK and the default credential chain.

use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use aws_sdk_secretsmanager::{
    error::{ProvideErrorMetadata, SdkError},
    operation::get_secret_value::GetSecretValueOutput,
    Client,
};

use super::{
    parse_version, BoxError, RawSecret, SecretAdmin, SecretSource, SecretVersion, SourceError,
    Stage,
};

/// Reads an RDS secret from AWS Secrets Manager.
///
/// Credentials and region come from the SDK's default chain (environment, profile, ECS task role, instance
/// metadata), and `AWS_ENDPOINT_URL` is honoured, so the same code reaches real AWS or an emulator.
/// Every read names its staging label explicitly.
#[derive(Debug)]
pub struct AwsSecretsManager {
    client: Client,
    secret_id: String,
    timeout: std::time::Duration,
    calls: AtomicU64,
}

/// Builds an [`AwsSecretsManager`]; see [`AwsSecretsManager::builder`].
#[derive(Clone)]
#[must_use]
pub struct AwsSecretsManagerBuilder {
    secret_id: String,
    endpoint_url: Option<String>,
    region: Option<String>,
    static_keys: Option<(String, secrecy::SecretString)>,
    timeout: std::time::Duration,
    shared: Option<Shared>,
}

/// AWS configuration the application already has, shared with it.
#[derive(Clone)]
enum Shared {
    Config(Box<aws_config::SdkConfig>),
    Client(Client),
}

impl AwsSecretsManagerBuilder {
    /// Signs requests with this fixed access key instead of the default credential chain. Meant for emulators
    /// such as moto or LocalStack; services on AWS should keep the default chain (task role, instance profile).
    pub fn static_credentials(
        mut self,
        access_key_id: impl Into<String>,
        secret_access_key: impl Into<String>,
    ) -> Self {
        self.static_keys = Some((
            access_key_id.into(),
            secrecy::SecretString::from(secret_access_key.into()),
        ));
        self
    }

    /// Sends requests to `url` instead of the regional endpoint. Defaults to the SDK's choice, which honours
    /// `AWS_ENDPOINT_URL`.
    pub fn endpoint_url(mut self, url: impl Into<String>) -> Self {
        self.endpoint_url = Some(url.into());
        self
    }

    /// Uses `region`. Defaults to the SDK's region chain (`AWS_REGION`, profile, instance metadata).
    pub fn region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }

    /// Gives up on a request after `timeout` in all, connecting and retrying included; each of the (at most two)
    /// attempts gets half of it. Defaults to 5 s. A pool built with `PoolBuilder::aws_secret` uses its
    /// `RefreshPolicy::read_timeout`.
    pub fn timeout(mut self, timeout: std::time::Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Builds the client from the application's `SdkConfig`, sharing its credential cache and HTTP connections,
    /// with this builder's timeout, region and endpoint applied on top. Defaults to loading the SDK's default
    /// chain.
    pub fn sdk_config(mut self, config: &aws_config::SdkConfig) -> Self {
        self.shared = Some(Shared::Config(Box::new(config.clone())));
        self
    }

    /// Uses the application's Secrets Manager client as it is: its timeouts, retries, region and endpoint.
    /// Every read is still bounded by the pool's `RefreshPolicy::read_timeout`.
    pub fn client(mut self, client: Client) -> Self {
        self.shared = Some(Shared::Client(client));
        self
    }

    fn timeouts(
        &self,
    ) -> (
        aws_config::timeout::TimeoutConfig,
        aws_config::retry::RetryConfig,
    ) {
        let attempt = self.timeout / 2;
        (
            aws_config::timeout::TimeoutConfig::builder()
                .connect_timeout(attempt)
                .read_timeout(attempt)
                .operation_attempt_timeout(attempt)
                .operation_timeout(self.timeout)
                .build(),
            // The refresher paces its own rounds; one quick retry covers a pooled connection the store closed.
            aws_config::retry::RetryConfig::standard()
                .with_max_attempts(2)
                .with_initial_backoff(std::time::Duration::from_millis(100)),
        )
    }

    /// Loads the SDK configuration and creates the client. Does not contact Secrets Manager.
    pub async fn build(self) -> AwsSecretsManager {
        let (timeouts, retries) = self.timeouts();
        let client = match self.shared.clone() {
            Some(Shared::Client(client)) => client,
            Some(Shared::Config(config)) => {
                let mut client = aws_sdk_secretsmanager::config::Builder::from(config.as_ref())
                    .timeout_config(timeouts)
                    .retry_config(retries);
                if let Some(url) = &self.endpoint_url {
                    client = client.endpoint_url(url);
                }
                if let Some(region) = &self.region {
                    client = client.region(aws_config::Region::new(region.clone()));
                }
                Client::from_conf(client.build())
            }
            None => self.load(timeouts, retries).await,
        };
        AwsSecretsManager {
            client,
            secret_id: self.secret_id,
            timeout: self.timeout,
            calls: AtomicU64::new(0),
        }
    }

    async fn load(
        &self,
        timeouts: aws_config::timeout::TimeoutConfig,
        retries: aws_config::retry::RetryConfig,
    ) -> Client {
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .timeout_config(timeouts)
            .retry_config(retries);
        if let Some(url) = &self.endpoint_url {
            loader = loader.endpoint_url(url);
        }
        if let Some(region) = &self.region {
            loader = loader.region(aws_config::Region::new(region.clone()));
        }
        if let Some((access_key_id, secret_access_key)) = &self.static_keys {
            use secrecy::ExposeSecret;
            loader = loader.credentials_provider(aws_sdk_secretsmanager::config::Credentials::new(
                access_key_id,
                secret_access_key.expose_secret(),
                None,
                None,
                "rotapool-static",
            ));
        }
        Client::new(&loader.load().await)
    }
}

impl std::fmt::Debug for AwsSecretsManagerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsSecretsManagerBuilder")
            .field("secret_id", &self.secret_id)
            .field("endpoint_url", &self.endpoint_url)
            .field("region", &self.region)
            .field("timeout", &self.timeout)
            .field(
                "shared",
                &self.shared.as_ref().map(|shared| match shared {
                    Shared::Config(_) => "sdk config",
                    Shared::Client(_) => "client",
                }),
            )
            .field(
                "static_credentials",
                &self.static_keys.as_ref().map(|(id, _)| id),
            )
            .finish()
    }
}

impl AwsSecretsManager {
    /// Starts a builder for the secret `secret_id`, a name or an ARN.
    pub fn builder(secret_id: impl Into<String>) -> AwsSecretsManagerBuilder {
        AwsSecretsManagerBuilder {
            secret_id: secret_id.into(),
            endpoint_url: None,
            region: None,
            static_keys: None,
            timeout: std::time::Duration::from_secs(5),
            shared: None,
        }
    }

    /// The secret's name or ARN.
    pub fn secret_id(&self) -> &str {
        &self.secret_id
    }

    /// How many GetSecretValue requests this source has sent.
    pub fn api_calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// Maps any Secrets Manager call's error; `stage` is the label the call asked for, if it asked for one.
    fn map_error<E, R>(&self, stage: Stage, err: SdkError<E, R>) -> SourceError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        R: std::fmt::Debug + Send + Sync + 'static,
    {
        let secret_id = self.secret_id.clone();
        let code = err.code().map(str::to_owned);
        if code.as_deref() == Some("ResourceNotFoundException") {
            // Secrets Manager says "not found" both for a missing secret and for a missing staging label.
            return match stage {
                Stage::Current => SourceError::NotFound { secret_id },
                _ => SourceError::StageNotFound { secret_id, stage },
            };
        }
        if matches!(err, SdkError::ResponseError(_)) {
            // The raw response of a successful call carries the secret: never keep it in an error.
            return SourceError::Unreachable {
                secret_id,
                source: "Secrets Manager's response could not be read".into(),
            };
        }
        let source = Box::new(err);
        match code.as_deref() {
            Some(
                "AccessDeniedException"
                | "UnrecognizedClientException"
                | "InvalidSignatureException"
                | "ExpiredTokenException",
            ) => SourceError::AccessDenied { secret_id, source },
            Some("ThrottlingException" | "TooManyRequestsException" | "RequestLimitExceeded") => {
                SourceError::Throttled { secret_id, source }
            }
            Some("InternalServiceError" | "InternalFailure" | "ServiceUnavailable") => {
                SourceError::Unreachable { secret_id, source }
            }
            Some(code) => SourceError::Other {
                secret_id,
                source: Box::new(ServiceFault {
                    code: code.to_owned(),
                    message: source.message().unwrap_or_default().to_owned(),
                    inner: source,
                }),
            },
            None => match source.as_ref() {
                SdkError::TimeoutError(_) => SourceError::TimedOut {
                    secret_id,
                    stage,
                    after: self.timeout,
                },
                SdkError::DispatchFailure(_) => SourceError::Unreachable { secret_id, source },
                _ => SourceError::Other { secret_id, source },
            },
        }
    }
}

#[async_trait]
impl SecretSource for AwsSecretsManager {
    fn secret_id(&self) -> &str {
        &self.secret_id
    }

    async fn fetch(&self, stage: Stage) -> Result<SecretVersion, SourceError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let raw = self.raw(self.get_by_stage(stage).await?)?;
        parse_version(&self.secret_id, stage, raw.version_id.clone(), raw.text())
    }

    async fn next_rotation(&self) -> Result<Option<std::time::SystemTime>, SourceError> {
        let out = self
            .client
            .describe_secret()
            .secret_id(&self.secret_id)
            .send()
            .await
            .map_err(|e| self.map_error(Stage::Current, e))?;
        Ok(out
            .next_rotation_date()
            .and_then(|at| std::time::SystemTime::try_from(*at).ok()))
    }
}

/// A Secrets Manager error with its code and message in the `Display`, which the SDK's own error omits.
#[derive(Debug)]
struct ServiceFault {
    code: String,
    message: String,
    inner: BoxError,
}

impl std::fmt::Display for ServiceFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for ServiceFault {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self.inner.as_ref())
    }
}

/// The staging labels Secrets Manager reports, as [`Stage`]s (custom labels are ignored).
fn stages_of(labels: &[String]) -> Vec<Stage> {
    [Stage::Current, Stage::Pending, Stage::Previous]
        .into_iter()
        .filter(|stage| labels.iter().any(|label| label == stage.label()))
        .collect()
}

impl AwsSecretsManager {
    /// GetSecretValue for the version labelled `stage`.
    async fn get_by_stage(&self, stage: Stage) -> Result<GetSecretValueOutput, SourceError> {
        self.client
            .get_secret_value()
            .secret_id(&self.secret_id)
            .version_stage(stage.label())
            .send()
            .await
            .map_err(|e| self.map_error(stage, e))
    }

    fn raw(&self, out: GetSecretValueOutput) -> Result<RawSecret, SourceError> {
        let missing = |what: &str| SourceError::Other {
            secret_id: self.secret_id.clone(),
            source: format!("GetSecretValue returned no {what}").into(),
        };
        Ok(RawSecret::new(
            out.version_id().ok_or_else(|| missing("VersionId"))?,
            stages_of(out.version_stages()),
            out.secret_string()
                .ok_or_else(|| missing("SecretString (binary secrets are not RDS secrets)"))?,
        ))
    }

    /// `Ok(None)` for "not found", the error otherwise.
    fn found<T>(result: Result<T, SourceError>) -> Result<Option<T>, SourceError> {
        match result {
            Ok(value) => Ok(Some(value)),
            Err(SourceError::NotFound { .. } | SourceError::StageNotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

#[async_trait]
impl SecretAdmin for AwsSecretsManager {
    async fn read_stage(&self, stage: Stage) -> Result<Option<RawSecret>, SourceError> {
        Self::found(self.get_by_stage(stage).await.and_then(|out| self.raw(out)))
    }

    async fn read_version(&self, version_id: &str) -> Result<Option<RawSecret>, SourceError> {
        let out = self
            .client
            .get_secret_value()
            .secret_id(&self.secret_id)
            .version_id(version_id)
            .send()
            .await
            // A missing version reads as a missing label, not a missing secret.
            .map_err(|e| self.map_error(Stage::Pending, e));
        Self::found(out.and_then(|out| self.raw(out)))
    }

    async fn put_pending(&self, version_id: &str, text: &str) -> Result<(), SourceError> {
        self.client
            .put_secret_value()
            .secret_id(&self.secret_id)
            .client_request_token(version_id)
            .secret_string(text)
            .version_stages(Stage::Pending.label())
            .send()
            .await
            .map_err(|e| self.map_error(Stage::Pending, e))?;
        Ok(())
    }

    async fn promote(&self, version_id: &str) -> Result<(), SourceError> {
        let current = self.read_stage(Stage::Current).await?;
        let mut request = self
            .client
            .update_secret_version_stage()
            .secret_id(&self.secret_id)
            .version_stage(Stage::Current.label())
            .move_to_version_id(version_id);
        match current {
            Some(current) if current.version_id == version_id => return Ok(()),
            Some(current) => request = request.remove_from_version_id(current.version_id),
            None => {}
        }
        request
            .send()
            .await
            .map_err(|e| self.map_error(Stage::Current, e))?;
        Ok(())
    }
}
