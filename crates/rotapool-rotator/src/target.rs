//! What the rotator does on a database, per engine: log in, change a password, create a user like another.

use async_trait::async_trait;
use rotapool_core::{Backend, Credentials, Failure};

/// The database side of a rotation. Implemented for the PostgreSQL and MySQL backends, and (feature `fake`) for
/// rotapool-core's fake database.
#[async_trait]
pub trait RotationTarget: Send + Sync {
    /// The longest user name the engine accepts.
    fn max_username_len(&self) -> usize;

    /// Logs in: `Ok(true)` if accepted, `Ok(false)` if rejected as bad credentials, `Err` with the database's
    /// words for any other failure.
    async fn can_login(&self, credentials: &Credentials) -> Result<bool, String>;

    /// Logs in and runs a query.
    async fn test_login(&self, credentials: &Credentials) -> Result<(), String>;

    /// Logged in as `login`, changes that same user's password to `new_password`.
    async fn set_own_password(&self, login: &Credentials, new_password: &str)
        -> Result<(), String>;

    /// Logged in as `master`, creates `user` with `password` and the privileges of `template`, or, if `user`
    /// exists, changes its password and gives it the privileges `template` has gained since (MySQL replays the
    /// template's grants; on PostgreSQL `user` is a member of the template role and inherits them). Privileges
    /// revoked from `template` are not revoked from `user`.
    async fn upsert_user_like(
        &self,
        master: &Credentials,
        template: &str,
        user: &str,
        password: &str,
    ) -> Result<(), String>;
}

/// [`RotationTarget::can_login`] for any backend.
pub(crate) async fn can_login<B: Backend>(
    backend: &B,
    credentials: &Credentials,
) -> Result<bool, String> {
    match backend.connect(credentials).await {
        Ok(_) => Ok(true),
        Err(e) if backend.classify(&e) == Failure::Auth => Ok(false),
        Err(e) => Err(backend.describe(&e)),
    }
}

/// Opens a connection, describing a failure in the database's words.
pub(crate) async fn connect<B: Backend>(
    backend: &B,
    credentials: &Credentials,
) -> Result<B::Connection, String> {
    backend
        .connect(credentials)
        .await
        .map_err(|e| backend.describe(&e))
}

/// PostgreSQL: the statements are rotapool-postgres's [`admin`](rotapool_postgres::admin).
#[cfg(feature = "postgres")]
mod postgres {
    use super::*;
    use rotapool_postgres::{admin, PgBackend};

    #[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
    #[async_trait]
    impl RotationTarget for PgBackend {
        fn max_username_len(&self) -> usize {
            admin::MAX_IDENTIFIER_LEN
        }

        async fn can_login(&self, credentials: &Credentials) -> Result<bool, String> {
            can_login(self, credentials).await
        }

        async fn test_login(&self, credentials: &Credentials) -> Result<(), String> {
            let client = connect(self, credentials).await?;
            client
                .simple_query("SELECT 1")
                .await
                .map_err(|e| self.describe(&e))?;
            Ok(())
        }

        async fn set_own_password(
            &self,
            login: &Credentials,
            new_password: &str,
        ) -> Result<(), String> {
            let client = connect(self, login).await?;
            admin::set_own_password(&client, new_password)
                .await
                .map_err(|e| self.describe(&e))
        }

        async fn upsert_user_like(
            &self,
            master: &Credentials,
            template: &str,
            user: &str,
            password: &str,
        ) -> Result<(), String> {
            let client = connect(self, master).await?;
            admin::upsert_user_like(&client, template, user, password)
                .await
                .map_err(|e| self.describe(&e))
        }
    }
}

/// MySQL and MariaDB: the statements are rotapool-mysql's [`admin`](rotapool_mysql::admin).
#[cfg(feature = "mysql")]
mod mysql {
    use super::*;
    use mysql_async::prelude::Queryable;
    use rotapool_mysql::{admin, MySqlBackend};

    #[cfg_attr(docsrs, doc(cfg(feature = "mysql")))]
    #[async_trait]
    impl RotationTarget for MySqlBackend {
        fn max_username_len(&self) -> usize {
            admin::MAX_USERNAME_LEN
        }

        async fn can_login(&self, credentials: &Credentials) -> Result<bool, String> {
            can_login(self, credentials).await
        }

        async fn test_login(&self, credentials: &Credentials) -> Result<(), String> {
            let mut conn = connect(self, credentials).await?;
            conn.query_drop("SELECT 1")
                .await
                .map_err(|e| self.describe(&e))?;
            conn.disconnect().await.ok();
            Ok(())
        }

        async fn set_own_password(
            &self,
            login: &Credentials,
            new_password: &str,
        ) -> Result<(), String> {
            let mut conn = connect(self, login).await?;
            admin::set_own_password(&mut conn, new_password)
                .await
                .map_err(|e| self.describe(&e))?;
            conn.disconnect().await.ok();
            Ok(())
        }

        async fn upsert_user_like(
            &self,
            master: &Credentials,
            template: &str,
            user: &str,
            password: &str,
        ) -> Result<(), String> {
            let mut conn = connect(self, master).await?;
            admin::upsert_user_like(&mut conn, template, user, password)
                .await
                .map_err(|e| self.describe(&e))?;
            conn.disconnect().await.ok();
            Ok(())
        }
    }
}

/// rotapool-core's fake database: one account, whose user name it does not check, and no SQL.
#[cfg(feature = "fake")]
mod fake {
    use super::*;
    use rotapool_core::fake::FakeBackend;

    #[cfg_attr(docsrs, doc(cfg(feature = "fake")))]
    #[async_trait]
    impl RotationTarget for FakeBackend {
        fn max_username_len(&self) -> usize {
            63
        }

        async fn can_login(&self, credentials: &Credentials) -> Result<bool, String> {
            can_login(self, credentials).await
        }

        async fn test_login(&self, credentials: &Credentials) -> Result<(), String> {
            connect(self, credentials).await.map(drop)
        }

        async fn set_own_password(
            &self,
            login: &Credentials,
            new_password: &str,
        ) -> Result<(), String> {
            connect(self, login).await?;
            self.0.set_password(new_password);
            Ok(())
        }

        async fn upsert_user_like(
            &self,
            _master: &Credentials,
            _template: &str,
            _user: &str,
            _password: &str,
        ) -> Result<(), String> {
            Err(
                "the fake database has one account: rotate it with the single-user strategy"
                    .to_owned(),
            )
        }
    }
}
