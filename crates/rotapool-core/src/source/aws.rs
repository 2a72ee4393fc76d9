//! AWS Secrets Manager, through the official SDK and the default credential chain.

use std::{
    collections::HashMap,
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, SystemTime},
};

use async_trait::async_trait;
use aws_sdk_secretsmanager::{
    config::http::HttpResponse,
    error::{ProvideErrorMetadata, SdkError},
    operation::get_secret_value::GetSecretValueOutput,
    Client,
};
use secrecy::{ExposeSecret, SecretString};

use super::{
    admin::{RawSecret, SecretAdmin},
    contract::{
        end_of_utc_day, parse_version, BoxError, RotationWindow, SecretSource, SecretVersion,
        SourceError, Stage,
    },
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
    rotation_token: Option<SecretString>,
    calls: AtomicU64,
}

/// Builds an [`AwsSecretsManager`]; see [`AwsSecretsManager::builder`].
#[derive(Clone)]
#[must_use]
pub struct AwsSecretsManagerBuilder {
    secret_id: String,
    endpoint_url: Option<String>,
    region: Option<String>,
    static_keys: Option<(String, SecretString)>,
    timeout: std::time::Duration,
    shared: Option<Shared>,
    rotation_token: Option<SecretString>,
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
            SecretString::from(secret_access_key.into()),
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

    /// Sends `token`, the rotation event's `RotationToken`, with every `PutSecretValue`, so that Secrets Manager
    /// ties the write to the rotation it started (required when the function rotates a secret of another
    /// account). For rotation functions; defaults to none.
    pub fn rotation_token(mut self, token: impl Into<Option<String>>) -> Self {
        self.rotation_token = token.into().map(SecretString::from);
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
            rotation_token: self.rotation_token,
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
            .field(
                "rotation_token",
                &self.rotation_token.as_ref().map(|_| "<redacted>"),
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
            rotation_token: None,
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

    fn map_error<E>(&self, call: Call<'_>, err: SdkError<E, HttpResponse>) -> SourceError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        map_sdk_error(&self.secret_id, self.timeout, call, err)
    }
}

/// The one translation of a Secrets Manager error into a [`SourceError`], for every call this adapter makes.
///
/// The SDK's raw response of a successful call carries the secret, so an unreadable response is never kept.
fn map_sdk_error<E>(
    secret_id: &str,
    timeout: std::time::Duration,
    call: Call<'_>,
    err: SdkError<E, HttpResponse>,
) -> SourceError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let secret_id = secret_id.to_owned();
    let code = err.code().map(str::to_owned);
    if code.as_deref() == Some("ResourceNotFoundException") {
        return not_found(secret_id, call, err.message());
    }
    if matches!(err, SdkError::ResponseError(_)) {
        return SourceError::Unreachable {
            secret_id,
            source: format!(
                "Secrets Manager's answer to {} could not be read",
                call.action()
            )
            .into(),
        };
    }
    // An error without a code still has its HTTP status (moto answers denials with an XML body the SDK
    // cannot read a code from).
    let status = match &err {
        SdkError::ServiceError(e) => Some(e.raw().status().as_u16()),
        _ => None,
    };
    let source = Box::new(err);
    match (code.as_deref(), status) {
        (Some("AccessDeniedException"), _) | (None, Some(403)) => SourceError::AccessDenied {
            secret_id,
            action: call.action(),
            source,
        },
        (
            Some(
                "UnrecognizedClientException"
                | "InvalidSignatureException"
                | "IncompleteSignature"
                | "MissingAuthenticationToken"
                | "InvalidClientTokenId"
                | "ExpiredTokenException"
                | "SignatureDoesNotMatch",
            ),
            _,
        ) => SourceError::Unauthenticated { secret_id, source },
        (Some("ThrottlingException" | "TooManyRequestsException" | "RequestLimitExceeded"), _)
        | (None, Some(429)) => SourceError::Throttled { secret_id, source },
        (Some("InternalServiceError" | "InternalFailure" | "ServiceUnavailable"), _)
        | (None, Some(500..=599)) => SourceError::Unreachable { secret_id, source },
        (Some(code), _) => SourceError::Other {
            secret_id,
            source: Box::new(ServiceFault {
                action: call.action(),
                code: code.to_owned(),
                message: source.message().unwrap_or_default().to_owned(),
                inner: source,
            }),
        },
        // A service error without a code: the status is all there is to name it by.
        (None, Some(status)) => SourceError::Other {
            secret_id,
            source: Box::new(ServiceFault {
                action: call.action(),
                code: format!("HTTP {status}"),
                message: source.message().unwrap_or("no error code").to_owned(),
                inner: source,
            }),
        },
        (None, None) => match source.as_ref() {
            SdkError::TimeoutError(_) => SourceError::TimedOut {
                secret_id,
                stage: call.stage(),
                after: timeout,
            },
            SdkError::DispatchFailure(_) => SourceError::Unreachable { secret_id, source },
            _ => SourceError::Other { secret_id, source },
        },
    }
}

/// `ResourceNotFoundException`, which Secrets Manager answers for a missing secret and for a missing version or
/// label alike. AWS's message tells a missing value ("can't find the specified secret value for staging label:
/// AWSCURRENT") from a missing secret ("can't find the specified secret."), but emulators are less careful (moto
/// says the latter for a missing label), so the message only refines what the request asked for.
fn not_found(secret_id: String, call: Call<'_>, message: Option<&str>) -> SourceError {
    let says = |words: &str| message.is_some_and(|m| m.contains(words));
    match call {
        // Every secret with a value has AWSCURRENT, so its absence means a wrong name, unless the store says it is
        // the value that is missing (a secret created without one).
        Call::GetByStage(Stage::Current) if !says("secret value") => {
            SourceError::NotFound { secret_id }
        }
        Call::GetByStage(stage) => SourceError::StageNotFound { secret_id, stage },
        Call::GetByVersion(version_id) => SourceError::VersionNotFound {
            secret_id,
            version_id: version_id.to_owned(),
        },
        Call::MoveCurrent(version_id) if says(version_id) => SourceError::VersionNotFound {
            secret_id,
            version_id: version_id.to_owned(),
        },
        _ => SourceError::NotFound { secret_id },
    }
}

/// One Secrets Manager request, so that its error can name what was asked.
#[derive(Debug, Clone, Copy)]
enum Call<'a> {
    /// GetSecretValue by staging label.
    GetByStage(Stage),
    /// GetSecretValue by version id.
    GetByVersion(&'a str),
    /// DescribeSecret.
    Describe,
    /// PutSecretValue of a pending version.
    PutPending,
    /// UpdateSecretVersionStage moving AWSCURRENT to this version.
    MoveCurrent(&'a str),
    /// GetRandomPassword.
    RandomPassword,
}

impl Call<'_> {
    /// The Secrets Manager action, as IAM names it after `secretsmanager:`.
    fn action(self) -> &'static str {
        match self {
            Call::GetByStage(_) | Call::GetByVersion(_) => "GetSecretValue",
            Call::Describe => "DescribeSecret",
            Call::PutPending => "PutSecretValue",
            Call::MoveCurrent(_) => "UpdateSecretVersionStage",
            Call::RandomPassword => "GetRandomPassword",
        }
    }

