//! The fault suite: what a store outage, a hung store, a database restart, sessions killed at the password change,
//! cancelled `get()`s and a wrong secret do to a pool under load, against the real servers and moto, for every
//! backend. Each case prints one line of figures (`FAULT | engine | case | ...`), which the README's
//! "Reliability" table quotes.
//!
//! The store's faults are played by a [`FaultyLink`] between the pool and moto, one per case, so that cases run
//! side by side: `Down` refuses connections as a killed store does, `Frozen` accepts them and never answers, as a
//! stopped (SIGSTOP) one does. Rotations run through rotapool-rotator straight to moto, as a rotation Lambda
//! would, and every case proves that the old password is rejected before it counts errors.

// Each test binary uses one backend's half of this module.
#![allow(dead_code, unused_macros, unreachable_pub)]

pub mod lag;
pub mod traffic;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use async_trait::async_trait;
use rotapool_core::{
    source::{AwsSecretsManager, SecretAdmin},
    Credentials, ProactiveRefresh, Stage,
};
use rotapool_rotator::{Rotator, Strategy};
use rotapool_testkit::{
    random_password, rotation_token, unique_name, FaultyLink, LinkState, Login, MariaDbServer,
    MotoServer, PgServer, TestServer,
};

use crate::conformance::{
    assert_rejected,
    mariadb::MariaDb,
    pools::{PoolKind, Settings, TestPool},
    postgres::Postgres,
    Fixture, TestDb,
};
use traffic::{Report, Traffic};

/// What the fault cases need beyond the conformance suite's [`TestDb`].
#[async_trait]
pub trait FaultDb: TestDb {
    /// The same kind of server, private to one case, for faults that would disturb other cases.
    fn private(&self) -> Self;
    /// Makes the server block an account after `n` consecutive failed logins, where the engine can; says whether
    /// it could.
    async fn block_after_failed_logins(&self, n: u32) -> bool;
}

#[async_trait]
impl FaultDb for Postgres {
    fn private(&self) -> Self {
        Postgres(Box::leak(Box::new(PgServer::private())))
    }

    async fn block_after_failed_logins(&self, _: u32) -> bool {
        false
    }
}

#[async_trait]
impl FaultDb for MariaDb {
    fn private(&self) -> Self {
        MariaDb(Box::leak(Box::new(MariaDbServer::private())))
    }

    async fn block_after_failed_logins(&self, n: u32) -> bool {
        self.server()
            .execute(&format!("SET GLOBAL max_password_errors = {n}"))
            .await;
        true
    }
}

/// A pool under test, reading its secret through a link of its own.
struct Setup<P: TestPool> {
    fixture: Fixture,
    link: FaultyLink,
    source: Arc<AwsSecretsManager>,
    pool: P,
}

/// An account, its secret, and a link to moto, before the pool is built.
struct Prepared {
    fixture: Fixture,
    link: FaultyLink,
    source: Arc<AwsSecretsManager>,
}

/// An account, its secret, and a churning pool (100 ms max lifetime, so new logins happen all the time) that
/// reads the secret through a [`FaultyLink`], with a proactive refresh every second so that the store's faults
/// are met even while no login fails.
async fn setup<D: FaultDb, K: PoolKind<D>>(db: &D) -> Setup<K::Pool> {
    prepare(db)
        .await
        .pool::<D, K>(db, |settings| settings)
        .await
}

/// [`setup`] without the pool, for cases that act before it is built.
async fn prepare<D: FaultDb>(db: &D) -> Prepared {
    let fixture = Fixture::new(db).await;
    let link = FaultyLink::start(MotoServer::shared().port()).await;
    let source = Arc::new(rotapool_testkit::source_at(&link.url(), &fixture.secret_id).await);
    Prepared {
        fixture,
        link,
        source,
    }
}

