//! deadpool-postgres's own pool over rotapool's login (`rotapool_postgres::RotatingConnect`), against a real,
//! password-checking PostgreSQL: the tag hand-off to the hooks, everything deadpool-postgres users rely on, the
//! gradual retirement of old-credential connections, and what `get()` returns when the store is down.

use std::{
    collections::BTreeMap,
    io::Write,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use async_trait::async_trait;
use deadpool_postgres::{GenericClient, Pool, PoolError};
use rotapool_core::{ProactiveRefresh, SecretVersion};
use rotapool_postgres::{
    pool_builder_with,
    tokio_postgres::{error::SqlState, NoTls},
    Credentials, DrainPolicy, InMemorySecretStore, LoginBuilder, RotatingConnect, SecretSource,
    SourceError, Stage,
};
use rotapool_testkit::{random_password, unique_name, MotoServer, PgServer, TestServer};

type Connect = RotatingConnect<NoTls>;

/// A new account on the shared server.
async fn account() -> (String, String) {
    let (user, password) = (unique_name("dpg"), random_password());
    PgServer::shared().create_account(&user, &password).await;
    (user, password)
}

fn credentials(user: &str, password: &str) -> Credentials {
    let server = PgServer::shared();
    Credentials::new(user, password)
        .with_host(server.host())
        .with_port(server.port())
        .with_dbname("postgres")
}

/// A deadpool-postgres pool of `max_size` over a rotating login that reads `source`.
async fn pool(
    source: Arc<dyn SecretSource>,
    max_size: usize,
    configure: impl FnOnce(LoginBuilder<NoTls>) -> LoginBuilder<NoTls>,
) -> (Pool, Connect) {
    let mut config = deadpool_postgres::Config::new();
    config.pool = Some(deadpool_postgres::PoolConfig::new(max_size));
    let (builder, connect) = pool_builder_with(&config, NoTls, |login| {
        configure(login.secret_source(source))
    })
    .await
    .expect("the login starts");
    (builder.build().expect("the pool builds"), connect)
}

async fn current_user(client: &deadpool_postgres::Client) -> String {
    client
        .query_one("SELECT current_user::text", &[])
        .await
        .expect("a query")
        .get(0)
}

/// Creates under a multi-thread runtime, 8 tasks at a time, across a switch from one user to another (the
/// alternating-users rotation): every connection's filed generation is the one whose user the server says it
/// logged in as.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_logins_generation_reaches_the_post_create_hook_under_concurrent_creates() {
    let (first, first_password) = account().await;
    let (second, second_password) = account().await;
    let store = Arc::new(InMemorySecretStore::new(
        "dpg/handoff",
        &credentials(&first, &first_password),
    ));
    // Every connection lives 30 ms, so that creates go on all the time.
    let (pool, connect) = pool(store.clone(), 8, |login| {
        login.max_lifetime(Some(Duration::from_millis(30)))
    })
    .await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let run = |rounds: usize| {
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let (pool, connect, seen) = (pool.clone(), connect.clone(), seen.clone());
                tokio::spawn(async move {
                    for _ in 0..rounds {
                        let client = pool.get().await.expect("a connection");
                        let generation = connect.generation_of(&client);
                        let user = current_user(&client).await;
                        seen.lock().unwrap().push((generation, user));
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                })
            })
            .collect();
        async move {
            for task in tasks {
                task.await.expect("a task");
            }
        }
    };
    let before = run(20);
    tokio::time::sleep(Duration::from_millis(150)).await;
    // The switch: the secret names the second user, and the first one's password stops working.
    store.put_current(&credentials(&second, &second_password));
    PgServer::shared()
        .set_password(&first, &random_password())
        .await;
    before.await;
    run(20).await;

    let seen = seen.lock().unwrap();
    let by_generation = seen.iter().fold(BTreeMap::new(), |mut map, (g, user)| {
        *map.entry((*g, user.clone())).or_insert(0) += 1;
        map
    });
    for (generation, user) in seen.iter() {
        let expected = match generation {
            Some(1) => &first,
            Some(2) => &second,
            other => panic!("a connection with generation {other:?}: {by_generation:?}"),
        };
        assert_eq!(user, expected, "{by_generation:?}");
    }
    assert!(
        seen.iter().any(|(g, _)| *g == Some(2)),
        "connections of the second generation were made: {by_generation:?}"
    );
}

