//! What a soak must show, and its figures: the goals with what was measured, the samples as a table, and all of
//! it as JSON.

use serde_json::{json, Value};

use crate::{
    metrics::nearest_rank,
    soak::{Sample, SoakRun},
};

/// Most the resident memory may grow from the end of the warm-up to the end of the soak, in KiB.
const RSS_GROWTH_KIB: i64 = 1024;
/// Most secret reads the pool may make per rotation.
const READS_PER_ROTATION: f64 = 2.0;

/// One goal of the soak.
pub(crate) struct Goal {
    /// What is measured.
    pub name: &'static str,
    /// The bound.
    pub target: String,
    /// What the soak measured.
    pub measured: String,
    /// Whether the bound holds.
    pub met: bool,
}

/// The soak's goals, judged on `run`. With `killed_sessions` (`--churn kill`), failed queries on the sessions the
/// simulator killed are not counted as errors.
pub(crate) fn goals(run: &SoakRun, killed_sessions: bool) -> Vec<Goal> {
    let last = run.samples.last().expect("a soak has a first sample");
    let warm = warm_sample(run);
    let growth = last.rss_kib as i64 - warm.rss_kib as i64;
    let timed_out = run.drains.iter().filter(|d| d.took.is_none()).count();
    let old_after = run.drains.iter().map(|d| d.old_after).max().unwrap_or(0);
    let reads = last.secret_reads as f64 / run.drains.len().max(1) as f64;
    let errors: u64 = run
        .errors_by_kind
        .iter()
        .filter(|(kind, _)| !(killed_sessions && **kind == "query"))
        .map(|(_, count)| count)
        .sum();
    vec![
        Goal {
            name: "RSS growth after warm-up",
            target: format!("<= {RSS_GROWTH_KIB} KiB"),
            measured: format!(
                "{growth} KiB ({} KiB at rotation {}, {} KiB at rotation {})",
                warm.rss_kib, warm.rotation, last.rss_kib, last.rotation
            ),
            met: growth <= RSS_GROWTH_KIB,
        },
        Goal {
            name: "old-generation connections after each drain",
            target: "0".to_owned(),
            measured: format!(
                "max {old_after}; {timed_out} of {} drains not done within {:?}",
                run.drains.len(),
                run.plan.drain_timeout
            ),
            met: timed_out == 0 && old_after == 0,
        },
        Goal {
            name: "secret reads per rotation",
            target: format!("<= {READS_PER_ROTATION}"),
            measured: format!("{reads:.2} ({} reads)", last.secret_reads),
            met: reads <= READS_PER_ROTATION,
        },
        Goal {
            name: "errors",
            target: "0".to_owned(),
            measured: format!("{errors} {:?}", run.errors_by_kind),
            met: errors == 0,
        },
    ]
}

/// The sample memory growth is measured from: the first one at or after the warm-up.
fn warm_sample(run: &SoakRun) -> &Sample {
    run.samples
        .iter()
        .find(|s| s.rotation >= run.plan.warmup)
        .unwrap_or_else(|| run.samples.last().expect("a soak has a first sample"))
}

/// Seconds each drain took, ascending (drains that timed out left out).
fn drain_times(run: &SoakRun) -> Vec<f64> {
    let mut times: Vec<f64> = run.drains.iter().filter_map(|d| d.took).collect();
    times.sort_by(f64::total_cmp);
    times
}

/// The `q` quantile (nearest rank) of ascending `sorted` seconds, in milliseconds; `None` if empty.
fn quantile_ms(sorted: &[f64], q: f64) -> Option<f64> {
    nearest_rank(sorted, q).map(|s| s * 1000.0)
}

/// The samples, the drains and the goals, for the terminal.
pub(crate) fn table(run: &SoakRun, goals: &[Goal]) -> String {
    let failing: Vec<(usize, u64)> = run
        .drains
        .iter()
        .enumerate()
        .filter(|(_, d)| d.errors > 0)
        .map(|(i, d)| (i + 1, d.errors))
        .collect();
    let mut out = format!(
        "{:>8} {:>8} {:>9} {:>8} {:>13} {:>10} {:>10} {:>7}  connections by generation\n",
        "rotation", "seconds", "RSS KiB", "old gen", "secret reads", "reads/rot", "ok", "errors"
    );
    for s in &run.samples {
        out.push_str(&format!(
            "{:>8} {:>8.1} {:>9} {:>8} {:>13} {:>10.2} {:>10} {:>7}  {:?}\n",
            s.rotation,
            s.seconds,
            s.rss_kib,
            s.old_generation,
            s.secret_reads,
            s.secret_reads as f64 / f64::from(s.rotation.max(1)),
            s.ok,
            s.errors,
            s.connections_by_generation,
        ));
    }
    let times = drain_times(run);
    let ms = |q: f64| quantile_ms(&times, q).map_or("-".to_owned(), |ms| format!("{ms:.0}"));
    out.push_str(&format!(
        "{} rotations in {:.1} s; drain after finishSecret p50/p99/max {}/{}/{} ms; \
         old-generation connections at finishSecret max {}\n\n",
        run.drains.len(),
        run.seconds,
        ms(0.5),
        ms(0.99),
        ms(1.0),
        run.drains
            .iter()
            .map(|d| d.old_at_finish)
            .max()
            .unwrap_or(0),
    ));
    if !failing.is_empty() {
        out.push_str(&format!(
            "rotations with failed requests (rotation, failures): {failing:?}\n"
        ));
    }
    for goal in goals {
        out.push_str(&format!(
            "{:<4} {:<45} {:<12} {}\n",
            if goal.met { "ok" } else { "MISS" },
            goal.name,
            goal.target,
            goal.measured
        ));
    }
    out
}

