//! The proactive refresh a fleet can afford, under paused time: in a rotation window that no rotation comes to,
//! a pool's reads back off and stay within the bound the README's cost section states, and replicas started
//! together spread their first read in the window.

mod common;

use std::{
    sync::{atomic::AtomicU64, atomic::Ordering, Arc, Mutex},
    time::{Duration, SystemTime},
};

use async_trait::async_trait;
use common::{FakeDb, FaultyStore};
use rotapool_core::{
    source::RotationWindow, ProactiveRefresh, SecretSource, SecretVersion, SourceError, Stage,
};
use tokio::time::Instant;

const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);

/// A store whose secret's rotation window opens `opens` after the test starts and stays open `length`, on
/// tokio's clock: it answers wall-clock times as "the wall clock now, plus what is left", so that paused time
/// moves the window as the pool sees it. The rotation never comes. Records when each read happened.
#[derive(Debug)]
struct Scheduled {
    store: Arc<FaultyStore>,
    start: Instant,
    opens: Duration,
    length: Duration,
    reads_at: Mutex<Vec<Duration>>,
    describes: AtomicU64,
}

impl Scheduled {
    fn new(opens: Duration, length: Duration) -> Arc<Self> {
        Arc::new(Self {
            store: FaultyStore::new("pw"),
            start: Instant::now(),
            opens,
            length,
            reads_at: Mutex::new(Vec::new()),
            describes: AtomicU64::new(0),
        })
    }

    /// The wall-clock time of `offset` after the start, read now.
    fn wall(&self, offset: Duration) -> SystemTime {
        let (elapsed, now) = (self.start.elapsed(), SystemTime::now());
        if offset >= elapsed {
            now + (offset - elapsed)
        } else {
            now - (elapsed - offset)
        }
    }

    /// The reads made from `from` to `to` after the start, as offsets from the window's opening.
    fn reads_between(&self, from: Duration, to: Duration) -> Vec<Duration> {
        let reads = self.reads_at.lock().unwrap();
        reads
            .iter()
            .filter(|at| (from..=to).contains(*at))
            .map(|at| at.saturating_sub(self.opens))
            .collect()
    }
}

#[async_trait]
impl SecretSource for Scheduled {
    async fn fetch(&self, stage: Stage) -> Result<SecretVersion, SourceError> {
        self.reads_at.lock().unwrap().push(self.start.elapsed());
        self.store.fetch(stage).await
    }

    async fn rotation_window(&self) -> Result<Option<RotationWindow>, SourceError> {
        self.describes.fetch_add(1, Ordering::Relaxed);
        Ok(Some(RotationWindow {
            opens: self.wall(self.opens),
            closes: Some(self.wall(self.opens + self.length)),
        }))
    }
}

async fn pool_on(
    db: &Arc<FakeDb>,
    source: Arc<Scheduled>,
) -> rotapool_core::Pool<common::FakeBackend> {
    rotapool_core::PoolBuilder::new(common::FakeBackend(db.clone()))
        .secret_source(source)
        .max_size(1)
        .proactive_refresh(ProactiveRefresh::default())
        .build()
        .await
        .expect("the pool builds")
}

/// The most reads the README's cost section allows from the opening of a window of `length` to the read after it
/// closes, with the default schedule (interval I, after_rotation a): one usual read before the first read of the
/// window; at most ceil(ln(I / a) / ln 1.8) reads while the pause grows (each at least 0.8 times the time the
/// window has been open, from a); then one every 0.8 I at the fastest until the window closes; and the read
/// after it closes.
fn bound(length: Duration) -> u64 {
    let ProactiveRefresh {
        interval,
        after_rotation,
    } = ProactiveRefresh::default();
    let backing_off =
        ((interval.as_secs_f64() / after_rotation.as_secs_f64()).ln() / 1.8f64.ln()).ceil();
    let steady =
        (length + after_rotation - interval).as_secs_f64() / interval.mul_f64(0.8).as_secs_f64();
    1 + backing_off as u64 + (steady.floor() as u64 + 1) + 1
}

