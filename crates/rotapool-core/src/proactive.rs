//! The proactive refresh: re-read `AWSCURRENT` now and then, and soon after a scheduled rotation, so that a finished
//! rotation is usually adopted before any login fails.

use std::{
    sync::Weak,
    time::{Duration, SystemTime},
};

use tracing::Instrument;

use crate::refresher::{Probe, Refresher};

/// When to re-read the secret without waiting for a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProactiveRefresh {
    /// The usual time between two reads, each shortened or lengthened by up to a fifth so that a fleet of
    /// services does not read in step. Defaults to 15 minutes.
    pub interval: Duration,
    /// How long after the secret's `NextRotationDate` to read it, giving the rotation time to finish; past that
    /// date the secret is read every `after_rotation` until the rotation shows up. Defaults to 60 s.
    pub after_rotation: Duration,
}

impl Default for ProactiveRefresh {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(15 * 60),
            after_rotation: Duration::from_secs(60),
        }
    }
}

impl ProactiveRefresh {
    /// How long to sleep before the next read. `spread` in [0, 1) picks the jitter; `next_rotation` is the
    /// secret's `NextRotationDate`, if it has one.
    pub(crate) fn next_wake(
        &self,
        spread: f64,
        now: SystemTime,
        next_rotation: Option<SystemTime>,
    ) -> Duration {
        let usual = self.interval.mul_f64(0.8 + 0.4 * spread);
        let Some(rotation) = next_rotation else {
            return usual;
        };
        let until_rotation_done = match (rotation + self.after_rotation).duration_since(now) {
            Ok(wait) => wait,
            // The scheduled time has passed but the rotation has not shown up yet: it may run late in its window.
            Err(_) => self.after_rotation,
        };
        usual.min(until_rotation_done)
    }

    /// Where a new schedule starts in [0, 1): at random, so that replicas deployed together do not read in step.
    fn first_spread() -> f64 {
        crate::random::unit()
    }

    /// Runs the schedule until the pool is dropped. While the store holds an `AWSCURRENT` that the database
    /// rejects (a store ahead of the database), it reads at that version's retry pace instead, so that the pool
    /// moves to it soon after the database does.
    ///
    /// Each wake (the read and trial login, then planning the next wake) runs in a span of its own that closes
    /// before the refresh sleeps again: a span that lived as long as the task would never be exported.
    pub(crate) fn spawn(self, refresher: Weak<Refresher>, probe: Weak<dyn Probe>) {
        let start = Self::first_spread();
        tokio::spawn(async move {
            for round in 0u64.. {
                let spread = (start + round as f64 * 0.618_033_988_749_894_9).fract();
                let Some(refresher) = refresher.upgrade() else {
                    return;
                };
                let wake = async {
                    // The first wake only plans: the pool has just read the secret.
                    if round > 0 {
                        let probe = probe.upgrade()?;
                        let read = refresher.refresh_proactively(probe.as_ref()).await;
                        refresher
                            .telemetry()
                            .proactive(read.as_ref().copied().map_err(|e| e.as_ref()));
                    }
                    Some(self.wake_for(&refresher, spread).await)
                }
                .instrument(refresher.telemetry().proactive_span())
                .await;
                // Held across the sleep, the refresher would keep a dropped pool's refresh alive.
                drop(refresher);
                let Some(wake) = wake else { return };
                tokio::time::sleep(wake).await;
            }
        });
    }

    /// How long to sleep before the next read.
    async fn wake_for(&self, refresher: &Refresher, spread: f64) -> Duration {
        if let Some(retry_at) = refresher.next_retry_at() {
            // Never faster than the failure pace, even when a try could not be made (the database unreachable),
            // and jittered so that replicas do not read in step.
            let wait = retry_at.saturating_duration_since(tokio::time::Instant::now());
            let floor = refresher.policy().retry_interval;
            return wait.max(floor).mul_f64(1.0 + 0.1 * spread);
        }
        let next_rotation = match refresher.next_rotation().await {
            Ok(at) => at,
            Err(error) => {
                refresher.telemetry().next_rotation_unknown(&error);
                None
            }
        };
        self.next_wake(spread, SystemTime::now(), next_rotation)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);

    #[test]
    fn without_a_schedule_reads_every_interval_give_or_take_a_fifth() {
        let policy = ProactiveRefresh::default();
        let now = SystemTime::now();
        assert_eq!(policy.next_wake(0.0, now, None), 12 * MINUTE);
        assert_eq!(policy.next_wake(0.5, now, None), 15 * MINUTE);
        assert!(policy.next_wake(0.999, now, None) < 18 * MINUTE);
    }

    #[test]
    fn a_rotation_due_soon_is_read_shortly_after_it() {
        let policy = ProactiveRefresh::default();
        let now = SystemTime::now();
        assert_eq!(
            policy.next_wake(0.5, now, Some(now + 3 * MINUTE)),
            4 * MINUTE
        );
        assert_eq!(
            policy.next_wake(0.5, now, Some(now + 60 * MINUTE)),
            15 * MINUTE
        );
    }

    #[test]
    fn pools_started_together_read_at_different_times() {
        let policy = ProactiveRefresh::default();
        let now = SystemTime::now();
        let first_reads: std::collections::BTreeSet<Duration> = (0..8)
            .map(|_| policy.next_wake(ProactiveRefresh::first_spread(), now, None))
            .collect();
        assert!(first_reads.len() > 1, "{first_reads:?}");
        assert!(first_reads
            .iter()
            .all(|w| (12 * MINUTE..18 * MINUTE).contains(w)));
    }

    #[test]
    fn an_overdue_rotation_is_polled_every_after_rotation_period() {
        let policy = ProactiveRefresh::default();
        let now = SystemTime::now();
        assert_eq!(policy.next_wake(0.5, now, Some(now - 10 * MINUTE)), MINUTE);
    }
}
