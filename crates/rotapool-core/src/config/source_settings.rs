//! Which source the credentials come from (`<PREFIX>__SOURCE`), and the settings each source reads.

use std::{path::PathBuf, str::FromStr, time::Duration};

use serde::Deserialize;

use crate::{error::InvalidValue, settings::DrainPolicy};

/// Where a pool's credentials come from: the `<PREFIX>__SOURCE` variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum SourceKind {
    /// `aws`: a Secrets Manager secret, read through the AWS SDK. The default.
    #[default]
    Aws,
    /// `iam`: RDS IAM authentication tokens, signed with the service's AWS credentials and renewed before they
    /// expire.
    Iam,
    /// `agent`: a Secrets Manager secret, read through the Secrets Manager Agent or the Lambda extension on
    /// localhost.
    Agent,
    /// `file`: a secret mounted as files (the Secrets Store CSI driver, External Secrets).
    File,
    /// `env`: fixed credentials from the environment, for development. Never re-read.
    Env,
}

impl SourceKind {
    /// Every source, in the order the documentation lists them.
    pub const ALL: [SourceKind; 5] = [Self::Aws, Self::Iam, Self::Agent, Self::File, Self::Env];

    /// The value of `<PREFIX>__SOURCE` that selects this source, e.g. `aws`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Aws => "aws",
            Self::Iam => "iam",
            Self::Agent => "agent",
            Self::File => "file",
            Self::Env => "env",
        }
    }

    /// The drain policy this source needs when none is configured: an IAM token's renewal does not end the
    /// sessions it opened, so they are kept to the end of their lifetime.
    pub(super) fn default_drain(self) -> Option<DrainPolicy> {
        (self == Self::Iam).then_some(DrainPolicy::Keep)
    }
}

impl FromStr for SourceKind {
    type Err = InvalidValue;

    /// `aws`, `iam`, `agent`, `file` or `env` (case-insensitive).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.name().eq_ignore_ascii_case(text))
            .ok_or_else(|| InvalidValue::new("one of aws, iam, agent, file, env"))
    }
}

impl<'de> Deserialize<'de> for SourceKind {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        crate::error::from_str_value(deserializer)
    }
}

/// The `agent` source's settings. Variables `<PREFIX>__AGENT__*`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct AgentConfig {
    /// Where the Agent listens. Defaults to `http://localhost:2773`.
    pub url: Option<String>,
    /// A file holding the Agent's SSRF token. Defaults to the Agent's own variables (`AWS_TOKEN`, then
    /// `AWS_SESSION_TOKEN`, the Lambda extension's).
    pub token_file: Option<PathBuf>,
}

/// The `file` source's settings: one of the two. Variables `<PREFIX>__FILE__*`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct FileConfig {
    /// A file holding the RDS secret's JSON.
    pub path: Option<PathBuf>,
    /// A directory holding `username` and `password` files (and optional `host`, `port`, `dbname`).
    pub dir: Option<PathBuf>,
}

/// The `iam` source's settings. Variables `<PREFIX>__IAM__*`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct IamConfig {
    /// How long after it was signed a token is replaced; tokens are valid for 15 minutes. Defaults to 10
    /// minutes.
    #[serde(default, with = "humantime_serde")]
    pub renew_after: Option<Duration>,
}