impl Prepared {
    /// Builds [`setup`]'s pool, with `configure` applied last.
    async fn pool<D: FaultDb, K: PoolKind<D>>(
        self,
        db: &D,
        configure: impl FnOnce(Settings) -> Settings,
    ) -> Setup<K::Pool> {
        let settings = Settings::default()
            .max_size(4)
            .max_lifetime(Some(Duration::from_millis(100)))
            .proactive_refresh(Some(ProactiveRefresh {
                interval: Duration::from_secs(1),
                after_rotation: Duration::from_secs(60),
            }));
        let pool = K::build(db, self.source.clone(), configure(settings)).await;
        Setup {
            fixture: self.fixture,
            link: self.link,
            source: self.source,
            pool,
        }
    }
}

/// A single-user rotation, the four steps as AWS runs them, with `window` between setSecret and finishSecret.
/// Proves that the password it replaced is rejected once setSecret has run.
async fn rotate<D: FaultDb>(db: &D, fixture: &Fixture, window: Duration) {
    rotate_with(db, fixture, window, || async {}).await;
}

/// [`rotate`], running `after_set_secret` right after setSecret.
async fn rotate_with<D: FaultDb, F: std::future::Future<Output = ()>>(
    db: &D,
    fixture: &Fixture,
    window: Duration,
    after_set_secret: impl FnOnce() -> F,
) {
    let rotator = Rotator::new(fixture.source.clone(), db.backend(), Strategy::SingleUser);
    let token = rotation_token();
    let old = current_password(fixture).await;
    rotator.create_secret(&token).await.expect("createSecret");
    rotator.set_secret(&token).await.expect("setSecret");
    after_set_secret().await;
    assert_rejected(db, &fixture.user, &old).await;
    rotator.test_secret(&token).await.expect("testSecret");
    tokio::time::sleep(window).await;
    rotator.finish_secret(&token).await.expect("finishSecret");
}

async fn current_password(fixture: &Fixture) -> String {
    let raw = fixture
        .source
        .read_stage(Stage::Current)
        .await
        .expect("moto answers")
        .expect("an AWSCURRENT version");
    Credentials::from_secret_json(raw.text())
        .expect("the secret parses")
        .password()
        .to_owned()
}

/// Prints one row of the Reliability table.
fn figures<D: TestDb>(db: &D, case: &str, report: &Report, recovery: Option<Duration>, note: &str) {
    let recovery = recovery.map_or("-".to_owned(), |r| format!("{:.2} s", r.as_secs_f64()));
    println!(
        "FAULT | {} | {case} | served {} | get() errors {} | query errors {} | recovery {recovery} | {note}",
        db.engine(),
        report.ok,
        report.get_errors.len(),
        report.query_errors.len(),
    );
}

/// Once the fault was healed at `healed`: waits for service, then 3 s more for late errors, and stops the
/// traffic. Returns what it saw and the recovery (from `healed` to the last `get()` error).
async fn settle(traffic: Traffic, healed: Instant) -> (Report, Duration) {
    traffic.wait_for_service(50).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let report = traffic.stop().await;
    let recovery = report.recovery_after(healed);
    (report, recovery)
}

/// Fails unless every `get()` error in `report` is the typed rejection of the secret's credentials.
fn assert_every_get_error_is_the_typed_rejection<P: TestPool>(report: &Report) {
    let untyped: Vec<_> = report
        .get_errors
        .iter()
        .filter(|e| !P::is_rejection(&e.message))
        .map(|e| &e.message)
        .collect();
    assert!(untyped.is_empty(), "{:?}", &untyped[..untyped.len().min(3)]);
}

/// Fails unless `report` has no `get()` error; shows the first few.
fn assert_no_get_errors(report: &Report, case: &str) {
    let shown: Vec<_> = report
        .get_errors
        .iter()
        .take(3)
        .map(|e| &e.message)
        .collect();
    assert!(
        report.get_errors.is_empty(),
        "{case}: {} get() errors, e.g. {shown:?}",
        report.get_errors.len()
    );
}

