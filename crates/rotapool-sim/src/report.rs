//! The comparison: one summary per client, printed as a table and written as JSON.

use serde_json::{json, Value};

use crate::{
    metrics::Timeline,
    sim::{ClientRun, Settings},
};

/// A window counts from setSecret to one second after finishSecret: the time a rotation can hurt.
const WINDOW_TAIL: f64 = 1.0;

/// What the recovery figure measures, under the table and in the JSON.
const RECOVERY: &str = "recovery: setSecret to the first request served by a newly opened connection; \
it includes waiting for a pooled connection to reach its max lifetime (or be killed), so it is not the switch time";

/// The figures of one client.
pub(crate) struct Summary {
    /// The client's name.
    pub client: &'static str,
    /// Successful requests.
    pub ok: u64,
    /// Failed requests.
    pub errors: u64,
    /// Successful requests per second over the run.
    pub ops_per_sec: f64,
    /// Requests per second during rotation windows.
    pub ops_in_windows: f64,
    /// Requests per second outside them.
    pub ops_steady: f64,
    /// `get()` latency p50, p99, p99.9 in milliseconds.
    pub get_ms: [f64; 3],
    /// Request (`get()` + query) latency p50, p99, p99.9 in milliseconds.
    pub request_ms: [f64; 3],
    /// Secret reads by the client after start-up.
    pub secret_reads: u64,
    /// Rotations run.
    pub rotations: usize,
    /// Logins attempted and rejected.
    pub logins: (u64, u64),
    /// Per rotation: seconds from setSecret to the first request served by a new connection, if any came. This
    /// includes the wait for a pooled connection to expire (or be killed) so that a new one is opened: the
    /// switch time ([`crate::switch`]) is the pool's own part of it.
    pub recovery: Vec<Option<f64>>,
    /// The run's timeline and rotation marks, for the JSON and the plot.
    pub run: ClientRun,
}

impl Summary {
    /// Summarizes one run of `settings`.
    pub(crate) fn of(run: ClientRun, settings: &Settings) -> Self {
        let ok = run.timeline.ok.iter().sum::<u64>();
        let errors = run.timeline.errors.iter().sum::<u64>();
        let windows: Vec<(f64, f64)> = run
            .rotations
            .iter()
            .map(|r| (r.set_at, r.finish_at + WINDOW_TAIL))
            .collect();
        let (ops_in_windows, ops_steady) = run.timeline.rates_in_and_out(&windows);
        let quantiles = |h: &hdrhistogram::Histogram<u64>| {
            [0.5, 0.99, 0.999].map(|q| h.value_at_quantile(q) as f64 / 1000.0)
        };
        let recovery = run
            .rotations
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let until = run
                    .rotations
                    .get(i + 1)
                    .map_or(f64::INFINITY, |next| next.set_at);
                first_at_or_after(&run.timeline, r.set_at)
                    .filter(|&at| at < until)
                    .map(|at| at - r.set_at)
            })
            .collect();
        Self {
            client: run.kind.name(),
            ok,
            errors,
            ops_per_sec: ok as f64 / settings.duration.as_secs_f64(),
            ops_in_windows,
            ops_steady,
            get_ms: quantiles(&run.latencies.get),
            request_ms: quantiles(&run.latencies.request),
            secret_reads: run.secret_reads - run.secret_reads_at_start,
            rotations: run.rotations.len(),
            logins: (run.logins, run.login_failures),
            recovery,
            run,
        }
    }

    /// Secret reads per rotation.
    pub(crate) fn reads_per_rotation(&self) -> f64 {
        self.secret_reads as f64 / self.rotations.max(1) as f64
    }

    /// The worst recovery, or `None` if some rotation never recovered.
    pub(crate) fn worst_recovery(&self) -> Option<f64> {
        self.recovery
            .iter()
            .try_fold(0.0f64, |worst, r| r.map(|r| worst.max(r)))
    }

    fn to_json(&self) -> Value {
        json!({
            "client": self.client,
            "ok": self.ok,
            "errors": self.errors,
            "errors_by_kind": self.run.timeline.error_kinds,
            "ops_per_sec": self.ops_per_sec,
            "ops_per_sec_in_rotation_windows": self.ops_in_windows,
            "ops_per_sec_steady": self.ops_steady,
            "get_latency_ms": { "p50": self.get_ms[0], "p99": self.get_ms[1], "p99_9": self.get_ms[2] },
            "request_latency_ms": { "p50": self.request_ms[0], "p99": self.request_ms[1], "p99_9": self.request_ms[2] },
            "secret_reads": self.secret_reads,
            "secret_reads_per_rotation": self.reads_per_rotation(),
            "logins": self.logins.0,
            "login_failures": self.logins.1,
            "recovery_definition": RECOVERY,
            "rotations": self.run.rotations.iter().zip(&self.recovery).map(|(r, recovery)| json!({
                "create_secret_at_s": r.started_at,
                "set_secret_at_s": r.set_at,
                "finish_secret_at_s": r.finish_at,
                "recovery_s": recovery,
            })).collect::<Vec<_>>(),
            "switch": self.run.switches.as_ref().map(crate::switch::Switches::to_json),
            "timeline": {
                "bucket_ms": crate::metrics::BUCKET.as_millis() as u64,
                "ok": self.run.timeline.ok,
                "errors": self.run.timeline.errors,
            },
        })
    }
}

