//! The databases rotapool-sqlx speaks, and the two things that differ between them: how credentials go into
//! sqlx's connect options, and what a failed login's error means.

use rotapool_core::{Credentials, Failure};
use sqlx::{error::DatabaseError, Connection, Database};

/// sqlx's connect options for `DB`: `sqlx::postgres::PgConnectOptions` or `sqlx::mysql::MySqlConnectOptions`.
pub type ConnectOptions<DB> = <<DB as Database>::Connection as Connection>::Options;

/// A database that rotapool-sqlx rotates logins for: `sqlx::Postgres` (feature `postgres`) and `sqlx::MySql`
/// for MySQL and MariaDB (feature `mysql`). Sealed: the two differ only in what is written here.
pub trait RotatingDatabase: Database + sealed::Sealed {
    /// The values of an RDS secret's `engine` field this database answers to.
    const ENGINES: &'static [&'static str];

    /// `options` logging in as `credentials`: their user and password always, and their host, port and
    /// database where the secret (or the builder's overrides) names them; everything else (TLS, application
    /// name, statement cache) stays as `options` set it.
    fn with_credentials(
        options: &ConnectOptions<Self>,
        credentials: &Credentials,
    ) -> ConnectOptions<Self>;

    /// What a server error during a login means: the SQLSTATE or the MySQL error number, through
    /// [`Failure::of_sqlstate`] or [`Failure::of_mysql_error`].
    fn failure(error: &dyn DatabaseError) -> Failure;
}

/// What `error`, from a login or a checked-out connection of `DB`, means for the rotating login.
pub(crate) fn classify<DB: RotatingDatabase>(error: &sqlx::Error) -> Failure {
    match error {
        sqlx::Error::Database(e) => DB::failure(e.as_ref()),
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut => Failure::Transient,
        _ => Failure::Other,
    }
}

/// A one-line description for messages: the server's code and words, or the whole chain of causes.
pub(crate) fn describe(error: &sqlx::Error) -> String {
    match error {
        sqlx::Error::Database(e) => {
            format!("{}: {}", e.code().unwrap_or_default(), e.message())
        }
        other => rotapool_core::error::report(other),
    }
}

/// [`RotatingDatabase::with_credentials`]'s body, which both databases share: their options' methods have the
/// same names, on different types.
#[allow(unused_macros)]
macro_rules! with_credentials {
    ($options:expr, $credentials:expr) => {{
        let credentials = $credentials;
        let mut options = $options
            .clone()
            .username(credentials.username())
            .password(credentials.password());
        if let Some(host) = credentials.host() {
            options = options.host(host);
        }
        if let Some(port) = credentials.port() {
            options = options.port(port);
        }
        if let Some(dbname) = credentials.dbname() {
            options = options.database(dbname);
        }
        options
    }};
}

#[cfg(feature = "postgres")]
impl RotatingDatabase for sqlx::Postgres {
    const ENGINES: &'static [&'static str] = &["postgres", "aurora-postgresql"];

    fn with_credentials(
        options: &sqlx::postgres::PgConnectOptions,
        credentials: &Credentials,
    ) -> sqlx::postgres::PgConnectOptions {
        with_credentials!(options, credentials)
    }

    fn failure(error: &dyn DatabaseError) -> Failure {
        error
            .code()
            .map_or(Failure::Other, |code| Failure::of_sqlstate(&code))
    }
}

#[cfg(feature = "mysql")]
impl RotatingDatabase for sqlx::MySql {
    const ENGINES: &'static [&'static str] = &["mysql", "mariadb", "aurora-mysql"];

    fn with_credentials(
        options: &sqlx::mysql::MySqlConnectOptions,
        credentials: &Credentials,
    ) -> sqlx::mysql::MySqlConnectOptions {
        with_credentials!(options, credentials)
    }

    fn failure(error: &dyn DatabaseError) -> Failure {
        error
            .try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
            .map_or(Failure::Other, |e| Failure::of_mysql_error(e.number()))
    }
}

mod sealed {
    /// Only the databases above.
    pub trait Sealed {}
    #[cfg(feature = "postgres")]
    impl Sealed for sqlx::Postgres {}
    #[cfg(feature = "mysql")]
    impl Sealed for sqlx::MySql {}
}