    /// The label the request concerns, for [`SourceError::TimedOut`].
    fn stage(self) -> Stage {
        match self {
            Call::GetByStage(stage) => stage,
            Call::GetByVersion(_) | Call::PutPending => Stage::Pending,
            Call::Describe | Call::MoveCurrent(_) | Call::RandomPassword => Stage::Current,
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
        Ok(self.describe().await?.next_rotation)
    }

    async fn rotation_window(&self) -> Result<Option<RotationWindow>, SourceError> {
        Ok(self.describe().await?.rotation_window)
    }
}

/// A Secrets Manager error with the action, its code and its message in the `Display`, which the SDK's own error
/// omits.
#[derive(Debug)]
struct ServiceFault {
    action: &'static str,
    code: String,
    message: String,
    inner: BoxError,
}

impl std::fmt::Display for ServiceFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}: {}", self.action, self.code, self.message)
    }
}

impl std::error::Error for ServiceFault {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self.inner.as_ref())
    }
}

/// What `DescribeSecret` says about a secret: whether rotation is on, which version carries which label, and when
/// the next rotation is due. No secret value is read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SecretDescription {
    /// Whether rotation is enabled on the secret.
    pub rotation_enabled: bool,
    /// Every version that carries a staging label, with its [`Stage`]s. A version whose labels are all custom
    /// is listed with none.
    pub versions: HashMap<String, Vec<Stage>>,
    /// When the next rotation is scheduled, if one is.
    pub next_rotation: Option<std::time::SystemTime>,
    /// The window the next rotation runs in, from `next_rotation` to the end its rotation rules give.
    pub rotation_window: Option<RotationWindow>,
}

