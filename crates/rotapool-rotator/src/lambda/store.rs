//! The secret as the Lambda sees it: one SDK client per container, shared by every secret it rotates, and the
//! event's tokens on the write that takes them.

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_secretsmanager::{
    error::{ProvideErrorMetadata, SdkError},
    operation::get_secret_value::GetSecretValueOutput,
    Client,
};
use rotapool_core::{
    source::{RawSecret, SecretAdmin},
    Credentials, SecretSource, SecretVersion, SourceError, Stage,
};

/// Where a `GetSecretValue` points: a staging label or a version id.
#[derive(Debug, Clone, Copy)]
enum Selector<'a> {
    Stage(Stage),
    Version(&'a str),
}

/// One secret, reached through the container's shared client.
#[derive(Clone)]
pub(crate) struct SecretsManagerStore {
    client: Client,
    secret_id: String,
    /// The event's `RotationToken`, which `PutSecretValue` forwards so that Secrets Manager can tie the write to
    /// the rotation it started (required when the function rotates a secret of another account).
    rotation_token: Option<String>,
}

impl std::fmt::Debug for SecretsManagerStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretsManagerStore")
            .field("secret_id", &self.secret_id)
            .finish_non_exhaustive()
    }
}

impl SecretsManagerStore {
    pub(crate) fn new(client: Client, secret_id: &str, rotation_token: Option<String>) -> Self {
        Self {
            client,
            secret_id: secret_id.to_owned(),
            rotation_token,
        }
    }

    /// `DescribeSecret`: whether rotation is on, and which version holds which labels.
    pub(crate) async fn describe(
        &self,
    ) -> Result<aws_sdk_secretsmanager::operation::describe_secret::DescribeSecretOutput, SourceError>
    {
        self.client
            .describe_secret()
            .secret_id(&self.secret_id)
            .send()
            .await
            .map_err(|e| self.fault(e))
    }

    /// Translates an SDK failure. The SDK's raw response of a successful call holds the secret, so only the
    /// error code and the service's message are ever kept.
    fn fault<E, R>(&self, err: SdkError<E, R>) -> SourceError
    where
        E: ProvideErrorMetadata,
    {
        let secret_id = self.secret_id.clone();
        let detail: rotapool_core::source::BoxError = match err.code() {
            Some(code) => format!("{code}: {}", err.message().unwrap_or("no message")).into(),
            None => match &err {
                SdkError::TimeoutError(_) => "no answer before the SDK's timeout".into(),
                SdkError::DispatchFailure(_) => "the request could not be sent".into(),
                _ => "the response could not be read".into(),
            },
        };
        match err.code() {
            Some("ResourceNotFoundException") => SourceError::NotFound { secret_id },
            Some("AccessDeniedException") => SourceError::AccessDenied {
                secret_id,
                source: detail,
            },
            Some("ThrottlingException") => SourceError::Throttled {
                secret_id,
                source: detail,
            },
            None => SourceError::Unreachable {
                secret_id,
                source: detail,
            },
            Some(_) => SourceError::Other {
                secret_id,
                source: detail,
            },
        }
    }

    /// `GetSecretValue`; `None` when Secrets Manager has no value there (which is also how a version that
    /// RotateSecret announced but createSecret has not yet written reads).
    async fn get(&self, at: Selector<'_>) -> Result<Option<RawSecret>, SourceError> {
        let request = self.client.get_secret_value().secret_id(&self.secret_id);
        let request = match at {
            Selector::Stage(stage) => request.version_stage(stage.label()),
            Selector::Version(id) => request.version_id(id),
        };
        match request.send().await.map_err(|e| self.fault(e)) {
            Ok(out) => self.raw(out).map(Some),
            Err(SourceError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn raw(&self, out: GetSecretValueOutput) -> Result<RawSecret, SourceError> {
        let (Some(id), Some(text)) = (out.version_id(), out.secret_string()) else {
            return Err(SourceError::Other {
                secret_id: self.secret_id.clone(),
                source: "GetSecretValue answered without a VersionId or a SecretString".into(),
            });
        };
        let stages = [Stage::Current, Stage::Pending, Stage::Previous]
            .into_iter()
            .filter(|stage| out.version_stages().iter().any(|l| l == stage.label()))
            .collect();
        Ok(RawSecret::new(id, stages, text))
    }
}

#[async_trait]
impl SecretSource for SecretsManagerStore {
    fn secret_id(&self) -> &str {
        &self.secret_id
    }

    async fn fetch(&self, stage: Stage) -> Result<SecretVersion, SourceError> {
        let raw =
            self.get(Selector::Stage(stage))
                .await?
                .ok_or_else(|| SourceError::StageNotFound {
                    secret_id: self.secret_id.clone(),
                    stage,
                })?;
        let credentials = Credentials::from_secret_json(raw.text()).map_err(|source| {
            SourceError::InvalidContent {
                secret_id: self.secret_id.clone(),
                stage,
                source,
            }
        })?;
        Ok(SecretVersion {
            version_id: raw.version_id,
            credentials: Arc::new(credentials),
        })
    }
}

#[async_trait]
impl SecretAdmin for SecretsManagerStore {
    async fn read_stage(&self, stage: Stage) -> Result<Option<RawSecret>, SourceError> {
        self.get(Selector::Stage(stage)).await
    }

    async fn read_version(&self, version_id: &str) -> Result<Option<RawSecret>, SourceError> {
        self.get(Selector::Version(version_id)).await
    }

    async fn put_pending(&self, version_id: &str, text: &str) -> Result<(), SourceError> {
        self.client
            .put_secret_value()
            .secret_id(&self.secret_id)
            .client_request_token(version_id)
            .set_rotation_token(self.rotation_token.clone())
            .secret_string(text)
            .version_stages(Stage::Pending.label())
            .send()
            .await
            .map(drop)
            .map_err(|e| self.fault(e))
    }

    async fn promote(&self, version_id: &str) -> Result<(), SourceError> {
        let described = self.describe().await?;
        let holder = described
            .version_ids_to_stages()
            .into_iter()
            .flatten()
            .find(|(_, labels)| labels.iter().any(|l| l == Stage::Current.label()))
            .map(|(id, _)| id.clone());
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
            .map(drop)
            .map_err(|e| self.fault(e))
    }
}
