//! A MariaDB (or MySQL) server that checks passwords: a private instance, or a container where Docker answers.

use std::{
    path::{Path, PathBuf},
    sync::OnceLock,
};

use mysql_async::{prelude::Queryable, Conn, OptsBuilder};
use rotapool_mysql::admin::Dialect;

use crate::{
    docker,
    supervisor::{free_port, scratch_dir, unprivileged_user, Supervised, MAKE_TLS_CERTS},
    Login, Running, TestServer,
};

/// A MariaDB server reachable on 127.0.0.1, with accounts created as `'user'@'%'`.
#[derive(Debug)]
pub struct MariaDbServer {
    host: String,
    port: u16,
    admin: Admin,
    ca_file: Option<PathBuf>,
    _process: Running,
}

/// How the test administers the server: root over the private socket, or an account with a password over TCP.
#[derive(Debug)]
enum Admin {
    Socket(PathBuf),
    Password { user: String, password: String },
}

/// Run by `sh` as the mysql user; `$MAKE_TLS_CERTS` is replaced by [`MAKE_TLS_CERTS`].
const START_SCRIPT: &str = r#"
set -e
dir=$1 port=$2
cd "$dir"
$MAKE_TLS_CERTS
# A temporary directory of its own: in the shared /tmp, servers starting at once (a test that starts a private one
# beside the shared one) remove each other's temporary tables, and mariadb-install-db fails.
mkdir tmp
mariadb-install-db --no-defaults --datadir="$dir/data" --tmpdir="$dir/tmp" --auth-root-authentication-method=normal \
    --skip-test-db >>server.log 2>&1
serve() {
    mariadbd --no-defaults --datadir="$dir/data" --tmpdir="$dir/tmp" --port="$port" --bind-address=127.0.0.1 \
        --socket="$dir/sock" --pid-file="$dir/pid" --log-error="$dir/server.log" --skip-name-resolve \
        --max-connections=500 --innodb-buffer-pool-size=32M --ssl-ca="$dir/ca.crt" --ssl-cert="$dir/server.crt" \
        --ssl-key="$dir/server.key" 2>>server.log &
    pid=$!
    tries=0
    until mariadb-admin --no-defaults --socket="$dir/sock" -uroot ping >/dev/null 2>&1; do
        kill -0 "$pid" 2>/dev/null || exit 1
        tries=$((tries + 1))
        [ "$tries" -lt 1200 ] || exit 1
        sleep 0.05
    done
}
serve
echo ready
while read -r command; do
    case "$command" in
    # SIGTERM is a normal shutdown, as `mariadb-admin shutdown` does; then start on the same data and port.
    restart) kill "$pid"; wait "$pid" || true; serve; echo ready ;;
    esac
done
kill "$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true
rm -rf "$dir"
"#;

