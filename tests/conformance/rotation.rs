//! Rotations the way AWS runs them: rotapool-rotator's four steps, against the real server and moto, while a
//! workload with connection churn runs.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use rotapool_core::{
    source::{AwsSecretsManager, SecretAdmin},
    Credentials, DrainPolicy, ProactiveRefresh, Stage,
};
use rotapool_rotator::{Rotator, Strategy};
use rotapool_testkit::{rotation_token, unique_name, Login, MotoServer, TestServer};

use super::{
    assert_rejected,
    pools::{self, PoolKind, TestPool},
    workload::{wait_until, Workload},
    Fixture, TestDb,
};

/// A churning pool: connections live 100 ms, so every phase of a rotation is met by new logins.
async fn churning_pool<D: TestDb, K: PoolKind<D>>(db: &D, fixture: &Fixture) -> K::Pool {
    pools::build::<D, K>(db, fixture.source.clone(), |s| {
        s.max_size(4).max_lifetime(Some(Duration::from_millis(100)))
    })
    .await
}

fn single_user<D: TestDb>(db: &D, fixture: &Fixture) -> Rotator<D::Backend> {
    Rotator::new(fixture.source.clone(), db.backend(), Strategy::SingleUser)
}

async fn read(secrets: &AwsSecretsManager, stage: Stage) -> Credentials {
    let raw = secrets
        .read_stage(stage)
        .await
        .expect("read the secret")
        .unwrap_or_else(|| panic!("the secret has a {stage} version"));
    Credentials::from_secret_json(raw.text()).expect("the secret parses")
}

/// Single user, with `window` between setSecret and finishSecret: zero application errors, and for a non-zero
/// window the first new connection on the new password opens before finishSecret, which only the AWSPENDING
/// path can do. Returns the time from setSecret to that first connection.
async fn single_user_rotation_with_window<D: TestDb, K: PoolKind<D>>(
    db: D,
    window: Duration,
) -> Duration {
    let fixture = Fixture::new(&db).await;
    let pool = churning_pool::<D, K>(&db, &fixture).await;
    let rotator = single_user(&db, &fixture);
    let token = rotation_token();
    let workload = Workload::start(&pool, 8);
    workload.wait_for_new_connections(10, Instant::now()).await;

    rotator.create_secret(&token).await.expect("createSecret");
    let pending = read(&fixture.source, Stage::Pending).await;
    assert_rejected(&db, &fixture.user, pending.password()).await;

    rotator.set_secret(&token).await.expect("setSecret");
    let set_at = Instant::now();
    assert_rejected(&db, &fixture.user, &fixture.password).await;
    rotator.test_secret(&token).await.expect("testSecret");
    tokio::time::sleep(window).await;
    let finish_at = Instant::now();
    rotator.finish_secret(&token).await.expect("finishSecret");
    workload.wait_for_new_connections(10, finish_at).await;

    let first_new = workload
        .created_since(set_at)
        .into_iter()
        .find(|&(_, generation)| generation == 2)
        .map(|(at, _)| at);
    workload.stop_expecting_no_errors().await;
    let first_new = first_new.expect("a connection on the new password was opened");
    if !window.is_zero() {
        assert!(
            first_new < finish_at,
            "the first connection on the new password opened only after finishSecret"
        );
    }
    let current = pool.stats();
    assert_eq!(
        (current.generation, current.version_id.as_str()),
        (2, token.as_str())
    );
    let recovery = first_new.saturating_duration_since(set_at);
    println!(
        "window {window:?}: setSecret to first new connection on the new password: {recovery:?}"
    );
    recovery
}

/// W = 0 s between setSecret and finishSecret.
pub async fn single_user_rotation_with_no_window<D: TestDb, K: PoolKind<D>>(db: D) {
    single_user_rotation_with_window::<D, K>(db, Duration::ZERO).await;
}

/// W = 2 s between setSecret and finishSecret.
pub async fn single_user_rotation_with_a_2s_window<D: TestDb, K: PoolKind<D>>(db: D) {
    single_user_rotation_with_window::<D, K>(db, Duration::from_secs(2)).await;
}

/// W = 10 s between setSecret and finishSecret.
pub async fn single_user_rotation_with_a_10s_window<D: TestDb, K: PoolKind<D>>(db: D) {
    single_user_rotation_with_window::<D, K>(db, Duration::from_secs(10)).await;
}

/// Alternating users, three rotations in a row under load: zero errors, and after each rotation the previous
/// user still logs in, while the user rotated two steps back no longer takes its old password.
pub async fn alternating_users_rotate_three_times_without_errors<D: TestDb, K: PoolKind<D>>(db: D) {
    let moto = MotoServer::shared();
    let (master_user, master_password) =
        (unique_name("master"), rotapool_testkit::random_password());
    db.server()
        .create_admin_account(&master_user, &master_password)
        .await;
    let master_id = unique_name("rotapool/master");
    moto.create_secret(
        &master_id,
        &super::secret_json(&db, &master_user, &master_password),
    )
    .await;
    let fixture = Fixture::new(&db).await;
    let mut document: serde_json::Value =
        serde_json::from_str(&super::secret_json(&db, &fixture.user, &fixture.password)).unwrap();
    document["masterarn"] = serde_json::Value::from(master_id.clone());
    moto.put_current(&fixture.secret_id, &document.to_string())
        .await;
    let master = moto.source(&master_id).await;
    let rotator = Rotator::new(
        fixture.source.clone(),
        db.backend(),
        Strategy::AlternatingUsers {
            master: Arc::new(master),
        },
    );
    let pool = churning_pool::<D, K>(&db, &fixture).await;
    let workload = Workload::start(&pool, 8);
    workload.wait_for_new_connections(10, Instant::now()).await;

    let mut history = vec![read(&fixture.source, Stage::Current).await];
    for round in 1..=3 {
        let token = rotation_token();
        rotator.rotate(&token).await.expect("the rotation");
        let current = read(&fixture.source, Stage::Current).await;
        let previous = history.last().expect("the first version");
        assert_ne!(
            current.username(),
            previous.username(),
            "round {round} switched users"
        );
        assert_eq!(
            db.server()
                .try_login(previous.username(), previous.password())
                .await,
            Login::Accepted,
            "round {round}: the previous user keeps working until the next rotation"
        );
        if let Some(two_back) = history.len().checked_sub(2).map(|i| &history[i]) {
            assert_rejected(&db, two_back.username(), two_back.password()).await;
        }
        history.push(current);
        workload.wait_for_new_connections(10, Instant::now()).await;
    }
    workload.stop_expecting_no_errors().await;
}

