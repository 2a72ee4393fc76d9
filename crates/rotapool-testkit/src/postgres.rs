//! A PostgreSQL server that checks passwords: a private cluster, or a container where Docker answers.

use std::{
    path::{Path, PathBuf},
    sync::OnceLock,
};

use rotapool_postgres::admin::{quote_identifier, quote_literal};
use tokio_postgres::{error::SqlState, Client, NoTls};

use crate::{
    docker,
    supervisor::{free_port, scratch_dir, unprivileged_user, Supervised, MAKE_TLS_CERTS},
    Login, Running, TestServer,
};

const ADMIN_USER: &str = "rotapool_admin";

/// A PostgreSQL server that checks passwords: private (scram-sha-256 on 127.0.0.1), a container, or external.
#[derive(Debug)]
pub struct PgServer {
    host: String,
    port: u16,
    ca_file: Option<PathBuf>,
    admin_user: String,
    admin_password: String,
    admin_db: String,
    _process: Running,
}

/// Run by `sh` as the postgres user; `$MAKE_TLS_CERTS` is replaced by [`MAKE_TLS_CERTS`].
const START_SCRIPT: &str = r#"
set -e
bindir=$1 dir=$2 port=$3 user=$4
"$bindir/initdb" -D "$dir/data" -U "$user" --pwfile="$dir/pw" --auth=scram-sha-256 -N -E UTF8 --locale=C \
    >"$dir/server.log" 2>&1
cd "$dir"
$MAKE_TLS_CERTS
"$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300 \
        -c ssl=on -c ssl_cert_file=$dir/server.crt -c ssl_key_file=$dir/server.key" start >/dev/null
echo ready
while read -r command; do
    case "$command" in
    restart) "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 -m fast restart >/dev/null && echo ready ;;
    esac
done
"$bindir/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
rm -rf "$dir"
"#;

impl PgServer {
    /// The server for this test process, started on first use and proven to reject a wrong password.
    ///
    /// Panics, with a message saying how to get a server, if none can be started. It never skips.
    pub fn shared() -> &'static PgServer {
        static SERVER: OnceLock<PgServer> = OnceLock::new();
        SERVER.get_or_init(Self::private)
    }

    /// A server of its own, for a test that disturbs it (a restart, a global setting), started and proven like
    /// [`PgServer::shared`]'s and stopped when the test process exits.
    pub fn private() -> PgServer {
        crate::start_checked(
            "the test PostgreSQL",
            Self::start_local,
            Self::start_container,
        )
    }

    fn start_local() -> Self {
        let bindir = pg_bindir();
        let user = unprivileged_user("postgres", "postgresql");
        let dir = scratch_dir("rotapool-pg", user);
        let admin_password = crate::random_password();
        std::fs::write(dir.join("pw"), &admin_password).expect("the scratch dir is writable");
        if let Some((uid, gid)) = user {
            std::os::unix::fs::chown(dir.join("pw"), Some(uid), Some(gid)).expect("root can chown");
        }
        let port = free_port();
        let process = Supervised::start(
            "the private PostgreSQL",
            &START_SCRIPT.replace("$MAKE_TLS_CERTS", MAKE_TLS_CERTS),
            &[
                bindir.to_str().expect("utf-8 path"),
                dir.to_str().expect("utf-8 path"),
                &port.to_string(),
                ADMIN_USER,
            ],
            user,
            &dir.join("server.log"),
        );
        Self::local_admin(
            port,
            Some(dir.join("ca.crt")),
            admin_password,
            Running::Local(process),
        )
    }

    fn start_container() -> Self {
        let admin_password = crate::random_password();
        let tls = docker::TlsFiles::make("rotapool-pg-tls");
        let port = free_port();
        let container = docker::postgres(port, ADMIN_USER, &admin_password, &tls);
        let server = Self::local_admin(
            port,
            Some(tls.ca_file()),
            admin_password,
            Running::Docker(Box::new(container)),
        );
        if let Running::Docker(container) = &server._process {
            container.wait_until_serving("the test PostgreSQL", || server.admin_logs_in());
        }
        server
    }

    /// Whether the admin account logs in now (for waits on a starting server).
    fn admin_logs_in(&self) -> bool {
        crate::block_on(self.login(&self.admin_user, &self.admin_password)).is_ok()
    }

    /// What the server has logged so far: its log file (local), or its container's output.
    pub fn server_log(&self) -> String {
        self._process.log("the test PostgreSQL")
    }

    fn local_admin(
        port: u16,
        ca_file: Option<PathBuf>,
        admin_password: String,
        process: Running,
    ) -> Self {
        Self {
            host: "127.0.0.1".to_owned(),
            port,
            ca_file,
            admin_user: ADMIN_USER.to_owned(),
            admin_password,
            admin_db: "postgres".to_owned(),
            _process: process,
        }
    }

    /// A server someone else runs, administered through `url` (`postgres://admin:password@host:port/db`), after
    /// proving that it rejects a wrong password: a trust-auth server would make every result meaningless.
    pub fn external(url: &str) -> Result<Self, String> {
        let config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| format!("the admin URL is not a PostgreSQL connection string: {e}"))?;
        let host = match config.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
            _ => return Err("the admin URL must name a TCP host".to_owned()),
        };
        let server = Self {
            host,
            port: config.get_ports().first().copied().unwrap_or(5432),
            ca_file: None,
            admin_user: config
                .get_user()
                .ok_or("the admin URL has no user")?
                .to_owned(),
            admin_password: String::from_utf8_lossy(
                config
                    .get_password()
                    .ok_or("the admin URL has no password")?,
            )
            .into_owned(),
            admin_db: config.get_dbname().unwrap_or("postgres").to_owned(),
            _process: Running::External,
        };
        crate::block_on(crate::prove_passwords_are_checked(
            &server,
            "the PostgreSQL at the admin URL",
        ))?;
        Ok(server)
    }

    /// Logs in as `user` with `password` to the admin's database.
    pub async fn login(&self, user: &str, password: &str) -> Result<Client, tokio_postgres::Error> {
        let (client, connection) = tokio_postgres::Config::new()
            .host(&self.host)
            .port(self.port)
            .user(user)
            .password(password)
            .dbname(&self.admin_db)
            .connect(NoTls)
            .await?;
        tokio::spawn(connection);
        Ok(client)
    }

    /// A superuser session.
    pub async fn admin(&self) -> Client {
        self.login(&self.admin_user, &self.admin_password)
            .await
            .expect("the admin account of the test server logs in")
    }
}