impl MariaDbServer {
    /// The server for this test process, started on first use and proven to reject a wrong password.
    ///
    /// Panics, with a message saying how to get a server, if none can be started. It never skips.
    pub fn shared() -> &'static MariaDbServer {
        static SERVER: OnceLock<MariaDbServer> = OnceLock::new();
        SERVER.get_or_init(Self::private)
    }

    /// A server of its own, for a test that disturbs it (a restart, a global setting), started and proven like
    /// [`MariaDbServer::shared`]'s and stopped when the test process exits.
    pub fn private() -> MariaDbServer {
        crate::start_checked("the test MariaDB", Self::start_local, Self::start_container)
    }

    fn start_local() -> Self {
        for binary in ["mariadb-install-db", "mariadbd", "mariadb-admin"] {
            assert!(
                crate::on_path(binary),
                "`{binary}` is not on the PATH: the private MariaDB needs the server package \
                 (apt-get install mariadb-server), or run with a Docker engine and ROTAPOOL_TEST_SERVERS=docker"
            );
        }
        let user = unprivileged_user("mysql", "mariadb-server");
        let dir = scratch_dir("rotapool-mariadb", user);
        let port = free_port();
        let process = Supervised::start(
            "the private MariaDB",
            &START_SCRIPT.replace("$MAKE_TLS_CERTS", MAKE_TLS_CERTS),
            &[dir.to_str().expect("utf-8 path"), &port.to_string()],
            user,
            &dir.join("server.log"),
        );
        Self {
            host: "127.0.0.1".to_owned(),
            port,
            admin: Admin::Socket(dir.join("sock")),
            ca_file: Some(dir.join("ca.crt")),
            _process: Running::Local(process),
        }
    }

    fn start_container() -> Self {
        let password = crate::random_password();
        let tls = docker::TlsFiles::make("rotapool-mariadb-tls");
        let port = free_port();
        let container = docker::mariadb(port, &password, &tls);
        let server = Self {
            host: "127.0.0.1".to_owned(),
            port,
            admin: Admin::Password {
                user: "root".to_owned(),
                password,
            },
            ca_file: Some(tls.ca_file()),
            _process: Running::Docker(Box::new(container)),
        };
        if let Running::Docker(container) = &server._process {
            container.wait_until_serving("the test MariaDB", || server.admin_logs_in());
        }
        server
    }

    /// Whether the administrator logs in now (for waits on a starting server).
    fn admin_logs_in(&self) -> bool {
        crate::block_on(async {
            match self.admin_conn().await {
                Ok(conn) => conn.disconnect().await.is_ok(),
                Err(_) => false,
            }
        })
    }

    /// A server someone else runs, administered through `url` (`mysql://admin:password@host:port`), after
    /// proving that it rejects a wrong password.
    pub fn external(url: &str) -> Result<Self, String> {
        let opts = mysql_async::Opts::from_url(url)
            .map_err(|e| format!("the admin URL is not a MySQL connection URL: {e}"))?;
        let server = Self {
            host: opts.ip_or_hostname().to_owned(),
            port: opts.tcp_port(),
            admin: Admin::Password {
                user: opts.user().ok_or("the admin URL has no user")?.to_owned(),
                password: opts
                    .pass()
                    .ok_or("the admin URL has no password")?
                    .to_owned(),
            },
            ca_file: None,
            _process: Running::External,
        };
        crate::block_on(crate::prove_passwords_are_checked(
            &server,
            "the MySQL server at the admin URL",
        ))?;
        Ok(server)
    }

    /// Logs in over TCP as `user` with `password`, without TLS.
    pub async fn login(&self, user: &str, password: &str) -> Result<Conn, mysql_async::Error> {
        Conn::new(
            OptsBuilder::default()
                .ip_or_hostname(self.host.as_str())
                .tcp_port(self.port)
                .user(Some(user))
                .pass(Some(password))
                .prefer_socket(false),
        )
        .await
    }

    /// A root session.
    pub async fn admin(&self) -> Conn {
        self.admin_conn()
            .await
            .expect("the test server's root account logs in")
    }

    async fn admin_conn(&self) -> Result<Conn, mysql_async::Error> {
        let opts = match &self.admin {
            Admin::Socket(path) => OptsBuilder::default()
                .socket(Some(path.to_str().expect("utf-8 path")))
                .user(Some("root")),
            Admin::Password { user, password } => OptsBuilder::default()
                .ip_or_hostname(self.host.as_str())
                .tcp_port(self.port)
                .user(Some(user.as_str()))
                .pass(Some(password.as_str()))
                .prefer_socket(false),
        };
        Conn::new(opts).await
    }
}

#[async_trait::async_trait]
impl TestServer for MariaDbServer {
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
        let mut admin = self.admin().await;
        admin
            .query_drop(sql)
            .await
            .unwrap_or_else(|e| panic!("`{sql}` failed: {e}"));
        admin.disconnect().await.ok();
    }

    /// Creates `'user'@'%'` only: a `'user'@'localhost'` would shadow it for clients on 127.0.0.1.
    async fn create_account(&self, user: &str, password: &str) {
        self.execute(&CLEAR.create_user_statement(user, password))
            .await;
    }

    async fn create_admin_account(&self, user: &str, password: &str) {
        self.create_account(user, password).await;
        self.execute(&format!(
            "GRANT ALL PRIVILEGES ON *.* TO {} WITH GRANT OPTION",
            CLEAR.account(user)
        ))
        .await;
    }

    async fn set_password(&self, user: &str, password: &str) {
        self.execute(&CLEAR.alter_user_statement(user, password))
            .await;
    }

    async fn restart(&self) {
        self._process
            .restart("the test MariaDB", || self.admin_logs_in());
    }

    async fn kill_sessions(&self, user: &str) -> u64 {
        let mut admin = self.admin().await;
        let ids: Vec<u64> = admin
            .exec(
                "SELECT ID FROM information_schema.PROCESSLIST WHERE USER = ?",
                (user,),
            )
            .await
            .expect("read the process list");
        let mut killed = 0;
        for id in &ids {
            // A session that ended after it was listed cannot be killed ("Unknown thread id"); only kills that
            // worked count.
            if admin.query_drop(format!("KILL {id}")).await.is_ok() {
                killed += 1;
            }
        }
        admin.disconnect().await.ok();
        killed
    }

    async fn try_login(&self, user: &str, password: &str) -> Login {
        match self.login(user, password).await {
            Ok(conn) => {
                conn.disconnect().await.ok();
                Login::Accepted
            }
            // 1698 as well: for an account that does not exist, MariaDB plays the handshake of an existing one
            // picked by a hash of the name, and when that one logs in without a password (unix_socket) the refusal
            // comes as 1698. rotapool-mysql counts both as bad credentials too.
            Err(mysql_async::Error::Server(e)) if e.code == 1045 || e.code == 1698 => {
                Login::BadCredentials
            }
            Err(e) => Login::Failed(e.to_string()),
        }
    }
}

/// Account statements with the password in clear, as MySQL 8 takes them and MariaDB accepts too, quoted by
/// rotapool-mysql for the test servers' default `sql_mode` (backslashes escape).
const CLEAR: Dialect = Dialect::mysql(false);
