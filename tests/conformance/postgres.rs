//! The PostgreSQL server behind the conformance scenarios.

use super::{
    pools::{PoolKind, Settings, TestPool},
    TestDb,
};
use std::{path::Path, sync::Arc, time::Instant};

use async_trait::async_trait;
use rotapool_core::{Object, SecretSource, Stats};
use rotapool_postgres::{
    pool_builder_with, tokio_postgres::NoTls, PgBackend, RotatingConnect, SslMode,
};
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

/// deadpool-postgres's own pool over `rotapool_postgres::RotatingConnect`, built from a
/// `deadpool_postgres::Config` as a service would, with rotapool's hooks.
pub struct DeadpoolPostgres;

/// deadpool-postgres's pool and the rotating login under it.
#[derive(Clone)]
pub struct DeadpoolPool {
    pub pool: deadpool_postgres::Pool,
    pub connect: RotatingConnect<NoTls>,
}

#[async_trait]
impl PoolKind<Postgres> for DeadpoolPostgres {
    type Pool = DeadpoolPool;

    async fn build(
        _: &Postgres,
        source: Arc<dyn SecretSource>,
        settings: Settings,
    ) -> DeadpoolPool {
        let mut config = deadpool_postgres::Config::new();
        if let Some(size) = settings.size() {
            config.pool = Some(deadpool_postgres::PoolConfig::new(size));
        }
        let (builder, connect) = pool_builder_with(&config, NoTls, |login| {
            settings.apply(login.secret_source(source))
        })
        .await
        .expect("the login starts");
        DeadpoolPool {
            pool: builder.build().expect("the pool builds"),
            connect,
        }
    }
}

#[async_trait]
impl TestPool for DeadpoolPool {
    type Conn = deadpool_postgres::Client;

    async fn get(&self) -> Result<Self::Conn, String> {
        // deadpool-postgres's error prints only "db error"; the application logs the chain.
        self.pool
            .get()
            .await
            .map_err(|e| rotapool_testkit::error_chain(&e))
    }

    async fn ping(&self, conn: &mut Self::Conn) -> Result<(), String> {
        let row = conn
            .query_one("SELECT 1::int4", &[])
            .await
            .map_err(|e| rotapool_testkit::error_chain(&e))?;
        let one: i32 = row.get(0);
        (one == 1)
            .then_some(())
            .ok_or_else(|| format!("SELECT 1 returned {one}"))
    }

    fn conn_generation(&self, conn: &Self::Conn) -> u64 {
        self.connect
            .generation_of(conn)
            .expect("rotapool's post_create hook filed every connection")
    }

    fn conn_created(&self, conn: &Self::Conn) -> Instant {
        deadpool_postgres::Object::metrics(conn).created
    }

    fn stats(&self) -> Stats {
        self.connect.stats()
    }

    fn password(&self) -> String {
        self.connect.login().credentials().password().to_owned()
    }

    fn size(&self) -> usize {
        self.pool.status().size
    }

    /// deadpool-postgres's `Connect` can only return a driver error: the database's 28P01, real or replayed.
    fn is_rejection(message: &str) -> bool {
        message.contains("password authentication failed")
    }

    /// A replayed rejection says that the store could not be read in its hint.
    fn names_the_store(message: &str) -> bool {
        message.contains("secret store")
    }
}
