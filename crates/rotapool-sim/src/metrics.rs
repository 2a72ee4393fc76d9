//! What one client run measured: a timeline in 100 ms buckets, latency histograms, errors by kind, rotations.

use std::{
    collections::BTreeMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        Mutex,
    },
    time::{Duration, Instant},
};

use hdrhistogram::Histogram;

use crate::sim::Sink;

/// Width of a timeline bucket.
pub(crate) const BUCKET: Duration = Duration::from_millis(100);

/// Shared by the workload tasks while a client runs.
pub(crate) struct Recorder {
    start: Instant,
    deadline: Instant,
    ok: Vec<AtomicU64>,
    errors: Vec<AtomicU64>,
    error_kinds: Mutex<BTreeMap<String, u64>>,
    /// Seconds since start at which a newly opened connection served a request.
    fresh_ok: Mutex<Vec<f64>>,
}

/// Latencies one task saw, merged at the end so the hot path takes no lock.
pub(crate) struct TaskLatencies {
    /// Time in `get()`, in microseconds.
    pub get: Histogram<u64>,
    /// Time of `get()` plus the query, in microseconds.
    pub request: Histogram<u64>,
}

impl TaskLatencies {
    /// Empty histograms covering 1 µs to 60 s.
    pub(crate) fn new() -> Self {
        let histogram =
            || Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds");
        Self {
            get: histogram(),
            request: histogram(),
        }
    }

    /// Adds one successful request.
    pub(crate) fn record(&mut self, get: Duration, request: Duration) {
        let micros = |d: Duration| (d.as_micros() as u64).clamp(1, 60_000_000);
        self.get.saturating_record(micros(get));
        self.request.saturating_record(micros(request));
    }

    /// Folds `other` into these.
    pub(crate) fn merge(&mut self, other: &TaskLatencies) {
        self.get.add(&other.get).expect("same bounds");
        self.request.add(&other.request).expect("same bounds");
    }
}

impl Recorder {
    /// A recorder for a run of `duration` starting now.
    pub(crate) fn new(duration: Duration) -> Self {
        let buckets = (duration.as_millis() / BUCKET.as_millis()) as usize + 20;
        let start = Instant::now();
        Self {
            start,
            deadline: start + duration,
            ok: (0..buckets).map(|_| AtomicU64::new(0)).collect(),
            errors: (0..buckets).map(|_| AtomicU64::new(0)).collect(),
            error_kinds: Mutex::new(BTreeMap::new()),
            fresh_ok: Mutex::new(Vec::new()),
        }
    }

    /// When the run started.
    pub(crate) fn start(&self) -> Instant {
        self.start
    }

    /// Seconds since the start.
    pub(crate) fn seconds(&self, at: Instant) -> f64 {
        at.saturating_duration_since(self.start).as_secs_f64()
    }

    fn bucket(&self, at: Instant) -> usize {
        let index =
            (at.saturating_duration_since(self.start).as_millis() / BUCKET.as_millis()) as usize;
        index.min(self.ok.len() - 1)
    }

    /// Totals so far: (ok, errors).
    pub(crate) fn totals(&self) -> (u64, u64) {
        let sum = |v: &[AtomicU64]| v.iter().map(|c| c.load(Ordering::Relaxed)).sum();
        (sum(&self.ok), sum(&self.errors))
    }

    /// The recorded timeline: the run's `duration`, plus the buckets of requests still in flight at its end.
    pub(crate) fn timeline(&self, duration: Duration) -> Timeline {
        let in_flight = |v: &[AtomicU64]| {
            v.iter()
                .rposition(|c| c.load(Ordering::Relaxed) > 0)
                .map_or(0, |i| i + 1)
        };
        let len = ((duration.as_millis() / BUCKET.as_millis()) as usize)
            .max(in_flight(&self.ok))
            .max(in_flight(&self.errors));
        let read = |v: &[AtomicU64]| {
            v.iter()
                .take(len)
                .map(|c| c.load(Ordering::Relaxed))
                .collect()
        };
        let mut fresh_ok = self.fresh_ok.lock().unwrap().clone();
        fresh_ok.sort_by(f64::total_cmp);
        Timeline {
            ok: read(&self.ok),
            errors: read(&self.errors),
            error_kinds: self.error_kinds.lock().unwrap().clone(),
            fresh_ok,
        }
    }
}