/// The store killed (connections refused) for 30 s while the pool churns: no error.
pub async fn store_killed_for_30s_in_steady_state<D: FaultDb, K: PoolKind<D>>(db: D) {
    store_fault_in_steady_state::<D, K>(db, LinkState::Down, "store killed for 30 s").await;
}

/// The store hung (connections accepted, never answered) for 20 s while the pool churns: no error.
pub async fn store_hung_for_20s_in_steady_state<D: FaultDb, K: PoolKind<D>>(db: D) {
    store_fault_in_steady_state::<D, K>(db, LinkState::Frozen, "store hung for 20 s").await;
}

async fn store_fault_in_steady_state<D: FaultDb, K: PoolKind<D>>(
    db: D,
    state: LinkState,
    case: &str,
) {
    let length = if state == LinkState::Down {
        Duration::from_secs(30)
    } else {
        Duration::from_secs(20)
    };
    let s = setup::<D, K>(&db).await;
    let traffic = Traffic::start(&s.pool, 4);
    traffic.wait_for_service(50).await;
    let (reads, logins) = (s.source.api_calls(), s.pool.stats().logins);
    s.link.set(state);
    tokio::time::sleep(length).await;
    let reads_during = s.source.api_calls() - reads;
    let logins_during = s.pool.stats().logins - logins;
    s.link.set(LinkState::Up);
    traffic.wait_for_service(50).await;
    let report = traffic.stop().await;
    figures(
        &db,
        case,
        &report,
        None,
        &format!("{reads_during} reads tried and {logins_during} logins during the fault"),
    );
    assert!(reads_during > 0, "the proactive refresh met the fault");
    assert!(logins_during > 20, "new logins happened during the fault");
    assert_no_get_errors(&report, case);
    assert!(report.query_errors.is_empty(), "{:?}", report.query_errors);
}

/// The store down while a rotation runs (W = 2 s), and for 5 s after it: errors only while nothing can be done
/// (the old password is rejected and the new one cannot be read), each naming the store, and service within 2 s
/// of the store's return.
pub async fn store_down_across_a_rotation<D: FaultDb, K: PoolKind<D>>(db: D) {
    let case = "store down across a rotation, then back";
    let s = setup::<D, K>(&db).await;
    let traffic = Traffic::start(&s.pool, 4);
    traffic.wait_for_service(50).await;
    s.link.set(LinkState::Down);
    rotate(&db, &s.fixture, Duration::from_secs(2)).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(
        traffic.get_errors() > 0,
        "with the store down, the new password cannot be had"
    );
    let back = Instant::now();
    s.link.set(LinkState::Up);
    let (report, recovery) = settle(traffic, back).await;
    figures(
        &db,
        case,
        &report,
        Some(recovery),
        "errors: the store's, while it was down",
    );
    let blaming_the_password: Vec<_> = report
        .get_errors
        .iter()
        .filter(|e| !K::Pool::names_the_store(&e.message))
        .map(|e| &e.message)
        .collect();
    assert!(
        blaming_the_password.is_empty(),
        "{} errors did not name the store: {:?}",
        blaming_the_password.len(),
        &blaming_the_password[..blaming_the_password.len().min(3)]
    );
    assert!(
        recovery <= Duration::from_secs(2),
        "recovery took {recovery:?}"
    );
    assert_eq!(s.pool.generation(), 2);
}

