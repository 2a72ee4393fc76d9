//! Account administration on MySQL, MariaDB and Aurora MySQL: the statements a password rotation runs, and the
//! quoting they need.
//!
//! This is the one place the workspace writes MySQL account SQL; rotapool-rotator calls it. String literals are
//! quoted by the driver's own escaping (mysql_common's `Value::as_sql`), which follows the session's
//! `NO_BACKSLASH_ESCAPES`: by default a backslash escapes in a MySQL literal, so doubling quotes alone would set
//! a password with a `\` to something else.
//!
//! MariaDB receives the `mysql_native_password` hash of a new password (`IDENTIFIED BY PASSWORD '*...'`), so the
//! clear password never appears in a statement, which mysql_async traces at DEBUG and the server's general log
//! records. MySQL 8 removed `IDENTIFIED BY PASSWORD` and salts `caching_sha2_password` itself, so it still
//! receives the clear password in a literal: keep its general log off, and TLS on.

use mysql_async::{prelude::Queryable, Conn, Value};
use sha1::{Digest, Sha1};

/// The longest user name a rotator writes: MySQL 8 allows 32 characters and MariaDB 80; the smaller keeps one
/// rotator right for both.
pub const MAX_USERNAME_LEN: usize = 32;

/// `name` as a quoted identifier, e.g. `` `app` ``, with any `` ` `` doubled.
pub fn quote_identifier(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// How account statements are written for the server at hand: MariaDB or MySQL, and whether the session's
/// `sql_mode` has `NO_BACKSLASH_ESCAPES`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dialect {
    mariadb: bool,
    no_backslash_escapes: bool,
}

impl Dialect {
    /// Asks the server what it is, and the session's `sql_mode`.
    pub async fn detect(conn: &mut Conn) -> Result<Self, mysql_async::Error> {
        let (version, sql_mode): (String, String) = conn
            .query_first("SELECT VERSION(), @@SESSION.sql_mode")
            .await?
            .unwrap_or_default();
        Ok(Self {
            mariadb: version.contains("MariaDB"),
            no_backslash_escapes: sql_mode.contains("NO_BACKSLASH_ESCAPES"),
        })
    }

    /// MariaDB's statements: new passwords as their `mysql_native_password` hash.
    pub const fn mariadb(no_backslash_escapes: bool) -> Self {
        Self {
            mariadb: true,
            no_backslash_escapes,
        }
    }

    /// MySQL 8's statements: new passwords in clear, in a string literal.
    pub const fn mysql(no_backslash_escapes: bool) -> Self {
        Self {
            mariadb: false,
            no_backslash_escapes,
        }
    }

    /// `value` as a string literal for this session, quoted by the driver.
    pub fn quote_literal(self, value: &str) -> String {
        Value::from(value).as_sql(self.no_backslash_escapes)
    }

    /// The account `user@'%'`, each part a quoted literal.
    pub fn account(self, user: &str) -> String {
        format!("{}@'%'", self.quote_literal(user))
    }

    /// The clause of `CREATE USER` and `ALTER USER` that sets `password`.
    fn identified_by(self, password: &str) -> String {
        if self.mariadb {
            format!(
                "IDENTIFIED BY PASSWORD {}",
                self.quote_literal(&native_password_hash(password))
            )
        } else {
            format!("IDENTIFIED BY {}", self.quote_literal(password))
        }
    }

    /// The statement with which the logged-in user sets its own password. MariaDB lets any user `SET PASSWORD`
    /// for itself but wants the CREATE USER privilege for `ALTER USER`; MySQL 8 lets any user `ALTER USER`
    /// itself. On MySQL it holds the password: never log it.
    pub fn set_own_password_statement(self, password: &str) -> String {
        if self.mariadb {
            format!(
                "SET PASSWORD = {}",
                self.quote_literal(&native_password_hash(password))
            )
        } else {
            format!("ALTER USER CURRENT_USER() {}", self.identified_by(password))
        }
    }

    /// `CREATE USER user@'%'` with `password`. On MySQL it holds the password: never log it.
    pub fn create_user_statement(self, user: &str, password: &str) -> String {
        format!(
            "CREATE USER {} {}",
            self.account(user),
            self.identified_by(password)
        )
    }

    /// `ALTER USER user@'%'` to `password`. On MySQL it holds the password: never log it.
    pub fn alter_user_statement(self, user: &str, password: &str) -> String {
        format!(
            "ALTER USER {} {}",
            self.account(user),
            self.identified_by(password)
        )
    }