/// The workload runs until the run's duration is over, and every request lands in the timeline.
impl Sink for Recorder {
    fn running(&self) -> bool {
        Instant::now() < self.deadline
    }

    fn ok(&self, at: Instant, fresh: bool) {
        self.ok[self.bucket(at)].fetch_add(1, Ordering::Relaxed);
        if fresh {
            self.fresh_ok.lock().unwrap().push(self.seconds(at));
        }
    }

    fn error(&self, at: Instant, kind: &'static str) {
        self.errors[self.bucket(at)].fetch_add(1, Ordering::Relaxed);
        *self
            .error_kinds
            .lock()
            .unwrap()
            .entry(kind.to_owned())
            .or_default() += 1;
    }
}

/// The nearest-rank `q` quantile of `sorted` (ascending): the smallest value with at least `q` of the values at or
/// below it; `None` if there are none.
pub(crate) fn nearest_rank(sorted: &[f64], q: f64) -> Option<f64> {
    let rank = (q * sorted.len() as f64).ceil() as usize;
    (!sorted.is_empty()).then(|| sorted[rank.clamp(1, sorted.len()) - 1])
}

/// Per-bucket counts of one run.
#[derive(Debug, Clone)]
pub(crate) struct Timeline {
    /// Successful requests per bucket.
    pub ok: Vec<u64>,
    /// Failed requests per bucket.
    pub errors: Vec<u64>,
    /// Failed requests per kind.
    pub error_kinds: BTreeMap<String, u64>,
    /// Seconds at which a newly opened connection served a request, sorted.
    pub fresh_ok: Vec<f64>,
}

impl Timeline {
    /// Requests in each whole second; a last, partial second (requests in flight at the end) is left out.
    pub(crate) fn per_second(values: &[u64]) -> Vec<u64> {
        let per = (Duration::from_secs(1).as_millis() / BUCKET.as_millis()) as usize;
        values
            .chunks_exact(per)
            .map(|chunk| chunk.iter().sum())
            .collect()
    }

    /// Requests per second inside and outside `windows` (in seconds since the start).
    pub(crate) fn rates_in_and_out(&self, windows: &[(f64, f64)]) -> (f64, f64) {
        let (mut inside, mut inside_buckets, mut outside, mut outside_buckets) =
            (0u64, 0u64, 0u64, 0u64);
        for (i, &count) in self.ok.iter().enumerate() {
            let middle = (i as f64 + 0.5) * BUCKET.as_secs_f64();
            if windows
                .iter()
                .any(|&(from, to)| middle >= from && middle < to)
            {
                inside += count;
                inside_buckets += 1;
            } else {
                outside += count;
                outside_buckets += 1;
            }
        }
        let rate = |count: u64, buckets: u64| {
            if buckets == 0 {
                0.0
            } else {
                count as f64 / (buckets as f64 * BUCKET.as_secs_f64())
            }
        };
        (rate(inside, inside_buckets), rate(outside, outside_buckets))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_nearest_rank() {
        let values: Vec<f64> = (1..=20).map(f64::from).collect();
        assert_eq!(nearest_rank(&values, 0.5), Some(10.0));
        assert_eq!(nearest_rank(&values, 0.99), Some(20.0));
        assert_eq!(nearest_rank(&values, 0.0), Some(1.0));
        assert_eq!(nearest_rank(&values[..1], 0.5), Some(1.0));
        assert_eq!(nearest_rank(&[], 0.5), None);
    }
}

/// Counts requests without growing, for runs too long or too wide for a [`Recorder`]'s timeline: the soak, which
/// measures memory, and the fleet.
#[derive(Default)]
pub(crate) struct Counters {
    /// Set to stop the workload.
    pub stopped: std::sync::atomic::AtomicBool,
    /// Requests served.
    pub ok: AtomicU64,
    /// Requests failed.
    pub errors: AtomicU64,
    /// Requests failed, by kind.
    pub kinds: Mutex<BTreeMap<&'static str, u64>>,
}

impl Sink for Counters {
    fn running(&self) -> bool {
        !self.stopped.load(Ordering::Relaxed)
    }

    fn ok(&self, _at: Instant, _fresh: bool) {
        self.ok.fetch_add(1, Ordering::Relaxed);
    }

    fn error(&self, _at: Instant, kind: &'static str) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        *self.kinds.lock().unwrap().entry(kind).or_default() += 1;
    }
}
