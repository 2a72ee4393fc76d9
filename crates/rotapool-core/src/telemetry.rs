//! What a pool tells the outside: `tracing` events, and with the `metrics` feature, series through the `metrics`
//! facade. Metric names and attribute keys follow the OpenTelemetry database-client conventions where they exist
//! (`db.client.connection.*`, keyed by `db.client.connection.pool.name`); rotapool's own are `rotapool.*`, with
//! attribute keys in the same dotted style. No field ever holds a password.
//!
//! Events are emitted in the caller's span (the request that needed a connection), never in a span of the pool's
//! own, and each carries the pool's name and secret id as fields. Work that outlives its caller runs in a short
//! span that closes with it: a round of reads after a rejected login (`rotapool.refresh`, a child of the caller's
//! span) and each wake of the proactive refresh (`rotapool.proactive_refresh`, a root).

use std::{sync::Arc, time::Duration};

use tracing::Level;

use crate::source::{SourceError, Stage};

/// The OpenTelemetry attribute that names the pool, on every series (as a label) and every event (as a field).
#[cfg_attr(not(feature = "metrics"), allow(dead_code))]
pub(crate) const POOL_NAME: &str = "db.client.connection.pool.name";

/// A `tracing` event in the caller's span, carrying the pool's name and secret id: `pool_event!(telemetry,
/// LEVEL, fields.., "message")`.
macro_rules! pool_event {
    ($telemetry:expr, $level:expr, $($fields_and_message:tt)+) => {
        tracing::event!(
            $level,
            db.client.connection.pool.name = %$telemetry.name,
            rotapool.secret_id = %$telemetry.secret_id,
            $($fields_and_message)+
        )
    };
}

/// How a login ended, as the `rotapool.logins` series counts it (`rotapool.login.outcome`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LoginOutcome {
    Ok,
    AuthRejected,
    Locked,
    Error,
}

impl LoginOutcome {
    fn label(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::AuthRejected => "auth_rejected",
            Self::Locked => "locked",
            Self::Error => "error",
        }
    }
}

/// How a new version of the secret was found, as `rotapool.rotations.adopted` counts it (`rotapool.adopted_by`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AdoptedBy {
    /// A rejected login, then a new `AWSCURRENT`.
    Current,
    /// A rejected login, then `AWSPENDING` and a trial login (the single-user window).
    Pending,
    /// The proactive refresh, before any login failed.
    Proactive,
    /// A rejected login, then `AWSPREVIOUS` and a trial login (a store ahead of the database).
    Previous,
}

impl From<crate::source::Stage> for AdoptedBy {
    fn from(stage: crate::source::Stage) -> Self {
        match stage {
            crate::source::Stage::Current => Self::Current,
            crate::source::Stage::Pending => Self::Pending,
            crate::source::Stage::Previous => Self::Previous,
        }
    }
}

impl AdoptedBy {
    fn label(self) -> &'static str {
        match self {
            Self::Current => "current",
            Self::Pending => "pending",
            Self::Proactive => "proactive",
            Self::Previous => "previous",
        }
    }
}

/// One pool's name and secret id, which every event and series it reports carries.
#[derive(Debug, Clone)]
pub(crate) struct Telemetry {
    name: Arc<str>,
    secret_id: Arc<str>,
    /// The keys of the series recorded on every `get()` and every return, built once.
    #[cfg(feature = "metrics")]
    per_borrow: Arc<PerBorrow>,
}

/// The keys of the series a pool records on every `get()` and every return, labelled with its name once: building
/// a key from the `metrics` macros on each call costs two allocations and a hash, more than the pool's own work.
#[cfg(feature = "metrics")]
#[derive(Debug)]
struct PerBorrow {
    wait_time: metrics::Key,
    timeouts: metrics::Key,
    use_time: metrics::Key,
}

/// The metadata the `metrics` macros would give these series: this module as target, at level INFO.
#[cfg(feature = "metrics")]
static PER_BORROW_METADATA: metrics::Metadata<'static> =
    metrics::Metadata::new(module_path!(), metrics::Level::INFO, Some(module_path!()));

