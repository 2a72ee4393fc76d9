//! The model: rotapool-core's fake database (`rotapool_core::fake`) as an engine and a server the simulator
//! drives like the real ones. It checks passwords and takes a set time per login and per query, with no network,
//! so that a thousand replicas fit on one machine and what is measured is the pools' own behaviour.

use std::{sync::Arc, time::Duration};

use rotapool_core::{
    fake::{FakeBackend, FakeConn, FakeDb},
    Backend, Credentials, Failure,
};
use rotapool_testkit::{Login, TestServer};

use crate::sim::SimBackend;

/// How long the fake's `SELECT 1` takes: a query over a network, so that a fleet's workload is one the
/// simulator's machine can drive without its CPU deciding the figures.
const QUERY_TIME: Duration = Duration::from_millis(10);

impl SimBackend for FakeBackend {
    const ENGINE: &'static str = "fake";
    const DBNAME: &'static str = "fake";

    async fn ping(_conn: &mut FakeConn) -> Result<(), String> {
        tokio::time::sleep(QUERY_TIME).await;
        Ok(())
    }
}

/// The fake database as a [`TestServer`]: it has one account, whose password every account call sets, and runs
/// no SQL.
pub(crate) struct FakeServer {
    db: Arc<FakeDb>,
}

impl FakeServer {
    /// A fake database whose logins take `login_latency`, and its backend.
    pub(crate) fn start(login_latency: Duration) -> (&'static Self, FakeBackend) {
        let db = FakeDb::new("initial");
        db.set_login_latency(login_latency);
        let server = Box::leak(Box::new(Self { db: db.clone() }));
        (server, FakeBackend(db))
    }
}

#[async_trait::async_trait]
impl TestServer for FakeServer {
    fn host(&self) -> &str {
        "fake"
    }

    fn port(&self) -> u16 {
        1
    }

    fn ca_file(&self) -> Option<&std::path::Path> {
        None
    }

    async fn execute(&self, sql: &str) {
        panic!("the fake database runs no SQL (asked for `{sql}`)")
    }

    async fn create_account(&self, _user: &str, password: &str) {
        self.db.set_password(password);
    }

    async fn create_admin_account(&self, _user: &str, _password: &str) {
        panic!("the fake database has one account: it has no master for the alternating-users strategy")
    }

    async fn set_password(&self, _user: &str, password: &str) {
        self.db.set_password(password);
    }

    async fn restart(&self) {
        self.db.stop();
        self.db.start();
    }

    async fn kill_sessions(&self, _user: &str) -> u64 {
        // The fake does not count its sessions: every one of them ends, and is told so at its next check.
        self.db.kill_sessions();
        0
    }

    async fn try_login(&self, user: &str, password: &str) -> Login {
        let backend = FakeBackend(self.db.clone());
        match backend.connect(&Credentials::new(user, password)).await {
            Ok(_) => Login::Accepted,
            Err(e) if backend.classify(&e) == Failure::Auth => Login::BadCredentials,
            Err(e) => Login::Failed(e.to_string()),
        }
    }
}
