//! The file source under the swaps that rotate mounted secrets, done the way the tools do them: Kubernetes'
//! atomic writer (`..data` swapped to a new timestamped directory, the old one removed), which secret volumes,
//! the Secrets Store CSI driver and External Secrets use, and a plain file replaced by a rename. A tight loop of
//! swaps races a tight loop of reads: no read may fail, mix two versions, or go back to an older one, and the
//! version id must change exactly when the content does.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    thread,
};

use rotapool_core::{
    source::{SecretFile, SecretSource},
    Credentials, Stage,
};
use rotapool_testkit::{replace_file, temp_path, AtomicDir};

/// Swaps per race: enough for thousands of reads to land between, and on, swaps.
const SWAPS: u64 = 2_000;

/// The version a read saw, from the number every field of version `k` carries.
fn version_of(credentials: &Credentials) -> u64 {
    let numbers: Vec<u64> = [
        credentials.username().strip_prefix("user-"),
        credentials.password().strip_prefix("pass-"),
        credentials.dbname().and_then(|d| d.strip_prefix("db-")),
    ]
    .into_iter()
    .map(|field| {
        field
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("a field is missing or partial: {credentials:?}"))
    })
    .collect();
    assert!(
        numbers.windows(2).all(|w| w[0] == w[1]),
        "one read mixed versions {numbers:?} (user, password, dbname)"
    );
    numbers[0]
}

/// What the readers saw.
struct Race {
    reads: u64,
    versions_seen: usize,
}

/// Runs `swap(k)` for k = 2..=SWAPS on a thread while two tasks read `source` in a loop; fails on any read error,
/// mixed or older version, or version id that does not follow the content.
async fn race(source: SecretFile, swap: impl Fn(u64) + Send + 'static) -> Race {
    let source = Arc::new(source);
    let done = Arc::new(AtomicBool::new(false));
    let writer = {
        let done = done.clone();
        thread::spawn(move || {
            for k in 2..=SWAPS {
                swap(k);
            }
            done.store(true, Ordering::Release);
        })
    };
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (source, done) = (source.clone(), done.clone());
            tokio::spawn(async move {
                let mut seen: Vec<(u64, String)> = Vec::new();
                let mut last = 0;
                while !done.load(Ordering::Acquire) {
                    let version = source
                        .fetch(Stage::Current)
                        .await
                        .unwrap_or_else(|e| panic!("a read failed during the swaps: {e:?}"));
                    let k = version_of(&version.credentials);
                    assert!(k >= last, "read version {k} after version {last}");
                    last = k;
                    seen.push((k, version.version_id));
                }
                seen
            })
        })
        .collect();
    let mut seen = Vec::new();
    for reader in readers {
        seen.extend(reader.await.expect("a reader panicked"));
    }
    writer.join().expect("the writer panicked");

    let mut id_of: HashMap<u64, String> = HashMap::new();
    let mut version_of_id: HashMap<String, u64> = HashMap::new();
    for (k, id) in &seen {
        assert_eq!(
            id_of.entry(*k).or_insert_with(|| id.clone()),
            id,
            "version {k} was read under two ids"
        );
        assert_eq!(
            version_of_id.entry(id.clone()).or_insert(*k),
            k,
            "id {id} was given to two contents"
        );
    }
    Race {
        reads: seen.len() as u64,
        versions_seen: id_of.len(),
    }
}

fn fields(k: u64) -> [(String, String); 3] {
    [
        ("username".to_owned(), format!("user-{k}\n")),
        ("password".to_owned(), format!("pass-{k}\n")),
        ("dbname".to_owned(), format!("db-{k}\n")),
    ]
}

fn write_fields(volume: &AtomicDir, k: u64) {
    let files = fields(k);
    let files: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(name, text)| (name.as_str(), text.as_bytes()))
        .collect();
    volume.write(&files).expect("the atomic write");
}

fn secret_json(k: u64) -> String {
    Credentials::new(format!("user-{k}"), format!("pass-{k}"))
        .with_dbname(format!("db-{k}"))
        .to_secret_json()
}

fn assert_raced(race: &Race, what: &str) {
    println!(
        "{what}: {SWAPS} swaps, {} reads, {} versions seen",
        race.reads, race.versions_seen
    );
    assert!(
        race.versions_seen >= 10,
        "the reads saw only {} versions: they did not race the swaps",
        race.versions_seen
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_file_per_field_is_never_mixed_across_atomic_writer_swaps() {
    let volume = Arc::new(AtomicDir::new("file-swap-dir"));
    write_fields(&volume, 1);
    let source = SecretFile::dir(volume.path());
    let race = race(source, {
        let volume = volume.clone();
        move |k| write_fields(&volume, k)
    })
    .await;
    assert_raced(&race, "one file per field, atomic writer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_json_file_in_an_atomic_writer_volume_is_read_whole_across_swaps() {
    let volume = Arc::new(AtomicDir::new("file-swap-json"));
    volume
        .write(&[("db-secret", secret_json(1).as_bytes())])
        .unwrap();
    let source = SecretFile::json(volume.file("db-secret"));
    let race = race(source, {
        let volume = volume.clone();
        move |k| {
            volume
                .write(&[("db-secret", secret_json(k).as_bytes())])
                .expect("the atomic write")
        }
    })
    .await;
    assert_raced(&race, "one JSON file, atomic writer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_json_file_replaced_by_a_rename_is_read_whole() {
    let dir = temp_path("file-swap-rename");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("secret.json");
    std::fs::write(&path, secret_json(1)).unwrap();
    let source = SecretFile::json(&path);
    let race = race(source, {
        let path = path.clone();
        move |k| replace_file(&path, secret_json(k).as_bytes()).expect("the rename")
    })
    .await;
    let _ = std::fs::remove_dir_all(&dir);
    assert_raced(&race, "one JSON file, write and rename");
}
