//! The pools under comparison, side by side: rotapool, a plain deadpool-postgres pool, and deadpool-postgres's own
//! pool logging in through rotapool's `RotatingConnect` (the drop-in), on the same server, with the same account
//! and the same size, all fully opened before any measurement.

// A module of each bench binary: its `pub` items are for the bench, not for a crate's users.
#![allow(unreachable_pub)]

use std::{
    future::Future,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
};

use deadpool_postgres::{Hook, ManagerConfig, RecyclingMethod, Runtime};
use rotapool::postgres::{
    Credentials, InMemorySecretStore, PgBackend, PoolBuilder, RotatingConnect, SslMode,
};
use rotapool_testkit::{random_password, unique_name, PgServer, TestServer};
use tokio_postgres::{Client, NoTls};

/// Connections per pool. Fewer than the 32 tasks of the concurrent benches, so those also measure how each pool
/// hands a returned connection to a waiting task.
pub const POOL_SIZE: usize = 16;

/// What the benches need from a pool: borrow a connection, and reach the driver's client through it.
pub trait BenchPool: Clone + Send + Sync + 'static {
    /// The name the benchmark ids give this pool.
    const NAME: &'static str;

    /// A borrowed connection; it goes back to the pool on drop.
    type Conn: Send;

    /// Borrows a connection; panics if the pool cannot give one.
    fn checkout(&self) -> impl Future<Output = Self::Conn> + Send;

    /// The driver's client behind `conn`.
    fn client(conn: &Self::Conn) -> &Client;
}

impl BenchPool for rotapool::postgres::Pool {
    const NAME: &'static str = "rotapool";
    type Conn = rotapool::postgres::Object;

    async fn checkout(&self) -> Self::Conn {
        self.get()
            .await
            .expect("a connection from the rotapool pool")
    }

    fn client(conn: &Self::Conn) -> &Client {
        conn
    }
}

impl BenchPool for deadpool_postgres::Pool {
    const NAME: &'static str = "deadpool-postgres";
    type Conn = deadpool_postgres::Object;

    async fn checkout(&self) -> Self::Conn {
        self.get()
            .await
            .expect("a connection from the deadpool-postgres pool")
    }

    fn client(conn: &Self::Conn) -> &Client {
        conn
    }
}

/// deadpool-postgres's own pool over rotapool's `RotatingConnect`, with its two hooks: the drop-in.
#[derive(Clone)]
pub struct DropIn {
    pool: deadpool_postgres::Pool,
    connect: RotatingConnect<NoTls>,
}

impl BenchPool for DropIn {
    const NAME: &'static str = "deadpool-postgres+RotatingConnect";
    type Conn = deadpool_postgres::Object;

    async fn checkout(&self) -> Self::Conn {
        self.pool
            .get()
            .await
            .expect("a connection from the drop-in pool")
    }

    fn client(conn: &Self::Conn) -> &Client {
        conn
    }
}

/// The three pools, logged in as the same account.
pub struct Pools {
    pub rotapool: rotapool::postgres::Pool,
    pub deadpool: deadpool_postgres::Pool,
    pub drop_in: DropIn,
    /// Connections the deadpool-postgres pool has opened; rotapool counts its own in `stats().logins`.
    deadpool_logins: Arc<AtomicU64>,
}

impl Pools {
    /// Creates a fresh account on the shared test server, builds both pools for it, and opens all
    /// [`POOL_SIZE`] connections of each, so that no login happens inside a measurement.
    pub async fn start() -> Self {
        let server = PgServer::shared();
        let user = unique_name("bench");
        let password = random_password();
        server.create_account(&user, &password).await;

        // No proactive refresh: a background task reading the secret would only add noise to the comparison.
        let secret = Credentials::new(&user, &password)
            .with_host(server.host())
            .with_port(server.port())
            .with_dbname("postgres");
        let rotapool = PoolBuilder::new(PgBackend::new().ssl_mode(SslMode::Disable))
            .secret_source(Arc::new(InMemorySecretStore::new("bench/db", &secret)))
            .max_size(POOL_SIZE)
            .proactive_refresh(None)
            .build()
            .await
            .expect("the rotapool pool builds");

        let mut config = tokio_postgres::Config::new();
        config
            .host(server.host())
            .port(server.port())
            .user(&user)
            .password(&password)
            .dbname("postgres");
        // `Fast` only asks the client whether it is closed on reuse, as rotapool's Postgres health check does.
        let fast = || ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let mut template = tokio_postgres::Config::new();
        template.host(server.host()).port(server.port());
        let connect = RotatingConnect::build(
            RotatingConnect::builder(template, NoTls)
                .secret_source(Arc::new(InMemorySecretStore::new("bench/db", &secret)))
                .proactive_refresh(None),
        )
        .await
        .expect("the drop-in's login builds");
        let drop_in = DropIn {
            pool: connect
                .pool_builder(fast())
                .max_size(POOL_SIZE)
                .build()
                .expect("the drop-in pool builds"),
            connect,
        };
        let manager = deadpool_postgres::Manager::from_config(config, NoTls, fast());
        let deadpool_logins = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&deadpool_logins);
        let deadpool = deadpool_postgres::Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(Runtime::Tokio1)
            .post_create(Hook::sync_fn(move |_, _| {
                counter.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }))
            .build()
            .expect("the deadpool-postgres pool builds");

        // What each get() carries before it is polled: a login inline in it would make every call move it.
        eprintln!(
            "size of a get() future: rotapool {} bytes, deadpool-postgres {} bytes",
            std::mem::size_of_val(&rotapool.get()),
            std::mem::size_of_val(&deadpool.get())
        );
        open_all(&rotapool).await;
        open_all(&deadpool).await;
        open_all(&drop_in).await;
        Self {
            rotapool,
            deadpool,
            drop_in,
            deadpool_logins,
        }
    }

    /// Panics if either pool logged in again after [`Pools::start`]: then a measurement included a login.
    pub fn assert_no_logins_since_start(&self) {
        let expected = POOL_SIZE as u64;
        assert_eq!(self.rotapool.stats().logins, expected);
        assert_eq!(self.drop_in.connect.stats().logins, expected);
        assert_eq!(self.deadpool_logins.load(Ordering::Relaxed), expected);
    }
}

/// Opens every connection of `pool` by holding [`POOL_SIZE`] of them at once.
async fn open_all<P: BenchPool>(pool: &P) {
    let mut held = Vec::with_capacity(POOL_SIZE);
    for _ in 0..POOL_SIZE {
        held.push(pool.checkout().await);
    }
}