/// The seconds of the first request served by a new connection at or after `at`.
fn first_at_or_after(timeline: &Timeline, at: f64) -> Option<f64> {
    let index = timeline.fresh_ok.partition_point(|&t| t < at);
    timeline.fresh_ok.get(index).copied()
}

/// The terminal table.
pub(crate) fn table(summaries: &[Summary]) -> String {
    // As wide as the longest name: the deadpool clients' table keeps its width.
    let width = summaries
        .iter()
        .map(|s| s.client.len())
        .max()
        .unwrap_or(0)
        .max(9);
    let mut out = format!(
        "{:<width$} {:>9} {:>7} {:>10} {:>15} {:>22} {:>22} {:>14} {:>12} {:>12}\n",
        "client",
        "ok",
        "errors",
        "ops/s",
        "rot/steady ops",
        "get p50/p99/p99.9 ms",
        "req p50/p99/p99.9 ms",
        "secret reads",
        "logins(fail)",
        "recovery max"
    );
    for s in summaries {
        let ratio = if s.ops_steady > 0.0 {
            s.ops_in_windows / s.ops_steady
        } else {
            0.0
        };
        let recovery = s
            .worst_recovery()
            .map_or("never".to_owned(), |r| format!("{:.0} ms", r * 1000.0));
        out.push_str(&format!(
            "{:<width$} {:>9} {:>7} {:>10.0} {:>15.2} {:>22} {:>22} {:>14} {:>12} {:>12}\n",
            s.client,
            s.ok,
            s.errors,
            s.ops_per_sec,
            ratio,
            format!("{:.2}/{:.2}/{:.2}", s.get_ms[0], s.get_ms[1], s.get_ms[2]),
            format!(
                "{:.2}/{:.2}/{:.2}",
                s.request_ms[0], s.request_ms[1], s.request_ms[2]
            ),
            format!("{} ({:.1}/rot)", s.secret_reads, s.reads_per_rotation()),
            format!("{}({})", s.logins.0, s.logins.1),
            recovery,
        ));
    }
    out.push_str(RECOVERY);
    out.push('\n');
    for s in summaries.iter().filter(|s| s.errors > 0) {
        out.push_str(&format!(
            "{} errors by kind: {:?}\n",
            s.client, s.run.timeline.error_kinds
        ));
    }
    out
}

/// The JSON document for `--json`.
pub(crate) fn json(
    summaries: &[Summary],
    settings: &Settings,
    backend: &str,
    command: &str,
) -> Value {
    json!({
        "command": command,
        "backend": backend,
        "settings": {
            "tasks": settings.tasks,
            "pool_size": settings.pool_size,
            "duration_s": settings.duration.as_secs_f64(),
            "window_s": settings.window.as_secs_f64(),
            "interval_s": settings.interval.as_secs_f64(),
            "strategy": format!("{:?}", settings.strategy).to_lowercase(),
            "churn": format!("{:?}", settings.churn),
        },
        "clients": summaries.iter().map(Summary::to_json).collect::<Vec<_>>(),
    })
}
