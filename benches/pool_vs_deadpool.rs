//! rotapool, and deadpool-postgres's own pool over rotapool's `RotatingConnect`, against a plain deadpool-postgres
//! pool of the same size on the same server: the cost of `get()` and drop, alone and with 32 tasks competing for
//! 16 connections, and the throughput of get + `SELECT 1`.
//!
//! Both pools are fully opened before measuring, and checked afterwards to have logged in no more.

mod common;
mod pools;

use criterion::{
    criterion_group, criterion_main, measurement::WallTime, BenchmarkGroup, BenchmarkId, Criterion,
    Throughput,
};
use pools::{BenchPool, Pools};
use tokio::runtime::Runtime;

/// What each task does once per iteration.
#[derive(Debug, Clone, Copy)]
enum Workload {
    /// Borrow a connection and return it at once.
    GetDrop,
    /// Borrow a connection, run `SELECT 1` on it, return it.
    GetSelectOne,
}

impl Workload {
    async fn run_once<P: BenchPool>(self, pool: &P) {
        let conn = pool.checkout().await;
        if let Workload::GetSelectOne = self {
            let row = P::client(&conn)
                .query_one("SELECT 1", &[])
                .await
                .expect("SELECT 1");
            std::hint::black_box(row);
        }
    }
}

fn get_drop(c: &mut Criterion) {
    compare(c, "get_drop", Workload::GetDrop, &[1, 32]);
}

fn get_select_one(c: &mut Criterion) {
    compare(c, "get_select_1", Workload::GetSelectOne, &[32]);
}

/// Measures `workload` on both pools, one after the other, for each number of concurrent tasks.
fn compare(c: &mut Criterion, group: &str, workload: Workload, task_counts: &[usize]) {
    let rt = common::runtime();
    let pools = rt.block_on(Pools::start());
    let mut group = c.benchmark_group(group);
    for &tasks in task_counts {
        // One element is one workload run by one task.
        group.throughput(Throughput::Elements(tasks as u64));
        measure(&mut group, &rt, &pools.rotapool, workload, tasks);
        measure(&mut group, &rt, &pools.deadpool, workload, tasks);
        measure(&mut group, &rt, &pools.drop_in, workload, tasks);
    }
    group.finish();
    pools.assert_no_logins_since_start();
}

/// One iteration: each of `tasks` tasks runs `workload` once. The tasks are spawned once per sample and each runs
/// all of the sample's iterations back to back, so spawning is not what gets measured.
fn measure<P: BenchPool>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    rt: &Runtime,
    pool: &P,
    workload: Workload,
    tasks: usize,
) {
    let id = BenchmarkId::new(P::NAME, format!("{tasks}_tasks"));
    group.bench_function(id, |b| {
        b.to_async(rt).iter_custom(|iters| async move {
            let (elapsed, _) = common::fan_out(tasks, || {
                let pool = pool.clone();
                async move {
                    for _ in 0..iters {
                        workload.run_once(&pool).await;
                    }
                }
            })
            .await;
            elapsed
        });
    });
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = get_drop, get_select_one
}
criterion_main!(benches);