/// The same hand-off outside any task: `Runtime::block_on`'s future is not a task, so the slot is the thread's.
#[test]
fn each_logins_generation_reaches_the_post_create_hook_under_block_on() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        assert!(
            tokio::task::try_id().is_none(),
            "block_on's future is no task"
        );
        let (user, password) = account().await;
        let store = Arc::new(InMemorySecretStore::new(
            "dpg/block-on",
            &credentials(&user, &password),
        ));
        let (pool, connect) = pool(store, 4, |login| login).await;
        // Four creates interleaved in one future on one thread.
        let (a, b, c, d) = tokio::join!(pool.get(), pool.get(), pool.get(), pool.get());
        for client in [a, b, c, d] {
            assert_eq!(
                connect.generation_of(&client.expect("a connection")),
                Some(1)
            );
        }
        assert_eq!(connect.stats().connections_by_generation.get(&1), Some(&4));
    });
}

/// A helper written against deadpool-postgres's sealed trait, as application code is.
async fn count<C: GenericClient>(client: &C, table: &str) -> Result<i64, tokio_postgres::Error> {
    Ok(client
        .query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .await?
        .get(0))
}

/// `GenericClient`, `prepare_cached`, the pool's `statement_caches`, transactions with their cache, and the
/// same after a password rotation.
#[tokio::test]
async fn generic_client_transactions_and_statement_caches_work_on_the_rotating_pool() {
    let (user, password) = account().await;
    // Only this test creates a table: concurrent GRANTs on one schema can fail ("tuple concurrently updated").
    PgServer::shared()
        .execute(&format!("GRANT CREATE ON SCHEMA public TO \"{user}\""))
        .await;
    let store = Arc::new(InMemorySecretStore::new(
        "dpg/generic",
        &credentials(&user, &password),
    ));
    let (pool, connect) = pool(store.clone(), 2, |login| login).await;
    let table = unique_name("items");
    let mut client = pool.get().await.unwrap();
    client
        .batch_execute(&format!(
            "CREATE TABLE {table} (id int PRIMARY KEY, name text)"
        ))
        .await
        .unwrap();
    let insert = format!("INSERT INTO {table} VALUES ($1, $2)");
    let statement = client.prepare_cached(&insert).await.unwrap();
    client.execute(&statement, &[&1i32, &"one"]).await.unwrap();
    assert_eq!(client.statement_cache.size(), 1);
    {
        let transaction = client.transaction().await.unwrap();
        let again = transaction.prepare_cached(&insert).await.unwrap();
        assert_eq!(
            transaction.statement_cache.size(),
            1,
            "the transaction shares the client's cache"
        );
        transaction.execute(&again, &[&2i32, &"two"]).await.unwrap();
        assert_eq!(count(&transaction, &table).await.unwrap(), 2);
        transaction.rollback().await.unwrap();
    }
    assert_eq!(count(&client, &table).await.unwrap(), 1);
    // The pool-wide clear and remove reach this client's cache.
    pool.manager().statement_caches.remove(&insert, &[]);
    assert_eq!(client.statement_cache.size(), 0);
    client.prepare_cached(&insert).await.unwrap();
    pool.manager().statement_caches.clear();
    assert_eq!(client.statement_cache.size(), 0);
    drop(client);

    // A rotation: the new password in the store and on the server, the old one proven rejected. The pooled
    // connection keeps serving; a new one logs in with the new password.
    let new_password = random_password();
    store.put_current(&credentials(&user, &new_password));
    PgServer::shared().set_password(&user, &new_password).await;
    assert!(PgServer::shared().login(&user, &password).await.is_err());
    let held = pool.get().await.unwrap();
    let fresh = pool.get().await.expect("a new login after the rotation");
    assert_eq!(connect.generation_of(&fresh), Some(2));
    assert_eq!(count(&held, &table).await.unwrap(), 1);
    assert_eq!(count(&fresh, &table).await.unwrap(), 1);
    assert!(pool.status().size == 2);
}

