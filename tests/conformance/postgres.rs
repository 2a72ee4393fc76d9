//! The PostgreSQL server behind the conformance scenarios.

use super::TestDb;
use std::path::Path;

use async_trait::async_trait;
use rotapool_core::Object;
use rotapool_postgres::{PgBackend, SslMode};
use rotapool_testkit::PgServer;
use tokio_postgres::error::SqlState;

/// The shared private PostgreSQL of this test process.
#[derive(Clone, Copy)]
pub struct Postgres(pub &'static PgServer);

#[async_trait]
impl TestDb for Postgres {
    type Backend = PgBackend;

    fn backend_with_tls(&self, mode: SslMode, ca_file: Option<&Path>) -> PgBackend {
        let backend = PgBackend::new().ssl_mode(mode);
        match ca_file {
            Some(path) => backend.ca_file(path).expect("the test CA loads"),
            None => backend,
        }
    }

    fn ca_file(&self) -> Option<&'static Path> {
        self.0.ca_file()
    }

    async fn is_encrypted(&self, conn: &mut Object<PgBackend>) -> bool {
        conn.query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .expect("pg_stat_ssl")
        .get(0)
    }

    fn engine(&self) -> &'static str {
        "postgres"
    }

    fn address(&self) -> (&'static str, u16) {
        (self.0.host(), self.0.port())
    }

    fn dbname(&self) -> &'static str {
        "postgres"
    }

    async fn create_account(&self, user: &str, password: &str) {
        self.0.create_account(user, password).await;
    }

    async fn set_password(&self, user: &str, password: &str) {
        self.0.set_password(user, password).await;
    }

    async fn try_login(&self, user: &str, password: &str) -> Result<(), bool> {
        match self.0.login(user, password).await {
            Ok(_) => Ok(()),
            Err(e) => Err(e.code() == Some(&SqlState::INVALID_PASSWORD)),
        }
    }

    async fn ping(&self, conn: &mut Object<PgBackend>) -> Result<(), String> {
        let row = conn
            .query_one("SELECT 1::int4", &[])
            .await
            .map_err(|e| e.to_string())?;
        let one: i32 = row.get(0);
        (one == 1)
            .then_some(())
            .ok_or_else(|| format!("SELECT 1 returned {one}"))
    }
}
