//! A fake database and a secret store whose faults the tests switch on and off, for fast, deterministic tests of
//! the manager and the refresher under paused time. Rotation against real servers is tested at the workspace root.

// Each test binary uses part of this module.
#![allow(dead_code)]

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use async_trait::async_trait;
use rotapool_core::{
    Backend, Credentials, Failure, InMemorySecretStore, Pool, PoolBuilder, ProactiveRefresh, Reuse,
    SecretSource, SecretVersion, SourceError, Stage,
};

/// What the fake secret store does when read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreMode {
    /// Answers from the in-memory store.
    Up,
    /// Fails at once, as a store that refuses connections does.
    Down,
    /// Never answers, as a store that accepts connections but is frozen does.
    Hung,
}

/// An in-memory secret store in front of which faults can be switched on.
#[derive(Debug)]
pub struct FaultyStore {
    pub store: InMemorySecretStore,
    mode: Mutex<StoreMode>,
    reads: AtomicU64,
}

impl FaultyStore {
    pub fn new(password: &str) -> Arc<Self> {
        Arc::new(Self {
            store: InMemorySecretStore::new("test/db", &Credentials::new("app", password)),
            mode: Mutex::new(StoreMode::Up),
            reads: AtomicU64::new(0),
        })
    }

    pub fn set(&self, mode: StoreMode) {
        *self.mode.lock().unwrap() = mode;
    }

    /// Puts `password` as the new AWSCURRENT version, whatever the mode.
    pub fn rotate_to(&self, password: &str) {
        self.store.put_current(&Credentials::new("app", password));
    }

    /// Reads attempted, failed and hung ones included.
    pub fn reads(&self) -> u64 {
        self.reads.load(Ordering::Relaxed)
    }
}

#[async_trait]
impl SecretSource for FaultyStore {
    fn secret_id(&self) -> &str {
        "test/db"
    }

    async fn fetch(&self, stage: Stage) -> Result<SecretVersion, SourceError> {
        self.reads.fetch_add(1, Ordering::Relaxed);
        let mode = *self.mode.lock().unwrap();
        match mode {
            StoreMode::Up => self.store.fetch(stage).await,
            StoreMode::Down => Err(SourceError::Unreachable {
                secret_id: "test/db".into(),
                source: "connection refused".into(),
            }),
            StoreMode::Hung => std::future::pending().await,
        }
    }
}

/// A database with one account whose password can change, and which can be taken down.
#[derive(Debug)]
pub struct FakeDb {
    password: Mutex<String>,
    /// Bumped by each restart; connections from an older epoch are dead.
    epoch: AtomicU64,
    down: Mutex<bool>,
    pub logins: AtomicU64,
    pub rejected: AtomicU64,
    pub refused: AtomicU64,
}

impl FakeDb {
    pub fn new(password: &str) -> Arc<Self> {
        Arc::new(Self {
            password: Mutex::new(password.into()),
            epoch: AtomicU64::new(0),
            down: Mutex::new(false),
            logins: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        })
    }

    /// ALTER USER: open sessions survive, new logins need `password`.
    pub fn set_password(&self, password: &str) {
        *self.password.lock().unwrap() = password.into();
    }

    /// Stops the server: every open session dies, and logins are refused until [`FakeDb::start`].
    pub fn stop(&self) {
        *self.down.lock().unwrap() = true;
        self.epoch.fetch_add(1, Ordering::Relaxed);
    }

    /// Ends every open session (as `pg_terminate_backend` does); the server stays up.
    pub fn kill_sessions(&self) {
        self.epoch.fetch_add(1, Ordering::Relaxed);
    }

    pub fn start(&self) {
        *self.down.lock().unwrap() = false;
    }
}

/// Why the fake database refused a login.
#[derive(Debug, thiserror::Error)]
pub enum FakeError {
    #[error("28P01: password authentication failed for user \"app\"")]
    BadPassword,
    #[error("connection refused")]
    Refused,
    #[error("connection closed")]
    Closed,
}

/// A session on the fake database.
#[derive(Debug)]
pub struct FakeConn {
    epoch: u64,
}

/// The backend for [`FakeDb`].
#[derive(Debug, Clone)]
pub struct FakeBackend(pub Arc<FakeDb>);

impl Backend for FakeBackend {
    type Connection = FakeConn;
    type Error = FakeError;

    async fn connect(&self, credentials: &Credentials) -> Result<FakeConn, FakeError> {
        let db = &self.0;
        db.logins.fetch_add(1, Ordering::Relaxed);
        // A login takes a moment, as a real one does, so that callers overlap.
        tokio::time::sleep(Duration::from_millis(2)).await;
        if *db.down.lock().unwrap() {
            db.refused.fetch_add(1, Ordering::Relaxed);
            return Err(FakeError::Refused);
        }
        if credentials.password() != *db.password.lock().unwrap() {
            db.rejected.fetch_add(1, Ordering::Relaxed);
            return Err(FakeError::BadPassword);
        }
        Ok(FakeConn {
            epoch: db.epoch.load(Ordering::Relaxed),
        })
    }

    fn classify(&self, error: &FakeError) -> Failure {
        match error {
            FakeError::BadPassword => Failure::Auth,
            FakeError::Refused | FakeError::Closed => Failure::Transient,
        }
    }

    async fn check(&self, connection: &mut FakeConn) -> Reuse<FakeError> {
        if connection.epoch == self.0.epoch.load(Ordering::Relaxed) {
            Reuse::Keep
        } else {
            Reuse::Broken(FakeError::Closed)
        }
    }
}

/// A rotation as the pool meets it: the secret's new `AWSCURRENT` is `password`, the database takes only
/// `password` from now on, and every open session is killed so that the next `get()` logs in.
pub fn rotate(db: &FakeDb, store: &FaultyStore, password: &str) {
    store.rotate_to(password);
    db.set_password(password);
    db.kill_sessions();
}

/// A pool of 4 on `db`, reading `store`, without the proactive refresh (the tests drive every read).
pub async fn pool(db: &Arc<FakeDb>, store: &Arc<FaultyStore>) -> Pool<FakeBackend> {
    builder(db, store).build().await.expect("the pool builds")
}

/// The builder [`pool`] uses, to adjust.
pub fn builder(db: &Arc<FakeDb>, store: &Arc<FaultyStore>) -> PoolBuilder<FakeBackend> {
    PoolBuilder::new(FakeBackend(db.clone()))
        .secret_source(store.clone())
        .max_size(4)
        .proactive_refresh(None)
}

/// The proactive refresh every second, as a pool that reads its secret often does.
pub fn proactive_every_second() -> Option<ProactiveRefresh> {
    Some(ProactiveRefresh {
        interval: Duration::from_secs(1),
        after_rotation: Duration::from_secs(60),
    })
}

/// What a stretch of traffic saw.
#[derive(Debug, Default)]
pub struct Served {
    pub ok: u64,
    pub errors: Vec<String>,
}

/// One `get()` every 10 ms for `duration`, each borrowed for a moment, with every session killed before each
/// `get()` so that each one logs in; returns what they saw. (deadpool measures ages with the wall clock, which
/// paused time does not move, so `max_lifetime` cannot force new logins here.)
pub async fn serve(pool: &Pool<FakeBackend>, db: &FakeDb, duration: Duration) -> Served {
    let mut served = Served::default();
    let end = tokio::time::Instant::now() + duration;
    while tokio::time::Instant::now() < end {
        db.kill_sessions();
        match pool.get().await {
            Ok(conn) => {
                served.ok += 1;
                drop(conn);
            }
            Err(e) => served.errors.push(e.to_string()),
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    served
}