impl SecretDescription {
    /// The version that carries `stage`, if any.
    pub fn holder(&self, stage: Stage) -> Option<&str> {
        self.versions
            .iter()
            .find(|(_, stages)| stages.contains(&stage))
            .map(|(id, _)| id.as_str())
    }
}

/// When a rotation window that opens at `opens` closes, by Secrets Manager's rules: `Duration` hours later if the
/// rules give one; one hour later for a schedule in hours (`rate(N hours)`); otherwise (a schedule in days, a
/// `cron()`, `AutomaticallyAfterDays`) at the end of the UTC day. Never past the end of that day, which no window
/// crosses. A `cron()` in hours gets the end of the day too: later than its real end, never earlier.
fn window_end(
    opens: SystemTime,
    rules: Option<&aws_sdk_secretsmanager::types::RotationRulesType>,
) -> Option<SystemTime> {
    const HOUR: Duration = Duration::from_secs(3600);
    let day_ends = end_of_utc_day(opens);
    let hours = |text: &str| {
        text.trim()
            .strip_suffix('h')
            .and_then(|n| n.trim().parse::<u32>().ok())
    };
    let rules = rules?;
    let length = match (
        rules.duration().and_then(hours),
        rules.schedule_expression(),
    ) {
        (Some(n), _) => HOUR * n,
        (None, Some(expr)) if expr.starts_with("rate(") && expr.contains("hour") => HOUR,
        _ => return Some(day_ends),
    };
    Some((opens + length).min(day_ends))
}

impl AwsSecretsManager {
    /// `DescribeSecret`: the secret's rotation state and its versions' labels, without reading any value.
    pub async fn describe(&self) -> Result<SecretDescription, SourceError> {
        let out = self
            .client
            .describe_secret()
            .secret_id(&self.secret_id)
            .send()
            .await
            .map_err(|e| self.map_error(Call::Describe, e))?;
        let next_rotation = out
            .next_rotation_date()
            .and_then(|at| std::time::SystemTime::try_from(*at).ok());
        Ok(SecretDescription {
            rotation_window: next_rotation.map(|opens| RotationWindow {
                opens,
                closes: window_end(opens, out.rotation_rules()),
            }),
            rotation_enabled: out.rotation_enabled().unwrap_or(false),
            versions: out
                .version_ids_to_stages()
                .into_iter()
                .flatten()
                .map(|(id, labels)| (id.clone(), Stage::all_in(labels)))
                .collect(),
            next_rotation,
        })
    }

    /// `GetRandomPassword`: a new password of `length` characters without any of `exclude_characters`, drawn by
    /// Secrets Manager. A role without `secretsmanager:GetRandomPassword` gets [`SourceError::AccessDenied`].
    pub async fn random_password(
        &self,
        length: usize,
        exclude_characters: &str,
    ) -> Result<SecretString, SourceError> {
        let out = self
            .client
            .get_random_password()
            .password_length(i64::try_from(length).unwrap_or(i64::MAX))
            .exclude_characters(exclude_characters)
            .send()
            .await
            .map_err(|e| self.map_error(Call::RandomPassword, e))?;
        out.random_password()
            .map(|password| SecretString::from(password.to_owned()))
            .ok_or_else(|| SourceError::Other {
                secret_id: self.secret_id.clone(),
                source: "GetRandomPassword answered without a password".into(),
            })
    }

    /// GetSecretValue for the version labelled `stage`.
    async fn get_by_stage(&self, stage: Stage) -> Result<GetSecretValueOutput, SourceError> {
        self.client
            .get_secret_value()
            .secret_id(&self.secret_id)
            .version_stage(stage.label())
            .send()
            .await
            .map_err(|e| self.map_error(Call::GetByStage(stage), e))
    }

    fn raw(&self, out: GetSecretValueOutput) -> Result<RawSecret, SourceError> {
        let missing = |what: &str| SourceError::Other {
            secret_id: self.secret_id.clone(),
            source: format!("GetSecretValue returned no {what}").into(),
        };
        Ok(RawSecret::new(
            out.version_id().ok_or_else(|| missing("VersionId"))?,
            Stage::all_in(out.version_stages()),
            out.secret_string()
                .ok_or_else(|| missing("SecretString (binary secrets are not RDS secrets)"))?,
        ))
    }

