//! The pools the core's tests build on the `fake` feature's database and faulty store, for fast, deterministic
//! tests of the login and the refresher under paused time. Rotation against real servers is tested at the
//! workspace root.

// Each test binary uses part of this module.
#![allow(dead_code)]

use std::{sync::Arc, time::Duration};

// Not every test binary uses every name.
#[allow(unused_imports)]
pub use rotapool_core::fake::{rotate, FakeBackend, FakeDb, FaultyStore, StoreMode};
use rotapool_core::{Pool, PoolBuilder, ProactiveRefresh};

/// A pool of 4 on `db`, reading `store`, without the proactive refresh (the tests drive every read).
pub async fn pool(db: &Arc<FakeDb>, store: &Arc<FaultyStore>) -> Pool<FakeBackend> {
    builder(db, store).build().await.expect("the pool builds")
}

/// The builder [`pool`] uses, to adjust.
pub fn builder(db: &Arc<FakeDb>, store: &Arc<FaultyStore>) -> PoolBuilder<FakeBackend> {
    PoolBuilder::new(FakeBackend(db.clone()))
        .secret_source(store.clone())
        .max_size(4)
        .proactive_refresh(None)
}

/// The proactive refresh every second, as a pool that reads its secret often does.
pub fn proactive_every_second() -> Option<ProactiveRefresh> {
    Some(ProactiveRefresh {
        interval: Duration::from_secs(1),
        after_rotation: Duration::from_secs(60),
    })
}

/// What a stretch of traffic saw.
#[derive(Debug, Default)]
pub struct Served {
    pub ok: u64,
    pub errors: Vec<String>,
}

/// One `get()` every 10 ms for `duration`, each borrowed for a moment, with every session killed before each
/// `get()` so that each one logs in; returns what they saw. (deadpool measures ages with the wall clock, which
/// paused time does not move, so `max_lifetime` cannot force new logins here.)
pub async fn serve(pool: &Pool<FakeBackend>, db: &FakeDb, duration: Duration) -> Served {
    let mut served = Served::default();
    let end = tokio::time::Instant::now() + duration;
    while tokio::time::Instant::now() < end {
        db.kill_sessions();
        match pool.get().await {
            Ok(conn) => {
                served.ok += 1;
                drop(conn);
            }
            Err(e) => served.errors.push(chain(&e)),
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    served
}

pub use rotapool_core::error::report as chain;