/// Eight connections of generation 1, then a rotation the proactive refresh adopts, with a gradual drain over
/// D = 2 s: the old connections are all gone within D (plus a second), each retired by rotapool's pre_recycle
/// hook when checked out, and their replacements are spread out: at most half the pool within a quarter of D.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_credential_connections_are_retired_gradually_through_pre_recycle() {
    const POOL: usize = 8;
    const DRAIN: Duration = Duration::from_secs(2);
    let (user, password) = account().await;
    let store = Arc::new(InMemorySecretStore::new(
        "dpg/drain",
        &credentials(&user, &password),
    ));
    let (pool, connect) = pool(store.clone(), POOL, |login| {
        login
            .drain(DrainPolicy::Gradual { over: DRAIN })
            .proactive_refresh(Some(ProactiveRefresh {
                interval: Duration::from_millis(100),
                after_rotation: Duration::from_millis(100),
            }))
    })
    .await;
    let clients: Vec<_> = futures_join_all(&pool, POOL).await;
    drop(clients);
    assert_eq!(
        connect.stats().connections_by_generation,
        BTreeMap::from([(1, POOL as u64)])
    );

    let new_password = random_password();
    store.put_current(&credentials(&user, &new_password));
    PgServer::shared().set_password(&user, &new_password).await;
    assert!(PgServer::shared().login(&user, &password).await.is_err());
    let deadline = Instant::now() + Duration::from_secs(30);
    while connect.generation() != 2 {
        assert!(
            Instant::now() < deadline,
            "the proactive refresh adopted the new secret"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let adopted = Instant::now();
    // The server says which sessions are old: those that began before the adoption.
    let admin = PgServer::shared().admin().await;
    let adopted_on_server: std::time::SystemTime =
        admin.query_one("SELECT now()", &[]).await.unwrap().get(0);
    let old_sessions = || async {
        let row = admin
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE usename = $1 AND backend_start < $2",
                &[&user, &adopted_on_server],
            )
            .await
            .unwrap();
        row.get::<_, i64>(0) as u64
    };

    // Traffic: 8 tasks each check out a connection, query, and give it back, every 20 ms; meanwhile the old
    // connections still alive are counted every 5 ms.
    let mut old = old_sessions().await;
    assert_eq!(old, POOL as u64, "the server sees the pool's sessions");
    let until = adopted + DRAIN + Duration::from_secs(1);
    let tasks: Vec<_> = (0..POOL)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move {
                while Instant::now() < until {
                    let client = pool.get().await.expect("no get() fails during the drain");
                    client.simple_query("SELECT 1").await.expect("a query");
                    drop(client);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
        })
        .collect();
    let mut retirements = Vec::new();
    while Instant::now() < until {
        let now = old_sessions().await;
        retirements.extend(std::iter::repeat_n(
            Instant::now(),
            old.saturating_sub(now) as usize,
        ));
        old = now;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(
        old, 0,
        "every old connection was retired within the drain period"
    );
    assert_eq!(retirements.len(), POOL);
    let stats = connect.stats();
    assert_eq!(stats.old_generation_connections(), 0, "{stats:?}");
    let offsets: Vec<_> = retirements
        .iter()
        .map(|at| at.duration_since(adopted))
        .collect();
    let quarter = DRAIN / 4;
    for &start in &retirements {
        let burst = retirements
            .iter()
            .filter(|&&at| at >= start && at < start + quarter)
            .count();
        assert!(
            burst <= POOL / 2,
            "{burst} retirements within {quarter:?} of each other; the drain should spread them: {offsets:?}"
        );
    }
}

/// `n` connections checked out at once.
async fn futures_join_all(pool: &Pool, n: usize) -> Vec<deadpool_postgres::Client> {
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move { pool.get().await.expect("a connection") })
        })
        .collect();
    let mut clients = Vec::new();
    for task in tasks {
        clients.push(task.await.unwrap());
    }
    clients
}

/// An in-memory store that can be switched off, as a store that refuses connections is.
#[derive(Debug)]
struct SwitchableStore {
    store: InMemorySecretStore,
    down: std::sync::atomic::AtomicBool,
}

