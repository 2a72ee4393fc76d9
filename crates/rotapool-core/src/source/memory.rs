//! An in-process secret store with Secrets Manager's version and staging-label semantics.

use std::{
    collections::BTreeMap,
    fmt,
    sync::{
        atomic::{AtomicU64, Ordering},
        Mutex, MutexGuard,
    },
};

use async_trait::async_trait;

use super::{
    admin::{RawSecret, SecretAdmin},
    contract::{parse_version, SecretSource, SecretVersion, SourceError, Stage},
};
use crate::credentials::Credentials;

/// A secret kept in memory, with version ids and the labels `AWSCURRENT`, `AWSPENDING` and `AWSPREVIOUS`
/// moving the way Secrets Manager moves them.
///
/// Tests and the simulator use it in place of AWS. Values are stored as text, so a malformed secret fails
/// exactly as it would when read from AWS. Clone-free sharing: wrap it in an `Arc`.
pub struct InMemorySecretStore {
    secret_id: String,
    state: Mutex<State>,
    fetches: AtomicU64,
}

#[derive(Default)]
struct State {
    /// version id -> secret text
    versions: BTreeMap<String, String>,
    /// label -> version id
    labels: BTreeMap<&'static str, String>,
    next_version: u64,
}

impl InMemorySecretStore {
    /// A store for the secret `secret_id` whose first `AWSCURRENT` version holds `credentials`.
    pub fn new(secret_id: impl Into<String>, credentials: &Credentials) -> Self {
        let store = Self::empty(secret_id);
        store.put_current_text(credentials.to_secret_json());
        store
    }

    /// A store for `secret_id` with no version at all.
    pub fn empty(secret_id: impl Into<String>) -> Self {
        Self {
            secret_id: secret_id.into(),
            state: Mutex::new(State::default()),
            fetches: AtomicU64::new(0),
        }
    }

    /// Adds a version holding `credentials` and makes it `AWSCURRENT` (the old one becomes `AWSPREVIOUS`).
    /// Returns the new version id.
    pub fn put_current(&self, credentials: &Credentials) -> String {
        self.put_current_text(credentials.to_secret_json())
    }

    /// Like [`InMemorySecretStore::put_current`] with raw text, which need not be valid.
    pub fn put_current_text(&self, text: impl Into<String>) -> String {
        let mut state = self.lock();
        state.next_version += 1;
        let version_id = format!("v{}", state.next_version);
        state.versions.insert(version_id.clone(), text.into());
        state.move_label(Stage::Current, &version_id);
        version_id
    }

    /// Stores `credentials` as version `version_id` labelled `AWSPENDING`, as a rotation's createSecret does.
    /// Storing the same version id again changes nothing.
    pub fn put_pending(&self, version_id: &str, credentials: &Credentials) {
        self.store_pending(version_id, credentials.to_secret_json());
    }

    fn store_pending(&self, version_id: &str, text: String) {
        let mut state = self.lock();
        state.versions.entry(version_id.to_owned()).or_insert(text);
        state
            .labels
            .insert(Stage::Pending.label(), version_id.to_owned());
    }

    /// Moves `AWSCURRENT` to `version_id`, as a rotation's finishSecret does. The version that held it becomes
    /// `AWSPREVIOUS`, and `AWSPENDING` is cleared if it pointed at `version_id`.
    /// Returns false, and changes nothing, if there is no such version.
    pub fn promote(&self, version_id: &str) -> bool {
        let mut state = self.lock();
        if !state.versions.contains_key(version_id) {
            return false;
        }
        state.move_label(Stage::Current, version_id);
        true
    }

    /// The version id that carries `stage`, if any.
    pub fn version_of(&self, stage: Stage) -> Option<String> {
        self.lock().labels.get(stage.label()).cloned()
    }

