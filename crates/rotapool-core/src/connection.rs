//! The pooled connection: the driver's connection tagged with its credentials generation, and the live count of
//! connections per generation.

use std::{
    collections::BTreeMap,
    fmt,
    ops::{Deref, DerefMut},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
};

/// A pooled connection tagged with the generation of the credentials that opened it.
///
/// Derefs to the driver's connection, so it is used exactly like one.
pub struct Connection<C> {
    inner: C,
    generation: u64,
    /// Where this connection falls in [0, 1) among its peers, for spreading drains and lifetimes evenly.
    spread: f64,
    _live: LiveGuard,
}

impl<C> Connection<C> {
    pub(crate) fn new(inner: C, generation: u64, live: &Arc<LiveConnections>) -> Self {
        Self {
            inner,
            generation,
            spread: live.next_spread(),
            _live: LiveGuard::new(live, generation),
        }
    }

    /// The generation of the credentials this connection logged in with.
    pub fn credentials_generation(&self) -> u64 {
        self.generation
    }

    /// This connection's place in [0, 1) among its peers.
    pub(crate) fn spread(&self) -> f64 {
        self.spread
    }

    /// The driver's connection, no longer counted as live.
    pub(crate) fn into_inner(self) -> C {
        self.inner
    }

    /// The driver's connection.
    pub(crate) fn inner_mut(&mut self) -> &mut C {
        &mut self.inner
    }
}

impl<C> Deref for Connection<C> {
    type Target = C;
    fn deref(&self) -> &C {
        &self.inner
    }
}

impl<C> DerefMut for Connection<C> {
    fn deref_mut(&mut self) -> &mut C {
        &mut self.inner
    }
}

impl<C> fmt::Debug for Connection<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

/// How many connections are open per credentials generation.
#[derive(Debug, Default)]
pub(crate) struct LiveConnections {
    by_generation: Mutex<BTreeMap<u64, u64>>,
    opened: AtomicU64,
}

impl LiveConnections {
    /// Open connections per generation.
    pub(crate) fn snapshot(&self) -> BTreeMap<u64, u64> {
        self.lock().clone()
    }

    /// A low-discrepancy sequence (golden-ratio steps): any k consecutive connections land in k evenly spaced
    /// spots of [0, 1), so drains and lifetimes spread without randomness a test would have to tolerate.
    fn next_spread(&self) -> f64 {
        const STEP: f64 = 0.618_033_988_749_894_9;
        let n = self.opened.fetch_add(1, Ordering::Relaxed);
        (n as f64 * STEP).fract()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, u64>> {
        // Plain counters: a panic elsewhere cannot leave them inconsistent.
        self.by_generation.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Counts a connection in [`LiveConnections`] while it exists.
struct LiveGuard {
    live: Arc<LiveConnections>,
    generation: u64,
}

impl LiveGuard {
    fn new(live: &Arc<LiveConnections>, generation: u64) -> Self {
        *live.lock().entry(generation).or_default() += 1;
        Self {
            live: Arc::clone(live),
            generation,
        }
    }
}

impl Drop for LiveGuard {
    fn drop(&mut self) {
        let mut counts = self.live.lock();
        if let Some(count) = counts.get_mut(&self.generation) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.generation);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_counts_follow_connections_per_generation() {
        let live = Arc::new(LiveConnections::default());
        let a = Connection::new((), 1, &live);
        let b = Connection::new((), 1, &live);
        let c = Connection::new((), 2, &live);
        assert_eq!(live.snapshot(), BTreeMap::from([(1, 2), (2, 1)]));
        drop((a, c));
        assert_eq!(live.snapshot(), BTreeMap::from([(1, 1)]));
        drop(b);
        assert!(live.snapshot().is_empty());
    }

    #[test]
    fn spreads_cover_the_unit_interval_evenly() {
        let live = Arc::new(LiveConnections::default());
        let mut spreads: Vec<f64> = (0..8).map(|_| live.next_spread()).collect();
        spreads.sort_by(f64::total_cmp);
        // Eight golden-ratio points leave no gap wider than a quarter of the interval.
        let widest = spreads
            .windows(2)
            .map(|w| w[1] - w[0])
            .fold(spreads[0], f64::max);
        assert!(widest < 0.25, "{spreads:?}");
    }
}
