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

#[cfg(feature = "postgres")]
mod postgres {
    use super::*;
    use postgres_protocol::{
        escape::{escape_identifier, escape_literal},
        password::scram_sha_256,
    };
    use rotapool_postgres::PgBackend;

    /// `password`'s SCRAM-SHA-256 verifier, as a SQL literal. The server stores a verifier as given, so the clear
    /// password never appears in a statement, which tokio-postgres logs at DEBUG and the server may log too.
    fn verifier(password: &str) -> String {
        escape_literal(&scram_sha_256(password.as_bytes()))
    }

    #[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
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
                    verifier(new_password)
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
                    escape_identifier(user),
                    verifier(password)
                )
            } else {
                // Membership in the template role carries its privileges.
                format!(
                    "CREATE ROLE {user} WITH LOGIN PASSWORD {password}; GRANT {template} TO {user}",
                    user = escape_identifier(user),
                    password = verifier(password),
                    template = escape_identifier(template)
                )
            };
            client
                .batch_execute(&sql)
                .await
                .map_err(|e| self.describe(&e))
        }
    }

    #[cfg(test)]
    mod tests {
        use super::verifier;

        #[test]
        fn the_verifier_is_a_scram_literal_without_the_password() {
            let password = "k2-Vq.x~9";
            let literal = verifier(password);
            assert!(literal.starts_with("'SCRAM-SHA-256$4096:"), "{literal}");
            assert!(literal.ends_with('\''), "{literal}");
            assert!(!literal.contains(password), "{literal}");
        }
    }
}

#[cfg(feature = "mysql")]
mod mysql {
    use super::*;
    use mysql_async::{prelude::Queryable, Conn};
    use rotapool_mysql::MySqlBackend;
    use sha1::{Digest, Sha1};

    /// MySQL 8 allows 32 characters; MariaDB allows 80. The smaller keeps one rotator right for both.
    const MAX_USERNAME: usize = 32;

    /// A string literal in standard SQL quoting. Generated passwords never contain a quote; this is defence in
    /// depth.
    fn literal(value: &str) -> String {
        format!("'{}'", value.replace('\'', "''"))
    }

    /// The mysql_native_password hash of `password`, as MariaDB's `PASSWORD()` computes it: `*` and the upper-case
    /// hex of SHA1(SHA1(password)).
    fn native_password_hash(password: &str) -> String {
        let digest = Sha1::digest(Sha1::digest(password.as_bytes()));
        let hex: String = digest.iter().map(|byte| format!("{byte:02X}")).collect();
        format!("*{hex}")
    }

    /// How password changes are written for the server at hand.
    ///
    /// MariaDB takes the mysql_native_password hash, so the clear password never appears in a statement, which
    /// mysql_async traces at DEBUG and the server's general log records. MySQL 8 removed `IDENTIFIED BY
    /// PASSWORD` and hashes caching_sha2_password with a salt of its own choice, so it still gets the clear text.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Dialect {
        MariaDb,
        MySql,
    }

    impl Dialect {
        async fn of(conn: &mut Conn) -> Result<Self, mysql_async::Error> {
            let version: Option<String> = conn.query_first("SELECT VERSION()").await?;
            Ok(if version.unwrap_or_default().contains("MariaDB") {
                Self::MariaDb
            } else {
                Self::MySql
            })
        }

        /// The clause of `CREATE USER` and `ALTER USER` that sets `password`.
        fn identified_by(self, password: &str) -> String {
            match self {
                Self::MariaDb => format!(
                    "IDENTIFIED BY PASSWORD {}",
                    literal(&native_password_hash(password))
                ),
                Self::MySql => format!("IDENTIFIED BY {}", literal(password)),
            }
        }

        /// The statement with which the logged-in user sets its own password. MariaDB lets any user SET PASSWORD
        /// for itself but wants CREATE USER for ALTER USER; MySQL 8 lets any user ALTER USER itself.
        fn set_own_password(self, password: &str) -> String {
            match self {
                Self::MariaDb => format!(
                    "SET PASSWORD = {}",
                    literal(&native_password_hash(password))
                ),
                Self::MySql => {
                    format!("ALTER USER CURRENT_USER() {}", self.identified_by(password))
                }
            }
        }
    }

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

    #[cfg_attr(docsrs, doc(cfg(feature = "mysql")))]
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
            let describe = |e: mysql_async::Error| self.describe(&e);
            let dialect = Dialect::of(&mut conn).await.map_err(describe)?;
            conn.query_drop(dialect.set_own_password(new_password))
                .await
                .map_err(describe)?;
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
            let identified_by = Dialect::of(&mut conn)
                .await
                .map_err(describe)?
                .identified_by(password);
            let exists: Option<i64> = conn
                .exec_first(
                    "SELECT COUNT(*) FROM mysql.user WHERE User = ? AND Host = '%'",
                    (user,),
                )
                .await
                .map_err(describe)?;
            let verb = if exists.unwrap_or(0) > 0 {
                "ALTER"
            } else {
                "CREATE"
            };
            conn.query_drop(format!("{verb} USER {} {identified_by}", account(user)))
                .await
                .map_err(describe)?;
            // Replayed on every rotation, not only at creation: a grant given to the template since the last
            // rotation must reach `user` before clients switch to it.
            let grants: Vec<String> = conn
                .query(format!("SHOW GRANTS FOR {}", account(template)))
                .await
                .map_err(describe)?;
            for grant in grants {
                conn.query_drop(regrant(&grant, template, user))
                    .await
                    .map_err(describe)?;
            }
            conn.disconnect().await.ok();
            Ok(())
        }
    }

    #[cfg(test)]
    mod tests {
        use super::{native_password_hash, regrant, Dialect};

        #[test]
        fn mariadb_statements_carry_the_native_hash_and_never_the_password() {
            // MariaDB: SELECT PASSWORD('password')
            assert_eq!(
                native_password_hash("password"),
                "*2470C0C06DEE42FD1618BB99005ADCA2EC9D1E19"
            );
            let password = "k2-Vq.x~9";
            let hash = native_password_hash(password);
            for sql in [
                Dialect::MariaDb.identified_by(password),
                Dialect::MariaDb.set_own_password(password),
            ] {
                assert!(!sql.contains(password), "{sql}");
                assert!(sql.ends_with(&format!("'{hash}'")), "{sql}");
            }
        }

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
