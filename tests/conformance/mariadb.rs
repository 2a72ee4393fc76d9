//! The MariaDB server behind the conformance scenarios.

use super::TestDb;
use std::path::Path;

use async_trait::async_trait;
use mysql_async::prelude::Queryable;
use rotapool_core::Object;
use rotapool_mysql::{MySqlBackend, SslMode};
use rotapool_testkit::MariaDbServer;

/// The shared private MariaDB of this test process.
#[derive(Clone, Copy)]
pub struct MariaDb(pub &'static MariaDbServer);

#[async_trait]
impl TestDb for MariaDb {
    type Server = MariaDbServer;
    type Backend = MySqlBackend;

    fn server(&self) -> &'static MariaDbServer {
        self.0
    }

    fn backend_with_tls(&self, mode: SslMode, ca_file: Option<&Path>) -> MySqlBackend {
        let backend = MySqlBackend::new().ssl_mode(mode);
        match ca_file {
            Some(path) => backend.ca_file(path).expect("the test CA loads"),
            None => backend,
        }
    }

    async fn is_encrypted(&self, conn: &mut Object<MySqlBackend>) -> bool {
        rotapool_testkit::mysql_session_is_encrypted(conn).await
    }

    fn engine(&self) -> &'static str {
        "mariadb"
    }

    fn dbname(&self) -> &'static str {
        "information_schema"
    }

    async fn ping(&self, conn: &mut Object<MySqlBackend>) -> Result<(), String> {
        let one: Option<i32> = conn
            .query_first("SELECT 1")
            .await
            .map_err(|e| e.to_string())?;
        (one == Some(1))
            .then_some(())
            .ok_or_else(|| format!("SELECT 1 returned {one:?}"))
    }
}
