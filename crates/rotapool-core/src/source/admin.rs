//! The writes a rotation makes to a secret store, so that one rotator serves AWS and the in-memory store alike.

use std::fmt;

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};

use super::contract::{SecretSource, SourceError, Stage};

/// One version of a secret as stored: its id, its labels and its text (which holds the password).
#[derive(Clone)]
pub struct RawSecret {
    /// The version id.
    pub version_id: String,
    /// The staging labels on this version.
    pub stages: Vec<Stage>,
    text: SecretString,
}

impl RawSecret {
    /// A version as read from a store.
    pub fn new(version_id: impl Into<String>, stages: Vec<Stage>, text: impl Into<String>) -> Self {
        Self {
            version_id: version_id.into(),
            stages,
            text: SecretString::from(text.into()),
        }
    }

    /// The secret text, in clear.
    pub fn text(&self) -> &str {
        self.text.expose_secret()
    }

    /// Whether this version carries `stage`.
    pub fn has(&self, stage: Stage) -> bool {
        self.stages.contains(&stage)
    }
}

impl fmt::Debug for RawSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawSecret")
            .field("version_id", &self.version_id)
            .field("stages", &self.stages)
            .field("text", &"<redacted>")
            .finish()
    }
}

/// What a rotation function does to a secret store, beyond reading it.
#[async_trait]
pub trait SecretAdmin: SecretSource {
    /// The version labelled `stage`, if any.
    async fn read_stage(&self, stage: Stage) -> Result<Option<RawSecret>, SourceError>;

    /// The version `version_id`, if it exists.
    async fn read_version(&self, version_id: &str) -> Result<Option<RawSecret>, SourceError>;

    /// Stores `text` as version `version_id` labelled `AWSPENDING` (createSecret). Storing the same version again
    /// changes nothing.
    async fn put_pending(&self, version_id: &str, text: &str) -> Result<(), SourceError>;

    /// Moves `AWSCURRENT` to `version_id` (finishSecret); the version that had it becomes `AWSPREVIOUS`.
    async fn promote(&self, version_id: &str) -> Result<(), SourceError>;
}
