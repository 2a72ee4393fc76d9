//! A rotation through a mounted secret, under load, on real PostgreSQL and MariaDB: a pool reads a directory in
//! the layout of Kubernetes' atomic writer (what the Secrets Store CSI driver and External Secrets leave in a
//! pod), its connections live 100 ms so new logins keep happening, and the password changes on the database and
//! in the volume, in either order. Each case proves that the server rejects the old password before it looks at
//! what the application saw, and prints the figures of the rotation: application errors, reads of the files and
//! failed logins.

// The conformance module's servers, pools and workload; this file runs none of its scenarios.
#[macro_use]
mod conformance;

use std::{sync::Arc, time::Duration};

use conformance::{
    assert_rejected,
    mariadb::MariaDb,
    pools::{RotapoolPool, TestPool},
    postgres::Postgres,
    workload::{wait_until, Workload},
    TestDb,
};
use rotapool_core::{source::SecretFile, PoolBuilder, ProactiveRefresh};
use rotapool_testkit::{
    random_password, unique_name, AtomicDir, MariaDbServer, PgServer, TestServer,
};

/// An account on the server and the volume that holds its credentials, one file per field.
struct Mounted {
    user: String,
    password: String,
    volume: AtomicDir,
    source: Arc<SecretFile>,
}

impl Mounted {
    async fn new<D: TestDb>(db: &D) -> Self {
        let user = unique_name("app");
        let password = random_password();
        db.server().create_account(&user, &password).await;
        let volume = AtomicDir::new("file-rotation");
        publish(db, &volume, &user, &password);
        let source = Arc::new(SecretFile::dir(volume.path()));
        Self {
            user,
            password,
            volume,
            source,
        }
    }

    /// Swaps the volume to `password`, as the CSI driver's rotation reconciler or the kubelet does.
    fn swap<D: TestDb>(&self, db: &D, password: &str) {
        publish(db, &self.volume, &self.user, password);
    }
}

/// Writes the account's files, each with the trailing newline a `jmesPath` split or `echo` leaves.
fn publish<D: TestDb>(db: &D, volume: &AtomicDir, user: &str, password: &str) {
    let server = db.server();
    let port = server.port().to_string();
    let files = [
        ("username", user),
        ("password", password),
        ("host", server.host()),
        ("port", port.as_str()),
        ("dbname", db.dbname()),
        ("engine", db.engine()),
    ]
    .map(|(name, value)| (name, format!("{value}\n")));
    let files: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(name, text)| (*name, text.as_bytes()))
        .collect();
    volume.write(&files).expect("the atomic write");
}

/// A pool of 4 whose connections live 100 ms, and that reads the files every 500 ms besides after a rejection.
/// While logins fail, it reads them every second (the default `RefreshPolicy`).
async fn churning_pool<D: TestDb>(db: &D, mounted: &Mounted) -> RotapoolPool<D> {
    let pool = PoolBuilder::new(db.backend())
        .secret_source(mounted.source.clone())
        .max_size(4)
        .max_lifetime(Some(Duration::from_millis(100)))
        .proactive_refresh(Some(ProactiveRefresh {
            interval: Duration::from_millis(500),
            after_rotation: Duration::from_millis(500),
        }))
        .build()
        .await
        .expect("the pool builds");
    RotapoolPool {
        db: db.clone(),
        pool,
    }
}

/// A fresh account on a mounted volume, a churning pool reading it under 8 tasks of load once 10 new connections
/// have come, and the pool's counters at that point.
struct Loaded<D: TestDb> {
    mounted: Mounted,
    pool: RotapoolPool<D>,
    workload: Workload,
    reads: u64,
    failed: u64,
}

impl<D: TestDb> Loaded<D> {
    async fn start(db: &D) -> Self {
        let mounted = Mounted::new(db).await;
        let pool = churning_pool(db, &mounted).await;
        let workload = Workload::start(&pool, 8);
        workload
            .wait_for_new_connections(10, std::time::Instant::now())
            .await;
        let (reads, failed) = (mounted.source.fetch_count(), pool.stats().auth_failures);
        Self {
            mounted,
            pool,
            workload,
            reads,
            failed,
        }
    }
}

/// What one rotation cost.
struct Figures {
    app_errors: usize,
    file_reads: u64,
    failed_logins: u64,
}

impl Figures {
    fn print(&self, what: &str) {
        println!(
            "{what}: {} application errors, {} reads of the files, {} failed logins",
            self.app_errors, self.file_reads, self.failed_logins
        );
    }
}

