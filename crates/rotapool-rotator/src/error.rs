//! Why a rotation step failed. Messages name the step and what to check; they never contain a password.

use std::fmt;

use rotapool_core::{CredentialsError, SourceError};

/// One of the four steps AWS Secrets Manager asks a rotation function to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Step {
    /// Store a new password under `AWSPENDING`.
    CreateSecret,
    /// Change the password on the database.
    SetSecret,
    /// Log in with `AWSPENDING`.
    TestSecret,
    /// Move `AWSCURRENT` to the new version.
    FinishSecret,
}

impl Step {
    /// The four steps in the order a rotation runs them.
    pub const ALL: [Step; 4] = [
        Step::CreateSecret,
        Step::SetSecret,
        Step::TestSecret,
        Step::FinishSecret,
    ];

    /// The name Secrets Manager uses in the rotation event, e.g. `createSecret`.
    pub fn name(self) -> &'static str {
        match self {
            Step::CreateSecret => "createSecret",
            Step::SetSecret => "setSecret",
            Step::TestSecret => "testSecret",
            Step::FinishSecret => "finishSecret",
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Step {
    type Err = RotationError;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Step::ALL
            .into_iter()
            .find(|step| step.name() == name)
            .ok_or_else(|| RotationError::UnknownStep(name.to_owned()))
    }
}

/// Why a rotation step failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RotationError {
    /// The event named a step that does not exist.
    #[error(
        "unknown rotation step `{0}`; expected createSecret, setSecret, testSecret or finishSecret"
    )]
    UnknownStep(String),
    /// Reading or writing the secret failed.
    #[error("{step}: the secret store failed")]
    Secret {
        /// The step.
        step: Step,
        /// The store's error.
        #[source]
        source: SourceError,
    },
    /// A version of the secret is not a usable RDS secret.
    #[error("{step}: the {which} version of the secret is malformed")]
    Malformed {
        /// The step.
        step: Step,
        /// Which version: `AWSCURRENT`, `AWSPENDING`, the master secret...
        which: String,
        /// What is wrong with it.
        #[source]
        source: CredentialsError,
    },
    /// The secret has no version the step needs.
    #[error("{step}: {what}")]
    MissingVersion {
        /// The step.
        step: Step,
        /// What is missing, e.g. "version `abc` is not labelled AWSPENDING".
        what: String,
    },
    /// No known password logs in, so the database password cannot be changed.
    #[error(
        "setSecret: none of AWSPENDING, AWSCURRENT and AWSPREVIOUS logs in as `{user}`; the password was changed \
         outside the rotation: put the working password in the secret, then rotate again"
    )]
    NoWorkingPassword {
        /// The database user.
        user: String,
    },
    /// The alternating-users strategy needs the secret's `masterarn`.
    #[error("the secret has no `masterarn`; alternating users needs the ARN of a secret for an account that can create users")]
    NoMasterSecret,
    /// No new password could be had (createSecret).
    #[error("createSecret: no new password: {detail}")]
    Password {
        /// Why, in the password source's words.
        detail: String,
    },
    /// Alternating users: the user name leaves no room for the clone's suffix within the engine's limit.
    #[error(
        "createSecret: user name `{user}` is {len} characters; alternating users needs `{user}_clone`, which \
         exceeds the engine's limit of {max}: use a user name of at most {room} characters"
    )]
    UserNameTooLong {
        /// The base user name.
        user: String,
        /// Its length in characters.
        len: usize,
        /// The engine's limit.
        max: usize,
        /// The longest base name that leaves room for the suffix.
        room: usize,
    },
    /// The database refused an operation.
    #[error("{step}: the database refused: {detail}")]
    Database {
        /// The step.
        step: Step,
        /// The database's words.
        detail: String,
    },
}
