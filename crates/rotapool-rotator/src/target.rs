//! What the rotator does on a database, per engine: log in, change a password, create a user like another.

use async_trait::async_trait;
use rotapool_core::{Backend, Credentials, Failure};

/// The database side of a rotation. Implemented for the PostgreSQL and MySQL backends.
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
    /// exists, only changes its password.
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

/// A string literal in standard SQL quoting. Generated passwords never contain a quote; this is defence in depth.
pub(crate) fn literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

#[cfg(feature = "postgres")]
mod postgres {
    use super::*;
    use rotapool_postgres::PgBackend;

    fn ident(name: &str) -> String {
        format!("\"{}\"", name.replace('"', "\"\""))
    }

    #[async_trait]
    impl RotationTarget for PgBackend {
        fn max_username_len(&self) -> usize {
            63
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
            client
                .batch_execute(&format!(
                    "ALTER ROLE CURRENT_USER WITH PASSWORD {}",
                    literal(new_password)
                ))
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
            let exists = !client
                .query("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&user])
                .await
                .map_err(|e| self.describe(&e))?
                .is_empty();
            let sql = if exists {
                format!(
                    "ALTER ROLE {} WITH PASSWORD {}",
                    ident(user),
                    literal(password)
                )
            } else {
                // Membership in the template role carries its privileges.
                format!(
                    "CREATE ROLE {user} WITH LOGIN PASSWORD {password}; GRANT {template} TO {user}",
                    user = ident(user),
                    password = literal(password),
                    template = ident(template)
                )
            };
            client
                .batch_execute(&sql)
                .await
                .map_err(|e| self.describe(&e))
        }
    }
}

#[cfg(feature = "mysql")]
mod mysql {
    use super::*;
    use mysql_async::prelude::Queryable;
    use rotapool_mysql::MySqlBackend;

    /// MySQL 8 allows 32 characters; MariaDB allows 80. The smaller keeps one rotator right for both.
    const MAX_USERNAME: usize = 32;

    fn account(user: &str) -> String {
        format!("{}@'%'", literal(user))
    }

    /// Rewrites one line of `SHOW GRANTS FOR template` so that it grants the same to `user`. MariaDB prints
    /// `IDENTIFIED BY PASSWORD '<hash>'` on the USAGE line, which must not copy the template's password.
    fn regrant(line: &str, template: &str, user: &str) -> String {
        let line = match line.find(" IDENTIFIED BY PASSWORD") {
            Some(at) => &line[..at],
            None => line,
        };
        line.replace(&format!("`{template}`@`%`"), &account(user))
            .replace(&format!("'{template}'@'%'"), &account(user))
    }

    #[async_trait]
    impl RotationTarget for MySqlBackend {
        fn max_username_len(&self) -> usize {
            MAX_USERNAME
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
            let version: Option<String> = conn
                .query_first("SELECT VERSION()")
                .await
                .map_err(|e| self.describe(&e))?;
            // MariaDB lets any user SET PASSWORD for itself but wants CREATE USER for ALTER USER; MySQL 8 has no
            // PASSWORD() and lets any user ALTER USER itself.
            let sql = if version.unwrap_or_default().contains("MariaDB") {
                format!("SET PASSWORD = PASSWORD({})", literal(new_password))
            } else {
                format!(
                    "ALTER USER CURRENT_USER() IDENTIFIED BY {}",
                    literal(new_password)
                )
            };
            conn.query_drop(sql).await.map_err(|e| self.describe(&e))?;
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
            let describe = |e: mysql_async::Error| self.describe(&e);
            let exists: Option<i64> = conn
                .exec_first(
                    "SELECT COUNT(*) FROM mysql.user WHERE User = ? AND Host = '%'",
                    (user,),
                )
                .await
                .map_err(describe)?;
            if exists.unwrap_or(0) > 0 {
                conn.query_drop(format!(
                    "ALTER USER {} IDENTIFIED BY {}",
                    account(user),
                    literal(password)
                ))
                .await
                .map_err(describe)?;
            } else {
                conn.query_drop(format!(
                    "CREATE USER {} IDENTIFIED BY {}",
                    account(user),
                    literal(password)
                ))
                .await
                .map_err(describe)?;
                let grants: Vec<String> = conn
                    .query(format!("SHOW GRANTS FOR {}", account(template)))
                    .await
                    .map_err(describe)?;
                for grant in grants {
                    conn.query_drop(regrant(&grant, template, user))
                        .await
                        .map_err(describe)?;
                }
            }
            conn.disconnect().await.ok();
            Ok(())
        }
    }

    #[cfg(test)]
    mod tests {
        use super::regrant;

        #[test]
        fn grants_are_copied_without_the_templates_password() {
            assert_eq!(
                regrant(
                    "GRANT USAGE ON *.* TO `app`@`%` IDENTIFIED BY PASSWORD '*ABC'",
                    "app",
                    "app_clone"
                ),
                "GRANT USAGE ON *.* TO 'app_clone'@'%'"
            );
            assert_eq!(
                regrant(
                    "GRANT SELECT, INSERT ON `shop`.* TO 'app'@'%'",
                    "app",
                    "app_clone"
                ),
                "GRANT SELECT, INSERT ON `shop`.* TO 'app_clone'@'%'"
            );
        }
    }
}