impl Telemetry {
    pub(crate) fn new(name: &str, secret_id: &str) -> Self {
        #[cfg(feature = "metrics")]
        let key = |series: &'static str| {
            metrics::Key::from_parts(
                series,
                vec![metrics::Label::new(POOL_NAME, name.to_owned())],
            )
        };
        Self {
            name: name.into(),
            secret_id: secret_id.into(),
            #[cfg(feature = "metrics")]
            per_borrow: Arc::new(PerBorrow {
                wait_time: key("db.client.connection.wait_time"),
                timeouts: key("db.client.connection.timeouts"),
                use_time: key("db.client.connection.use_time"),
            }),
        }
    }

    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// The span of one round of reads after a rejected login, which runs as a task of its own: a child of the
    /// caller's span, so that what the round finds shows up under the request that asked for it.
    pub(crate) fn round_span(&self) -> tracing::Span {
        tracing::info_span!(
            "rotapool.refresh",
            db.client.connection.pool.name = %self.name,
            rotapool.secret_id = %self.secret_id,
        )
    }

    /// The span of one wake of the proactive refresh. No caller waits for it, so it is a root; it closes before
    /// the refresh sleeps again.
    pub(crate) fn proactive_span(&self) -> tracing::Span {
        tracing::info_span!(
            parent: None,
            "rotapool.proactive_refresh",
            db.client.connection.pool.name = %self.name,
            rotapool.secret_id = %self.secret_id,
        )
    }

    pub(crate) fn read(&self, stage: Stage, result: Result<(), &SourceError>, took: Duration) {
        let outcome = match result {
            Ok(()) => "ok",
            Err(SourceError::StageNotFound { .. }) => "not_found",
            Err(SourceError::TimedOut { .. }) => "timeout",
            Err(_) => "error",
        };
        pool_event!(
            self,
            Level::DEBUG,
            rotapool.secret.stage = stage.label(),
            rotapool.read.outcome = outcome,
            rotapool.read.duration_ms = took.as_secs_f64() * 1e3,
            "read the secret"
        );
        #[cfg(feature = "metrics")]
        metrics::counter!(
            "rotapool.secret.reads",
            POOL_NAME => self.name.to_string(),
            "rotapool.secret.stage" => stage.label(),
            "rotapool.read.outcome" => outcome
        )
        .increment(1);
    }

    /// A read of the secret that failed in a round, for a label other than `AWSCURRENT` (the round goes on).
    pub(crate) fn read_failed(&self, stage: Stage, error: &SourceError) {
        pool_event!(
            self,
            Level::WARN,
            rotapool.secret.stage = stage.label(),
            %error,
            "could not read the secret"
        );
    }

    pub(crate) fn login(&self, outcome: LoginOutcome, took: Duration) {
        #[cfg(feature = "metrics")]
        {
            metrics::counter!(
                "rotapool.logins",
                POOL_NAME => self.name.to_string(),
                "rotapool.login.outcome" => outcome.label()
            )
            .increment(1);
            if outcome == LoginOutcome::Ok {
                metrics::histogram!(
                    "db.client.connection.create_time",
                    POOL_NAME => self.name.to_string()
                )
                .record(took.as_secs_f64());
            }
        }
        #[cfg(not(feature = "metrics"))]
        let _ = (outcome.label(), took);
    }

    /// A retry of rejected credentials that was not made, because it could make the server block the account.
    pub(crate) fn spared_lockout(&self) {
        pool_event!(
            self,
            Level::DEBUG,
            "not retrying rejected credentials: the server could block the account"
        );
    }

    /// A login that failed for a passing reason, tried again after `pause`.
    pub(crate) fn retrying(&self, detail: &str, pause: Duration) {
        pool_event!(
            self,
            Level::DEBUG,
            %detail,
            ?pause,
            "login failed for a passing reason; retrying"
        );
    }

    /// A trial login that failed for another reason than bad credentials.
    pub(crate) fn trial_failed(&self, detail: &str) {
        pool_event!(self, Level::WARN, %detail, "trial login failed");
    }

    pub(crate) fn adopted(&self, generation: u64, version_id: &str, by: AdoptedBy) {
        pool_event!(
            self,
            Level::INFO,
            rotapool.generation = generation,
            rotapool.version_id = version_id,
            rotapool.adopted_by = by.label(),
            "adopted a new version of the secret"
        );
        #[cfg(feature = "metrics")]
        {
            metrics::counter!(
                "rotapool.rotations.adopted",
                POOL_NAME => self.name.to_string(),
                "rotapool.adopted_by" => by.label()
            )
            .increment(1);
            metrics::gauge!("rotapool.credentials.generation", POOL_NAME => self.name.to_string())
                .set(generation as f64);
        }
    }

    /// A version the database refused in a trial login, found by `by`: kept, and tried again at the failure pace.
    pub(crate) fn not_accepted_yet(&self, version_id: &str, by: AdoptedBy) {
        pool_event!(
            self,
            Level::INFO,
            rotapool.version_id = version_id,
            rotapool.adopted_by = by.label(),
            "the database does not accept this version of the secret yet"
        );
    }

    /// Credentials the database rejected before, accepted again.
    pub(crate) fn accepted_again(&self, generation: u64) {
        pool_event!(
            self,
            Level::INFO,
            rotapool.generation = generation,
            "the database accepts the rejected credentials again"
        );
    }

    /// What one wake of the proactive refresh did.
    pub(crate) fn proactive(&self, read: Result<bool, &SourceError>) {
        match read {
            Ok(true) => pool_event!(
                self,
                Level::INFO,
                "proactive refresh adopted a rotated secret"
            ),
            Ok(false) => {}
            Err(error) => pool_event!(
                self,
                Level::WARN,
                %error,
                "proactive refresh could not read the secret"
            ),
        }
    }

    /// The secret's next rotation date could not be read; the proactive refresh keeps its usual schedule.
    pub(crate) fn next_rotation_unknown(&self, error: &SourceError) {
        pool_event!(
            self,
            Level::DEBUG,
            %error,
            "could not read the next rotation date"
        );
    }

    /// A connection request that waited `took`, and whether it ended in a timeout.
    #[cfg(feature = "metrics")]
    pub(crate) fn waited(&self, took: Duration, timed_out: bool) {
        let keys = &self.per_borrow;
        metrics::with_recorder(|r| r.register_histogram(&keys.wait_time, &PER_BORROW_METADATA))
            .record(took.as_secs_f64());
        if timed_out {
            metrics::with_recorder(|r| r.register_counter(&keys.timeouts, &PER_BORROW_METADATA))
                .increment(1);
        }
    }

    /// A borrowed connection came back after `took`.
    #[cfg(feature = "metrics")]
    pub(crate) fn used(&self, took: Duration) {
        let key = &self.per_borrow.use_time;
        metrics::with_recorder(|r| r.register_histogram(key, &PER_BORROW_METADATA))
            .record(took.as_secs_f64());
    }

    pub(crate) fn rejected(&self, generation: u64, detail: &str) {
        pool_event!(
            self,
            Level::WARN,
            rotapool.generation = generation,
            %detail,
            "the database rejected the credentials"
        );
    }

    pub(crate) fn retired(&self, generation: u64, reason: &'static str) {
        pool_event!(
            self,
            Level::DEBUG,
            rotapool.generation = generation,
            reason,
            "retired a connection"
        );
    }

    /// Logs `error` with its whole chain: a refresh error names the store's own words only in its source.
    pub(crate) fn gave_up(&self, error: &dyn std::error::Error, locked: bool) {
        let error = crate::error::report(error);
        if locked {
            pool_event!(self, Level::ERROR, %error, "the database account is locked");
        } else {
            pool_event!(self, Level::ERROR, %error, "could not open a connection");
        }
    }
}