#[tokio::test(start_paused = true)]
async fn a_day_long_window_with_no_rotation_costs_a_replica_a_bounded_number_of_reads() {
    let db = FakeDb::new("pw");
    let (opens, length) = (HOUR, 24 * HOUR);
    let source = Scheduled::new(opens, length);
    let _pool = pool_on(&db, source.clone()).await;
    tokio::time::sleep(opens + length + 2 * HOUR).await;

    let in_window = source.reads_between(opens, opens + length + MINUTE * 3 / 2);
    let count = in_window.len() as u64;
    // A read at the usual pace may fall between the opening and the window's own first read.
    let planned: Vec<Duration> = in_window
        .iter()
        .copied()
        .filter(|at| *at >= MINUTE)
        .collect();
    let first = planned[0];
    eprintln!(
        "a 24 h window with no rotation: {count} reads (bound {}; every after_rotation would be 1,440), \
         first {first:?} after it opened, then {:?}",
        bound(length),
        &planned[1..6]
    );
    assert!(
        (MINUTE..=MINUTE * 3 / 2).contains(&first),
        "first read {first:?} after the window opened"
    );
    assert!(count <= bound(length), "{count} reads in the window");
    // Backing off: each of the first pauses at least 0.8 times the time the window had been open.
    for pair in planned[..5].windows(2) {
        assert!(pair[1] - pair[0] >= pair[0].mul_f64(0.8), "{planned:?}");
    }
    // And one read after the window closed: a rotation late in its window is not missed for an interval.
    assert!(
        in_window.iter().any(|at| *at > length),
        "no read after the window closed: {in_window:?}"
    );
    // Every wake asks for the window once: DescribeSecret costs what the reads cost, no more.
    let reads = source.reads_at.lock().unwrap().len() as u64;
    assert!(source.describes.load(Ordering::Relaxed) <= reads + 1);
}

#[tokio::test(start_paused = true)]
async fn replicas_started_together_spread_their_first_read_in_the_window() {
    const REPLICAS: usize = 50;
    let db = FakeDb::new("pw");
    let mut replicas = Vec::new();
    for _ in 0..REPLICAS {
        let source = Scheduled::new(10 * MINUTE, HOUR);
        replicas.push((pool_on(&db, source.clone()).await, source));
    }
    tokio::time::sleep(15 * MINUTE).await;
    let mut firsts: Vec<Duration> = replicas
        .iter()
        .map(|(_, source)| source.reads_between(11 * MINUTE, 15 * MINUTE)[0])
        .collect();
    firsts.sort();
    let (earliest, latest) = (firsts[0], firsts[REPLICAS - 1]);
    eprintln!("{REPLICAS} replicas' first reads in the window: from {earliest:?} to {latest:?} after it opened");
    assert!(earliest >= MINUTE && latest <= MINUTE * 3 / 2, "{firsts:?}");
    assert!(
        latest - earliest >= 15 * Duration::from_secs(1),
        "the replicas read in step: {firsts:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_rotation_adopted_after_a_rejected_login_spares_the_window_its_first_read() {
    let db = FakeDb::new("pw");
    let opens = 10 * MINUTE;
    let source = Scheduled::new(opens, HOUR);
    let pool = pool_on(&db, source.clone()).await;
    tokio::time::sleep(opens + Duration::from_secs(5)).await;
    rotapool_core::fake::rotate(&db, &source.store, "new");
    // The next borrow logs in again, is rejected, and the pool finds the new version.
    drop(pool.get().await.expect("the pool adopts the rotation"));
    let found = source.reads_between(opens, opens + Duration::from_secs(6));
    assert!(!found.is_empty(), "the rejected login read nothing");
    tokio::time::sleep(5 * MINUTE).await;

    // The window's first read (1 to 1.5 after_rotation after it opened) is not made: the pool has adopted the
    // rotation since its last wake.
    let second = Duration::from_secs(1);
    let first = source.reads_between(opens + 30 * second, opens + 105 * second);
    assert!(
        first.is_empty(),
        "reads where the window's first read would be: {first:?}"
    );
    // The window's pace goes on: the store has not moved the window, so the next wake reads.
    let later = source.reads_between(opens + 105 * second, opens + 5 * MINUTE);
    assert!(!later.is_empty(), "no read later in the window");
}
