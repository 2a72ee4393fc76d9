//! The soak: many rotations back to back on one rotapool pool under load, each followed by the drain of the
//! old generation's connections, with the process's memory, the pool's connections by generation and the
//! secret reads sampled as it goes. What the figures must show is in `soak_report`.

use std::{
    collections::BTreeMap,
    sync::{atomic::Ordering, Arc},
    time::{Duration, Instant},
};

use rotapool_core::Pool;
use rotapool_testkit::TestServer;

use crate::{
    clients::CountingSource,
    metrics::{Counters, TaskLatencies},
    sim::{self, Prepared, Settings, SimBackend},
    store::Store,
};

/// How long and how closely to soak.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SoakPlan {
    /// Rotations to run, back to back.
    pub rotations: u32,
    /// Take a sample after every this many rotations.
    pub sample_every: u32,
    /// Rotations before memory counts: growth is measured from the sample taken after them.
    pub warmup: u32,
    /// How long to wait, after a rotation, for its old connections to be gone.
    pub drain_timeout: Duration,
}

/// The state of the process and the pool after `rotation` rotations.
#[derive(Debug, Clone)]
pub(crate) struct Sample {
    /// Rotations done.
    pub rotation: u32,
    /// Seconds since the soak started.
    pub seconds: f64,
    /// The process's resident memory (`VmRSS`), in KiB.
    pub rss_kib: u64,
    /// Open connections per credentials generation.
    pub connections_by_generation: BTreeMap<u64, u64>,
    /// Open connections older than the pool's current generation.
    pub old_generation: u64,
    /// Secret reads by the pool since the soak started.
    pub secret_reads: u64,
    /// Requests served so far.
    pub ok: u64,
    /// Requests failed so far.
    pub errors: u64,
}

/// One rotation's drain.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Drain {
    /// Requests that failed from the rotation's start to the drain's end.
    pub errors: u64,
    /// Old-generation connections right after finishSecret.
    pub old_at_finish: u64,
    /// Old-generation connections when the wait ended: 0 unless it timed out.
    pub old_after: u64,
    /// Seconds from finishSecret until the pool was on the rotation's generation with no older connection; `None`
    /// if that had not happened by the drain timeout.
    pub took: Option<f64>,
}

/// Everything a soak measured.
pub(crate) struct SoakRun {
    /// What was run.
    pub plan: SoakPlan,
    /// Samples, the first before any rotation.
    pub samples: Vec<Sample>,
    /// Per rotation, its drain.
    pub drains: Vec<Drain>,
    /// Failed requests by kind.
    pub errors_by_kind: BTreeMap<&'static str, u64>,
    /// Latencies of successful requests.
    pub latencies: TaskLatencies,
    /// Length of the soak in seconds.
    pub seconds: f64,
}

/// Runs `plan` on a rotapool pool over `backend`, with `settings`' workload, pool and churn; `progress` hears the
/// rotations done.
pub(crate) async fn run<B: SimBackend>(
    plan: SoakPlan,
    settings: &Settings,
    backend: B,
    server: &'static dyn TestServer,
    store: &Store,
    progress: impl Fn(u32),
) -> Result<SoakRun, String> {
    let Prepared {
        user,
        admin,
        rotator,
    } = sim::prepare("soak", settings, backend.clone(), server, store).await?;
    let source = Arc::new(CountingSource::new(admin).with_latency(settings.read_latency));
    let pool = sim::rotapool_pool(backend, &source, settings).await?;
    let counters = Arc::new(Counters::default());
    let tasks = sim::spawn_workload::<B, _, _>(&pool, settings, &counters);

    let start = Instant::now();
    let reads_at_start = source.reads();
    // Allocated up front, so that the soak's own bookkeeping does not grow while memory is sampled.
    let mut samples = Vec::with_capacity((plan.rotations / plan.sample_every.max(1)) as usize + 3);
    let mut drains = Vec::with_capacity(plan.rotations as usize);
    let sample = |rotation: u32| -> Result<Sample, String> {
        let stats = pool.stats();
        Ok(Sample {
            rotation,
            seconds: start.elapsed().as_secs_f64(),
            rss_kib: rss_kib()?,
            old_generation: stats.old_generation_connections(),
            connections_by_generation: stats.connections_by_generation,
            secret_reads: source.reads() - reads_at_start,
            ok: counters.ok.load(Ordering::Relaxed),
            errors: counters.errors.load(Ordering::Relaxed),
        })
    };
    samples.push(sample(0)?);
    let first_generation = pool.stats().generation;
    let outcome = async {
        for done in 1..=plan.rotations {
            let errors_before = counters.errors.load(Ordering::Relaxed);
            sim::rotate(&rotator, settings, server, &user, start).await?;
            let finished = Instant::now();
            let old_at_finish = pool.stats().old_generation_connections();
            let target = first_generation + u64::from(done);
            let took = drained(&pool, target, plan.drain_timeout)
                .await
                .then(|| finished.elapsed().as_secs_f64());
            drains.push(Drain {
                errors: counters.errors.load(Ordering::Relaxed) - errors_before,
                old_at_finish,
                old_after: pool.stats().old_generation_connections(),
                took,
            });
            if done % plan.sample_every.max(1) == 0 || done == plan.warmup || done == plan.rotations
            {
                samples.push(sample(done)?);
            }
            progress(done);
        }
        Ok::<(), String>(())
    }
    .await;
    counters.stopped.store(true, Ordering::Relaxed);
    let latencies = sim::join_workload(tasks).await?;
    outcome?;
    let errors_by_kind = counters.kinds.lock().unwrap().clone();
    Ok(SoakRun {
        plan,
        samples,
        drains,
        errors_by_kind,
        latencies,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// Waits until `pool` is on generation `target` or later with no connection of an older one; false if that has
/// not happened within `timeout`.
async fn drained<B: rotapool_core::Backend>(
    pool: &Pool<B>,
    target: u64,
    timeout: Duration,
) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        let stats = pool.stats();
        if stats.generation >= target && stats.old_generation_connections() == 0 {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// This process's resident memory in KiB, from `/proc/self/status` (Linux).
fn rss_kib() -> Result<u64, String> {
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(|e| format!("the soak reads VmRSS from /proc/self/status (Linux only): {e}"))?;
    parse_vm_rss(&status).ok_or_else(|| "/proc/self/status has no VmRSS line".to_owned())
}

/// The `VmRSS` of a `/proc/<pid>/status` text, in KiB.
fn parse_vm_rss(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().strip_suffix("kB"))
        .and_then(|kib| kib.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_rss_is_read_in_kib() {
        let status =
            "Name:\trotapool-sim\nVmPeak:\t  99999 kB\nVmRSS:\t   12345 kB\nRssAnon:\t 1 kB\n";
        assert_eq!(parse_vm_rss(status), Some(12345));
        assert_eq!(parse_vm_rss("VmRSS:\tmany\n"), None);
        assert!(rss_kib().unwrap() > 0);
    }
}
