//! The fleet: N replicas of one service through the same rotations. Each replica is a pool of its own, with its
//! own secret-source client and (for rotapool) its own proactive schedule; all of them share one database
//! account and one secret. The store announces each rotation's window before it opens, as Secrets Manager's
//! `NextRotationDate` does. Per rotation, the run counts what the fleet did to the store and to the database.
//! What the figures mean, and their table and JSON, are in `fleet_report`.

use std::{
    sync::{atomic::Ordering, Arc},
    time::{Duration, Instant, SystemTime},
};

use deadpool::managed::Pool;
use rotapool_core::{source::RotationWindow, PoolBuilder, ProactiveRefresh, Stage};
use rotapool_testkit::TestServer;

use crate::{
    clients::{BaselineManager, ClientKind, CountingSource, Credentialing, NextWindow},
    login_log::{LoginEvent, LoginLog, Observed, Outcome},
    metrics::Counters,
    sim::{self, Prepared, RotationMark, Settings, SimBackend, SimPool},
    store::Store,
};

/// The clients a fleet compares: rotapool, and the pool that reads the secret before every login.
pub(crate) const CLIENTS: [ClientKind; 2] = [ClientKind::Rotapool, ClientKind::Naive];

/// What a fleet run is.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FleetPlan {
    /// Replicas.
    pub replicas: usize,
    /// Rotations.
    pub rotations: u32,
    /// Time from one rotation's start to the next: the span a rotation's figures cover.
    pub interval: Duration,
    /// rotapool's proactive refresh: how long after a window opens each replica reads first.
    pub after_rotation: Duration,
}

/// What the whole fleet did in one rotation: from its createSecret to the next one's (or to the run's end).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RotationFigures {
    /// Reads of the secret (GetSecretValue) by all replicas.
    pub reads: u64,
    /// Asks for the rotation window (DescribeSecret) by all replicas.
    pub describes: u64,
    /// Logins the database saw from the replicas.
    pub logins: u64,
    /// Of those, the ones it rejected as bad credentials.
    pub failed_logins: u64,
    /// The most logins in flight at once.
    pub peak_logins: u64,
    /// Requests that failed in the application.
    pub errors: u64,
    /// Requests served.
    pub ok: u64,
}

/// A read of the secret by a replica, in seconds since the window of the rotation it fell in opened.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TimedRead {
    /// Seconds since the window opened.
    pub since_window: f64,
    /// The label read.
    pub stage: Stage,
}

/// Everything one client's fleet measured.
pub(crate) struct FleetRun {
    /// Which client.
    pub kind: ClientKind,
    /// The plan it ran.
    pub plan: FleetPlan,
    /// Per rotation, what the fleet did.
    pub per_rotation: Vec<RotationFigures>,
    /// The rotations, in seconds since the replicas began to start.
    pub rotations: Vec<RotationMark>,
    /// rotapool's reads of the secret during the rotations, timed from its rotation's window (none for naive).
    pub reads: Vec<TimedRead>,
    /// Failed requests by kind, over the whole run.
    pub errors_by_kind: std::collections::BTreeMap<&'static str, u64>,
    /// Reads of the secret while the replicas started (one per replica for rotapool).
    pub startup_reads: u64,
}

