//! The four steps, idempotent, for the single-user and alternating-users strategies.

use std::sync::Arc;

use rotapool_core::{
    source::{RawSecret, SecretAdmin},
    Credentials, SecretSource, Stage,
};
use serde_json::Value;

use crate::{
    error::{RotationError, Step},
    password::{LocalPasswords, PasswordSource},
    target::RotationTarget,
};

/// Length of generated passwords: 32 characters of a 66-symbol alphabet, about 193 bits.
pub const PASSWORD_LENGTH: usize = 32;

/// Suffix of the second user in the alternating-users strategy.
pub const CLONE_SUFFIX: &str = "_clone";

/// How passwords are rotated.
#[derive(Clone)]
pub enum Strategy {
    /// One user whose password changes. Between setSecret and finishSecret only `AWSPENDING` logs in.
    SingleUser,
    /// Two users, `<user>` and `<user>_clone`, used in turn: each rotation changes the password of the one not
    /// in use, so the previous user keeps working until the rotation after. `master` is the secret of an
    /// account that may create users and grant privileges (the secret's `masterarn`).
    AlternatingUsers {
        /// The master account's secret.
        master: Arc<dyn SecretSource>,
    },
}

impl std::fmt::Debug for Strategy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Strategy::SingleUser => f.write_str("SingleUser"),
            Strategy::AlternatingUsers { .. } => f.write_str("AlternatingUsers"),
        }
    }
}

/// Runs rotation steps against one secret and the database it describes.
///
/// Every step may be invoked again after it succeeded, as Secrets Manager may do, and then changes nothing.
#[derive(Debug)]
pub struct Rotator<T> {
    secrets: Arc<dyn SecretAdmin>,
    target: T,
    strategy: Strategy,
    passwords: Arc<dyn PasswordSource>,
}

impl<T: RotationTarget> Rotator<T> {
    /// A rotator for the secret `secrets`, whose database `target` reaches.
    pub fn new(secrets: Arc<dyn SecretAdmin>, target: T, strategy: Strategy) -> Self {
        Self {
            secrets,
            target,
            strategy,
            passwords: Arc::new(LocalPasswords::default()),
        }
    }

    /// Takes new passwords from `passwords`. Defaults to [`LocalPasswords::default`]: 32 characters from the
    /// operating system's CSPRNG.
    #[must_use]
    pub fn with_passwords(mut self, passwords: Arc<dyn PasswordSource>) -> Self {
        self.passwords = passwords;
        self
    }

    /// Runs one step for the rotation whose version id is `token` (the event's `ClientRequestToken`).
    pub async fn run(&self, step: Step, token: &str) -> Result<(), RotationError> {
        tracing::info!(%step, token, secret = self.secrets.secret_id(), "rotation step");
        match step {
            Step::CreateSecret => self.create_secret(token).await,
            Step::SetSecret => self.set_secret(token).await,
            Step::TestSecret => self.test_secret(token).await,
            Step::FinishSecret => self.finish_secret(token).await,
        }
    }

    /// Runs the four steps in order.
    pub async fn rotate(&self, token: &str) -> Result<(), RotationError> {
        for step in Step::ALL {
            self.run(step, token).await?;
        }
        Ok(())
    }

    /// createSecret: a new password (and, alternating, the other user) under `AWSPENDING` as version `token`.
    pub async fn create_secret(&self, token: &str) -> Result<(), RotationError> {
        let step = Step::CreateSecret;
        if self.version(step, token).await?.is_some() {
            tracing::info!("version already stored; nothing to do");
            return Ok(());
        }
        let current = self.stage(step, Stage::Current).await?.ok_or_else(|| {
            RotationError::MissingVersion {
                step,
                what: "the secret has no AWSCURRENT version".into(),
            }
        })?;
        let credentials = parse(step, Stage::Current, &current)?;
        let mut document: Value =
            serde_json::from_str(current.text()).expect("parse() accepted it as JSON");
        if let Strategy::AlternatingUsers { .. } = self.strategy {
            let other = other_user(credentials.username(), self.target.max_username_len())?;
            document["username"] = Value::from(other);
        }
        let password = self
            .passwords
            .new_password()
            .await
            .map_err(|detail| RotationError::Password { detail })?;
        document["password"] = Value::from(password);
        self.secrets
            .put_pending(token, &document.to_string())
            .await
            .map_err(|source| RotationError::Secret { step, source })?;
        tracing::info!(user = %document["username"].as_str().unwrap_or_default(), "new version stored as AWSPENDING");
        Ok(())
    }

    /// setSecret: makes the database accept the `AWSPENDING` password.
    pub async fn set_secret(&self, token: &str) -> Result<(), RotationError> {
        let step = Step::SetSecret;
        let pending = self.pending(step, token).await?;
        if self.login(step, &pending).await? {
            tracing::info!(
                user = %pending.username(),
                "AWSPENDING already logs in; nothing to do"
            );
            return Ok(());
        }
        match &self.strategy {
            Strategy::SingleUser => {
                for stage in [Stage::Current, Stage::Previous] {
                    let Some(raw) = self.stage(step, stage).await? else {
                        continue;
                    };
                    let known = parse(step, stage, &raw)?;
                    if known.username() == pending.username() && self.login(step, &known).await? {
                        self.target
                            .set_own_password(&known, pending.password())
                            .await
                            .map_err(|detail| RotationError::Database { step, detail })?;
                        tracing::info!(
                            user = %pending.username(),
                            logged_in_with = %stage.label(),
                            "password changed"
                        );
                        return Ok(());
                    }
                }
                Err(RotationError::NoWorkingPassword {
                    user: pending.username().to_owned(),
                })
            }
            Strategy::AlternatingUsers { master } => {
                let master = master
                    .fetch(Stage::Current)
                    .await
                    .map_err(|source| RotationError::Secret { step, source })?;
                let current = self
                    .stage(step, Stage::Current)
                    .await?
                    .map(|raw| parse(step, Stage::Current, &raw))
                    .transpose()?
                    .ok_or_else(|| RotationError::MissingVersion {
                        step,
                        what: "the secret has no AWSCURRENT version".into(),
                    })?;
                let master = with_endpoint_of(&master.credentials, &pending);
                self.target
                    .upsert_user_like(
                        &master,
                        current.username(),
                        pending.username(),
                        pending.password(),
                    )
                    .await
                    .map_err(|detail| RotationError::Database { step, detail })?;
                tracing::info!(
                    user = %pending.username(),
                    like = %current.username(),
                    "password set and privileges copied, as the master"
                );
                Ok(())
            }
        }
    }

