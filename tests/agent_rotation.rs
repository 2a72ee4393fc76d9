//! Rotations under load with the pool reading through the Secrets Manager Agent (the testkit's emulator of its
//! documented contract, over moto), on a real PostgreSQL and a real MariaDB. The Agent caches for 300 s, its
//! default, so the pool can only see a rotation by asking `refreshNow=true` after a rejected login.

#[macro_use]
mod conformance;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use conformance::{
    assert_rejected,
    mariadb::MariaDb,
    pools::{self, Rotapool, TestPool},
    postgres::Postgres,
    workload::{wait_until, Workload},
    Fixture, TestDb,
};
use rotapool_core::{source::SecretAdmin, Credentials, ProactiveRefresh, Stage};
use rotapool_rotator::{Rotator, Strategy};
use rotapool_testkit::{rotation_token, AgentEmulator, MariaDbServer, MotoServer, PgServer};

const TOKEN: &str = "agent-rotation-token-51d0";
/// The Agent's default TTL: longer than the test, so only refreshNow reaches moto for AWSCURRENT.
const AGENT_TTL: Duration = Duration::from_secs(300);
const ROTATIONS: u64 = 2;

/// What one rotation cost.
#[derive(Debug)]
struct Cost {
    agent_requests: u64,
    refresh_now: u64,
    upstream_reads: u64,
    failed_logins: u64,
}

/// Two single-user rotations in a row, by rotapool-rotator's four steps in moto, while 8 tasks loop over a pool
/// whose connections live 100 ms: the old password is proven rejected after each setSecret, then the
/// application sees no error and the pool moves to each new version.
async fn rotations_through_the_agent_have_zero_errors<D: TestDb>(db: D) {
    let fixture = Fixture::new(&db).await;
    let agent = AgentEmulator::start(MotoServer::shared(), TOKEN, AGENT_TTL).await;
    let pool = pools::build::<D, Rotapool>(&db, Arc::new(agent.source(&fixture.secret_id)), |s| {
        s.max_size(4)
            .max_lifetime(Some(Duration::from_millis(100)))
            // Routine reads every 200 ms, which the Agent answers from its cache.
            .proactive_refresh(Some(ProactiveRefresh {
                interval: Duration::from_millis(200),
                after_rotation: Duration::from_millis(200),
            }))
    })
    .await;
    let rotator = Rotator::new(fixture.source.clone(), db.backend(), Strategy::SingleUser);
    let workload = Workload::start(&pool, 8);
    workload.wait_for_new_connections(10, Instant::now()).await;

    let mut old_password = fixture.password.clone();
    let mut costs = Vec::new();
    for rotation in 1..=ROTATIONS {
        let before = (
            agent.requests(),
            agent.refresh_now_requests(),
            agent.upstream_reads(),
            pool.stats().auth_failures,
        );
        let token = rotation_token();
        rotator.create_secret(&token).await.expect("createSecret");
        rotator.set_secret(&token).await.expect("setSecret");
        assert_rejected(&db, &fixture.user, &old_password).await;
        rotator.test_secret(&token).await.expect("testSecret");
        rotator.finish_secret(&token).await.expect("finishSecret");

        wait_until(&format!("the pool adopted rotation {rotation}"), || {
            pool.generation() == rotation + 1 || !workload.errors().is_empty()
        })
        .await;
        workload.wait_for_new_connections(10, Instant::now()).await;
        let errors = workload.errors();
        assert!(
            errors.is_empty(),
            "rotation {rotation}: the application saw {} errors: {:?}",
            errors.len(),
            &errors[..errors.len().min(3)]
        );
        let stats = pool.stats();
        assert_eq!(
            (stats.generation, stats.version_id.as_str()),
            (rotation + 1, token.as_str())
        );
        let cost = Cost {
            agent_requests: agent.requests() - before.0,
            refresh_now: agent.refresh_now_requests() - before.1,
            upstream_reads: agent.upstream_reads() - before.2,
            failed_logins: stats.auth_failures - before.3,
        };
        assert!(
            cost.refresh_now >= 1,
            "rotation {rotation}: the pool asked refreshNow: {cost:?}"
        );
        assert_eq!(
            cost.upstream_reads, cost.refresh_now,
            "rotation {rotation}: every read of moto was a refreshNow; the Agent's cache answered the routine \
             reads: {cost:?}"
        );
        costs.push(cost);
        let raw = fixture
            .source
            .read_stage(Stage::Current)
            .await
            .expect("read AWSCURRENT from moto")
            .expect("AWSCURRENT exists");
        old_password = Credentials::from_secret_json(raw.text())
            .expect("the secret parses")
            .password()
            .to_owned();
    }
    let routine: u64 = costs.iter().map(|c| c.agent_requests - c.refresh_now).sum();
    assert!(
        routine > 0,
        "the proactive refresh made routine reads, all answered from the cache: {costs:?}"
    );
    let errors = workload.errors().len();
    let served = workload.served();
    workload.stop_expecting_no_errors().await;
    for (rotation, cost) in costs.iter().enumerate() {
        println!(
            "{} rotation {}: app errors {errors}, Agent requests {}, of which refreshNow {}, upstream (moto) \
             reads {}, failed logins {} ({served} queries served in all)",
            db.engine(),
            rotation + 1,
            cost.agent_requests,
            cost.refresh_now,
            cost.upstream_reads,
            cost.failed_logins,
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_rotations_through_the_agent_have_zero_errors() {
    rotations_through_the_agent_have_zero_errors(Postgres(PgServer::shared())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_rotations_through_the_agent_have_zero_errors() {
    rotations_through_the_agent_have_zero_errors(MariaDb(MariaDbServer::shared())).await;
}
