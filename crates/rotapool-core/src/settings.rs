//! The knobs of a rotating login: how hard to try logins, where to connect, when to retire connections, how
//! often to re-read the secret. Plain values, checked by the builder and read by the login.

use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use crate::{credentials::Credentials, source::RotationWindow};

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
    /// A login that succeeds resets the pool's count only of the failures counted before it began: one that
    /// ends after a concurrent failure may have reached the server before it. The logins in flight when the
    /// password changes each fail once, so [`ConnectPolicy::max_concurrent_logins`] must be below the threshold;
    /// the builder refuses a pool where it is not.
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
    type Err = crate::error::InvalidValue;

    /// `keep`, `immediate`, `gradual` (over 30 s) or `gradual:<duration>`, e.g. `gradual:2m`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = || {
            crate::error::InvalidValue::new(
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
        crate::error::from_str_value(deserializer)
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

/// While the database rejects the current credentials and the secret has nothing newer (or cannot be read), the
/// refresher reads it at a steady pace: one round (`AWSCURRENT`, then `AWSPENDING` if `AWSCURRENT` is unchanged)
/// every `retry_interval` for the first `slow_after` of the failure, then every `slow_retry_interval`. Each pause
/// is stretched or shrunk by up to a tenth at random, so replicas that failed together do not read together.
/// Between rounds, callers fail at once with the last round's answer instead of waiting. Adopting a new version
/// ends the failure, so the next rejection reads at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefreshPolicy {
    /// How long one read of the secret may take before it counts as failed ([`crate::SourceError::TimedOut`]), so that
    /// a store that accepts connections but never answers cannot hold up the pool. Defaults to 5 s.
    pub read_timeout: Duration,
    /// The pause between two rounds of reads while logins fail. Defaults to 1 s.
    pub retry_interval: Duration,
    /// How long a failure lasts before the pace slows to `slow_retry_interval`. Defaults to 60 s.
    pub slow_after: Duration,
    /// The pause between two rounds once a failure has lasted `slow_after`. Defaults to 10 s.
    pub slow_retry_interval: Duration,
}

impl Default for RefreshPolicy {
    fn default() -> Self {
        Self {
            read_timeout: Duration::from_secs(5),
            retry_interval: Duration::from_secs(1),
            slow_after: Duration::from_secs(60),
            slow_retry_interval: Duration::from_secs(10),
        }
    }
}

impl RefreshPolicy {
    /// The pause before the next round of a failure that began at `since`.
    pub(crate) fn pause(&self, since: Instant) -> Duration {
        crate::random::scaled(self.pace(since), 0.9, 1.1)
    }

    /// The shortest [`RefreshPolicy::pause`] can be: a rejected version is due again by the next round, whatever
    /// the jitter drew for either.
    pub(crate) fn shortest_pause(&self, since: Instant) -> Duration {
        self.pace(since).mul_f64(0.9)
    }

    fn pace(&self, since: Instant) -> Duration {
        if since.elapsed() < self.slow_after {
            self.retry_interval
        } else {
            self.slow_retry_interval
        }
    }

    /// Why these settings are unusable, if they are.
    pub(crate) fn invalid(&self) -> Option<&'static str> {
        if self.read_timeout.is_zero() {
            Some("read_timeout must be above zero")
        } else if self.retry_interval.is_zero() || self.slow_retry_interval < self.retry_interval {
            Some("retry_interval must be above zero and at most slow_retry_interval")
        } else {
            None
        }
    }
}

/// When to re-read the secret without waiting for a failure.
///
/// Outside a rotation window the secret is read every `interval`, give or take a fifth. When the secret's
/// rotation window opens (`NextRotationDate`), the first read comes `after_rotation` later, plus up to half of it
/// again at random so that a fleet's replicas do not read in step. While the window stays open and the rotation
/// has not shown up, each pause is as long as the time since the window opened (from `after_rotation` up to
/// `interval`, give or take a fifth): the reads back off, 1, 2, 4, 8 and then every 15 minutes with the defaults.
/// One more read comes `after_rotation` (and up to half of it again) after the window closes; past that, the
/// pace is the usual one even if the rotation never came. From the window's opening to that last read, a
/// replica makes at most `1 + ceil(ln(I / a) / ln 1.8) + floor((L + a - I) / (0.8 I)) + 2` reads, for an
/// `interval` I, an `after_rotation` a and a window L long: 126 in a 24-hour window with the defaults, where the
/// usual pace makes 96 on average and 120 at most, and where reading every `after_rotation` would make 1,440.
/// A wake at the usual or the window's pace that finds the pool has adopted new credentials since the last one
/// (a rejected login found the rotation first) makes no read: the pool already has what it would find. At the
/// failure pace every wake reads. The README's cost section has the arithmetic for a fleet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProactiveRefresh {
    /// The usual time between two reads, each shortened or lengthened by up to a fifth so that a fleet of
    /// services does not read in step; also the longest pause in a rotation window. Defaults to 15 minutes.
    pub interval: Duration,
    /// How long after the secret's rotation window opens (its `NextRotationDate`) to read it first, giving the
    /// rotation time to finish; also the first pause while the window stays open, and the delay of the read
    /// after it closes. Defaults to 60 s.
    pub after_rotation: Duration,
}

impl Default for ProactiveRefresh {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(15 * 60),
            after_rotation: Duration::from_secs(60),
        }
    }
}