    /// Rewrites one line of `SHOW GRANTS FOR template` so that it grants the same to `user`. MariaDB prints
    /// `IDENTIFIED BY PASSWORD '<hash>'` on the USAGE line, which must not copy the template's password.
    fn regrant(self, line: &str, template: &str, user: &str) -> String {
        let line = match line.find(" IDENTIFIED BY PASSWORD") {
            Some(at) => &line[..at],
            None => line,
        };
        line.replace(
            &format!("{}@`%`", quote_identifier(template)),
            &self.account(user),
        )
        .replace(&self.account(template), &self.account(user))
    }
}

/// The `mysql_native_password` hash of `password`, as MariaDB's `PASSWORD()` computes it: `*` and the upper-case
/// hex of SHA1(SHA1(password)).
fn native_password_hash(password: &str) -> String {
    let digest = Sha1::digest(Sha1::digest(password.as_bytes()));
    let hex: String = digest.iter().map(|byte| format!("{byte:02X}")).collect();
    format!("*{hex}")
}

/// Logged in as a user, sets that same user's password to `password`.
pub async fn set_own_password(conn: &mut Conn, password: &str) -> Result<(), mysql_async::Error> {
    let dialect = Dialect::detect(conn).await?;
    conn.query_drop(dialect.set_own_password_statement(password))
        .await
}

/// Logged in as a user that may create users and grant, creates `user@'%'` with `password` and the privileges of
/// `template@'%'`, or, if `user` exists, changes its password and gives it the privileges `template` has gained
/// since. Privileges revoked from `template` are not revoked from `user`.
pub async fn upsert_user_like(
    conn: &mut Conn,
    template: &str,
    user: &str,
    password: &str,
) -> Result<(), mysql_async::Error> {
    let dialect = Dialect::detect(conn).await?;
    let exists: Option<i64> = conn
        .exec_first(
            "SELECT COUNT(*) FROM mysql.user WHERE User = ? AND Host = '%'",
            (user,),
        )
        .await?;
    let statement = if exists.unwrap_or(0) > 0 {
        dialect.alter_user_statement(user, password)
    } else {
        dialect.create_user_statement(user, password)
    };
    conn.query_drop(statement).await?;
    // Replayed on every rotation, not only at creation: a grant given to the template since the last rotation
    // must reach `user` before clients switch to it.
    let grants: Vec<String> = conn
        .query(format!("SHOW GRANTS FOR {}", dialect.account(template)))
        .await?;
    for grant in grants {
        conn.query_drop(dialect.regrant(&grant, template, user))
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mariadb_statements_carry_the_native_hash_and_never_the_password() {
        // MariaDB: SELECT PASSWORD('password')
        assert_eq!(
            native_password_hash("password"),
            "*2470C0C06DEE42FD1618BB99005ADCA2EC9D1E19"
        );
        let password = "k2-Vq.x~9";
        let hash = native_password_hash(password);
        let mariadb = Dialect::mariadb(false);
        for sql in [
            mariadb.create_user_statement("app", password),
            mariadb.alter_user_statement("app", password),
            mariadb.set_own_password_statement(password),
        ] {
            assert!(!sql.contains(password), "{sql}");
            assert!(sql.ends_with(&format!("'{hash}'")), "{sql}");
        }
    }

    #[test]
    fn literals_escape_backslashes_unless_the_session_says_not_to() {
        let password = r#"a\b'c"d"#;
        assert_eq!(
            Dialect::mysql(false).alter_user_statement("app", password),
            r#"ALTER USER 'app'@'%' IDENTIFIED BY 'a\\b\'c\"d'"#
        );
        assert_eq!(
            Dialect::mysql(true).set_own_password_statement(password),
            r#"ALTER USER CURRENT_USER() IDENTIFIED BY 'a\b''c"d'"#
        );
        assert_eq!(quote_identifier("a`b"), "`a``b`");
    }

    #[test]
    fn grants_are_copied_without_the_templates_password() {
        let dialect = Dialect::mariadb(false);
        assert_eq!(
            dialect.regrant(
                "GRANT USAGE ON *.* TO `app`@`%` IDENTIFIED BY PASSWORD '*ABC'",
                "app",
                "app_clone"
            ),
            "GRANT USAGE ON *.* TO 'app_clone'@'%'"
        );
        assert_eq!(
            dialect.regrant(
                "GRANT SELECT, INSERT ON `shop`.* TO 'app'@'%'",
                "app",
                "app_clone"
            ),
            "GRANT SELECT, INSERT ON `shop`.* TO 'app_clone'@'%'"
        );
    }
}