    /// How many times [`SecretSource::fetch`] has been called on this store.
    pub fn fetch_count(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A poisoned lock only means another thread panicked mid-update of plain maps; the data is still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl State {
    fn move_label(&mut self, stage: Stage, version_id: &str) {
        let previous = self.labels.insert(stage.label(), version_id.to_owned());
        if stage == Stage::Current {
            if let Some(previous) = previous.filter(|p| p != version_id) {
                self.labels.insert(Stage::Previous.label(), previous);
            }
            if self.labels.get(Stage::Pending.label()).map(String::as_str) == Some(version_id) {
                self.labels.remove(Stage::Pending.label());
            }
        }
    }
}

impl fmt::Debug for InMemorySecretStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.lock();
        f.debug_struct("InMemorySecretStore")
            .field("secret_id", &self.secret_id)
            .field("versions", &state.versions.len())
            .field("labels", &state.labels)
            .finish_non_exhaustive()
    }
}

impl State {
    fn raw(&self, version_id: &str) -> Option<RawSecret> {
        let text = self.versions.get(version_id)?;
        let stages = Stage::ALL
            .into_iter()
            .filter(|stage| self.labels.get(stage.label()).map(String::as_str) == Some(version_id))
            .collect();
        Some(RawSecret::new(version_id, stages, text.clone()))
    }
}

#[async_trait]
impl SecretAdmin for InMemorySecretStore {
    async fn read_stage(&self, stage: Stage) -> Result<Option<RawSecret>, SourceError> {
        let state = self.lock();
        Ok(state
            .labels
            .get(stage.label())
            .and_then(|version_id| state.raw(version_id)))
    }

    async fn read_version(&self, version_id: &str) -> Result<Option<RawSecret>, SourceError> {
        Ok(self.lock().raw(version_id))
    }

    async fn put_pending(&self, version_id: &str, text: &str) -> Result<(), SourceError> {
        self.store_pending(version_id, text.to_owned());
        Ok(())
    }

    async fn promote(&self, version_id: &str) -> Result<(), SourceError> {
        if InMemorySecretStore::promote(self, version_id) {
            Ok(())
        } else {
            Err(SourceError::Other {
                secret_id: self.secret_id.clone(),
                source: format!("no version `{version_id}` to promote").into(),
            })
        }
    }
}

#[async_trait]
impl SecretSource for InMemorySecretStore {
    fn secret_id(&self) -> &str {
        &self.secret_id
    }

    async fn fetch(&self, stage: Stage) -> Result<SecretVersion, SourceError> {
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let (version_id, text) = {
            let state = self.lock();
            let version_id =
                state
                    .labels
                    .get(stage.label())
                    .ok_or_else(|| SourceError::StageNotFound {
                        secret_id: self.secret_id.clone(),
                        stage,
                    })?;
            (version_id.clone(), state.versions[version_id].clone())
        };
        parse_version(&self.secret_id, stage, version_id, &text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds(pw: &str) -> Credentials {
        Credentials::new("app", pw)
    }

    #[tokio::test]
    async fn labels_move_like_secrets_manager() {
        let store = InMemorySecretStore::new("db", &creds("one"));
        let first = store.version_of(Stage::Current).unwrap();
        assert!(store.fetch(Stage::Pending).await.is_err());

        store.put_pending("token-2", &creds("two"));
        store.put_pending("token-2", &creds("ignored on retry"));
        let pending = store.fetch(Stage::Pending).await.unwrap();
        assert_eq!(pending.version_id, "token-2");
        assert_eq!(pending.credentials.password(), "two");
        assert_eq!(store.fetch(Stage::Current).await.unwrap().version_id, first);

        assert!(store.promote("token-2"));
        assert_eq!(store.version_of(Stage::Current).unwrap(), "token-2");
        assert_eq!(store.version_of(Stage::Previous).unwrap(), first);
        assert_eq!(store.version_of(Stage::Pending), None);
        assert!(!store.promote("nope"));
        assert_eq!(store.fetch_count(), 3);
    }

    #[tokio::test]
    async fn malformed_text_is_a_typed_error_without_the_value() {
        let store = InMemorySecretStore::empty("db");
        store.put_current_text(r#"{"username":"app","password":12345678}"#);
        let err = store.fetch(Stage::Current).await.unwrap_err();
        assert!(matches!(err, SourceError::InvalidContent { .. }), "{err:?}");
        let cause = std::error::Error::source(&err)
            .expect("the content error")
            .to_string();
        assert!(cause.contains("`password`"), "{cause}");
        assert!(!format!("{err} {cause} {err:?}").contains("12345678"));
    }
}
