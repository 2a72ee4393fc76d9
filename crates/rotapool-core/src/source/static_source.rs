//! A source that always returns the same credentials.

use std::sync::Arc;

use async_trait::async_trait;

use super::{SecretSource, SecretVersion, SourceError, Stage};
use crate::credentials::Credentials;

/// Fixed credentials, for local development and for pools that should never rotate.
///
/// Every stage returns the same version, so a refresh never finds anything new.
#[derive(Debug, Clone)]
pub struct StaticSource {
    version: SecretVersion,
}

impl StaticSource {
    /// A source that always yields `credentials`.
    pub fn new(credentials: Credentials) -> Self {
        Self {
            version: SecretVersion {
                version_id: "static".to_owned(),
                credentials: Arc::new(credentials),
            },
        }
    }
}

#[async_trait]
impl SecretSource for StaticSource {
    async fn fetch(&self, _stage: Stage) -> Result<SecretVersion, SourceError> {
        Ok(self.version.clone())
    }
}
