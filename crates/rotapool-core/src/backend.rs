//! What a database driver must provide: connect with credentials, and say what kind of failure an error is.

use std::future::Future;

use crate::credentials::Credentials;

/// What a failed login or a broken connection means for the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Failure {
    /// The database rejected the user name or password. The pool re-reads the secret and tries again.
    Auth,
    /// The account exists and the password may be right, but the account is locked, blocked or expired.
    /// Retrying would not help and could make it worse, so the pool gives up at once.
    AccountLocked,
    /// Network trouble, a server restarting, too many connections: may pass on its own.
    Transient,
    /// Anything else.
    Other,
}

impl Failure {
    /// What a PostgreSQL SQLSTATE means for a login: class 28 (28P01 bad password, 28000 no such role or no
    /// `pg_hba.conf` entry) is bad credentials; class 08, 57P01-57P03 and 53300 (too many connections) may pass.
    /// For every PostgreSQL driver: tokio-postgres's and sqlx's errors carry the same codes.
    pub fn of_sqlstate(code: &str) -> Self {
        match code {
            "28P01" | "28000" => Self::Auth,
            "57P01" | "57P02" | "57P03" | "53300" => Self::Transient,
            code if code.starts_with("08") => Self::Transient,
            _ => Self::Other,
        }
    }

    /// What a MySQL or MariaDB server error number means for a login: 1045 and 1698 are bad credentials; a
    /// blocked host, an expired password and a locked or blocked account ([`Failure::AccountLocked`]) are not
    /// helped by retrying; too many connections, a shutdown or a killed connection may pass. For every MySQL
    /// driver: mysql_async's and sqlx's errors carry the same numbers.
    pub fn of_mysql_error(number: u16) -> Self {
        match number {
            1045 | 1698 => Self::Auth,
            1129 // ER_HOST_IS_BLOCKED: too many connection errors from this host
            | 1862 // ER_MUST_CHANGE_PASSWORD_LOGIN: password expired
            | 3118 // ER_ACCOUNT_HAS_BEEN_LOCKED (MySQL)
            | 3955 // ER_USER_ACCESS_DENIED_FOR_USER_ACCOUNT_BLOCKED_BY_PASSWORD_LOCK (MySQL 8)
            | 4150 // ER_USER_IS_BLOCKED (MariaDB max_password_errors)
            | 4151 // ER_ACCOUNT_HAS_BEEN_LOCKED (MariaDB)
            => Self::AccountLocked,
            1040 // ER_CON_COUNT_ERROR: too many connections
            | 1053 // ER_SERVER_SHUTDOWN
            | 1203 // ER_TOO_MANY_USER_CONNECTIONS
            | 1205 // ER_LOCK_WAIT_TIMEOUT
            | 1927 // ER_CONNECTION_KILLED (MariaDB)
            => Self::Transient,
            _ => Self::Other,
        }
    }
}

/// A database driver, as the rotating pool sees it.
///
/// Implementations stay small: they translate credentials into the driver's connect call and classify its
/// errors. All rotation logic lives in [`crate::RotatingLogin`].
pub trait Backend: Send + Sync + 'static {
    /// The driver's connection (or a thin wrapper around it).
    type Connection: Send + 'static;
    /// The driver's error type.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Opens one connection as `credentials`.
    fn connect(
        &self,
        credentials: &Credentials,
    ) -> impl Future<Output = Result<Self::Connection, Self::Error>> + Send;

    /// The values of an RDS secret's `engine` field this backend speaks, e.g. `["postgres", "aurora-postgresql"]`.
    /// A secret naming another engine is refused with [`crate::CredentialsError::UnsupportedEngine`]; a secret
    /// with no `engine` is taken as it is. Defaults to empty: any engine.
    fn engines(&self) -> &'static [&'static str] {
        &[]
    }

    /// Says what `error`, returned by [`Backend::connect`] or [`Backend::check`], means.
    fn classify(&self, error: &Self::Error) -> Failure;

    /// A one-line description of `error` for messages: error code and the server's words.
    ///
    /// Must not contain the password; drivers' own messages do not. Defaults to `error.to_string()`.
    fn describe(&self, error: &Self::Error) -> String {
        error.to_string()
    }

    /// Checks that a pooled connection is still usable before it is handed out again, and says whether to
    /// lend it, close it for a reason of the backend's own, or close it because it is broken.
    fn check(
        &self,
        connection: &mut Self::Connection,
    ) -> impl Future<Output = Reuse<Self::Error>> + Send;

    /// Ends a connection the pool no longer needs. Defaults to dropping it; a backend whose protocol has a
    /// polite goodbye (MySQL's `COM_QUIT`) sends it here, so that the server does not count an aborted client.
    fn close(&self, connection: Self::Connection) -> impl Future<Output = ()> + Send {
        drop(connection);
        std::future::ready(())
    }
}

/// What [`Backend::check`] found out about a pooled connection.
#[derive(Debug)]
pub enum Reuse<E> {
    /// Lend it again.
    Keep,
    /// Close it, though nothing is wrong with it (the reason is logged): the backend's own policy.
    Retire(&'static str),
    /// Close it: it is broken, as the driver's error says.
    Broken(E),
}

impl<E> From<Result<(), E>> for Reuse<E> {
    /// `Ok` keeps the connection, an error marks it broken: the shape of a driver's `ping` or `reset`.
    fn from(result: Result<(), E>) -> Self {
        match result {
            Ok(()) => Self::Keep,
            Err(error) => Self::Broken(error),
        }
    }
}
