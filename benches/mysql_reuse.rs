//! rotapool-mysql's three reuse checks side by side on the same MariaDB: get + `SELECT 1` + drop under
//! `MySqlReuse::Fast` (no round trip), `Verified` (`COM_PING`) and `Clean` (`COM_RESET_CONNECTION`, the default).
//!
//! The three pools log in as the same account, are fully opened before measuring, and are checked afterwards to
//! have logged in no more.

mod common;

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use mysql_async::prelude::Queryable;
use rotapool::mysql::{
    Credentials, InMemorySecretStore, MySqlBackend, MySqlReuse, Pool, PoolBuilder, SslMode,
};
use rotapool_testkit::{random_password, unique_name, MariaDbServer, TestServer};

/// Connections per pool: fewer than the 32 tasks of the concurrent benchmark, as in `pool_vs_deadpool`.
const POOL_SIZE: usize = 16;

const MODES: [(&str, MySqlReuse); 3] = [
    ("fast", MySqlReuse::Fast),
    ("verified", MySqlReuse::Verified),
    ("clean", MySqlReuse::Clean),
];

/// One pool per reuse mode, all logged in as one fresh account on the shared test server, all connections open.
async fn start() -> Vec<(&'static str, Pool)> {
    let server = MariaDbServer::shared();
    let user = unique_name("bench");
    let password = random_password();
    server.create_account(&user, &password).await;
    let secret = Credentials::new(&user, &password)
        .with_host(server.host())
        .with_port(server.port());
    let mut pools = Vec::new();
    for (name, mode) in MODES {
        // No proactive refresh: a background task reading the secret would only add noise.
        let pool = PoolBuilder::new(MySqlBackend::new().ssl_mode(SslMode::Disable).reuse(mode))
            .secret_source(Arc::new(InMemorySecretStore::new("bench/mysql", &secret)))
            .max_size(POOL_SIZE)
            .proactive_refresh(None)
            .build()
            .await
            .expect("the rotapool-mysql pool builds");
        let mut held = Vec::with_capacity(POOL_SIZE);
        for _ in 0..POOL_SIZE {
            held.push(pool.get().await.expect("a connection"));
        }
        drop(held);
        pools.push((name, pool));
    }
    pools
}

/// One iteration: each of `tasks` tasks borrows a connection, runs `SELECT 1` on it and gives it back.
fn get_select_1(c: &mut Criterion) {
    let rt = common::runtime();
    let pools = rt.block_on(start());
    let mut group = c.benchmark_group("mysql_reuse_get_select_1");
    for tasks in [1, 32] {
        // One element is one get + SELECT 1 + drop by one task.
        group.throughput(Throughput::Elements(tasks as u64));
        for (name, pool) in &pools {
            let id = BenchmarkId::new(*name, format!("{tasks}_tasks"));
            group.bench_function(id, |b| {
                b.to_async(&rt).iter_custom(|iters| async move {
                    let (elapsed, _) = common::fan_out(tasks, || {
                        let pool = pool.clone();
                        async move {
                            for _ in 0..iters {
                                let mut conn = pool.get().await.expect("a connection");
                                let one: Option<i32> =
                                    conn.query_first("SELECT 1").await.expect("SELECT 1");
                                std::hint::black_box(one);
                            }
                        }
                    })
                    .await;
                    elapsed
                });
            });
        }
    }
    group.finish();
    for (name, pool) in &pools {
        let logins = pool.stats().logins;
        assert_eq!(
            logins, POOL_SIZE as u64,
            "{name}: a login inside a measurement"
        );
    }
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = get_select_1
}
criterion_main!(benches);