#[async_trait]
impl SecretSource for SwitchableStore {
    fn secret_id(&self) -> &str {
        "dpg/store-down"
    }

    async fn fetch(&self, stage: Stage) -> Result<SecretVersion, SourceError> {
        if self.down.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(SourceError::Unreachable {
                secret_id: "dpg/store-down".into(),
                source: "connection refused".into(),
            });
        }
        self.store.fetch(stage).await
    }
}

/// Log lines, captured.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The store down and the password changed on the server: `get()` fails with the database's own rejection, a
/// real 28P01 `tokio_postgres::Error` with the server's words (deadpool-postgres's `Connect` can return nothing
/// else), and the log says that the store could not be read.
#[tokio::test]
async fn with_the_store_down_and_the_password_rejected_get_returns_the_databases_rejection_and_the_log_names_the_store(
) {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let (user, password) = account().await;
    let store = Arc::new(SwitchableStore {
        store: InMemorySecretStore::new("dpg/store-down", &credentials(&user, &password)),
        down: Default::default(),
    });
    let (pool, _connect) = pool(store.clone(), 2, |login| login).await;
    drop(pool.get().await.expect("serves while the store is up"));
    let held = pool.get().await.unwrap();

    store.down.store(true, std::sync::atomic::Ordering::Relaxed);
    PgServer::shared()
        .set_password(&user, &random_password())
        .await;
    assert!(PgServer::shared().login(&user, &password).await.is_err());
    // The idle connection is held, so get() must log in.
    let err = pool
        .get()
        .await
        .expect_err("no password works and the store is down");
    let PoolError::Backend(error) = &err else {
        panic!("expected the backend's error, got {err:?}");
    };
    assert_eq!(error.code(), Some(&SqlState::INVALID_PASSWORD), "{error:?}");
    let db = error.as_db_error().expect("the database's error");
    assert!(
        db.message().contains("password authentication failed") && db.message().contains(&user),
        "the server's words: {}",
        db.message()
    );
    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        log.contains("secret store unreachable"),
        "the log names the store: {log}"
    );
    assert!(!log.contains(&password), "the password leaked into the log");
    drop(held);
}

/// The migration in the README, for real: a service that builds deadpool-postgres's pool from its
/// `deadpool_postgres::Config` switches by changing that one call, and keeps its pool and manager settings.
#[tokio::test]
async fn a_deadpool_postgres_service_switches_by_changing_one_call() {
    let moto = MotoServer::shared();
    // The AWS SDK's default chain finds moto through the environment, as it finds AWS in production.
    std::env::set_var("AWS_ENDPOINT_URL", moto.endpoint_url());
    std::env::set_var("AWS_ACCESS_KEY_ID", rotapool_testkit::MOTO_ACCESS_KEY.0);
    std::env::set_var("AWS_SECRET_ACCESS_KEY", rotapool_testkit::MOTO_ACCESS_KEY.1);
    std::env::set_var("AWS_REGION", rotapool_testkit::MOTO_REGION);
    let (user, password) = account().await;
    let secret_id = unique_name("dpg/service");
    moto.create_secret(
        &secret_id,
        &credentials(&user, &password)
            .with_engine("postgres")
            .to_secret_json(),
    )
    .await;

    // The service's config, as deadpool-postgres's documentation builds it; no password in it any more.
    let mut cfg = deadpool_postgres::Config::new();
    cfg.application_name = Some("orders-api".into());
    cfg.manager = Some(deadpool_postgres::ManagerConfig {
        recycling_method: deadpool_postgres::RecyclingMethod::Verified,
    });
    cfg.pool = Some(deadpool_postgres::PoolConfig::new(3));
    let pool = rotapool_postgres::create_pool(&cfg, &secret_id, NoTls)
        .await
        .expect("the pool");

    let client = pool.get().await.expect("a connection");
    let row = client
        .query_one(
            "SELECT current_user::text, current_setting('application_name')",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), user);
    assert_eq!(
        row.get::<_, String>(1),
        "orders-api",
        "the template's setting"
    );
    assert_eq!(pool.status().max_size, 3, "the pool settings are kept");
}
