//! Randomness for spreading work out: jitter of retry paces and backoffs, so that callers and replicas that
//! failed together do not retry together. Not for anything secret.

use std::hash::{BuildHasher, Hasher};

/// A fresh number in [0, 1). `RandomState` is seeded per instance from the OS (then incremented), which is
/// enough to decorrelate processes and calls without a dependency on a random number crate.
pub(crate) fn unit() -> f64 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(0x9e37_79b9_7f4a_7c15);
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// `base` scaled by a random factor in [`low`, `high`).
pub(crate) fn scaled(base: std::time::Duration, low: f64, high: f64) -> std::time::Duration {
    base.mul_f64(low + (high - low) * unit())
}

/// The `n`th point after `start` of the golden-ratio sequence in [0, 1): any k consecutive points land in k
/// evenly spaced spots, so drains, lifetimes and schedules spread without randomness a test would have to
/// tolerate.
pub(crate) fn golden(start: f64, n: u64) -> f64 {
    const STEP: f64 = 0.618_033_988_749_894_9;
    (start + n as f64 * STEP).fract()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_are_in_range_and_vary() {
        let draws: Vec<f64> = (0..64).map(|_| unit()).collect();
        assert!(draws.iter().all(|u| (0.0..1.0).contains(u)));
        assert!(draws.windows(2).any(|w| w[0] != w[1]), "{draws:?}");
    }
}
