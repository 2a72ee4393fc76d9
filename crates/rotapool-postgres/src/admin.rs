//! Account administration on PostgreSQL: the statements a password rotation runs, and the quoting they need.
//!
//! This is the one place the workspace writes PostgreSQL account SQL; rotapool-rotator calls it. No statement
//! carries a clear password: a new password is sent as its SCRAM-SHA-256 verifier, computed here as psql's
//! `\password` does, and the server stores a verifier as given. Identifiers and literals are quoted by
//! postgres-protocol, tokio-postgres's own protocol crate.

use postgres_protocol::{
    escape::{escape_identifier, escape_literal},
    password::scram_sha_256,
};
use tokio_postgres::Client;

/// The longest role name PostgreSQL keeps (`NAMEDATALEN - 1` bytes); a longer one is cut short silently.
pub const MAX_IDENTIFIER_LEN: usize = 63;

/// `name` as a quoted SQL identifier, e.g. `"app"`, with any `"` doubled.
pub fn quote_identifier(name: &str) -> String {
    escape_identifier(name)
}

/// `value` as a SQL string literal, e.g. `'it''s'`; a value with a backslash becomes an `E'...'` literal with the
/// backslash doubled, so it reads the same whatever `standard_conforming_strings` is.
pub fn quote_literal(value: &str) -> String {
    escape_literal(value)
}

/// The SCRAM-SHA-256 verifier of `password`, as a SQL literal: what a statement sets in place of the password.
fn verifier(password: &str) -> String {
    quote_literal(&scram_sha_256(password.as_bytes()))
}

/// The statement with which a logged-in role sets its own password to `password` (as its verifier).
pub fn set_own_password_statement(password: &str) -> String {
    format!(
        "ALTER ROLE CURRENT_USER WITH PASSWORD {}",
        verifier(password)
    )
}

/// Logged in as a role, sets that same role's password to `password`.
pub async fn set_own_password(
    client: &Client,
    password: &str,
) -> Result<(), tokio_postgres::Error> {
    client
        .batch_execute(&set_own_password_statement(password))
        .await
}

/// Logged in as a role that may create roles, creates `user` with `password` as a member of `template` (so it
/// has every privilege `template` has, now or later), or, if `user` exists, changes its password.
pub async fn upsert_user_like(
    client: &Client,
    template: &str,
    user: &str,
    password: &str,
) -> Result<(), tokio_postgres::Error> {
    let exists = !client
        .query("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&user])
        .await?
        .is_empty();
    let sql = if exists {
        format!(
            "ALTER ROLE {} WITH PASSWORD {}",
            quote_identifier(user),
            verifier(password)
        )
    } else {
        format!(
            "CREATE ROLE {user} WITH LOGIN PASSWORD {password}; GRANT {template} TO {user}",
            user = quote_identifier(user),
            password = verifier(password),
            template = quote_identifier(template)
        )
    };
    client.batch_execute(&sql).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_carry_a_scram_verifier_and_never_the_password() {
        let password = r#"k2\-Vq'x"~9"#;
        let sql = set_own_password_statement(password);
        assert!(
            sql.starts_with("ALTER ROLE CURRENT_USER WITH PASSWORD 'SCRAM-SHA-256$4096:"),
            "{sql}"
        );
        assert!(sql.ends_with('\''), "{sql}");
        assert!(!sql.contains(password), "{sql}");
    }

    #[test]
    fn quoting_doubles_quotes_and_escapes_backslashes() {
        assert_eq!(quote_identifier(r#"a"b"#), r#""a""b""#);
        assert_eq!(quote_literal("it's"), "'it''s'");
        assert_eq!(quote_literal(r"a\b'c"), r" E'a\\b''c'");
    }
}
