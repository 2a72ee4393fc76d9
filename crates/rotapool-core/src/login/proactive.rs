//! The proactive refresh: re-read `AWSCURRENT` now and then, and soon after a scheduled rotation, so that a finished
//! rotation is usually adopted before any login fails. When it reads is [`ProactiveRefresh`]'s to say: backing off
//! while a rotation window stays open, so that a fleet's reads stay bounded.

use std::{
    sync::Weak,
    time::{Duration, SystemTime},
};

use tokio::time::Instant;
use tracing::Instrument;

use super::refresh::{Probe, Refresher};
use crate::{random::golden, settings::ProactiveRefresh};

/// Runs `schedule` until the pool is dropped. While the store holds an `AWSCURRENT` that the database
/// rejects (a store ahead of the database), it reads at that version's retry pace instead, so that the pool
/// moves to it soon after the database does.
///
/// Each wake (the read and trial login, then planning the next wake) runs in a span of its own that closes
/// before the refresh sleeps again: a span that lived as long as the task would never be exported.
pub(crate) fn spawn(
    schedule: ProactiveRefresh,
    refresher: Weak<Refresher>,
    probe: Weak<dyn Probe>,
) {
    let start = ProactiveRefresh::first_spread();
    tokio::spawn(async move {
        let mut last_wake = Instant::now();
        for round in 0u64.. {
            let spread = golden(start, round);
            let Some(refresher) = refresher.upgrade() else {
                return;
            };
            let wake = async {
                // The first wake only plans: the pool has just read the secret. Nor does a wake at the usual or
                // the window's pace after the pool adopted new credentials since the last one (a rejected login
                // found a rotation): it has what this read would find. At the failure pace every wake reads.
                let adopted_since = refresher.current().adopted_at > last_wake;
                if round > 0 && !(adopted_since && refresher.next_retry_at().is_none()) {
                    let probe = probe.upgrade()?;
                    let read = refresher.refresh_proactively(probe.as_ref()).await;
                    refresher
                        .telemetry()
                        .proactive(read.as_ref().copied().map_err(|e| e.as_ref()));
                }
                Some(wake_for(&schedule, &refresher, spread).await)
            }
            .instrument(refresher.telemetry().proactive_span())
            .await;
            // Held across the sleep, the refresher would keep a dropped pool's refresh alive.
            drop(refresher);
            let Some(wake) = wake else { return };
            last_wake = Instant::now();
            tokio::time::sleep(wake).await;
        }
    });
}

/// How long to sleep before the next read.
async fn wake_for(schedule: &ProactiveRefresh, refresher: &Refresher, spread: f64) -> Duration {
    if let Some(retry_at) = refresher.next_retry_at() {
        // Never faster than the failure pace, even when a try could not be made (the database unreachable),
        // and jittered so that replicas do not read in step.
        let wait = retry_at.saturating_duration_since(tokio::time::Instant::now());
        let floor = refresher.policy().retry_interval;
        return wait.max(floor).mul_f64(1.0 + 0.1 * spread);
    }
    let window = match refresher.rotation_window().await {
        Ok(window) => window,
        Err(error) => {
            refresher.telemetry().next_rotation_unknown(&error);
            None
        }
    };
    schedule.next_wake(spread, SystemTime::now(), window)
}
