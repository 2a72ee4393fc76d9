//! The rotating login's view of sqlx: one login with given credentials, outside any pool. The login uses it
//! for its trial logins (`AWSPENDING` between setSecret and finishSecret, a rejected version tried again); sqlx's
//! own pool makes every other login, with the options [`crate::RotatingPool`] keeps current.

use std::fmt;

use rotapool_core::{Backend, Credentials, Failure, Reuse};
use sqlx::{ConnectOptions as _, Connection as _};

use crate::database::{classify, describe, ConnectOptions, RotatingDatabase};

/// Logs in to `DB` with sqlx's connect options, the secret's credentials written over them.
pub struct SqlxBackend<DB: RotatingDatabase> {
    options: ConnectOptions<DB>,
}

impl<DB: RotatingDatabase> SqlxBackend<DB> {
    /// A backend whose logins start from `options` (TLS, application name, statement cache...). Their user and
    /// password are never used: the secret's are. Host, port and database are used only where neither the
    /// secret nor the builder names them.
    pub fn new(options: ConnectOptions<DB>) -> Self {
        Self { options }
    }

    /// The options a login as `credentials` uses.
    pub fn options_for(&self, credentials: &Credentials) -> ConnectOptions<DB> {
        DB::with_credentials(&self.options, credentials)
    }
}

impl<DB: RotatingDatabase> Backend for SqlxBackend<DB> {
    type Connection = DB::Connection;
    type Error = sqlx::Error;

    async fn connect(&self, credentials: &Credentials) -> Result<DB::Connection, sqlx::Error> {
        self.options_for(credentials).connect().await
    }

    fn engines(&self) -> &'static [&'static str] {
        DB::ENGINES
    }

    fn classify(&self, error: &sqlx::Error) -> Failure {
        classify::<DB>(error)
    }

    fn describe(&self, error: &sqlx::Error) -> String {
        describe(error)
    }

    async fn check(&self, connection: &mut DB::Connection) -> Reuse<sqlx::Error> {
        connection.ping().await.into()
    }

    async fn close(&self, connection: DB::Connection) {
        if let Err(error) = connection.close().await {
            tracing::debug!(%error, "closing a sqlx connection failed");
        }
    }
}

impl<DB: RotatingDatabase> fmt::Debug for SqlxBackend<DB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // sqlx's options print their password in Debug: only the database's name is shown.
        f.debug_struct("SqlxBackend")
            .field("database", &DB::NAME)
            .finish_non_exhaustive()
    }
}
