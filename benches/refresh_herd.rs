//! The refresh herd: right after a rotation, N callers at once ask the rotating login for a connection; the
//! database rejects the old password, and one re-read of the secret serves them all. Measures the time until
//! every caller holds a connection with the new generation, and checks (outside the timing) that the secret was
//! read exactly once for all of them. The fake database (the core's `fake` feature) needs no server.

mod common;

use std::{sync::Arc, time::Duration};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use rotapool::core::{
    fake::{rotate, FakeBackend, FakeDb, FaultyStore},
    PoolBuilder,
};

const HERD_SIZES: [usize; 3] = [1, 32, 256];

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

/// One rotation and one herd of `waiters` callers of [`RotatingLogin::connect`](rotapool::core::RotatingLogin)
/// on the fake database, which takes only the rotated password. Returns the time until all of them hold a
/// connection with generation 2.
async fn one_herd(waiters: usize) -> Duration {
    // A fresh login per herd, so that every herd starts from generation 1 with nothing learnt. As many login
    // permits as callers, so that the herd measures the single-flight re-read, not the permits' queue.
    let (db, store) = (
        FakeDb::new("before-rotation"),
        FaultyStore::new("before-rotation"),
    );
    let login = PoolBuilder::new(FakeBackend(Arc::clone(&db)))
        .secret_source(store.clone())
        .proactive_refresh(None)
        .max_concurrent_logins(u32::try_from(waiters).expect("a small herd"))
        .build_login()
        .await
        .expect("the fake secret reads");
    rotate(&db, &store, "after-rotation");

    let (elapsed, generations) = common::fan_out(waiters, || {
        let login = login.clone();
        async move {
            login
                .connect()
                .await
                .expect("the rotated secret is adopted")
                .tag
                .generation()
        }
    })
    .await;

    assert!(generations.iter().all(|&generation| generation == 2));
    assert_eq!(
        store.reads(),
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
