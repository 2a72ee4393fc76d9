//! A directory updated the way Kubernetes' atomic writer updates secret volumes, the Secrets Store CSI driver's
//! mounts and the secrets External Secrets writes: each version goes into a new hidden timestamped directory,
//! `..data` is swapped to it with one rename, and the visible files are symlinks through `..data`.
//!
//! Written from the steps documented in kubernetes `pkg/volume/util/atomic_writer.go` (`AtomicWriter.Write`):
//! 5. create `..<UTC timestamp>.<random>` (mode 0755); 6. write every file into it; 7. create a visible symlink
//! `name -> ..data/name` for each new name; 8. symlink `..data_tmp -> ..<timestamp>...`; 9. rename `..data_tmp`
//! over `..data` (the atomic step); 10. remove visible links of names no longer written; 11. remove the old
//! timestamped directory.

use std::{
    fs, io,
    os::unix::fs::{symlink, PermissionsExt},
    path::{Path, PathBuf},
    sync::atomic::{AtomicU64, Ordering},
    time::{SystemTime, UNIX_EPOCH},
};

const DATA: &str = "..data";
const DATA_TMP: &str = "..data_tmp";

/// A directory in the atomic writer's layout, removed when dropped.
#[derive(Debug)]
pub struct AtomicDir {
    root: PathBuf,
}

impl AtomicDir {
    /// A new, empty directory under the system's temp directory.
    pub fn new(prefix: &str) -> Self {
        let root = temp_path(prefix);
        fs::create_dir_all(&root).expect("create the volume directory");
        Self { root }
    }

    /// The directory a pod would see as its mount point.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// The visible path of `name` in the volume (a symlink through `..data`).
    pub fn file(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// Publishes `files` (name, content) as the volume's new content, with the atomic writer's steps.
    pub fn write(&self, files: &[(&str, &[u8])]) -> io::Result<()> {
        let old = fs::read_link(self.root.join(DATA)).ok();
        let old_names: Vec<String> = match &old {
            Some(old) => fs::read_dir(self.root.join(old))?
                .filter_map(|entry| entry.ok())
                .map(|entry| entry.file_name().to_string_lossy().into_owned())
                .collect(),
            None => Vec::new(),
        };
        // (5) A new timestamped directory, named as the writer names it: `..2006_01_02_15_04_05.` + random.
        let stamp = timestamp_name();
        let new_dir = self.root.join(&stamp);
        fs::create_dir(&new_dir)?;
        fs::set_permissions(&new_dir, fs::Permissions::from_mode(0o755))?;
        // (6) The payload.
        for (name, content) in files {
            let path = new_dir.join(name);
            fs::write(&path, content)?;
            fs::set_permissions(&path, fs::Permissions::from_mode(0o644))?;
        }
        // (7) Visible links for names that have none yet.
        for (name, _) in files {
            let visible = self.root.join(name);
            if fs::symlink_metadata(&visible).is_err() {
                symlink(Path::new(DATA).join(name), &visible)?;
            }
        }
        // (8) and (9): the swap.
        let tmp = self.root.join(DATA_TMP);
        symlink(&stamp, &tmp)?;
        fs::rename(&tmp, self.root.join(DATA))?;
        // (10) Names the new version no longer has.
        for name in old_names
            .iter()
            .filter(|old| !files.iter().any(|(name, _)| name == old))
        {
            fs::remove_file(self.root.join(name))?;
        }
        // (11) The old version.
        if let Some(old) = old {
            fs::remove_dir_all(self.root.join(old))?;
        }
        Ok(())
    }

    /// The timestamped directory `..data` points at now.
    pub fn current_target(&self) -> Option<PathBuf> {
        fs::read_link(self.root.join(DATA)).ok()
    }
}

impl Drop for AtomicDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.root);
    }
}

/// Replaces the file at `path` with `content` the way most tools do: write a temporary file beside it, then
/// rename it over the old one.
pub fn replace_file(path: &Path, content: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension(format!("tmp{}", next_serial()));
    fs::write(&tmp, content)?;
    fs::rename(&tmp, path)
}

/// A path under the system's temp directory that no other test uses.
pub fn temp_path(prefix: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "rotapool-{prefix}-{}-{}",
        std::process::id(),
        next_serial()
    ))
}

/// A number this process has not handed out before: it makes temporary names unique among the test's threads.
pub(crate) fn next_serial() -> u64 {
    static SERIAL: AtomicU64 = AtomicU64::new(0);
    SERIAL.fetch_add(1, Ordering::Relaxed)
}

/// `..YYYY_MM_DD_HH_MM_SS.<digits>` for now (UTC), unique within the process.
fn timestamp_name() -> String {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is past 1970");
    let secs = since_epoch.as_secs();
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    format!(
        "..{year:04}_{month:02}_{day:02}_{:02}_{:02}_{:02}.{}{:04}",
        rest / 3600,
        rest / 60 % 60,
        rest % 60,
        since_epoch.subsec_nanos(),
        next_serial() % 10_000
    )
}

/// The proleptic Gregorian date of `days` since 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swaps_data_and_removes_the_old_version() {
        let dir = AtomicDir::new("atomic-dir-self-test");
        dir.write(&[("username", b"a"), ("password", b"1")])
            .unwrap();
        let first = dir.current_target().unwrap();
        assert!(first.to_string_lossy().starts_with("..20"), "{first:?}");
        assert_eq!(
            fs::read_link(dir.file("password")).unwrap(),
            Path::new("..data/password")
        );
        dir.write(&[("username", b"b"), ("password", b"2")])
            .unwrap();
        assert_ne!(dir.current_target().unwrap(), first);
        assert!(!dir.path().join(&first).exists());
        assert_eq!(fs::read(dir.file("password")).unwrap(), b"2");
        assert!(!dir.path().join(DATA_TMP).exists());
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_818), (2026, 12, 31));
    }
}
