//! A workload for the scenarios: tasks that loop `get()` + a query and record what they saw.

use std::{
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use super::pools::TestPool;

/// Liveness bound for waits on progress; exceeding it is a failure, not a measurement.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// Waits until `done` holds, failing the test after [`PATIENCE`].
pub async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !done() {
        assert!(Instant::now() < deadline, "gave up waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// What the workload saw.
#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    errors: Mutex<Vec<String>>,
    /// Every connection handed out: when it was created, its credentials generation, and whether it was
    /// created for this very `get()` (fresh) while the pool's generation was already at least its own.
    connections: Mutex<Vec<Handout>>,
}

#[derive(Clone, Copy)]
struct Handout {
    created: Instant,
    generation: u64,
    /// The pool's generation when `get()` was called.
    generation_at_get: u64,
    /// Created by this `get()`, not reused.
    fresh: bool,
}

/// Running tasks; stop them with [`Workload::stop`].
pub struct Workload {
    tally: Arc<Tally>,
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Workload {
    /// Starts `tasks` tasks looping over `pool`.
    pub fn start<P: TestPool>(pool: &P, tasks: usize) -> Self {
        let tally = Arc::new(Tally::default());
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = (0..tasks)
            .map(|_| {
                let (pool, tally, stop) = (pool.clone(), tally.clone(), stop.clone());
                tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        let generation_at_get = pool.generation();
                        let started = Instant::now();
                        let outcome = match pool.get().await {
                            Ok(mut conn) => {
                                let created = pool.conn_created(&conn);
                                tally.connections.lock().unwrap().push(Handout {
                                    created,
                                    generation: pool.conn_generation(&conn),
                                    generation_at_get,
                                    fresh: created >= started,
                                });
                                pool.ping(&mut conn).await
                            }
                            Err(e) => Err(e),
                        };
                        match outcome {
                            Ok(()) => {
                                tally.ok.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(e) => tally.errors.lock().unwrap().push(e),
                        }
                    }
                })
            })
            .collect();
        Self { tally, stop, tasks }
    }

    /// (creation time, generation) of the connections created after `since`, oldest first.
    pub fn created_since(&self, since: Instant) -> Vec<(Instant, u64)> {
        let connections = self.tally.connections.lock().unwrap();
        let mut created: Vec<_> = connections
            .iter()
            .filter(|h| h.created > since)
            .map(|h| (h.created, h.generation))
            .collect();
        created.sort_by_key(|(at, _)| *at);
        created.dedup();
        created
    }

    /// Generations of the connections opened for a `get()` that began when the pool was already at `generation`
    /// or later.
    pub fn opened_at_or_after(&self, generation: u64) -> Vec<u64> {
        let connections = self.tally.connections.lock().unwrap();
        connections
            .iter()
            .filter(|h| h.fresh && h.generation_at_get >= generation)
            .map(|h| h.generation)
            .collect()
    }

    /// Errors seen so far.
    pub fn errors(&self) -> Vec<String> {
        self.tally.errors.lock().unwrap().clone()
    }

    /// Queries served so far.
    pub fn served(&self) -> u64 {
        self.tally.ok.load(Ordering::Relaxed)
    }

    /// Waits until `count` connections were created after `since`, or an error was seen.
    pub async fn wait_for_new_connections(&self, count: usize, since: Instant) {
        wait_until(
            &format!("{count} connections were created, or a task saw an error"),
            || {
                self.created_since(since).len() >= count
                    || !self.tally.errors.lock().unwrap().is_empty()
            },
        )
        .await;
    }

    /// Stops the tasks and fails the test if any saw an error.
    pub async fn stop_expecting_no_errors(self) {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            task.await.expect("a workload task panicked");
        }
        let errors = self.tally.errors.lock().unwrap();
        assert!(
            errors.is_empty(),
            "the application saw {} errors: {:?}",
            errors.len(),
            &errors[..errors.len().min(5)]
        );
        assert!(
            self.tally.ok.load(Ordering::Relaxed) > 0,
            "the workload served nothing"
        );
    }
}
