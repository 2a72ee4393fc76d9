//! Where credentials come from: the [`SecretSource`] trait and its implementations.

mod admin;
#[cfg(feature = "agent")]
mod agent;
#[cfg(feature = "aws")]
mod aws;
mod contract;
mod engine_check;
#[cfg(feature = "file")]
mod file;
#[cfg(feature = "iam")]
mod iam;
mod memory;
mod static_source;

pub use admin::{RawSecret, SecretAdmin};
#[cfg(feature = "agent")]
#[cfg_attr(docsrs, doc(cfg(feature = "agent")))]
pub use agent::{
    AgentError, InvalidAgentUrl, SecretsManagerAgent, SecretsManagerAgentBuilder,
    DEFAULT_AGENT_URL, TOKEN_HEADER, TOKEN_VARIABLES,
};
#[cfg(feature = "aws")]
#[cfg_attr(docsrs, doc(cfg(feature = "aws")))]
pub use aws::{AwsSecretsManager, AwsSecretsManagerBuilder, SecretDescription};
pub use contract::{BoxError, RotationWindow, SecretSource, SecretVersion, SourceError, Stage};
pub(crate) use engine_check::EngineChecked;
#[cfg(feature = "file")]
#[cfg_attr(docsrs, doc(cfg(feature = "file")))]
pub use file::{FileError, SecretFile};
#[cfg(feature = "iam")]
#[cfg_attr(docsrs, doc(cfg(feature = "iam")))]
pub use iam::{RdsIamAuth, RdsIamAuthBuilder, MAX_RENEW_AFTER, MIN_RENEW_AFTER, TOKEN_LIFETIME};
pub use memory::InMemorySecretStore;
pub use static_source::StaticSource;
