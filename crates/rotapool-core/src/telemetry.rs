//! What a pool tells the outside: `tracing` events under one span per pool (carrying its name and secret id),
//! and, with the `metrics` feature, series through the `metrics` facade. Metric names follow the OpenTelemetry
//! database-client conventions where they exist (`db.client.connection.*`); rotapool's own are `rotapool.*`.
//! Every series carries `pool.name`. No field ever holds a password.

use std::{sync::Arc, time::Duration};

use crate::source::{SourceError, Stage};

/// How a login ended, as the `rotapool.logins` series counts it.
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

/// How a new version of the secret was found, as `rotapool.rotations.adopted` counts it.
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
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::Current => "current",
            Self::Pending => "pending",
            Self::Proactive => "proactive",
            Self::Previous => "previous",
        }
    }
}

/// One pool's span and labels.
#[derive(Debug, Clone)]
pub(crate) struct Telemetry {
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    name: Arc<str>,
    span: tracing::Span,
}

impl Telemetry {
    pub(crate) fn new(name: &str, secret_id: &str) -> Self {
        Self {
            name: name.into(),
            span: tracing::info_span!("rotapool", pool = %name, secret_id = %secret_id),
        }
    }

    /// The pool's span: work done for the pool runs inside it.
    pub(crate) fn span(&self) -> &tracing::Span {
        &self.span
    }

    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn read(&self, stage: Stage, result: Result<(), &SourceError>, took: Duration) {
        let outcome = match result {
            Ok(()) => "ok",
            Err(SourceError::StageNotFound { .. }) => "not_found",
            Err(SourceError::TimedOut { .. }) => "timeout",
            Err(_) => "error",
        };
        tracing::debug!(
            parent: &self.span,
            stage = stage.label(),
            outcome,
            latency_ms = took.as_secs_f64() * 1e3,
            "read the secret"
        );
        #[cfg(feature = "metrics")]
        metrics::counter!(
            "rotapool.secret.reads",
            "pool.name" => self.name.to_string(),
            "stage" => stage.label(),
            "outcome" => outcome
        )
        .increment(1);
    }

    pub(crate) fn login(&self, outcome: LoginOutcome, took: Duration) {
        #[cfg(feature = "metrics")]
        {
            metrics::counter!(
                "rotapool.logins",
                "pool.name" => self.name.to_string(),
                "outcome" => outcome.label()
            )
            .increment(1);
            if outcome == LoginOutcome::Ok {
                metrics::histogram!(
                    "db.client.connection.create_time",
                    "pool.name" => self.name.to_string()
                )
                .record(took.as_secs_f64());
            }
        }
        #[cfg(not(feature = "metrics"))]
        let _ = (outcome.label(), took);
    }

    pub(crate) fn adopted(&self, generation: u64, version_id: &str, by: AdoptedBy) {
        tracing::info!(
            parent: &self.span,
            generation,
            version_id,
            by = by.label(),
            "adopted a new version of the secret"
        );
        #[cfg(feature = "metrics")]
        {
            metrics::counter!(
                "rotapool.rotations.adopted",
                "pool.name" => self.name.to_string(),
                "path" => by.label()
            )
            .increment(1);
            metrics::gauge!("rotapool.credentials.generation", "pool.name" => self.name.to_string())
                .set(generation as f64);
        }
    }

    /// A `get()` that waited `took`, and whether it ended in a timeout.
    #[cfg(feature = "metrics")]
    pub(crate) fn waited(&self, took: Duration, timed_out: bool) {
        metrics::histogram!("db.client.connection.wait_time", "pool.name" => self.name.to_string())
            .record(took.as_secs_f64());
        if timed_out {
            metrics::counter!("db.client.connection.timeouts", "pool.name" => self.name.to_string())
                .increment(1);
        }
    }

    /// A borrowed connection came back after `took`.
    #[cfg(feature = "metrics")]
    pub(crate) fn used(&self, took: Duration) {
        metrics::histogram!("db.client.connection.use_time", "pool.name" => self.name.to_string())
            .record(took.as_secs_f64());
    }

    pub(crate) fn rejected(&self, generation: u64, detail: &str) {
        tracing::warn!(parent: &self.span, generation, %detail, "the database rejected the credentials");
    }

    pub(crate) fn retired(&self, generation: u64, reason: &'static str) {
        tracing::debug!(parent: &self.span, generation, reason, "retired a connection");
    }

    pub(crate) fn gave_up(&self, error: &dyn std::fmt::Display, locked: bool) {
        if locked {
            tracing::error!(parent: &self.span, %error, "the database account is locked");
        } else {
            tracing::error!(parent: &self.span, %error, "could not open a connection");
        }
    }
}

/// Samples a pool's state every second into the `db.client.connection.*` gauges and
/// `rotapool.connections.open`, until the pool is dropped.
#[cfg(feature = "metrics")]
pub(crate) fn sample_pool<B: crate::Backend>(pool: &crate::Pool<B>) {
    let weak = pool.weak();
    let name = pool.manager().telemetry().name().to_owned();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            let Some(pool) = weak.upgrade() else { return };
            let status = pool.status();
            let stats = pool.manager().stats();
            let label = || name.clone();
            let used = status.size.saturating_sub(status.available);
            metrics::gauge!("db.client.connection.count", "pool.name" => label(), "state" => "idle")
                .set(status.available as f64);
            metrics::gauge!("db.client.connection.count", "pool.name" => label(), "state" => "used")
                .set(used as f64);
            metrics::gauge!("db.client.connection.max", "pool.name" => label())
                .set(status.max_size as f64);
            metrics::gauge!("db.client.connection.pending_requests", "pool.name" => label())
                .set(status.waiting as f64);
            let old = stats.old_generation_connections();
            let all: u64 = stats.connections_by_generation.values().sum();
            metrics::gauge!("rotapool.connections.open", "pool.name" => label(), "credentials" => "current")
                .set((all - old) as f64);
            metrics::gauge!("rotapool.connections.open", "pool.name" => label(), "credentials" => "old")
                .set(old as f64);
            metrics::gauge!("rotapool.credentials.generation", "pool.name" => label())
                .set(stats.generation as f64);
        }
    });
}
