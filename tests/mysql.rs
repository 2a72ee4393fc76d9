//! The conformance suite against a real, password-checking MariaDB and the moto Secrets Manager.

#[macro_use]
mod conformance;

use async_trait::async_trait;
use conformance::TestDb;
use mysql_async::prelude::Queryable;
use rotapool_core::Object;
use rotapool_mysql::{MySqlBackend, SslMode};
use rotapool_testkit::MariaDbServer;

/// The shared private MariaDB of this test process.
#[derive(Clone, Copy)]
struct MariaDb(&'static MariaDbServer);

#[async_trait]
impl TestDb for MariaDb {
    type Backend = MySqlBackend;

    fn backend(&self) -> MySqlBackend {
        MySqlBackend::new().ssl_mode(SslMode::Disable)
    }

    fn engine(&self) -> &'static str {
        "mariadb"
    }

    fn address(&self) -> (&'static str, u16) {
        (self.0.host(), self.0.port())
    }

    fn dbname(&self) -> &'static str {
        "information_schema"
    }

    async fn create_account(&self, user: &str, password: &str) {
        self.0.create_account(user, password).await;
    }

    async fn set_password(&self, user: &str, password: &str) {
        self.0.set_password(user, password).await;
    }

    async fn try_login(&self, user: &str, password: &str) -> Result<(), bool> {
        match self.0.login(user, password).await {
            Ok(conn) => {
                conn.disconnect().await.ok();
                Ok(())
            }
            Err(mysql_async::Error::Server(e)) => Err(e.code == 1045),
            Err(_) => Err(false),
        }
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

conformance_suite!(MariaDb(MariaDbServer::shared()));