/// A 30 s store outage with a rotation inside it, then two ordinary rotations 5 s apart once the store is back:
/// service within 2 s of the store's return, and the old struggle must not delay the rotations, so neither may
/// cost an error.
pub async fn two_rotations_5s_apart_after_a_30s_outage<D: FaultDb, K: PoolKind<D>>(db: D) {
    let case = "two rotations 5 s apart after a 30 s outage";
    let s = setup::<D, K>(&db).await;
    let traffic = Traffic::start(&s.pool, 4);
    traffic.wait_for_service(50).await;
    let down = Instant::now();
    s.link.set(LinkState::Down);
    rotate(&db, &s.fixture, Duration::from_secs(2)).await;
    tokio::time::sleep(Duration::from_secs(30).saturating_sub(down.elapsed())).await;
    let errors_in_outage = traffic.get_errors();
    assert!(errors_in_outage > 0, "the pool struggled during the outage");
    let back = Instant::now();
    s.link.set(LinkState::Up);
    traffic.wait_for_service(50).await;
    tokio::time::sleep(Duration::from_secs(5).saturating_sub(back.elapsed())).await;
    let first = Instant::now();
    rotate(&db, &s.fixture, Duration::from_secs(2)).await;
    tokio::time::sleep(Duration::from_secs(5).saturating_sub(first.elapsed())).await;
    rotate(&db, &s.fixture, Duration::from_secs(2)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let report = traffic.stop().await;
    let after: Vec<_> = report.get_errors_since(first);
    let recovery = report.recovery_after(back);
    figures(
        &db,
        case,
        &report,
        Some(recovery),
        &format!(
            "{errors_in_outage} errors in the outage, {} in the two rotations",
            after.len()
        ),
    );
    assert!(
        after.is_empty(),
        "{} errors in the rotations after the outage: {:?}",
        after.len(),
        &after[..after.len().min(3)]
    );
    assert!(
        recovery <= Duration::from_secs(2),
        "{case}: the last get() error came {recovery:?} after the store's return"
    );
    assert_eq!(s.pool.generation(), 4);
}

/// The database restarts under load, with 8 tasks running `get()` and a query. With local servers it restarts in
/// place (PostgreSQL `pg_ctl restart -m fast`, MariaDB a normal shutdown and start); with containers
/// (`ROTAPOOL_TEST_SERVERS=docker`) the container itself is stopped as `docker stop` does and started again, as an
/// orchestrator restarts a database container. The pool recovers by itself: no `get()` fails, nothing is rebuilt,
/// and the restart is not taken for a rotation (the credentials stay at generation 1). What the application sees
/// is only what no pool can hide: a query in flight on a session the restart ended, at most one per task, each an
/// error that says the connection was lost, never one about credentials.
pub async fn database_restart_is_invisible_to_get<D: FaultDb, K: PoolKind<D>>(db: D) {
    const TASKS: usize = 8;
    let case = match rotapool_testkit::ServerMode::from_env() {
        rotapool_testkit::ServerMode::Docker => "database container restart (docker stop, start)",
        rotapool_testkit::ServerMode::Local => "database restart in place",
    };
    let db = db.private();
    let s = setup::<D, K>(&db).await;
    let mut held = s.pool.get().await.expect("a connection");
    let traffic = Traffic::start(&s.pool, TASKS);
    traffic.wait_for_service(50).await;
    let restart = Instant::now();
    db.server().restart().await;
    let took = restart.elapsed();
    assert!(
        s.pool.ping(&mut held).await.is_err(),
        "a session from before the restart is dead"
    );
    drop(held);
    let served_before = traffic.served();
    traffic.wait_for_service(200).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let report = traffic.stop().await;
    let mut kinds: Vec<&str> = report
        .query_errors
        .iter()
        .map(|e| e.message.as_str())
        .collect();
    kinds.sort_unstable();
    kinds.dedup();
    figures(
        &db,
        case,
        &report,
        None,
        &format!(
            "the restart took {:.2} s; {} served after it; query errors: {kinds:?}",
            took.as_secs_f64(),
            report.ok - served_before
        ),
    );
    assert_no_get_errors(&report, case);
    assert!(
        report.query_errors.len() <= TASKS,
        "{case}: {} query errors, more than the {TASKS} queries that can be in flight: {kinds:?}",
        report.query_errors.len()
    );
    for error in &report.query_errors {
        let lower = error.message.to_lowercase();
        assert!(
            [
                "connection closed",
                "terminating connection",
                "shutdown",
                "connection reset",
                "broken pipe"
            ]
            .iter()
            .any(|lost| lower.contains(lost)),
            "{case}: a query failed for another reason than its session ending: {}",
            error.message
        );
    }
    assert_eq!(
        s.pool.generation(),
        1,
        "a restart is not a rotation: the credentials were not re-read"
    );
}

/// Every session of the account killed right after setSecret, so that every `get()` needs a new login at the
/// moment the old password stops working: at least one kill worked, and no `get()` fails.
pub async fn all_sessions_killed_at_the_password_change<D: FaultDb, K: PoolKind<D>>(db: D) {
    let case = "all sessions killed at the password change";
    let s = setup::<D, K>(&db).await;
    let traffic = Traffic::start(&s.pool, 4);
    traffic.wait_for_service(50).await;
    let mut killed = 0;
    rotate_with(&db, &s.fixture, Duration::from_secs(2), || async {
        // At this instant the churning pool can be between sessions (the old ones retired at their 100 ms
        // lifetime, the new logins waiting on the refresh): then kill the first ones to appear. Only kills that
        // worked count, not sessions that ended by themselves. Each try is a fresh admin login and a query, which
        // paces the loop.
        let deadline = Instant::now() + Duration::from_secs(5);
        while killed == 0 && Instant::now() < deadline {
            killed = db.server().kill_sessions(&s.fixture.user).await;
        }
    })
    .await;
    traffic.wait_for_service(50).await;
    let report = traffic.stop().await;
    figures(
        &db,
        case,
        &report,
        None,
        &format!("{killed} sessions killed"),
    );
    assert!(
        killed > 0,
        "{case}: no session was killed within 5 s of setSecret"
    );
    assert_no_get_errors(&report, case);
    assert_eq!(s.pool.generation(), 2);
}

/// A thousand `get()` futures dropped while the pool waits on a hung store in the middle of a rotation, some of
/// them while the read of the secret they wait on hangs: the pool then serves at full size, with no single
/// flight stuck and no login permit held. Each recovering `get()` has 30 s, so a stuck pool fails the case
/// instead of hanging it.
pub async fn a_thousand_cancelled_gets_leave_the_pool_whole<D: FaultDb, K: PoolKind<D>>(db: D) {
    const RECOVERY: Duration = Duration::from_secs(30);
    let case = "1,000 get() cancelled mid-refresh";
    // No proactive refresh: every read that reaches the link after the first is then one a get() asked for.
    // Connections live 1 ms: the one opened below is retired at its next check-out, so every get() must log in.
    // (Killing its session is not enough: a client that has not yet read the server's goodbye still says it is
    // open, and served hundreds of gets in a loaded CI run.)
    let s = prepare(&db)
        .await
        .pool::<D, K>(&db, |settings| {
            settings
                .proactive_refresh(None)
                .max_lifetime(Some(Duration::from_millis(1)))
        })
        .await;
    drop(s.pool.get().await.expect("a connection"));
    s.link.set(LinkState::Frozen);
    rotate(&db, &s.fixture, Duration::ZERO).await;
    db.server().kill_sessions(&s.fixture.user).await;
    let started = Instant::now();
    let gets: Vec<_> = (0..1000u64)
        .map(|i| {
            let (pool, link) = (s.pool.clone(), s.link.clone());
            // Dropped at every stage: queued for a slot, logging in, reading, queued behind the read. Patience
            // runs from 0 to 0.98 s, finely at first: with 0 to 9.9 ms, no PostgreSQL get() reached the read (a
            // debug build's rejected login took longer).
            let patience = Duration::from_micros(100 * (i % 100).pow(2));
            tokio::spawn(async move {
                let cancelled = tokio::time::timeout(patience, pool.get()).await.is_err();
                // Reads hung in the frozen link at the moment this get() was dropped.
                cancelled.then(|| link.held_requests())
            })
        })
        .collect();
    let (mut cancelled, mut cancelled_while_a_read_hung) = (0u64, 0u64);
    for get in gets {
        if let Some(hung_reads) = get.await.expect("a get task") {
            cancelled += 1;
            cancelled_while_a_read_hung += u64::from(hung_reads > 0);
        }
    }
    let all_gets_took = started.elapsed();
    let hung_reads = s.link.held_requests();
    let held_while_hung = s.pool.stats().login_permits_held;
    s.link.set(LinkState::Up);
    let gets: Vec<_> = (0..4)
        .map(|_| {
            let pool = s.pool.clone();
            tokio::spawn(async move { tokio::time::timeout(RECOVERY, pool.get()).await })
        })
        .collect();
    let mut full = Vec::new();
    for get in gets {
        let got = get.await.expect("a get task").unwrap_or_else(|_| {
            panic!("{case}: a get() was not served within {RECOVERY:?} of the store's return: the pool is stuck")
        });
        full.push(got.expect("the pool serves again"));
    }
    for conn in &mut full {
        s.pool.ping(conn).await.expect("a working connection");
    }
    let stats = s.pool.stats();
    println!(
        "FAULT | {} | {case} | {cancelled} cancelled, {cancelled_while_a_read_hung} of them while a read of the \
         secret hung ({hung_reads} reads hung) | then 4 of 4 connections at once | permits held {} | generation {}",
        db.engine(),
        stats.login_permits_held,
        stats.generation
    );
    assert!(cancelled > 990, "{cancelled} of 1000 were cancelled");
    // Every read that hung was a get()'s (no proactive refresh), and none was answered (the link was frozen) or
    // timed out (all the gets ended sooner): the get() that waited on it was dropped.
    let read_timeout = rotapool_core::RefreshPolicy::default().read_timeout;
    assert!(
        all_gets_took < read_timeout,
        "the gets took {all_gets_took:?}: a hung read may have timed out ({read_timeout:?}) instead of being dropped"
    );
    assert!(
        cancelled_while_a_read_hung > 0,
        "no get() was cancelled while a read of the secret hung ({hung_reads} reads hung in all): the case did \
         not reach the store"
    );
    assert_eq!(
        held_while_hung, 0,
        "no login permit held by a dropped get()"
    );
    assert_eq!(s.pool.size(), 4);
    assert_eq!(stats.generation, 2);
}

/// Proves that the server refuses an account its right password after `n` wrong ones: the control for a case
/// that claims the pool does not block its account.
async fn prove_the_server_blocks_after<D: FaultDb>(db: &D, n: u32) {
    let (user, password) = (unique_name("lockout"), random_password());
    db.server().create_account(&user, &password).await;
    for _ in 0..n {
        assert_rejected(db, &user, "certainly-not-the-password").await;
    }
    let login = db.server().try_login(&user, &password).await;
    assert!(
        matches!(login, Login::Failed(_)),
        "after {n} wrong logins the server still answered {login:?} to the right password: it does not block \
         accounts, so the case would prove nothing"
    );
}

/// The database password changed behind the secret's back for 20 s, on a server that blocks an account after 3
/// failed logins where the engine can (MariaDB `max_password_errors`; PostgreSQL has no such limit, and the
/// case says so in its figures), with the pool's `lockout_threshold` set to 3: first the control, a throwaway
/// account on that server that 3 wrong logins do block; then for the pool's account fewer than 3 failed logins,
/// the account not blocked, every error the typed auth error, and service within 2 s of the secret's fix.
pub async fn a_wrong_secret_for_20s_does_not_block_the_account<D: FaultDb, K: PoolKind<D>>(db: D) {
    const BLOCK_AT: u32 = 3;
    let case = "wrong secret for 20 s, then fixed";
    let db = db.private();
    let blocking = db.block_after_failed_logins(BLOCK_AT).await;
    if blocking {
        prove_the_server_blocks_after(&db, BLOCK_AT).await;
    }
    // The pool tries a rejected password again every second; told the server's threshold, it keeps below it.
    let s = prepare(&db)
        .await
        .pool::<D, K>(&db, |settings| settings.lockout_threshold(Some(BLOCK_AT)))
        .await;
    let traffic = Traffic::start(&s.pool, 4);
    traffic.wait_for_service(50).await;

    let failed_before = s.pool.stats().auth_failures;
    let right = random_password();
    db.server().set_password(&s.fixture.user, &right).await;
    tokio::time::sleep(Duration::from_secs(20)).await;
    let failed_logins = s.pool.stats().auth_failures - failed_before;
    assert!(traffic.get_errors() > 0, "a wrong secret cannot be hidden");
    assert_eq!(
        db.server().try_login(&s.fixture.user, &right).await,
        Login::Accepted,
        "the account must not be blocked (a blocked MariaDB account refuses even the right password)"
    );
    // Only now the proof that the old password is rejected: it is a failed login of its own, which during the
    // 20 s would have counted towards the account's block with the pool's (a run failed so: the account was
    // blocked before the 20 s began). The good login above reset the server's count.
    assert_rejected(&db, &s.fixture.user, &s.fixture.password).await;

    let fixed = Instant::now();
    s.fixture.put_secret(&db, &right).await;
    let (report, recovery) = settle(traffic, fixed).await;
    figures(
        &db,
        case,
        &report,
        Some(recovery),
        &format!(
            "{failed_logins} failed logins{}",
            if blocking {
                format!(
                    " (the server blocks at {BLOCK_AT}: it refused a throwaway account its right password after \
                     {BLOCK_AT} wrong ones)"
                )
            } else {
                " (the engine has no limit on failed logins: no lockout to prove)".to_owned()
            }
        ),
    );
    assert!(
        failed_logins < u64::from(BLOCK_AT),
        "{failed_logins} failed logins"
    );
    assert_every_get_error_is_the_typed_rejection::<K::Pool>(&report);
    assert!(
        recovery <= Duration::from_secs(2),
        "recovery took {recovery:?}"
    );
}

/// Expands to one `#[tokio::test]` per fault case, each against the server `$db` returns, with rotapool's own
/// pool or, given one, another [`PoolKind`].
macro_rules! fault_suite {
    ($db:expr) => {
        fault_suite!($db, $crate::conformance::pools::Rotapool);
    };
    ($db:expr, $kind:ty) => {
        fault_suite!(@tests $kind; $db;
            store_killed_for_30s_in_steady_state,
            store_hung_for_20s_in_steady_state,
            store_down_across_a_rotation,
            two_rotations_5s_apart_after_a_30s_outage,
            database_restart_is_invisible_to_get,
            all_sessions_killed_at_the_password_change,
            a_thousand_cancelled_gets_leave_the_pool_whole,
            a_wrong_secret_for_20s_does_not_block_the_account,
        );
        fault_suite!(@started $kind; $db;
            store_ahead_of_the_database_by_10s,
            a_password_refused_for_5s_then_taken_again,
        );
    };
    (@started $kind:ty; $db:expr; $($case:ident),+ $(,)?) => {
        $(
            mod $case {
                use super::*;

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn running_pool() {
                    $crate::faults::lag::$case::<_, $kind>($db, $crate::faults::lag::Start::Before).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn pool_started_in_it() {
                    $crate::faults::lag::$case::<_, $kind>($db, $crate::faults::lag::Start::During).await;
                }
            }
        )+
    };
    (@tests $kind:ty; $db:expr; $($case:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                $crate::faults::$case::<_, $kind>($db).await;
            }
        )+
    };
}
