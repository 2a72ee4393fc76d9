//! Private, password-checking test servers for rotapool's integration tests.
//!
//! - [`PgServer`]: a private PostgreSQL cluster (`initdb --auth=scram-sha-256` on a free port), or a container.
//! - [`MariaDbServer`]: a private MariaDB (`mariadb-install-db` + `mariadbd` on a free port), or a MySQL container.
//! - [`MotoServer`]: the moto Secrets Manager emulator, or a container.
//!
//! `ROTAPOOL_TEST_SERVERS=local` or `=docker` forces a path; by default containers are used when `docker info`
//! succeeds. Servers start once per test process and stop when it exits. Nothing is ever skipped: without a
//! server, the first test that needs one panics with a message that says how to get one.
#![forbid(unsafe_code)]

mod docker;
mod mariadb;
mod moto;
mod postgres;
mod supervisor;

pub use mariadb::MariaDbServer;
pub use moto::{MotoServer, MOTO_ACCESS_KEY, MOTO_REGION};
pub use postgres::PgServer;

use std::sync::atomic::{AtomicU64, Ordering};

/// A started server, held only to keep it alive.
#[derive(Debug)]
#[allow(dead_code)] // the fields are never read: dropping them stops the server
enum Running {
    Local(supervisor::Supervised),
    Docker(Box<docker::Container>),
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

/// A name unique within this machine's test runs: `prefix_<pid>_<counter>`.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    format!(
        "{prefix}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
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
pub(crate) fn block_on<F: std::future::Future<Output = ()> + Send>(future: F) {
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
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
    });
}