/// Runs `plan` for `kind` over `backend` and `server`: N pools, `settings.tasks` workload tasks each, and
/// `plan.rotations` rotations `plan.interval` apart; `progress` hears the rotations done.
pub(crate) async fn run<B: SimBackend>(
    kind: ClientKind,
    plan: FleetPlan,
    settings: &Settings,
    backend: B,
    server: &'static dyn TestServer,
    store: &Store,
    progress: impl Fn(u32),
) -> Result<FleetRun, String> {
    let Prepared {
        user,
        admin,
        rotator,
    } = sim::prepare("fleet", settings, backend.clone(), server, store).await?;
    let log = Arc::new(LoginLog::default());
    let observed = Observed::new(backend, log.clone());
    let schedule = Arc::new(NextWindow::default());
    let wall = Instant::now();
    let epoch = SystemTime::now();
    // The first rotation, and each one after, is announced before it starts: its window opens when it starts.
    let opens = |rotation: u32| settings.first_rotation + plan.interval * rotation;
    let announce = |rotation: u32| {
        let at = epoch + opens(rotation);
        schedule.set(RotationWindow {
            opens: at,
            closes: Some(at + plan.interval / 2),
        });
    };
    announce(0);
    let sources: Vec<Arc<CountingSource>> = (0..plan.replicas)
        .map(|_| {
            // Only rotapool's reads are timed (the spread); the naive pool's, one per login, would only grow.
            let source = match kind {
                ClientKind::Rotapool => CountingSource::with_read_log(admin.clone()),
                _ => CountingSource::new(admin.clone()),
            };
            Arc::new(
                source
                    .with_latency(settings.read_latency)
                    .with_schedule(schedule.clone()),
            )
        })
        .collect();
    let counters = Arc::new(Counters::default());
    let mut tasks = Vec::new();
    let proactive = ProactiveRefresh {
        after_rotation: plan.after_rotation,
        ..ProactiveRefresh::default()
    };
    for source in &sources {
        match kind {
            ClientKind::Rotapool => {
                let pool = PoolBuilder::new(observed.clone())
                    .secret_source(source.clone())
                    .max_size(settings.pool_size)
                    .max_lifetime(settings.max_lifetime())
                    .proactive_refresh(proactive)
                    .build()
                    .await
                    .map_err(|e| e.to_string())?;
                tasks.extend(spawn::<B, _>(&pool, settings, &counters));
            }
            ClientKind::Naive => {
                let manager = BaselineManager::new(
                    observed.clone(),
                    Credentialing::EveryLogin(source.clone()),
                    settings.max_lifetime(),
                );
                let pool = Pool::builder(manager)
                    .max_size(settings.pool_size)
                    .runtime(deadpool::Runtime::Tokio1)
                    .build()
                    .map_err(|e| e.to_string())?;
                tasks.extend(spawn::<B, _>(&pool, settings, &counters));
            }
            other => return Err(format!("the fleet runs rotapool and naive, not {other:?}")),
        }
    }
    // The workload's first logins belong to no rotation: they must be over when the first window opens.
    let started = wall.elapsed();
    if started + Duration::from_secs(1) > settings.first_rotation {
        counters.stopped.store(true, Ordering::Relaxed);
        return Err(format!(
            "starting {} replicas took {started:.1?}: give --first-rotation a second more than that",
            plan.replicas
        ));
    }
    let reads = || sources.iter().map(|s| s.reads()).sum::<u64>();
    let describes = || sources.iter().map(|s| s.describes()).sum::<u64>();
    let startup_reads = reads();

    let mut marks = Vec::new();
    let mut at_start = Vec::new();
    let outcome = async {
        for rotation in 0..plan.rotations {
            tokio::time::sleep_until((wall + opens(rotation)).into()).await;
            at_start.push(Tally::now(&counters, reads(), describes()));
            marks.push(sim::rotate(&rotator, settings, server, &user, wall).await?);
            announce(rotation + 1);
            progress(rotation + 1);
        }
        // The last rotation counts until the time the next one would have started.
        tokio::time::sleep_until((wall + opens(plan.rotations)).into()).await;
        Ok::<(), String>(())
    }
    .await;
    let end = Tally::now(&counters, reads(), describes());
    counters.stopped.store(true, Ordering::Relaxed);
    sim::join_workload(tasks).await?;
    outcome?;

    let events = log.events();
    let spans: Vec<(Instant, Instant)> = (0..plan.rotations)
        .map(|r| (wall + opens(r), wall + opens(r + 1)))
        .collect();
    let per_rotation = spans
        .iter()
        .zip(at_start.iter().zip(at_start.iter().skip(1).chain([&end])))
        .map(|(&(from, to), (before, after))| RotationFigures {
            reads: after.reads - before.reads,
            describes: after.describes - before.describes,
            ok: after.ok - before.ok,
            errors: after.errors - before.errors,
            ..logins_between(&events, from, to)
        })
        .collect();
    let timed = sources
        .iter()
        .flat_map(|s| s.read_log())
        .filter_map(|read| {
            let (opened, _) = spans.iter().rev().find(|(from, _)| *from <= read.at)?;
            Some(TimedRead {
                since_window: (read.at - *opened).as_secs_f64(),
                stage: read.stage,
            })
        })
        .collect();
    let errors_by_kind = counters.kinds.lock().unwrap().clone();
    Ok(FleetRun {
        kind,
        plan,
        per_rotation,
        rotations: marks,
        reads: timed,
        errors_by_kind,
        startup_reads,
    })
}

