//! A fleet's figures: per replica count and client, what a rotation costs the store and the database (mean and
//! worst over the rotations), as a table and as JSON; and the reads' spread after each window opened.

use serde_json::{json, Value};

use crate::{
    fleet::{FleetRun, RotationFigures},
    metrics::BUCKET,
};

/// One fleet run, summed up over its rotations.
pub(crate) struct FleetSummary<'a> {
    /// The run.
    pub run: &'a FleetRun,
    /// The sum over the rotations.
    pub total: RotationFigures,
    /// The most in one rotation, figure by figure.
    pub worst: RotationFigures,
}

impl<'a> FleetSummary<'a> {
    /// Sums `run` up.
    pub(crate) fn of(run: &'a FleetRun) -> Self {
        Self {
            run,
            total: fold(run, |a, b| a + b),
            worst: fold(run, u64::max),
        }
    }

    /// The mean per rotation of one figure.
    pub(crate) fn mean(&self, pick: fn(&RotationFigures) -> u64) -> f64 {
        pick(&self.total) as f64 / self.run.per_rotation.len().max(1) as f64
    }

    /// Secret reads per rotation per replica.
    pub(crate) fn reads_per_replica(&self) -> f64 {
        self.mean(|f| f.reads) / self.run.plan.replicas.max(1) as f64
    }
}

/// Every rotation's figures of `run`, combined figure by figure with `combine`.
fn fold(run: &FleetRun, combine: fn(u64, u64) -> u64) -> RotationFigures {
    run.per_rotation
        .iter()
        .fold(RotationFigures::default(), |acc, f| RotationFigures {
            reads: combine(acc.reads, f.reads),
            describes: combine(acc.describes, f.describes),
            logins: combine(acc.logins, f.logins),
            failed_logins: combine(acc.failed_logins, f.failed_logins),
            peak_logins: combine(acc.peak_logins, f.peak_logins),
            errors: combine(acc.errors, f.errors),
            ok: combine(acc.ok, f.ok),
        })
}

/// Every run as a table for the terminal: mean per rotation, with the worst rotation in brackets.
pub(crate) fn table(summaries: &[FleetSummary]) -> String {
    let mut out = format!(
        "{:>8} {:>9} {:>10} {:>21} {:>11} {:>18} {:>17} {:>16} {:>14}\n",
        "replicas",
        "client",
        "rotations",
        "reads/rot [max]",
        "reads/rep",
        "failed logins/rot",
        "logins/rot",
        "peak logins",
        "errors/rot"
    );
    for s in summaries {
        out.push_str(&format!(
            "{:>8} {:>9} {:>10} {:>21} {:>11.2} {:>18} {:>17} {:>16} {:>14}\n",
            s.run.plan.replicas,
            s.run.kind.name(),
            s.run.per_rotation.len(),
            mean_and_worst(s, |f| f.reads),
            s.reads_per_replica(),
            mean_and_worst(s, |f| f.failed_logins),
            mean_and_worst(s, |f| f.logins),
            mean_and_worst(s, |f| f.peak_logins),
            mean_and_worst(s, |f| f.errors),
        ));
    }
    out
}

/// One figure of `s` as the table shows it: the mean per rotation, and the worst rotation in brackets.
fn mean_and_worst(s: &FleetSummary, pick: fn(&RotationFigures) -> u64) -> String {
    format!("{:.1} [{}]", s.mean(pick), pick(&s.worst))
}

/// A run's reads after each window opened, until the next one did,, in [`BUCKET`]s: of AWSCURRENT (and
/// AWSPREVIOUS), and of AWSPENDING. Reads before the first window (the start-up ones) are left out.
pub(crate) fn spread(run: &FleetRun) -> (Vec<u64>, Vec<u64>) {
    let buckets = (run.plan.interval.as_secs_f64() / BUCKET.as_secs_f64()).ceil() as usize;
    let (mut current, mut pending) = (vec![0; buckets], vec![0; buckets]);
    for read in &run.reads {
        let bucket = (read.since_window / BUCKET.as_secs_f64()) as usize;
        let into = match read.stage {
            rotapool_core::Stage::Pending => &mut pending,
            _ => &mut current,
        };
        if let Some(count) = into.get_mut(bucket) {
            *count += 1;
        }
    }
    (current, pending)
}

/// [`spread`] as JSON.
fn spread_json(run: &FleetRun) -> Value {
    let (current, pending) = spread(run);
    json!({ "AWSCURRENT": current, "AWSPENDING": pending })
}

/// Every run as JSON for `--json`.
pub(crate) fn json(summaries: &[FleetSummary], backend: &str, command: &str) -> Value {
    let figures = |f: &RotationFigures| {
        json!({
            "reads": f.reads, "describes": f.describes, "logins": f.logins,
            "failed_logins": f.failed_logins, "peak_logins": f.peak_logins, "errors": f.errors, "ok": f.ok,
        })
    };
    json!({
        "command": command,
        "backend": backend,
        "runs": summaries.iter().map(|s| json!({
            "replicas": s.run.plan.replicas,
            "client": s.run.kind.name(),
            "after_rotation_s": s.run.plan.after_rotation.as_secs_f64(),
            "startup_reads": s.run.startup_reads,
            "mean_per_rotation": {
                "reads": s.mean(|f| f.reads), "describes": s.mean(|f| f.describes), "logins": s.mean(|f| f.logins),
                "failed_logins": s.mean(|f| f.failed_logins), "peak_logins": s.mean(|f| f.peak_logins),
                "errors": s.mean(|f| f.errors),
            },
            "reads_per_replica_per_rotation": s.reads_per_replica(),
            "worst_rotation": figures(&s.worst),
            "per_rotation": s.run.per_rotation.iter().map(figures).collect::<Vec<_>>(),
            "errors_by_kind": s.run.errors_by_kind,
            "reads_per_100ms_after_window_opened": spread_json(s.run),
            "rotations": s.run.rotations.iter().map(|r| json!({
                "started_at": r.started_at, "set_at": r.set_at, "finish_at": r.finish_at,
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}