#[async_trait::async_trait]
impl TestServer for PgServer {
    fn host(&self) -> &str {
        &self.host
    }

    fn port(&self) -> u16 {
        self.port
    }

    fn ca_file(&self) -> Option<&Path> {
        self.ca_file.as_deref()
    }

    async fn execute(&self, sql: &str) {
        self.admin()
            .await
            .batch_execute(sql)
            .await
            .unwrap_or_else(|e| panic!("`{sql}` failed: {e:?}"));
    }

    async fn create_account(&self, user: &str, password: &str) {
        self.execute(&format!(
            "CREATE ROLE {} LOGIN PASSWORD {}",
            quote_identifier(user),
            quote_literal(password)
        ))
        .await;
    }

    async fn create_admin_account(&self, user: &str, password: &str) {
        self.execute(&format!(
            "CREATE ROLE {} LOGIN SUPERUSER PASSWORD {}",
            quote_identifier(user),
            quote_literal(password)
        ))
        .await;
    }

    async fn set_password(&self, user: &str, password: &str) {
        self.execute(&format!(
            "ALTER ROLE {} PASSWORD {}",
            quote_identifier(user),
            quote_literal(password)
        ))
        .await;
    }

    async fn kill_sessions(&self, user: &str) -> u64 {
        // pg_terminate_backend says false (with a warning) for a session that ended after it was listed.
        let terminated: i64 = self
            .admin()
            .await
            .query_one(
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) \
                 FROM pg_stat_activity WHERE usename = $1",
                &[&user],
            )
            .await
            .expect("pg_terminate_backend")
            .get(0);
        terminated as u64
    }

    async fn restart(&self) {
        self._process
            .restart("the test PostgreSQL", || self.admin_logs_in());
    }

    async fn try_login(&self, user: &str, password: &str) -> Login {
        match self.login(user, password).await {
            Ok(_) => Login::Accepted,
            Err(e) if e.code() == Some(&SqlState::INVALID_PASSWORD) => Login::BadCredentials,
            Err(e) => Login::Failed(format!("{e:?}")),
        }
    }
}

/// The directory with initdb and pg_ctl: `ROTAPOOL_PG_BINDIR`, else the newest /usr/lib/postgresql/*/bin,
/// else the directory of `initdb` on the PATH.
fn pg_bindir() -> PathBuf {
    if let Some(dir) = std::env::var_os("ROTAPOOL_PG_BINDIR") {
        return dir.into();
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, bin)| bin.join("initdb").exists())
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return bin;
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .find(|dir| dir.join("initdb").exists() && dir.join("pg_ctl").exists());
    on_path.unwrap_or_else(|| {
        panic!(
            "no PostgreSQL server binaries found for the private test cluster. Install them \
             (apt-get install postgresql), set ROTAPOOL_PG_BINDIR to the directory holding initdb, or run with \
             a Docker engine and ROTAPOOL_TEST_SERVERS=docker"
        )
    })
}
