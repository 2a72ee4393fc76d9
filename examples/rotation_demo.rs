//! The rotation demo: a workload on a rotapool Postgres pool while the password rotates three times.
//!
//! It starts a private, password-checking PostgreSQL (through rotapool-testkit), keeps the secret in the
//! in-memory store, and rotates it the way a careless operator would: the secret first, then the database, with
//! connections churning (500 ms max lifetime) so that every rotation is met by new logins. Each second it prints
//! queries served, errors, logins and secret reads. It exits non-zero if the workload saw any error.
//!
//! Run: `cargo run --release --example rotation_demo`

use std::{
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use rotapool::{
    core::{Credentials, InMemorySecretStore},
    postgres::{PgBackend, PoolBuilder, SslMode},
};
use rotapool_testkit::{random_password, PgServer, TestServer};

const WORKERS: usize = 8;
const ROTATIONS: u64 = 3;
const SECONDS_BETWEEN_ROTATIONS: u64 = 3;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = PgServer::shared();
    let user = "demo_app";
    let mut password = random_password();
    server.create_account(user, &password).await;
    let credentials = |password: &str| {
        Credentials::new(user, password)
            .with_engine("postgres")
            .with_host(server.host())
            .with_port(server.port())
            .with_dbname("postgres")
    };
    let store = Arc::new(InMemorySecretStore::new("demo/db", &credentials(&password)));
    let pool = PoolBuilder::new(PgBackend::new().ssl_mode(SslMode::Disable))
        .secret_source(store.clone())
        .max_size(4)
        .max_lifetime(Some(Duration::from_millis(500)))
        .build()
        .await?;

    let ok = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..WORKERS)
        .map(|_| {
            let (pool, ok, errors, stop) = (pool.clone(), ok.clone(), errors.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let result = match pool.get().await {
                        Ok(client) => client
                            .query_one("SELECT 1", &[])
                            .await
                            .map(drop)
                            .map_err(|e| e.to_string()),
                        Err(e) => Err(e.to_string()),
                    };
                    match result {
                        Ok(()) => ok.fetch_add(1, Ordering::Relaxed),
                        Err(e) => {
                            eprintln!("application error: {e}");
                            errors.fetch_add(1, Ordering::Relaxed)
                        }
                    };
                }
            })
        })
        .collect();

    println!("  t |     ok/s | errors | logins | secret reads | generation");
    let mut last = (0, pool.stats());
    let seconds = SECONDS_BETWEEN_ROTATIONS * (ROTATIONS + 1);
    for t in 1..=seconds {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if t % SECONDS_BETWEEN_ROTATIONS == 0 && t / SECONDS_BETWEEN_ROTATIONS <= ROTATIONS {
            password = random_password();
            store.put_current(&credentials(&password));
            server.set_password(user, &password).await;
            println!("---- rotated the password (secret, then ALTER ROLE) ----");
        }
        let (served, stats) = (ok.load(Ordering::Relaxed), pool.stats());
        println!(
            "{t:>3} | {:>8} | {:>6} | {:>6} | {:>12} | {:>10}",
            served - last.0,
            errors.load(Ordering::Relaxed),
            stats.logins - last.1.logins,
            stats.secret_fetches - last.1.secret_fetches,
            stats.generation,
        );
        last = (served, stats);
    }
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.await?;
    }
    let stats = pool.stats();
    let errors = errors.load(Ordering::Relaxed);
    println!(
        "done: {} queries, {errors} errors, {} logins ({} rejected), {} secret reads, {ROTATIONS} rotations",
        ok.load(Ordering::Relaxed),
        stats.logins,
        stats.auth_failures,
        stats.secret_fetches
    );
    if errors > 0 {
        return Err(format!("the workload saw {errors} errors").into());
    }
    Ok(())
}
