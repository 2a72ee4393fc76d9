//! A secret mounted as files: the Secrets Store CSI driver, External Secrets, or a Kubernetes secret volume.

use std::{
    fmt, io,
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
};

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};

use super::contract::{parse_version, SecretSource, SecretVersion, SourceError, Stage};

/// The symlink that Kubernetes' atomic writer swaps to the directory holding the volume's current files.
const DATA_LINK: &str = "..data";

/// How many swaps of `..data` during one read are tolerated before the read gives up. A swap during a read is
/// rare (the writer publishes a version in one rename); several in a row mean the volume is rewritten in a loop.
const MAX_SWAPS_PER_READ: usize = 16;

/// The optional files of the directory layout and the secret fields they fill.
const OPTIONAL_FILES: [&str; 4] = ["host", "port", "dbname", "engine"];

/// A secret read from files that a platform mounts into the container and replaces when the secret rotates.
///
/// Two layouts:
/// - [`SecretFile::json`]: one file holding the RDS secret JSON (`{"username": ..., "password": ..., "host":
///   ...}`), as the Secrets Store CSI driver's AWS provider writes a Secrets Manager secret, or External Secrets
///   a Kubernetes secret key.
/// - [`SecretFile::dir`]: one file per field: `username` and `password`, and optionally `host`, `port`,
///   `dbname` and `engine`, as the AWS provider writes them when `jmesPath` splits the secret. A trailing
///   newline (`\n` or `\r\n`, any number) is trimmed from each file, since editors and `echo` add one; no other
///   whitespace is touched.
///
/// Every [`SecretSource::fetch`] reads the files again: the pool's proactive refresh decides how often, and a
/// login the database rejects makes the pool read at once. Only [`Stage::Current`] exists; the other stages are
/// [`SourceError::StageNotFound`].
///
/// # Rotation through a symlink swap
/// Kubernetes' atomic writer (secret volumes, the CSI driver, secrets written by External Secrets) writes each
/// version of the files into a new hidden directory `..<timestamp>`, swaps the symlink `..data` to it with one
/// rename, and removes the old directory; the visible files are symlinks `password -> ..data/password`. When the
/// directory holds `..data`, a read resolves it once and reads every file from the directory it names, then
/// checks that `..data` still names it: a version is never mixed with another (the username of one with the
/// password of the next), and a read that raced a swap reads again from the new directory. A plain directory
/// (no `..data`) is read file by file: write it with one rename per file, or use the JSON layout.
///
/// # Versions
/// The version id changes exactly when the content read changes: the source keeps the last content in memory,
/// as a secret, and counts changes (`file-1`, `file-2`, ...). Nothing of the password goes into the id.
pub struct SecretFile {
    inner: Arc<Inner>,
}

struct Inner {
    /// The path, as messages name the secret.
    secret_id: String,
    layout: Layout,
    last: Mutex<Last>,
    fetches: AtomicU64,
}

/// Where the files are.
#[derive(Debug, Clone)]
enum Layout {
    /// One JSON file, `name` in `dir`.
    Json { dir: PathBuf, name: String },
    /// One file per field in `dir`.
    Dir {
        dir: PathBuf,
        username: String,
        password: String,
    },
}

/// The content of the last read, and how many times it has changed.
#[derive(Default)]
struct Last {
    content: Option<SecretString>,
    changes: u64,
}

impl SecretFile {
    /// A source reading the RDS secret JSON from the file at `path`, e.g. `/mnt/secrets-store/db-secret`.
    pub fn json(path: impl Into<PathBuf>) -> Self {
        let path = path.into();
        let name = path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Self::with_layout(path.display().to_string(), Layout::Json { dir, name })
    }

    /// A source reading the files `username` and `password` (and, if present, `host`, `port`, `dbname` and
    /// `engine`) in the directory `dir`, e.g. `/mnt/secrets-store`.
    pub fn dir(dir: impl Into<PathBuf>) -> Self {
        Self::dir_files(dir, "username", "password")
    }