/// The soak as JSON for `--json`.
pub(crate) fn json(run: &SoakRun, goals: &[Goal], backend: &str, command: &str) -> Value {
    let times = drain_times(run);
    let request = |q: f64| run.latencies.request.value_at_quantile(q) as f64 / 1000.0;
    json!({
        "command": command,
        "backend": backend,
        "plan": {
            "rotations": run.plan.rotations,
            "sample_every": run.plan.sample_every,
            "warmup": run.plan.warmup,
            "drain_timeout_s": run.plan.drain_timeout.as_secs_f64(),
        },
        "seconds": run.seconds,
        "goals": goals.iter().map(|g| json!({
            "name": g.name, "target": g.target, "measured": g.measured, "met": g.met,
        })).collect::<Vec<_>>(),
        "errors_by_kind": run.errors_by_kind,
        "request_latency_ms": { "p50": request(0.5), "p99": request(0.99), "p99_9": request(0.999) },
        "drain_ms": {
            "p50": quantile_ms(&times, 0.5),
            "p99": quantile_ms(&times, 0.99),
            "max": quantile_ms(&times, 1.0),
            "timed_out": run.drains.len() - times.len(),
        },
        "samples": run.samples.iter().map(|s| json!({
            "rotation": s.rotation,
            "seconds": s.seconds,
            "rss_kib": s.rss_kib,
            "old_generation_connections": s.old_generation,
            "connections_by_generation": s.connections_by_generation,
            "secret_reads": s.secret_reads,
            "ok": s.ok,
            "errors": s.errors,
        })).collect::<Vec<_>>(),
        "drains": {
            "old_generation_at_finish_secret": run.drains.iter().map(|d| d.old_at_finish).collect::<Vec<_>>(),
            "old_generation_after_drain": run.drains.iter().map(|d| d.old_after).collect::<Vec<_>>(),
            "took_ms": run.drains.iter().map(|d| d.took.map(|s| s * 1000.0)).collect::<Vec<_>>(),
            "errors": run.drains.iter().map(|d| d.errors).collect::<Vec<_>>(),
        },
    })
}

#[cfg(test)]
mod tests {
    use std::{collections::BTreeMap, time::Duration};

    use super::*;
    use crate::{
        metrics::TaskLatencies,
        soak::{Drain, SoakPlan},
    };

    fn sample(rotation: u32, rss_kib: u64, secret_reads: u64) -> Sample {
        Sample {
            rotation,
            seconds: f64::from(rotation),
            rss_kib,
            connections_by_generation: BTreeMap::new(),
            old_generation: 0,
            secret_reads,
            ok: 0,
            errors: 0,
        }
    }

    /// 100 rotations, warm-up 20: memory grows 5000 KiB during the warm-up and `growth` KiB after it.
    fn run(growth: u64, reads: u64, drains: Vec<Drain>, errors: &[(&'static str, u64)]) -> SoakRun {
        SoakRun {
            plan: SoakPlan {
                rotations: 100,
                sample_every: 50,
                warmup: 20,
                drain_timeout: Duration::from_secs(1),
            },
            samples: vec![
                sample(0, 10_000, 0),
                sample(20, 15_000, reads / 5),
                sample(50, 15_000 + growth / 2, reads / 2),
                sample(100, 15_000 + growth, reads),
            ],
            drains,
            errors_by_kind: errors.iter().copied().collect(),
            latencies: TaskLatencies::new(),
            seconds: 100.0,
        }
    }

    fn drained() -> Vec<Drain> {
        vec![
            Drain {
                errors: 0,
                old_at_finish: 3,
                old_after: 0,
                took: Some(0.1),
            };
            100
        ]
    }

    fn missed(run: &SoakRun, killed_sessions: bool) -> Vec<&'static str> {
        goals(run, killed_sessions)
            .into_iter()
            .filter(|g| !g.met)
            .map(|g| g.name)
            .collect()
    }

    #[test]
    fn a_clean_soak_meets_every_goal_and_warm_up_growth_does_not_count() {
        assert!(missed(&run(1024, 200, drained(), &[]), false).is_empty());
    }

    #[test]
    fn each_goal_is_missed_on_its_own() {
        assert_eq!(
            missed(&run(1025, 200, drained(), &[]), false),
            ["RSS growth after warm-up"]
        );
        assert_eq!(
            missed(&run(0, 201, drained(), &[]), false),
            ["secret reads per rotation"]
        );
        let mut late = drained();
        late[7] = Drain {
            errors: 0,
            old_at_finish: 3,
            old_after: 1,
            took: None,
        };
        assert_eq!(
            missed(&run(0, 200, late, &[]), false),
            ["old-generation connections after each drain"]
        );
        assert_eq!(
            missed(&run(0, 200, drained(), &[("get:auth", 1)]), false),
            ["errors"]
        );
    }

    #[test]
    fn queries_on_killed_sessions_are_not_errors() {
        let run = run(0, 200, drained(), &[("query", 8)]);
        assert!(missed(&run, true).is_empty());
        assert_eq!(missed(&run, false), ["errors"]);
    }
}