    /// `Ok(None)` for a missing label or version, the error otherwise (a missing secret included).
    fn found<T>(result: Result<T, SourceError>) -> Result<Option<T>, SourceError> {
        match result {
            Ok(value) => Ok(Some(value)),
            Err(SourceError::StageNotFound { .. } | SourceError::VersionNotFound { .. }) => {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }
}

#[async_trait]
impl SecretAdmin for AwsSecretsManager {
    async fn read_stage(&self, stage: Stage) -> Result<Option<RawSecret>, SourceError> {
        Self::found(self.get_by_stage(stage).await.and_then(|out| self.raw(out)))
    }

    /// A version that `RotateSecret` announced but whose value createSecret has not written yet reads as `None`.
    async fn read_version(&self, version_id: &str) -> Result<Option<RawSecret>, SourceError> {
        let out = self
            .client
            .get_secret_value()
            .secret_id(&self.secret_id)
            .version_id(version_id)
            .send()
            .await
            .map_err(|e| self.map_error(Call::GetByVersion(version_id), e));
        Self::found(out.and_then(|out| self.raw(out)))
    }

    /// `PutSecretValue` with `version_id` as the client request token, labelled `AWSPENDING`, and the rotation
    /// token if the builder was given one.
    async fn put_pending(&self, version_id: &str, text: &str) -> Result<(), SourceError> {
        self.client
            .put_secret_value()
            .secret_id(&self.secret_id)
            .client_request_token(version_id)
            .set_rotation_token(
                self.rotation_token
                    .as_ref()
                    .map(|token| token.expose_secret().to_owned()),
            )
            .secret_string(text)
            .version_stages(Stage::Pending.label())
            .send()
            .await
            .map_err(|e| self.map_error(Call::PutPending, e))?;
        Ok(())
    }

    /// `UpdateSecretVersionStage`, after a `DescribeSecret` to find the version that holds `AWSCURRENT` now.
    async fn promote(&self, version_id: &str) -> Result<(), SourceError> {
        let holder = self
            .describe()
            .await?
            .holder(Stage::Current)
            .map(str::to_owned);
        if holder.as_deref() == Some(version_id) {
            return Ok(());
        }
        self.client
            .update_secret_version_stage()
            .secret_id(&self.secret_id)
            .version_stage(Stage::Current.label())
            .move_to_version_id(version_id)
            .set_remove_from_version_id(holder)
            .send()
            .await
            .map_err(|e| self.map_error(Call::MoveCurrent(version_id), e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use aws_sdk_secretsmanager::{
        error::ErrorMetadata, operation::get_secret_value::GetSecretValueError,
    };

    use super::*;

    /// What the adapter makes of Secrets Manager answering `status` with `code` and `message` to `call`.
    fn answer(
        call: Call<'_>,
        status: u16,
        code: Option<&str>,
        message: Option<&str>,
    ) -> SourceError {
        let mut meta = ErrorMetadata::builder();
        if let Some(code) = code {
            meta = meta.code(code);
        }
        if let Some(message) = message {
            meta = meta.message(message);
        }
        let raw = HttpResponse::new(status.try_into().expect("a status"), "{}".into());
        let err = SdkError::service_error(GetSecretValueError::generic(meta.build()), raw);
        map_sdk_error("db", Duration::from_secs(5), call, err)
    }

    #[test]
    fn a_rotation_window_ends_where_the_rotation_rules_say() {
        use aws_sdk_secretsmanager::types::RotationRulesType;
        const HOUR: Duration = Duration::from_secs(3600);
        // 2024-10-03 02:00 UTC: the day ends 22 hours later.
        let opens = SystemTime::UNIX_EPOCH + Duration::from_secs(1_727_920_800);
        let rules = |duration: Option<&str>, expression: Option<&str>| {
            RotationRulesType::builder()
                .set_duration(duration.map(str::to_owned))
                .set_schedule_expression(expression.map(str::to_owned))
                .build()
        };
        let ends = |r: RotationRulesType| window_end(opens, Some(&r));
        assert_eq!(
            ends(rules(Some("3h"), Some("rate(10 days)"))),
            Some(opens + 3 * HOUR)
        );
        assert_eq!(ends(rules(None, Some("rate(4 hours)"))), Some(opens + HOUR));
        assert_eq!(
            ends(rules(None, Some("rate(10 days)"))),
            Some(opens + 22 * HOUR)
        );
        assert_eq!(
            ends(rules(None, Some("cron(0 2 ? * SUN *)"))),
            Some(opens + 22 * HOUR)
        );
        assert_eq!(
            ends(rules(Some("23h"), None)),
            Some(opens + 22 * HOUR),
            "no window crosses midnight UTC"
        );
        let after_days = RotationRulesType::builder()
            .automatically_after_days(30)
            .build();
        assert_eq!(ends(after_days), Some(opens + 22 * HOUR));
        assert_eq!(window_end(opens, None), None);
    }

    #[test]
    fn a_missing_secret_label_and_version_are_told_apart() {
        let secret = Some("Secrets Manager can't find the specified secret.");
        let label = Some(
            "Secrets Manager can't find the specified secret value for staging label: AWSCURRENT",
        );
        let version =
            Some("Secrets Manager can't find the specified secret value for VersionId: v9");
        let not_found = Some("ResourceNotFoundException");
        let current = Call::GetByStage(Stage::Current);
        assert!(matches!(
            answer(current, 400, not_found, secret),
            SourceError::NotFound { .. }
        ));
        assert!(matches!(
            answer(current, 400, not_found, label),
            SourceError::StageNotFound {
                stage: Stage::Current,
                ..
            }
        ));
        assert!(matches!(
            answer(Call::GetByStage(Stage::Pending), 400, not_found, None),
            SourceError::StageNotFound {
                stage: Stage::Pending,
                ..
            }
        ));
        assert!(matches!(
            answer(Call::GetByVersion("v9"), 400, not_found, version),
            SourceError::VersionNotFound { ref version_id, .. } if version_id == "v9"
        ));
        // moto says "can't find the specified secret." for a missing label: still a missing label.
        assert!(matches!(
            answer(Call::GetByStage(Stage::Pending), 400, not_found, secret),
            SourceError::StageNotFound {
                stage: Stage::Pending,
                ..
            }
        ));
        assert!(matches!(
            answer(Call::Describe, 400, not_found, secret),
            SourceError::NotFound { .. }
        ));
    }

    #[test]
    fn every_call_maps_the_service_errors_alike_and_names_what_to_fix() {
        let denied = answer(
            Call::PutPending,
            400,
            Some("AccessDeniedException"),
            Some("no"),
        );
        assert!(
            matches!(
                denied,
                SourceError::AccessDenied {
                    action: "PutSecretValue",
                    ..
                }
            ),
            "{denied:?}"
        );
        assert!(
            denied
                .to_string()
                .contains("grant secretsmanager:PutSecretValue"),
            "{denied}"
        );
        // moto's denial: HTTP 403 with a body the SDK reads no code from.
        let denied = answer(Call::RandomPassword, 403, None, None);
        assert!(
            matches!(
                denied,
                SourceError::AccessDenied {
                    action: "GetRandomPassword",
                    ..
                }
            ),
            "{denied:?}"
        );
        for code in [
            "UnrecognizedClientException",
            "InvalidSignatureException",
            "ExpiredTokenException",
        ] {
            let e = answer(Call::Describe, 400, Some(code), None);
            assert!(
                matches!(e, SourceError::Unauthenticated { .. }),
                "{code}: {e:?}"
            );
            assert!(e.to_string().contains("check the access key"), "{e}");
            assert!(!e.is_transient());
        }
        assert!(answer(
            Call::GetByStage(Stage::Current),
            400,
            Some("ThrottlingException"),
            None
        )
        .is_transient());
        assert!(answer(Call::MoveCurrent("v"), 503, None, None).is_transient());
        // No code and no telling status: the action and the status name it.
        let other = answer(Call::Describe, 400, None, None);
        let text = crate::error::report(&other);
        assert!(text.contains("DescribeSecret: HTTP 400"), "{text}");
        let other = answer(
            Call::MoveCurrent("v"),
            400,
            Some("InvalidRequestException"),
            Some("busy"),
        );
        assert!(matches!(other, SourceError::Other { .. }), "{other:?}");
        let text = crate::error::report(&other);
        assert!(
            text.contains("UpdateSecretVersionStage: InvalidRequestException: busy"),
            "{text}"
        );
    }
}