    /// Like [`SecretFile::dir`], with the user name in the file `username_file` and the password in
    /// `password_file` (names inside `dir`), e.g. the `objectAlias` names a `SecretProviderClass` gives them.
    pub fn dir_files(
        dir: impl Into<PathBuf>,
        username_file: impl Into<String>,
        password_file: impl Into<String>,
    ) -> Self {
        let dir = dir.into();
        Self::with_layout(
            dir.display().to_string(),
            Layout::Dir {
                dir,
                username: username_file.into(),
                password: password_file.into(),
            },
        )
    }

    fn with_layout(secret_id: String, layout: Layout) -> Self {
        Self {
            inner: Arc::new(Inner {
                secret_id,
                layout,
                last: Mutex::new(Last::default()),
                fetches: AtomicU64::new(0),
            }),
        }
    }

    /// How many times [`SecretSource::fetch`] has read the files.
    pub fn fetch_count(&self) -> u64 {
        self.inner.fetches.load(Ordering::Relaxed)
    }
}

impl Inner {
    /// Reads the files as one version and parses them. Under the lock, so that the change count follows the
    /// order in which versions were read, whichever caller asked.
    fn read(&self) -> Result<SecretVersion, SourceError> {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let text = self.read_text().map_err(|error| SourceError::Other {
            secret_id: self.secret_id.clone(),
            source: Box::new(error),
        })?;
        let mut version = parse_version(&self.secret_id, Stage::Current, String::new(), &text)?;
        let unchanged = last
            .content
            .as_ref()
            .is_some_and(|content| content.expose_secret() == text);
        if !unchanged {
            last.changes += 1;
            last.content = Some(SecretString::from(text));
        }
        version.version_id = format!("file-{}", last.changes);
        Ok(version)
    }

    /// The secret as RDS secret JSON: the JSON file's text, or a document made of the directory's files.
    fn read_text(&self) -> Result<String, FileError> {
        match &self.layout {
            Layout::Json { dir, name } => {
                let [text] = read_version(dir, [name.as_str()], &[])?.required;
                Ok(text)
            }
            Layout::Dir {
                dir,
                username,
                password,
            } => {
                let files =
                    read_version(dir, [username.as_str(), password.as_str()], &OPTIONAL_FILES)?;
                let [username, password] = files.required.map(trim_newlines);
                let mut fields = Map::new();
                fields.insert("username".to_owned(), Value::from(username));
                fields.insert("password".to_owned(), Value::from(password));
                for (field, text) in OPTIONAL_FILES.iter().zip(files.optional) {
                    if let Some(text) = text {
                        // `port` stays a string: the parser takes a string of digits and names `port` otherwise.
                        fields.insert((*field).to_owned(), Value::from(trim_newlines(text)));
                    }
                }
                Ok(Value::Object(fields).to_string())
            }
        }
    }
}

/// `text` without its trailing newlines.
fn trim_newlines(mut text: String) -> String {
    let kept = text.trim_end_matches(['\n', '\r']).len();
    text.truncate(kept);
    text
}

/// The files of one version.
struct Files<const N: usize> {
    required: [String; N],
    optional: Vec<Option<String>>,
}

/// Reads the `required` and `optional` files in `dir` as one version of the volume.
///
/// With `..data`, every file is read from the directory it names, and the read counts only if `..data` still
/// names that directory afterwards: the atomic writer gives each version a new directory and removes the old one
/// only after the swap, so an unchanged link proves that every file (and every absent optional file) belongs to
/// one version. Otherwise the read is repeated from the new directory.
fn read_version<const N: usize>(
    dir: &Path,
    required: [&str; N],
    optional: &[&str],
) -> Result<Files<N>, FileError> {
    for _ in 0..MAX_SWAPS_PER_READ {
        let target = data_target(dir)?;
        let base = target
            .as_ref()
            .map_or_else(|| dir.to_owned(), |t| dir.join(t));
        let read = read_files(&base, &required, optional);
        if target.is_some() {
            if data_target(dir)? != target {
                continue;
            }
        } else if let Err(Missing(name)) = &read {
            // A plain file replaced by a rename is never missing; a path that exists again was being swapped.
            if dir.join(name).exists() {
                continue;
            }
        }
        return read.map_err(|missing| FileError::Missing {
            path: dir.join(missing.0),
        })?;
    }
    Err(FileError::KeptChanging {
        dir: dir.to_owned(),
    })
}

