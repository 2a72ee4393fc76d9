//! Setup shared by every bench: criterion settings, the runtime, and a timed fan-out of tasks.

// A module of each bench binary: its `pub` items are for the bench, not for a crate's users.
#![allow(unreachable_pub)]

use std::{
    future::Future,
    time::{Duration, Instant},
};

use criterion::Criterion;
use tokio::{runtime::Runtime, task::JoinSet};

/// Few, short samples: the suite has to finish in a few minutes on 2 cores, and the comparisons that matter are
/// ratios between benchmarks measured side by side, not absolute numbers.
pub fn criterion() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
}

/// A multi-thread runtime with one worker per core, as a service would run.
pub fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// Spawns `tasks` tasks, each made by a call to `make_task`, and waits for all of them. Returns the wall time from
/// the first spawn to the last completion, and the tasks' results. The futures are built before the clock starts,
/// so whatever `make_task` clones is not timed. A panic in a task is re-raised here.
pub async fn fan_out<T, F, Fut>(tasks: usize, mut make_task: F) -> (Duration, Vec<T>)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let futures: Vec<Fut> = (0..tasks).map(|_| make_task()).collect();
    let started = Instant::now();
    let mut set = JoinSet::new();
    for future in futures {
        set.spawn(future);
    }
    let results = set.join_all().await;
    (started.elapsed(), results)
}
