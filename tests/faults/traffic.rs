//! Application traffic for the fault cases: tasks that loop `get()` + a query, and record when each kind of
//! error happened, so that a case can say which errors the pool let through and when service came back.

use std::{
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use crate::conformance::pools::TestPool;

/// An error the application saw, and when.
#[derive(Debug, Clone)]
pub struct Seen {
    pub at: Instant,
    pub message: String,
}

#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    /// `get()` failed: what the pool is there to hide.
    get_errors: Mutex<Vec<Seen>>,
    /// The query on a connection `get()` handed out failed: the server killed the session under it, which no
    /// pool can hide.
    query_errors: Mutex<Vec<Seen>>,
}

/// Running tasks; [`Traffic::stop`] ends them and returns what they saw.
pub struct Traffic {
    tally: Arc<Tally>,
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// What the traffic saw, in all.
#[derive(Debug)]
pub struct Report {
    pub ok: u64,
    pub get_errors: Vec<Seen>,
    pub query_errors: Vec<Seen>,
}

impl Report {
    /// `get()` errors at or after `since`.
    pub fn get_errors_since(&self, since: Instant) -> Vec<&Seen> {
        self.get_errors.iter().filter(|e| e.at >= since).collect()
    }

    /// From `since` to the last `get()` error after it; zero if there was none.
    pub fn recovery_after(&self, since: Instant) -> Duration {
        self.get_errors_since(since)
            .last()
            .map_or(Duration::ZERO, |e| e.at.duration_since(since))
    }
}

impl Traffic {
    /// `tasks` tasks, each pausing 2 ms between requests so that the machine's two cores stay available to the
    /// servers.
    pub fn start<P: TestPool>(pool: &P, tasks: usize) -> Self {
        let tally = Arc::new(Tally::default());
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = (0..tasks)
            .map(|_| {
                let (pool, tally, stop) = (pool.clone(), tally.clone(), stop.clone());
                tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        match pool.get().await {
                            Ok(mut conn) => match pool.ping(&mut conn).await {
                                Ok(()) => {
                                    tally.ok.fetch_add(1, Ordering::Relaxed);
                                }
                                Err(message) => record(&tally.query_errors, message),
                            },
                            Err(e) => record(&tally.get_errors, e),
                        }
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    }
                })
            })
            .collect();
        Self { tally, stop, tasks }
    }

    /// Requests served so far.
    pub fn served(&self) -> u64 {
        self.tally.ok.load(Ordering::Relaxed)
    }

    /// `get()` errors so far.
    pub fn get_errors(&self) -> usize {
        self.tally.get_errors.lock().unwrap().len()
    }

    /// Waits until `more` requests beyond those served so far were served; fails after a minute.
    pub async fn wait_for_service(&self, more: u64) {
        let target = self.served() + more;
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.served() < target {
            assert!(
                Instant::now() < deadline,
                "service did not resume within a minute"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Stops the tasks.
    pub async fn stop(self) -> Report {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            task.await.expect("a traffic task panicked");
        }
        let take = |errors: &Mutex<Vec<Seen>>| std::mem::take(&mut *errors.lock().unwrap());
        Report {
            ok: self.tally.ok.load(Ordering::Relaxed),
            get_errors: take(&self.tally.get_errors),
            query_errors: take(&self.tally.query_errors),
        }
    }
}

fn record(errors: &Mutex<Vec<Seen>>, message: String) {
    errors.lock().unwrap().push(Seen {
        at: Instant::now(),
        message,
    });
}
