//! The pooled Postgres client: a `tokio_postgres::Client` with a statement cache, as deadpool-postgres offers.

use std::{
    collections::HashMap,
    fmt,
    ops::{Deref, DerefMut},
    sync::Mutex,
};

use tokio::task::JoinHandle;
use tokio_postgres::{Client, Error, Statement};

/// A connection in the pool. Derefs to [`tokio_postgres::Client`], so `query`, `execute`, `transaction` and the
/// rest work unchanged, and adds [`PgClient::prepare_cached`].
pub struct PgClient {
    client: Client,
    statements: Mutex<HashMap<String, Statement>>,
    driver: JoinHandle<()>,
}

impl PgClient {
    pub(crate) fn new(client: Client, driver: JoinHandle<()>) -> Self {
        Self {
            client,
            statements: Mutex::default(),
            driver,
        }
    }

    /// Prepares `query` once per connection and returns the cached statement afterwards.
    pub async fn prepare_cached(&self, query: &str) -> Result<Statement, Error> {
        if let Some(statement) = self.cache().get(query) {
            return Ok(statement.clone());
        }
        let statement = self.client.prepare(query).await?;
        self.cache().insert(query.to_owned(), statement.clone());
        Ok(statement)
    }

    /// How many statements [`PgClient::prepare_cached`] holds for this connection.
    pub fn cached_statements(&self) -> usize {
        self.cache().len()
    }

    /// The driver's client, for functions that take `&tokio_postgres::Client` or a
    /// [`GenericClient`](tokio_postgres::GenericClient): `count(pool_object.as_client())`.
    pub fn as_client(&self) -> &Client {
        &self.client
    }

    /// Drops every cached statement, e.g. after a schema change.
    pub fn clear_statement_cache(&self) {
        self.cache().clear();
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<String, Statement>> {
        // The map holds only prepared statements; a panic elsewhere cannot leave it inconsistent.
        self.statements.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Deref for PgClient {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self.client
    }
}

impl DerefMut for PgClient {
    fn deref_mut(&mut self) -> &mut Client {
        &mut self.client
    }
}

impl Drop for PgClient {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

impl fmt::Debug for PgClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgClient")
            .field("closed", &self.client.is_closed())
            .field("cached_statements", &self.cache().len())
            .finish()
    }
}