/// A required file that does not exist.
struct Missing<'a>(&'a str);

/// Reads the files in `base`: `Err(Missing)` if a required one does not exist, `Ok(Err)` if one cannot be read.
fn read_files<'a, const N: usize>(
    base: &Path,
    required: &[&'a str; N],
    optional: &[&str],
) -> Result<Result<Files<N>, FileError>, Missing<'a>> {
    let mut texts = Vec::with_capacity(N);
    for name in required {
        match read_text(&base.join(name)) {
            Ok(Some(text)) => texts.push(text),
            Ok(None) => return Err(Missing(name)),
            Err(error) => return Ok(Err(error)),
        }
    }
    let mut optional_texts = Vec::with_capacity(optional.len());
    for name in optional {
        match read_text(&base.join(name)) {
            Ok(text) => optional_texts.push(text),
            Err(error) => return Ok(Err(error)),
        }
    }
    let required = texts
        .try_into()
        .unwrap_or_else(|_| unreachable!("one text per required file"));
    Ok(Ok(Files {
        required,
        optional: optional_texts,
    }))
}

/// The file's text, `None` if it does not exist.
fn read_text(path: &Path) -> Result<Option<String>, FileError> {
    match std::fs::read(path) {
        Ok(bytes) => String::from_utf8(bytes)
            .map(Some)
            .map_err(|_| FileError::NotText {
                path: path.to_owned(),
            }),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(FileError::Unreadable {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Where `dir/..data` points, or `None` if `dir` has no `..data` symlink (a plain directory).
fn data_target(dir: &Path) -> Result<Option<PathBuf>, FileError> {
    let link = dir.join(DATA_LINK);
    match std::fs::read_link(&link) {
        Ok(target) => Ok(Some(target)),
        // Absent, or not a symlink: not the atomic writer's layout.
        Err(error)
            if matches!(
                error.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::InvalidInput
            ) =>
        {
            Ok(None)
        }
        Err(source) => Err(FileError::Unreadable { path: link, source }),
    }
}

/// Why the secret's files could not be read. Carried by [`SourceError::Other`]; messages name the path, never the
/// content.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FileError {
    /// A file the secret needs does not exist.
    #[error(
        "`{}` does not exist; mount the secret there (a Secrets Store CSI driver volume, or a Kubernetes secret \
         volume written by External Secrets) or fix the path the pool is given",
        path.display()
    )]
    Missing {
        /// The file that was looked for.
        path: PathBuf,
    },
    /// A file exists but could not be read.
    #[error(
        "`{}` could not be read; check that it is a file this process may read",
        path.display()
    )]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// A file is not UTF-8 text.
    #[error(
        "`{}` is not UTF-8 text; the secret's files hold text (the RDS secret JSON, or one value per file)",
        path.display()
    )]
    NotText {
        /// The file.
        path: PathBuf,
    },
    /// `..data` was swapped again and again while the files were read.
    #[error(
        "the files in `{}` were replaced {MAX_SWAPS_PER_READ} times during one read; check what rewrites the \
         volume in a loop",
        dir.display()
    )]
    KeptChanging {
        /// The directory holding `..data`.
        dir: PathBuf,
    },
}

#[async_trait]
impl SecretSource for SecretFile {
    fn secret_id(&self) -> &str {
        &self.inner.secret_id
    }

    async fn fetch(&self, stage: Stage) -> Result<SecretVersion, SourceError> {
        if stage != Stage::Current {
            return Err(SourceError::StageNotFound {
                secret_id: self.inner.secret_id.clone(),
                stage,
            });
        }
        // Off the runtime's threads: a slow mount must not stall other tasks, and the pool's read timeout
        // still applies while the read runs.
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || inner.read())
            .await
            .unwrap_or_else(|join| {
                Err(SourceError::Other {
                    secret_id: self.inner.secret_id.clone(),
                    source: format!("the file read did not finish: {join}").into(),
                })
            })
    }
}

