//! A source that always returns the same credentials.

use std::sync::Arc;

use async_trait::async_trait;

use super::contract::{SecretSource, SecretVersion, SourceError, Stage};
use crate::credentials::Credentials;

/// Fixed credentials, for local development and for pools that should never rotate.
///
/// Every stage returns the same version, so a refresh never finds anything new, and a rejected login's error
/// says so: the pool cannot follow a password change made after it read these.
#[derive(Debug, Clone)]
pub struct StaticSource {
    version: SecretVersion,
    origin: String,
}

impl StaticSource {
    /// A source that always yields `credentials`.
    pub fn new(credentials: Credentials) -> Self {
        Self {
            version: SecretVersion {
                version_id: "static".to_owned(),
                credentials: Arc::new(credentials),
            },
            origin: "the credentials it was built with".to_owned(),
        }
    }

    /// Names where the credentials came from (for example `` `DB__USERNAME` and `DB__PASSWORD` ``), for the
    /// advice of a rejected login's error.
    pub fn described_as(mut self, origin: impl Into<String>) -> Self {
        self.origin = origin.into();
        self
    }
}

#[async_trait]
impl SecretSource for StaticSource {
    async fn fetch(&self, _stage: Stage) -> Result<SecretVersion, SourceError> {
        Ok(self.version.clone())
    }

    fn remedy(&self) -> String {
        format!(
            "the pool read {} once, at start-up, and never reads the credentials again, so it cannot follow a password \
             change: put the database account's password there and restart, or use a source that follows \
             rotations",
            self.origin
        )
    }
}