/// A rotation that stops after createSecret leaves an `AWSPENDING` password the database never got. Clients keep
/// working on `AWSCURRENT` and do not adopt the dangling version.
pub async fn a_dangling_pending_version_is_never_adopted<D: TestDb, K: PoolKind<D>>(db: D) {
    let fixture = Fixture::new(&db).await;
    let pool = churning_pool::<D, K>(&db, &fixture).await;
    let rotator = single_user(&db, &fixture);
    let token = rotation_token();
    rotator.create_secret(&token).await.expect("createSecret");
    let pending = read(&fixture.source, Stage::Pending).await;
    assert_rejected(&db, &fixture.user, pending.password()).await;

    let workload = Workload::start(&pool, 8);
    workload.wait_for_new_connections(30, Instant::now()).await;
    workload.stop_expecting_no_errors().await;
    let current = pool.stats();
    assert_eq!(
        current.generation, 1,
        "the dangling version was not adopted"
    );
    assert_ne!(current.version_id, token);
}

/// Every step, invoked twice, changes nothing the second time: the same pending text, the same labels, and the
/// database still takes the new password.
pub async fn every_rotation_step_is_idempotent<D: TestDb>(db: D) {
    let fixture = Fixture::new(&db).await;
    let rotator = single_user(&db, &fixture);
    let token = rotation_token();
    let secrets = &fixture.source;
    let snapshot = || async {
        let version = secrets
            .read_version(&token)
            .await
            .expect("read")
            .expect("the version exists");
        (version.stages.clone(), version.text().to_owned())
    };
    for step in rotapool_rotator::Step::ALL {
        rotator
            .run(step, &token)
            .await
            .unwrap_or_else(|e| panic!("{step}: {e}"));
        let after_first = snapshot().await;
        rotator
            .run(step, &token)
            .await
            .unwrap_or_else(|e| panic!("{step} again: {e}"));
        assert_eq!(
            snapshot().await,
            after_first,
            "{step} invoked twice changed the secret"
        );
    }
    let new = read(secrets, Stage::Current).await;
    assert_eq!(
        db.server().try_login(&fixture.user, new.password()).await,
        Login::Accepted
    );
    assert_rejected(&db, &fixture.user, &fixture.password).await;
    let previous = read(secrets, Stage::Previous).await;
    assert_eq!(previous.password(), fixture.password);
}

/// After a rotation with the gradual drain policy over D = 4 s (the old password proven rejected once setSecret
/// has run), connections of the old generation reach zero
/// within the drain period, and their replacement is spread out: at most half the pool reconnects in any quarter
/// of D, where an immediate drain would reconnect the whole pool at once.
pub async fn gradual_drain_retires_old_connections_without_a_storm<D: TestDb, K: PoolKind<D>>(
    db: D,
) {
    const POOL: usize = 8;
    const DRAIN: Duration = Duration::from_secs(4);
    let fixture = Fixture::new(&db).await;
    let pool = pools::build::<D, K>(&db, fixture.source.clone(), |s| {
        s.max_size(POOL)
            .drain(DrainPolicy::Gradual { over: DRAIN })
            .proactive_refresh(Some(ProactiveRefresh {
                interval: Duration::from_millis(200),
                after_rotation: Duration::from_millis(200),
            }))
    })
    .await;
    let workload = Workload::start(&pool, POOL);
    wait_until("the pool is full", || {
        pool.stats().connections_by_generation.get(&1) == Some(&(POOL as u64))
    })
    .await;

    let rotator = single_user(&db, &fixture);
    let token = rotation_token();
    rotator.create_secret(&token).await.expect("createSecret");
    rotator.set_secret(&token).await.expect("setSecret");
    assert_rejected(&db, &fixture.user, &fixture.password).await;
    rotator.test_secret(&token).await.expect("testSecret");
    rotator.finish_secret(&token).await.expect("finishSecret");
    wait_until("the proactive refresh adopts the rotated secret", || {
        pool.generation() == 2
    })
    .await;
    let adopted_at = pool.stats().adopted_at;
    tokio::time::sleep_until((adopted_at + DRAIN + Duration::from_secs(1)).into()).await;
    let stats = pool.stats();
    let reconnects = workload.created_since(adopted_at);
    workload.stop_expecting_no_errors().await;

    assert_eq!(stats.old_generation_connections(), 0, "{stats:?}");
    assert!(
        reconnects.len() >= POOL,
        "every old connection was replaced: {reconnects:?}"
    );
    let quarter = DRAIN / 4;
    for &(start, _) in &reconnects {
        let burst = reconnects
            .iter()
            .filter(|&&(at, _)| at >= start && at < start + quarter)
            .count();
        assert!(
            burst <= POOL / 2,
            "{burst} reconnects within {quarter:?} of each other; the drain should spread them"
        );
    }
}