    /// testSecret: logs in with `AWSPENDING` and runs a query.
    pub async fn test_secret(&self, token: &str) -> Result<(), RotationError> {
        let step = Step::TestSecret;
        let pending = self.pending(step, token).await?;
        self.target
            .test_login(&pending)
            .await
            .map_err(|detail| RotationError::Database { step, detail })?;
        tracing::info!(
            user = %pending.username(),
            "AWSPENDING logs in and runs SELECT 1"
        );
        Ok(())
    }

    /// finishSecret: moves `AWSCURRENT` to version `token`.
    pub async fn finish_secret(&self, token: &str) -> Result<(), RotationError> {
        let step = Step::FinishSecret;
        let version =
            self.version(step, token)
                .await?
                .ok_or_else(|| RotationError::MissingVersion {
                    step,
                    what: format!("the secret has no version `{token}`"),
                })?;
        if version.has(Stage::Current) {
            tracing::info!("version is already AWSCURRENT; nothing to do");
            return Ok(());
        }
        self.secrets
            .promote(token)
            .await
            .map_err(|source| RotationError::Secret { step, source })?;
        tracing::info!("AWSCURRENT moved to this version; the old one is AWSPREVIOUS");
        Ok(())
    }

    async fn login(&self, step: Step, credentials: &Credentials) -> Result<bool, RotationError> {
        self.target
            .can_login(credentials)
            .await
            .map_err(|detail| RotationError::Database { step, detail })
    }

    async fn version(&self, step: Step, token: &str) -> Result<Option<RawSecret>, RotationError> {
        self.secrets
            .read_version(token)
            .await
            .map_err(|source| RotationError::Secret { step, source })
    }

    async fn stage(&self, step: Step, stage: Stage) -> Result<Option<RawSecret>, RotationError> {
        self.secrets
            .read_stage(stage)
            .await
            .map_err(|source| RotationError::Secret { step, source })
    }

    /// The credentials of version `token`, which must carry `AWSPENDING` (or, once finished, `AWSCURRENT`).
    async fn pending(&self, step: Step, token: &str) -> Result<Credentials, RotationError> {
        match self.version(step, token).await? {
            Some(raw) if raw.has(Stage::Pending) || raw.has(Stage::Current) => {
                parse(step, Stage::Pending, &raw)
            }
            _ => Err(RotationError::MissingVersion {
                step,
                what: format!(
                    "version `{token}` is not labelled AWSPENDING; run createSecret first"
                ),
            }),
        }
    }
}

fn parse(step: Step, which: Stage, raw: &RawSecret) -> Result<Credentials, RotationError> {
    Credentials::from_secret_json(raw.text()).map_err(|source| RotationError::Malformed {
        step,
        which: which.label().to_owned(),
        source,
    })
}

/// The master account connects where the rotated secret points, unless its own secret says otherwise.
fn with_endpoint_of(master: &Credentials, target: &Credentials) -> Credentials {
    let mut out = master.clone();
    if out.host().is_none() {
        if let Some(host) = target.host() {
            out = out.with_host(host);
        }
    }
    if out.port().is_none() {
        if let Some(port) = target.port() {
            out = out.with_port(port);
        }
    }
    if out.dbname().is_none() {
        if let Some(dbname) = target.dbname() {
            out = out.with_dbname(dbname);
        }
    }
    out
}

/// The other user of the alternating pair: `app` <-> `app_clone`.
///
/// A base name too long for the suffix within `max_len` is refused rather than cut short: stripping the suffix
/// from a shortened clone would name a third user, and the original would keep its old password.
pub fn other_user(user: &str, max_len: usize) -> Result<String, RotationError> {
    if let Some(base) = user.strip_suffix(CLONE_SUFFIX) {
        return Ok(base.to_owned());
    }
    let len = user.chars().count();
    let room = max_len.saturating_sub(CLONE_SUFFIX.len());
    if len > room {
        return Err(RotationError::UserNameTooLong {
            user: user.to_owned(),
            len,
            max: max_len,
            room,
        });
    }
    Ok(format!("{user}{CLONE_SUFFIX}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alternating_users_swap_and_fit_the_limit() {
        assert_eq!(other_user("app", 32).unwrap(), "app_clone");
        assert_eq!(other_user("app_clone", 32).unwrap(), "app");
        assert_eq!(other_user(&"a".repeat(26), 32).unwrap().len(), 32);
        let refused = other_user(&"a".repeat(27), 32).unwrap_err();
        assert!(
            matches!(
                refused,
                RotationError::UserNameTooLong {
                    len: 27,
                    max: 32,
                    room: 26,
                    ..
                }
            ),
            "{refused:?}"
        );
    }
}