impl fmt::Debug for SecretFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &self.inner;
        let changes = inner.last.lock().unwrap_or_else(|e| e.into_inner()).changes;
        f.debug_struct("SecretFile")
            .field("layout", &inner.layout)
            .field("versions_seen", &changes)
            .field("fetches", &inner.fetches.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    const PASSWORD: &str = "hunter2-Xq9";

    /// A fresh directory, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> Self {
            static SERIAL: AtomicU64 = AtomicU64::new(0);
            let path = std::env::temp_dir().join(format!(
                "rotapool-file-unit-{}-{}",
                std::process::id(),
                SERIAL.fetch_add(1, Ordering::Relaxed)
            ));
            fs::create_dir_all(&path).unwrap();
            Self(path)
        }
        fn write(&self, name: &str, text: &str) {
            fs::write(self.0.join(name), text).unwrap();
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn json(user: &str, password: &str) -> String {
        format!(
            r#"{{"engine":"postgres","host":"db","port":5432,"username":"{user}","password":"{password}"}}"#
        )
    }

    #[tokio::test]
    async fn json_file_is_read_on_every_fetch_and_its_version_changes_only_with_its_content() {
        let dir = TempDir::new();
        dir.write("secret.json", &json("app", "one"));
        let source = SecretFile::json(dir.0.join("secret.json"));

        let first = source.fetch(Stage::Current).await.unwrap();
        assert_eq!(first.credentials.username(), "app");
        assert_eq!(first.credentials.password(), "one");
        assert_eq!(first.credentials.port(), Some(5432));
        let again = source.fetch(Stage::Current).await.unwrap();
        assert_eq!(again.version_id, first.version_id);

        dir.write("secret.json", &json("app", "two"));
        let second = source.fetch(Stage::Current).await.unwrap();
        assert_eq!(second.credentials.password(), "two");
        assert_ne!(second.version_id, first.version_id);

        // Back to the first content: a change like any other, so a rolled-back password is a new version.
        dir.write("secret.json", &json("app", "one"));
        let third = source.fetch(Stage::Current).await.unwrap();
        assert_ne!(third.version_id, second.version_id);
        assert_ne!(third.version_id, first.version_id);
        assert_eq!(source.fetch_count(), 4);
    }

    #[tokio::test]
    async fn only_the_current_stage_exists() {
        let dir = TempDir::new();
        dir.write("secret.json", &json("app", "one"));
        let source = SecretFile::json(dir.0.join("secret.json"));
        for stage in [Stage::Pending, Stage::Previous] {
            let err = source.fetch(stage).await.unwrap_err();
            assert!(
                matches!(err, SourceError::StageNotFound { stage: s, .. } if s == stage),
                "{err:?}"
            );
        }
        assert_eq!(source.fetch_count(), 0, "no other stage reads the file");
    }

    #[tokio::test]
    async fn directory_files_are_trimmed_of_trailing_newlines_only() {
        let dir = TempDir::new();
        dir.write("username", "app\n");
        dir.write("password", " pass word \r\n\n");
        dir.write("host", "db.internal\n");
        dir.write("port", "3306\n");
        dir.write("dbname", "orders");
        let creds = SecretFile::dir(&dir.0)
            .fetch(Stage::Current)
            .await
            .unwrap()
            .credentials;
        assert_eq!(creds.username(), "app");
        assert_eq!(creds.password(), " pass word ");
        assert_eq!(creds.host(), Some("db.internal"));
        assert_eq!(creds.port(), Some(3306));
        assert_eq!(creds.dbname(), Some("orders"));
        assert_eq!(creds.engine(), None);
    }

    #[tokio::test]
    async fn directory_files_can_have_other_names() {
        let dir = TempDir::new();
        dir.write("db-user", "app");
        dir.write("db-pass", PASSWORD);
        let creds = SecretFile::dir_files(&dir.0, "db-user", "db-pass")
            .fetch(Stage::Current)
            .await
            .unwrap()
            .credentials;
        assert_eq!((creds.username(), creds.password()), ("app", PASSWORD));
    }

    #[tokio::test]
    async fn a_missing_file_is_named_with_how_to_mount_it() {
        let dir = TempDir::new();
        dir.write("username", "app");
        let err = SecretFile::dir(&dir.0)
            .fetch(Stage::Current)
            .await
            .unwrap_err();
        let SourceError::Other { source, .. } = &err else {
            panic!("{err:?}")
        };
        let file_error = source.downcast_ref::<FileError>().expect("a FileError");
        assert!(
            matches!(file_error, FileError::Missing { path } if *path == dir.0.join("password")),
            "{file_error:?}"
        );
        let message = file_error.to_string();
        assert!(message.contains("password`"), "{message}");
        assert!(message.contains("mount"), "{message}");

        let err = SecretFile::json(dir.0.join("nope.json"))
            .fetch(Stage::Current)
            .await
            .unwrap_err();
        assert!(
            rotapool_chain(&err).contains("nope.json` does not exist"),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn an_unreadable_file_says_so() {
        let dir = TempDir::new();
        // A directory where the file should be: it exists, but cannot be read as a file.
        fs::create_dir(dir.0.join("secret.json")).unwrap();
        let err = SecretFile::json(dir.0.join("secret.json"))
            .fetch(Stage::Current)
            .await
            .unwrap_err();
        let chain = rotapool_chain(&err);
        assert!(chain.contains("could not be read"), "{chain}");
    }

    #[tokio::test]
    async fn malformed_content_is_invalid_content_naming_the_field_not_the_value() {
        let dir = TempDir::new();
        dir.write(
            "secret.json",
            &format!(r#"{{"username":"app","password":"{PASSWORD}","port":"http"}}"#),
        );
        let err = SecretFile::json(dir.0.join("secret.json"))
            .fetch(Stage::Current)
            .await
            .unwrap_err();
        assert!(matches!(err, SourceError::InvalidContent { .. }), "{err:?}");
        let chain = rotapool_chain(&err);
        assert!(chain.contains("`port`"), "{chain}");
        assert!(!chain.contains(PASSWORD) && !format!("{err:?}").contains(PASSWORD));

        dir.write("secret.json", &format!("{{\"password\":\"{PASSWORD}\""));
        let err = SecretFile::json(dir.0.join("secret.json"))
            .fetch(Stage::Current)
            .await
            .unwrap_err();
        assert!(matches!(err, SourceError::InvalidContent { .. }), "{err:?}");
        assert!(!format!("{} {err:?}", rotapool_chain(&err)).contains(PASSWORD));

        let files = TempDir::new();
        files.write("username", "app");
        files.write("password", PASSWORD);
        files.write("port", "five\n");
        let err = SecretFile::dir(&files.0)
            .fetch(Stage::Current)
            .await
            .unwrap_err();
        let chain = rotapool_chain(&err);
        assert!(chain.contains("`port`"), "{chain}");
        assert!(!format!("{chain} {err:?}").contains(PASSWORD));
    }

    #[tokio::test]
    async fn debug_never_shows_the_password() {
        let dir = TempDir::new();
        dir.write("username", "app");
        dir.write("password", PASSWORD);
        let source = SecretFile::dir(&dir.0);
        let version = source.fetch(Stage::Current).await.unwrap();
        let shown = format!("{source:?} {version:?} {}", version.version_id);
        assert!(!shown.contains(PASSWORD), "Debug showed the password");
        assert!(shown.contains("SecretFile"), "{source:?}");
        assert!(shown.contains("versions_seen: 1"), "{shown}");
    }

    /// The error and its causes, as an application would log them.
    fn rotapool_chain(error: &SourceError) -> String {
        let mut chain = error.to_string();
        let mut cause = std::error::Error::source(error);
        while let Some(next) = cause {
            chain.push_str(": ");
            chain.push_str(&next.to_string());
            cause = next.source();
        }
        chain
    }
}
