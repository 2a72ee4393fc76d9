//! Private, password-checking test servers for rotapool's integration tests.
//!
//! - [`PgServer`]: a private PostgreSQL cluster (`initdb --auth=scram-sha-256` on a free port), or a container.
//! - [`MariaDbServer`]: a private MariaDB (`mariadb-install-db` + `mariadbd` on a free port), or a container.
//! - [`MotoServer`]: the moto Secrets Manager emulator, or a container.
//! - [`AgentEmulator`]: the Secrets Manager Agent's HTTP contract over moto, in the test's own runtime.
//! - [`AtomicDir`]: a directory updated the way Kubernetes updates secret volumes (the `..data` symlink swap).
//!
//! `ROTAPOOL_TEST_SERVERS=local` or `=docker` forces a path; by default containers are used when `docker info`
//! succeeds. Containers (testcontainers) are reached on a free port of 127.0.0.1, through a port Docker maps or
//! on the host's network (`ROTAPOOL_TEST_NETWORK=mapped|host`; by default mapped ports where the engine has a
//! bridge network), and their images are the official ones or, with `ROTAPOOL_TEST_IMAGES=local`, one built from
//! Debian's packages by `docker/build-local-images` (see the `docker` module). Both paths give the same settings,
//! accounts and TLS.
//! Shared servers start once per test process; every server stops when the test process exits. Nothing is ever
//! skipped: without a server, the first test that needs one panics with a message that says how to get one.
#![forbid(unsafe_code)]

mod agent;
mod atomic_dir;
mod docker;
mod link;
mod mariadb;
mod moto;
mod postgres;
mod supervisor;

pub use agent::AgentEmulator;
pub use atomic_dir::{replace_file, temp_path, AtomicDir};
pub use link::{FaultyLink, LinkState};
pub use mariadb::MariaDbServer;
pub use moto::{moto_server_binary, source_at, MotoServer, MOTO_ACCESS_KEY, MOTO_REGION};
pub use postgres::PgServer;
pub use supervisor::free_port;

use std::sync::atomic::{AtomicU64, Ordering};

/// A started server, held only to keep it alive.
#[derive(Debug)]
#[allow(dead_code)] // the containers are never read: dropping them stops the server
enum Running {
    Local(supervisor::Supervised),
    Docker(Box<docker::Container>),
    /// A server someone else runs, reached through an admin URL.
    External,
}

/// How a login outside the pool went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Login {
    /// The server accepted it.
    Accepted,
    /// The server rejected the user name or password (PostgreSQL 28P01, MySQL 1045 or 1698).
    BadCredentials,
    /// Anything else, with the server's words.
    Failed(String),
}

/// What the tests do with a database server, whatever its engine.
#[async_trait::async_trait]
pub trait TestServer: Send + Sync + 'static {
    /// The host to connect to.
    fn host(&self) -> &str;
    /// The TCP port.
    fn port(&self) -> u16;
    /// The CA certificate that signed the server's TLS certificate (valid for `127.0.0.1` and `localhost`).
    /// Local servers and containers have TLS; a server someone else runs has `None`.
    fn ca_file(&self) -> Option<&std::path::Path>;
    /// Runs `sql` as the administrator; panics if it fails.
    async fn execute(&self, sql: &str);
    /// Creates a login account `user` with `password` that can reach the tests' database.
    async fn create_account(&self, user: &str, password: &str);
    /// Creates an account that may create users and grant privileges: the master of the alternating-users
    /// strategy.
    async fn create_admin_account(&self, user: &str, password: &str);
    /// Changes the password of `user`, as a rotation's setSecret does. Open sessions survive it.
    async fn set_password(&self, user: &str, password: &str);
    /// Restarts the server as an operator would, keeping its data and port, and returns once it serves again.
    /// Every session ends. A local PostgreSQL gets `pg_ctl restart -m fast` and a local MariaDB a normal shutdown
    /// and a start; a container is stopped as `docker stop` does (the server's fast shutdown) and started again.
    /// Needs a multi-threaded runtime.
    async fn restart(&self);
    /// Ends every session of `user`, forcing new logins; returns how many it ended: the kills that worked, not
    /// the sessions it listed (one can end by itself in between).
    async fn kill_sessions(&self, user: &str) -> u64;
    /// Logs in as `user` with `password` over TCP without TLS, and says how it went.
    async fn try_login(&self, user: &str, password: &str) -> Login;
}

/// Starts a server (a container or a local process, see [`ServerMode`]) and proves that it checks passwords
/// before anyone can use it.
pub(crate) fn start_checked<S: TestServer>(
    what: &str,
    start_local: fn() -> S,
    start_container: fn() -> S,
) -> S {
    let server = match ServerMode::from_env() {
        ServerMode::Docker => start_container(),
        ServerMode::Local => start_local(),
    };
    if let Err(message) = block_on(prove_passwords_are_checked(&server, what)) {
        panic!("{message}");
    }
    server
}