impl ProactiveRefresh {
    /// How long to sleep before the next read. `spread` in [0, 1) picks the jitter; `window` is the secret's
    /// next rotation window, if it has one.
    pub(crate) fn next_wake(
        &self,
        spread: f64,
        now: SystemTime,
        window: Option<RotationWindow>,
    ) -> Duration {
        let usual = self.interval.mul_f64(0.8 + 0.4 * spread);
        let Some(window) = window else {
            return usual;
        };
        // The first read comes `late` after the window opens, the last `late` after it closes. The spread, and so
        // `late`, differs from one wake to the next: which side of a read a wake is on is told by the earliest
        // that read can come, `after_rotation`.
        let late = self.after_rotation.mul_f64(1.0 + 0.5 * spread);
        let (opens, closes) = (window.opens, window.closes_at());
        // Before the window's first read: the usual pace, or that read if it comes first.
        if now < opens + self.after_rotation {
            let wait = (opens + late).duration_since(now).unwrap_or_default();
            return usual.min(wait);
        }
        // Past the read after the window closed: the rotation came and moved the window on, or it never will.
        if now >= closes + self.after_rotation {
            return usual;
        }
        let until_closing_read = (closes + late).duration_since(now).unwrap_or_default();
        // In the window and no rotation yet: pause as long as the window has been open, within the bounds.
        let open_for = now.duration_since(window.opens).unwrap_or_default();
        let backoff = open_for
            .clamp(self.after_rotation, self.interval.max(self.after_rotation))
            .mul_f64(0.8 + 0.4 * spread);
        backoff.min(until_closing_read)
    }

    /// Where a new schedule starts in [0, 1): at random, so that replicas deployed together do not read in step.
    pub(crate) fn first_spread() -> f64 {
        crate::random::unit()
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

    const MINUTE: Duration = Duration::from_secs(60);

    #[test]
    fn without_a_schedule_reads_every_interval_give_or_take_a_fifth() {
        let policy = ProactiveRefresh::default();
        let now = SystemTime::now();
        assert_eq!(policy.next_wake(0.0, now, None), 12 * MINUTE);
        assert_eq!(policy.next_wake(0.5, now, None), 15 * MINUTE);
        assert!(policy.next_wake(0.999, now, None) < 18 * MINUTE);
    }

    fn opening_at(opens: SystemTime) -> Option<RotationWindow> {
        Some(RotationWindow {
            opens,
            closes: Some(opens + 4 * 60 * MINUTE),
        })
    }

    #[test]
    fn a_rotation_due_soon_is_read_shortly_after_it() {
        let policy = ProactiveRefresh::default();
        let now = SystemTime::now();
        assert_eq!(
            policy.next_wake(0.0, now, opening_at(now + 3 * MINUTE)),
            4 * MINUTE
        );
        assert_eq!(
            policy.next_wake(0.5, now, opening_at(now + 3 * MINUTE)),
            4 * MINUTE + MINUTE / 4,
            "spread over half an after_rotation"
        );
        assert_eq!(
            policy.next_wake(0.5, now, opening_at(now + 60 * MINUTE)),
            15 * MINUTE
        );
    }

    #[test]
    fn pools_started_together_read_at_different_times() {
        let policy = ProactiveRefresh::default();
        let now = SystemTime::now();
        let first_reads: std::collections::BTreeSet<Duration> = (0..8)
            .map(|_| policy.next_wake(ProactiveRefresh::first_spread(), now, None))
            .collect();
        assert!(first_reads.len() > 1, "{first_reads:?}");
        assert!(first_reads
            .iter()
            .all(|w| (12 * MINUTE..18 * MINUTE).contains(w)));
    }

    #[test]
    fn an_overdue_rotation_is_read_less_often_the_longer_the_window_stays_open() {
        let policy = ProactiveRefresh::default();
        let now = SystemTime::now();
        let open_for =
            |minutes: u32| policy.next_wake(0.5, now, opening_at(now - minutes * MINUTE));
        assert_eq!(open_for(2), 2 * MINUTE);
        assert_eq!(open_for(4), 4 * MINUTE);
        assert_eq!(open_for(10), 10 * MINUTE);
        assert_eq!(
            open_for(100),
            15 * MINUTE,
            "never slower than the usual pace"
        );
        assert_eq!(
            policy.next_wake(0.0, now, opening_at(now - 2 * MINUTE)),
            2 * MINUTE * 4 / 5
        );
    }

    #[test]
    fn a_window_ends_with_one_read_after_it_closes_then_the_usual_pace() {
        let policy = ProactiveRefresh::default();
        let opens = SystemTime::now();
        let window = opening_at(opens);
        let closes = opens + 4 * 60 * MINUTE;
        assert_eq!(
            policy.next_wake(0.0, closes - 5 * MINUTE, window),
            6 * MINUTE,
            "the read after the window closes comes before the next backoff"
        );
        assert_eq!(
            policy.next_wake(0.5, closes + 2 * MINUTE, window),
            15 * MINUTE
        );
        assert_eq!(
            policy.next_wake(0.5, closes + 10 * 60 * MINUTE, window),
            15 * MINUTE,
            "a rotation that never came is not polled for"
        );
    }

    #[test]
    fn a_window_with_no_known_end_closes_at_the_end_of_its_utc_day() {
        let opens = std::time::UNIX_EPOCH + Duration::from_secs(20_000 * 86_400 + 3_600);
        let window = RotationWindow {
            opens,
            closes: None,
        };
        assert_eq!(window.closes_at(), opens + 23 * 60 * MINUTE);
    }
}
