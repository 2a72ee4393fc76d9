//! Refuses secret versions whose `engine` the pool's backend does not speak, so that a MySQL secret given to a
//! PostgreSQL pool fails with a message that says so, at start-up or when such a version is read, and is never
//! adopted.

use std::sync::Arc;

use async_trait::async_trait;

use super::contract::{RotationWindow, SecretSource, SecretVersion, SourceError, Stage};
use crate::credentials::CredentialsError;

/// `inner`, with each version's `engine` checked against `supported`.
#[derive(Debug)]
pub(crate) struct EngineChecked {
    pub(crate) inner: Arc<dyn SecretSource>,
    pub(crate) supported: &'static [&'static str],
}

impl EngineChecked {
    /// `version`, read at `stage`, unless its `engine` is one the backend does not speak.
    fn check(&self, stage: Stage, version: SecretVersion) -> Result<SecretVersion, SourceError> {
        match version.credentials.engine() {
            Some(engine) if !self.supported.contains(&engine) => Err(SourceError::InvalidContent {
                secret_id: self.inner.secret_id().to_owned(),
                stage,
                source: CredentialsError::UnsupportedEngine {
                    found: engine.to_owned(),
                    supported: self.supported,
                },
            }),
            _ => Ok(version),
        }
    }
}

#[async_trait]
impl SecretSource for EngineChecked {
    fn secret_id(&self) -> &str {
        self.inner.secret_id()
    }

    fn remedy(&self) -> String {
        self.inner.remedy()
    }

    async fn fetch(&self, stage: Stage) -> Result<SecretVersion, SourceError> {
        self.check(stage, self.inner.fetch(stage).await?)
    }

    async fn refetch(&self, stage: Stage) -> Result<SecretVersion, SourceError> {
        self.check(stage, self.inner.refetch(stage).await?)
    }

    async fn next_rotation(&self) -> Result<Option<std::time::SystemTime>, SourceError> {
        self.inner.next_rotation().await
    }

    async fn rotation_window(&self) -> Result<Option<RotationWindow>, SourceError> {
        self.inner.rotation_window().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{source::InMemorySecretStore, Credentials};

    #[tokio::test]
    async fn a_foreign_engine_is_a_typed_error_and_a_missing_one_passes() {
        let store = Arc::new(InMemorySecretStore::new(
            "db",
            &Credentials::new("app", "pw").with_engine("mysql"),
        ));
        let checked = EngineChecked {
            inner: store.clone(),
            supported: &["postgres", "aurora-postgresql"],
        };
        let err = checked.fetch(Stage::Current).await.unwrap_err();
        let text = format!(
            "{err}: {}",
            std::error::Error::source(&err).expect("the content error")
        );
        assert!(text.contains("`engine` is `mysql`"), "{text}");
        assert!(text.contains("postgres, aurora-postgresql"), "{text}");
        assert!(!text.contains("pw"), "{text}");

        store.put_current(&Credentials::new("app", "pw").with_engine("aurora-postgresql"));
        assert!(checked.fetch(Stage::Current).await.is_ok());
        store.put_current(&Credentials::new("app", "pw"));
        assert!(
            checked.fetch(Stage::Current).await.is_ok(),
            "no engine: taken as it is"
        );
    }
}
