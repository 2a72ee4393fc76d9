//! The refresh herd: right after a rotation of the secret, N callers at once ask the single-flight refresher for
//! credentials newer than the ones the database rejected. Measures the time until every caller holds the new
//! generation, and checks (outside the timing) that the secret was read exactly once for all of them.

mod common;

use std::{sync::Arc, time::Duration};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use rotapool::core::{
    refresher::Known, Credentials, InMemorySecretStore, Probe, ProbeOutcome, RefreshPolicy,
    Refresher,
};
use tokio::time::Instant;

const HERD_SIZES: [usize; 3] = [1, 32, 256];

/// Trial logins: the database takes the rotated password. The refresher makes one, for the new `AWSCURRENT`,
/// before it adopts it.
struct RotatedDb;

#[async_trait::async_trait]
impl Probe for RotatedDb {
    async fn try_login(&self, credentials: &Credentials, _: Known) -> ProbeOutcome {
        if credentials.password() == "after-rotation" {
            ProbeOutcome::Accepted
        } else {
            ProbeOutcome::Rejected
        }
    }
}

fn refresh_herd(c: &mut Criterion) {
    let rt = common::runtime();
    let mut group = c.benchmark_group("refresh_herd");
    for waiters in HERD_SIZES {
        group.bench_function(BenchmarkId::new("waiters", waiters), |b| {
            b.to_async(&rt).iter_custom(|iters| async move {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    total += one_herd(waiters).await;
                }
                total
            });
        });
    }
    group.finish();
}

/// One rotation and one herd of `waiters` callers that saw generation 1 rejected. Returns the time until all of
/// them hold generation 2.
async fn one_herd(waiters: usize) -> Duration {
    // A fresh refresher per herd, so that every herd starts from the same generation 1.
    let store = Arc::new(InMemorySecretStore::new(
        "bench/db",
        &Credentials::new("app", "before-rotation"),
    ));
    let refresher = Arc::new(
        Refresher::new(store.clone(), RefreshPolicy::default())
            .await
            .expect("the in-memory secret reads"),
    );
    store.put_current(&Credentials::new("app", "after-rotation"));
    let rejected = refresher.current();
    refresher.mark_rejected(&rejected, "28P01".to_owned());
    let deadline = Instant::now() + Duration::from_secs(10);

    let (elapsed, generations) = common::fan_out(waiters, || {
        let refresher = Arc::clone(&refresher);
        async move {
            refresher
                .refresh_after(1, deadline, Arc::new(RotatedDb))
                .await
                .expect("the rotated secret is adopted")
                .number
        }
    })
    .await;

    assert!(generations.iter().all(|&generation| generation == 2));
    assert_eq!(
        store.fetch_count(),
        2,
        "the initial read and exactly one refresh for the whole herd"
    );
    elapsed
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = refresh_herd
}
criterion_main!(benches);