/// The volume is swapped first, and the database follows: a store ahead of the database. The pool reads the new
/// files, finds that the database rejects them, keeps the password that works, and moves once the database has
/// changed. Zero application errors.
async fn volume_swapped_before_the_database_changes<D: TestDb>(db: D) -> Figures {
    let Loaded {
        mounted,
        pool,
        workload,
        reads,
        failed,
    } = Loaded::start(&db).await;

    let new_password = random_password();
    mounted.swap(&db, &new_password);
    // The pool reads the new files and its trial login with them is rejected: the store is ahead.
    wait_until(
        "the pool tried the new files and the database refused them",
        || pool.stats().auth_failures > failed,
    )
    .await;
    assert_eq!(
        pool.generation(),
        1,
        "the pool kept the password that works"
    );

    db.server().set_password(&mounted.user, &new_password).await;
    assert_rejected(&db, &mounted.user, &mounted.password).await;
    wait_until("the pool moves to the new password", || {
        pool.generation() == 2
    })
    .await;
    workload
        .wait_for_new_connections(10, std::time::Instant::now())
        .await;
    let figures = Figures {
        app_errors: workload.errors().len(),
        file_reads: mounted.source.fetch_count() - reads,
        failed_logins: pool.stats().auth_failures - failed,
    };
    workload.stop_expecting_no_errors().await;
    assert_eq!(pool.password(), new_password);
    figures
}

/// The database changes first and the volume is swapped shortly after, the order of a Secrets Manager rotation
/// seen through the CSI driver (setSecret, then finishSecret, then the driver's next poll). Between the two, the
/// files hold a password the database rejects and nothing holds the new one: if the pool needs a login in that
/// gap, the read after the rejection finds the old files, and `get()`s that need a new connection fail with the
/// rejection until the next read (the refresh policy's `retry_interval`, or the proactive refresh, whichever
/// comes first). Asserted: every error is that rejection, the pool moves to the swapped files, and no `get()`
/// fails after it has. The number of errors depends on whether a login fell into the gap; it is printed.
async fn database_changed_before_the_volume_is_swapped<D: TestDb>(db: D) -> Figures {
    let Loaded {
        mounted,
        pool,
        workload,
        reads,
        failed,
    } = Loaded::start(&db).await;

    let new_password = random_password();
    db.server().set_password(&mounted.user, &new_password).await;
    assert_rejected(&db, &mounted.user, &mounted.password).await;
    mounted.swap(&db, &new_password);
    wait_until("the pool moves to the new password", || {
        pool.generation() == 2
    })
    .await;
    // Gets that failed before the move may still be on their way to the tally; past these, none may fail.
    workload
        .wait_for_new_connections(10, std::time::Instant::now())
        .await;
    let errors_in_the_gap = workload.errors();
    workload
        .wait_for_new_connections(10, std::time::Instant::now())
        .await;
    let errors = workload.errors();
    let figures = Figures {
        app_errors: errors.len(),
        file_reads: mounted.source.fetch_count() - reads,
        failed_logins: pool.stats().auth_failures - failed,
    };
    assert_eq!(
        errors.len(),
        errors_in_the_gap.len(),
        "gets failed after the pool moved to the swapped files: {errors:?}"
    );
    assert!(
        errors
            .iter()
            .all(|e| <RotapoolPool<D> as TestPool>::is_rejection(e)),
        "every error in the gap is the database's rejection of the old password: {errors:?}"
    );
    assert!(workload.served() > 0, "the workload served nothing");
    assert_eq!(pool.password(), new_password);
    figures
}

fn pg() -> Postgres {
    Postgres(PgServer::shared())
}

fn mariadb() -> MariaDb {
    MariaDb(MariaDbServer::shared())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_volume_swapped_before_the_database_changes() {
    volume_swapped_before_the_database_changes(pg())
        .await
        .print("PostgreSQL, volume first");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_volume_swapped_before_the_database_changes() {
    volume_swapped_before_the_database_changes(mariadb())
        .await
        .print("MariaDB, volume first");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_database_changed_before_the_volume_is_swapped() {
    database_changed_before_the_volume_is_swapped(pg())
        .await
        .print("PostgreSQL, database first");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_database_changed_before_the_volume_is_swapped() {
    database_changed_before_the_volume_is_swapped(mariadb())
        .await
        .print("MariaDB, database first");
}
