//! A fake database that checks passwords, and a secret store whose faults a test switches on and off: fast,
//! deterministic tests of a rotating login under paused time, and benches and simulations that measure the
//! pool's own cost with no network. Not for production: enable the `fake` feature in dev-dependencies only.

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use async_trait::async_trait;

use crate::{
    backend::{Backend, Failure, Reuse},
    credentials::Credentials,
    source::{InMemorySecretStore, SecretSource, SecretVersion, SourceError, Stage},
};

/// How long a login to a [`FakeDb`] takes unless [`FakeDb::set_login_latency`] says otherwise.
const DEFAULT_LOGIN_LATENCY: Duration = Duration::from_millis(2);

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
    /// The store behind the faults, to rotate or inspect.
    pub store: InMemorySecretStore,
    mode: Mutex<StoreMode>,
    reads: AtomicU64,
}

impl FaultyStore {
    /// A store holding `app` / `password` as `AWSCURRENT`, answering normally.
    pub fn new(password: &str) -> Arc<Self> {
        Arc::new(Self {
            store: InMemorySecretStore::new("test/db", &Credentials::new("app", password)),
            mode: Mutex::new(StoreMode::Up),
            reads: AtomicU64::new(0),
        })
    }

    /// Switches the store's behaviour from the next read on.
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
    /// Logins attempted.
    pub logins: AtomicU64,
    /// Logins rejected for a wrong password.
    pub rejected: AtomicU64,
    /// Logins refused because the database was down.
    pub refused: AtomicU64,
    /// The most logins that were ever in flight at once.
    pub peak_logins: AtomicU64,
    /// The longest run of rejected logins with no accepted one between them, in the order the database decided
    /// them: what a server that blocks an account after so many failed logins (MariaDB `max_password_errors`)
    /// counts.
    pub most_rejected_in_a_row: AtomicU64,
    rejected_in_a_row: AtomicU64,
    in_flight: AtomicU64,
    /// How long a login takes, in microseconds.
    login_micros: AtomicU64,
}

impl FakeDb {
    /// A database that takes only `password`, up and with no sessions.
    pub fn new(password: &str) -> Arc<Self> {
        Arc::new(Self {
            password: Mutex::new(password.into()),
            epoch: AtomicU64::new(0),
            down: Mutex::new(false),
            logins: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            peak_logins: AtomicU64::new(0),
            most_rejected_in_a_row: AtomicU64::new(0),
            rejected_in_a_row: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            login_micros: AtomicU64::new(DEFAULT_LOGIN_LATENCY.as_micros() as u64),
        })
    }

    /// Makes every login from now on take `latency` (2 ms unless set), as a login over a network with TLS does;
    /// a real one takes milliseconds, so that callers overlap and a fleet's logins pile up. As on a real server,
    /// the password is checked half-way: a rejected login ends there, an accepted one goes on with the rest of
    /// the session's start-up.
    pub fn set_login_latency(&self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.login_micros.store(micros, Ordering::Relaxed);
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

    /// Brings the database back up.
    pub fn start(&self) {
        *self.down.lock().unwrap() = false;
    }
}

/// Why the fake database refused a login.
#[derive(Debug, thiserror::Error)]
pub enum FakeError {
    /// The password was wrong.
    #[error("28P01: password authentication failed for user \"app\"")]
    BadPassword,
    /// The database is down.
    #[error("connection refused")]
    Refused,
    /// The session was killed.
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
        let _in_flight = InFlight::enter(db);
        // A login takes a moment, as a real one does, so that callers overlap: the handshake up to the password's
        // check, then, if it is accepted, the rest of the start-up.
        let half = Duration::from_micros(db.login_micros.load(Ordering::Relaxed)) / 2;
        tokio::time::sleep(half).await;
        if *db.down.lock().unwrap() {
            db.refused.fetch_add(1, Ordering::Relaxed);
            return Err(FakeError::Refused);
        }
        if credentials.password() != *db.password.lock().unwrap() {
            db.rejected.fetch_add(1, Ordering::Relaxed);
            let in_a_row = db.rejected_in_a_row.fetch_add(1, Ordering::Relaxed) + 1;
            db.most_rejected_in_a_row
                .fetch_max(in_a_row, Ordering::Relaxed);
            return Err(FakeError::BadPassword);
        }
        db.rejected_in_a_row.store(0, Ordering::Relaxed);
        tokio::time::sleep(half).await;
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

/// Counts a login in [`FakeDb::peak_logins`] while it is in flight, cancelled ones included.
struct InFlight<'a>(&'a FakeDb);

impl<'a> InFlight<'a> {
    fn enter(db: &'a FakeDb) -> Self {
        let now = db.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        db.peak_logins.fetch_max(now, Ordering::Relaxed);
        Self(db)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A rotation as the pool meets it: the secret's new `AWSCURRENT` is `password`, the database takes only
/// `password` from now on, and every open session is killed so that the next `get()` logs in.
pub fn rotate(db: &FakeDb, store: &FaultyStore, password: &str) {
    store.rotate_to(password);
    db.set_password(password);
    db.kill_sessions();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_login_takes_the_latency_set() {
        let db = FakeDb::new("pw");
        let backend = FakeBackend(db.clone());
        let login = Credentials::new("app", "pw");
        let started = tokio::time::Instant::now();
        backend.connect(&login).await.unwrap();
        assert_eq!(started.elapsed(), DEFAULT_LOGIN_LATENCY);

        db.set_login_latency(Duration::from_millis(40));
        let started = tokio::time::Instant::now();
        backend.connect(&login).await.unwrap();
        assert_eq!(started.elapsed(), Duration::from_millis(40));

        let started = tokio::time::Instant::now();
        backend
            .connect(&Credentials::new("app", "wrong"))
            .await
            .unwrap_err();
        assert_eq!(
            started.elapsed(),
            Duration::from_millis(20),
            "a rejected login ends at the password's check"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_accepted_login_ends_a_run_of_rejected_ones() {
        let db = FakeDb::new("pw");
        let backend = FakeBackend(db.clone());
        let wrong = Credentials::new("app", "wrong");
        for _ in 0..2 {
            backend.connect(&wrong).await.unwrap_err();
        }
        backend
            .connect(&Credentials::new("app", "pw"))
            .await
            .unwrap();
        backend.connect(&wrong).await.unwrap_err();
        assert_eq!(db.most_rejected_in_a_row.load(Ordering::Relaxed), 2);
        assert_eq!(db.rejected.load(Ordering::Relaxed), 3);
    }
}