impl Running {
    /// Restarts the server in place, as an operator would: same data, same port; every session ends. A local
    /// server is serving again on return; for a container, `serves` is polled until it says so.
    fn restart(&self, what: &str, serves: impl FnMut() -> bool) {
        match self {
            Running::Local(process) => {
                tokio::task::block_in_place(|| process.command(what, "restart"));
            }
            Running::Docker(container) => tokio::task::block_in_place(|| {
                container.restart(what);
                container.wait_until_serving(what, serves);
            }),
            Running::External => {
                panic!("{what} is run by someone else: the tests cannot restart it")
            }
        }
    }

    /// What the server has logged so far: its log file, or its container's output.
    fn log(&self, what: &str) -> String {
        match self {
            Running::Local(process) => process.log(),
            Running::Docker(container) => container.logs(),
            Running::External => panic!("{what} is run by someone else: its log is not at hand"),
        }
    }
}

/// Fails unless `server` rejects a wrong password as bad credentials. A server that accepts any password
/// (trust auth) would let every rotation test pass with rotation broken, so this runs before any of them.
pub(crate) async fn prove_passwords_are_checked<S: TestServer>(
    server: &S,
    what: &str,
) -> Result<(), String> {
    let user = unique_name("proof");
    server.create_account(&user, &random_password()).await;
    match server.try_login(&user, "certainly-not-the-password").await {
        Login::BadCredentials => Ok(()),
        Login::Failed(e) => Err(format!("{what} failed a wrong-password login with an unexpected error: {e}")),
        Login::Accepted => Err(format!(
            "{what} accepted a wrong password (trust authentication?): rotations against it prove nothing"
        )),
    }
}

/// Where test servers come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerMode {
    /// Processes started from the machine's binaries.
    Local,
    /// Containers through testcontainers.
    Docker,
}

impl ServerMode {
    /// `ROTAPOOL_TEST_SERVERS` (`local` or `docker`), else Docker if an engine answers, else local.
    pub fn from_env() -> Self {
        match std::env::var("ROTAPOOL_TEST_SERVERS").as_deref() {
            Ok("local") => Self::Local,
            Ok("docker") => Self::Docker,
            Ok(other) => panic!("ROTAPOOL_TEST_SERVERS must be `local` or `docker`, not `{other}`"),
            Err(_) if docker::engine_answers() => Self::Docker,
            Err(_) => Self::Local,
        }
    }
}

/// Whether `binary` is an executable file in a directory of the PATH.
pub(crate) fn on_path(binary: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(binary).is_file()))
}

/// An error and each of its sources, joined by `: `: what a log line that walks the chain prints. rotapool's
/// errors print each message once, so a test that looks for a cause's words looks here, not in `to_string()`.
pub use rotapool_postgres::report as error_chain;

/// A name unique within this machine's test runs: `prefix_<pid>_<counter>`.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    format!(
        "{prefix}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A rotation's `ClientRequestToken`: 32 to 64 characters, as Secrets Manager requires (AWS sends a UUID).
pub fn rotation_token() -> String {
    format!("{}-{}", unique_name("token"), random_password())
}

/// A random 24-character alphanumeric password.
pub fn random_password() -> String {
    use std::hash::{BuildHasher, Hasher};
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut out = String::with_capacity(24);
    while out.len() < 24 {
        // RandomState is seeded from the OS per instance: good enough for throwaway test passwords.
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_usize(out.len());
        let mut bits = hasher.finish();
        for _ in 0..8 {
            out.push(ALPHABET[(bits % ALPHABET.len() as u64) as usize] as char);
            bits /= ALPHABET.len() as u64;
        }
    }
    out.truncate(24);
    out
}

/// Runs `future` to completion on a fresh runtime in its own thread, so it works inside or outside a runtime.
pub(crate) fn block_on<T: Send, F: std::future::Future<Output = T> + Send>(future: F) -> T {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a tokio runtime")
                    .block_on(future)
            })
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// Whether the server says this PostgreSQL session is encrypted (`pg_stat_ssl`).
pub async fn pg_session_is_encrypted(client: &tokio_postgres::Client) -> bool {
    client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .expect("pg_stat_ssl")
        .get(0)
}

/// Whether the server says this MySQL or MariaDB session is encrypted (a non-empty `Ssl_cipher`).
pub async fn mysql_session_is_encrypted(conn: &mut mysql_async::Conn) -> bool {
    use mysql_async::prelude::Queryable;
    let cipher: Option<(String, String)> = conn
        .query_first("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
        .await
        .expect("SHOW SESSION STATUS");
    cipher.is_some_and(|(_, value)| !value.is_empty())
}