/// Starts a replica's workload tasks on `pool`.
fn spawn<B: SimBackend, P: SimPool<B>>(
    pool: &P,
    settings: &Settings,
    counters: &Arc<Counters>,
) -> Vec<tokio::task::JoinHandle<crate::metrics::TaskLatencies>> {
    sim::spawn_workload::<B, P, Counters>(pool, settings, counters)
}

/// The fleet's running totals at one moment.
struct Tally {
    reads: u64,
    describes: u64,
    ok: u64,
    errors: u64,
}

impl Tally {
    fn now(counters: &Counters, reads: u64, describes: u64) -> Self {
        Self {
            reads,
            describes,
            ok: counters.ok.load(Ordering::Relaxed),
            errors: counters.errors.load(Ordering::Relaxed),
        }
    }
}

/// The logins of `events` that ended in `[from, to)`, those rejected, and the most in flight at once in that
/// span (counting logins that began before it).
fn logins_between(events: &[LoginEvent], from: Instant, to: Instant) -> RotationFigures {
    let ended = events.iter().filter(|e| e.at >= from && e.at < to);
    let logins = ended.clone().count() as u64;
    let failed_logins = ended.filter(|e| e.outcome == Outcome::Rejected).count() as u64;
    // +1 where a login begins, -1 where it ends; at the same instant an end comes first.
    let mut edges: Vec<(Instant, i64)> = events
        .iter()
        .filter(|e| e.at > from && e.at - e.took < to)
        .flat_map(|e| [((e.at - e.took).max(from), 1), (e.at, -1)])
        .collect();
    edges.sort_unstable();
    let (mut now, mut peak) = (0i64, 0i64);
    for (_, step) in edges {
        now += step;
        peak = peak.max(now);
    }
    RotationFigures {
        logins,
        failed_logins,
        peak_logins: peak as u64,
        ..RotationFigures::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::login_log::Fingerprint;
    use rotapool_core::Credentials;

    fn login(start: Instant, from_ms: u64, to_ms: u64, outcome: Outcome) -> LoginEvent {
        LoginEvent {
            at: start + Duration::from_millis(to_ms),
            took: Duration::from_millis(to_ms - from_ms),
            who: Fingerprint::of(&Credentials::new("app", "pw")),
            outcome,
        }
    }

    #[test]
    fn logins_are_counted_in_the_span_they_end_in_and_overlaps_make_the_peak() {
        let t = Instant::now();
        let events = [
            // Began before the span, ended in it: counted, and in flight at the span's start.
            login(t, 50, 120, Outcome::Ok),
            login(t, 110, 130, Outcome::Rejected),
            login(t, 115, 125, Outcome::Rejected),
            // After the first three ended.
            login(t, 140, 150, Outcome::Ok),
            // Ends at the span's end: the next span's.
            login(t, 190, 200, Outcome::Ok),
        ];
        let ms = |m| t + Duration::from_millis(m);
        let figures = logins_between(&events, ms(100), ms(200));
        assert_eq!(figures.logins, 4);
        assert_eq!(figures.failed_logins, 2);
        assert_eq!(figures.peak_logins, 3);
        // Back to back, one ending as the next begins: never two at once.
        let chain = [login(t, 0, 10, Outcome::Ok), login(t, 10, 20, Outcome::Ok)];
        assert_eq!(logins_between(&chain, t, ms(30)).peak_logins, 1);
    }
}
