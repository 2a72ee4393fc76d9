//! The PostgreSQL server behind the conformance scenarios.

use super::TestDb;
use std::path::Path;

use async_trait::async_trait;
use rotapool_core::Object;
use rotapool_postgres::{PgBackend, SslMode};
use rotapool_testkit::PgServer;

/// The shared private PostgreSQL of this test process.
#[derive(Clone, Copy)]
pub struct Postgres(pub &'static PgServer);

#[async_trait]
impl TestDb for Postgres {
    type Server = PgServer;
    type Backend = PgBackend;

    fn server(&self) -> &'static PgServer {
        self.0
    }

    fn backend_with_tls(&self, mode: SslMode, ca_file: Option<&Path>) -> PgBackend {
        let backend = PgBackend::new().ssl_mode(mode);
        match ca_file {
            Some(path) => backend.ca_file(path).expect("the test CA loads"),
            None => backend,
        }
    }

    async fn is_encrypted(&self, conn: &mut Object<PgBackend>) -> bool {
        rotapool_testkit::pg_session_is_encrypted(conn).await
    }

    fn engine(&self) -> &'static str {
        "postgres"
    }

    fn dbname(&self) -> &'static str {
        "postgres"
    }

    async fn ping(&self, conn: &mut Object<PgBackend>) -> Result<(), String> {
        let row = conn
            .query_one("SELECT 1::int4", &[])
            .await
            // "db error" alone says nothing: add the server's words.
            .map_err(|e| match e.as_db_error() {
                Some(db) => format!("{e}: {}: {}", db.severity(), db.message()),
                None => e.to_string(),
            })?;
        let one: i32 = row.get(0);
        (one == 1)
            .then_some(())
            .ok_or_else(|| format!("SELECT 1 returned {one}"))
    }
}
