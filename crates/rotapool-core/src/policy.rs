//! The knobs of a rotating pool: how hard to try logins, where to connect, when to retire connections.

use std::time::Duration;

use crate::credentials::Credentials;

/// How the pool opens, keeps and retires connections.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnectPolicy {
    /// Most logins one `create` makes with credentials that turn out to be rejected, across refreshes.
    /// Defaults to 3.
    pub max_auth_attempts: u32,
    /// How long one `create` may wait for the secret to change after a rejected login. Defaults to 10 s.
    pub auth_budget: Duration,
    /// Most logins in flight at once. Defaults to 2. When the password changes under the pool, the logins
    /// already in flight all fail, so this bounds the failed logins one password change can cause; credentials
    /// no login has yet succeeded with are tried by one login at a time. Keep it below the database's lockout
    /// threshold (MariaDB `max_password_errors`, MySQL `FAILED_LOGIN_ATTEMPTS`).
    pub max_concurrent_logins: u32,
    /// Connections older than this are closed instead of reused. Defaults to none.
    pub max_lifetime: Option<Duration>,
    /// Each connection's lifetime is shortened by a share of this, spread evenly across connections, so that
    /// connections opened together do not expire together. Defaults to zero.
    pub max_lifetime_jitter: Duration,
    /// What happens to connections opened with credentials older than the current ones. Defaults to
    /// [`DrainPolicy::Gradual`] over 30 s.
    pub drain: DrainPolicy,
    /// Host, port and database to use instead of the secret's. Defaults to none.
    pub endpoint: EndpointOverrides,
    /// How long one `create` keeps retrying logins that fail for passing reasons (connection refused or reset,
    /// a server starting up or shutting down, too many connections), with a doubling, jittered pause from 25 ms
    /// up to 1 s between tries, so that a database restart does not reach the application. `None` fails at once,
    /// as deadpool does. Defaults to 10 s. The pool's create timeout, if shorter, cuts it short.
    pub transient_retry: Option<Duration>,
    /// How many failed logins in a row make the database block the account (MariaDB `max_password_errors`,
    /// MySQL `FAILED_LOGIN_ATTEMPTS`), if it does. Defaults to none.
    ///
    /// The pool tries a version the database rejected again at the failure pace, because the store can be ahead
    /// of the database. Where a version that works remains, each such try is followed by a login that succeeds,
    /// which resets the server's count. Where none does (a wrong secret), the tries would add up: with a
    /// threshold set, the pool makes no retry that could reach it, and waits for a version it has not tried.
    pub lockout_threshold: Option<u32>,
}

impl Default for ConnectPolicy {
    fn default() -> Self {
        Self {
            max_auth_attempts: 3,
            auth_budget: Duration::from_secs(10),
            max_concurrent_logins: 2,
            max_lifetime: None,
            max_lifetime_jitter: Duration::ZERO,
            drain: DrainPolicy::default(),
            endpoint: EndpointOverrides::default(),
            transient_retry: Some(Duration::from_secs(10)),
            lockout_threshold: None,
        }
    }
}

/// What to do with connections that logged in with credentials older than the current generation.
///
/// Open sessions survive a password change, so old connections keep working; retiring them still matters,
/// because with alternating users the old user's password changes at the next rotation, and because operators
/// expect a rotation to end with every session on the new credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DrainPolicy {
    /// Keep them until they die of other causes (max lifetime, errors).
    Keep,
    /// Retire each one when it returns to the pool, at a point spread evenly over `over` after the new
    /// generation was adopted, so that a rotation causes no reconnect storm.
    Gradual {
        /// The time over which old connections are retired.
        over: Duration,
    },
    /// Retire each one the next time it returns to the pool.
    Immediate,
}

impl Default for DrainPolicy {
    fn default() -> Self {
        Self::Gradual {
            over: Duration::from_secs(30),
        }
    }
}

impl std::str::FromStr for DrainPolicy {
    type Err = crate::config::InvalidValue;

    /// `keep`, `immediate`, `gradual` (over 30 s) or `gradual:<duration>`, e.g. `gradual:2m`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = || {
            crate::config::InvalidValue::new(
                "one of keep, immediate, gradual, gradual:<duration> (e.g. gradual:45s)",
            )
        };
        match text.to_ascii_lowercase().as_str() {
            "keep" => Ok(Self::Keep),
            "immediate" => Ok(Self::Immediate),
            "gradual" => Ok(Self::default()),
            other => {
                let over = other.strip_prefix("gradual:").ok_or_else(invalid)?;
                let over = humantime_serde::re::humantime::parse_duration(over.trim())
                    .map_err(|_| invalid())?;
                Ok(Self::Gradual { over })
            }
        }
    }
}

impl<'de> serde::Deserialize<'de> for DrainPolicy {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        crate::config::from_str_value(deserializer)
    }
}

/// Connection details that replace the secret's own, e.g. to go through RDS Proxy or an SSH tunnel.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointOverrides {
    /// Replaces the secret's `host`.
    pub host: Option<String>,
    /// Replaces the secret's `port`.
    pub port: Option<u16>,
    /// Replaces the secret's `dbname`.
    pub dbname: Option<String>,
}

impl EndpointOverrides {
    pub(crate) fn is_empty(&self) -> bool {
        self.host.is_none() && self.port.is_none() && self.dbname.is_none()
    }

    /// `credentials` with the overridden fields replaced.
    pub fn apply(&self, credentials: &Credentials) -> Credentials {
        let mut out = credentials.clone();
        if let Some(host) = &self.host {
            out = out.with_host(host.clone());
        }
        if let Some(port) = self.port {
            out = out.with_port(port);
        }
        if let Some(dbname) = &self.dbname {
            out = out.with_dbname(dbname.clone());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_overrides_replace_only_what_they_name() {
        let secret = Credentials::new("app", "pw")
            .with_host("db.example")
            .with_port(5432)
            .with_dbname("orders");
        let overrides = EndpointOverrides {
            host: Some("proxy.example".into()),
            port: None,
            dbname: Some("reports".into()),
        };
        let out = overrides.apply(&secret);
        assert_eq!(out.host(), Some("proxy.example"));
        assert_eq!(out.port(), Some(5432));
        assert_eq!(out.dbname(), Some("reports"));
        assert_eq!((out.username(), out.password()), ("app", "pw"));
        assert!(EndpointOverrides::default().is_empty());
    }
}
