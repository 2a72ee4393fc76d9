//! The testcontainers path: each server is a container on the host's network, listening on a free port of
//! 127.0.0.1, so that all traffic stays on loopback (some machines, this project's CI among them, forbid traffic to
//! a Docker bridge's private-range addresses).
//!
//! Where the images come from is `ROTAPOOL_TEST_IMAGES`:
//! - `official` (the default): `postgres:15`, `mariadb:10.11` and `motoserver/moto:5.1.22`, pulled by Docker;
//! - `local`: one image with all three servers, built from Debian's packages by `docker/build-local-images`, for
//!   machines whose Docker has no registry to pull from. Its tag is a hash of that script, so a changed recipe
//!   asks for a new image.
//!
//! Both sources get the same server settings, the same accounts and the same TLS certificate, signed by a
//! throwaway CA that the test process keeps, as for the local servers.

use std::{
    fmt,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use testcontainers::{runners::SyncRunner, ContainerRequest, GenericImage, ImageExt};

use crate::supervisor::{scratch_dir, Supervised};

/// Where the containers' images come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Images {
    /// The projects' own images, pulled from Docker Hub.
    Official,
    /// The image `docker/build-local-images` builds from Debian's packages.
    Local,
}

impl Images {
    /// `ROTAPOOL_TEST_IMAGES`: `official` (the default) or `local`.
    fn from_env() -> Self {
        match std::env::var("ROTAPOOL_TEST_IMAGES").as_deref() {
            Err(_) | Ok("official") => Self::Official,
            Ok("local") => Self::Local,
            Ok(other) => {
                panic!("ROTAPOOL_TEST_IMAGES must be `official` or `local`, not `{other}`")
            }
        }
    }
}

/// The recipe of the local image; its hash is the image's tag (the script computes the same).
const LOCAL_RECIPE: &[u8] = include_bytes!("../docker/build-local-images");

/// `rotapool-test-servers` and the first 16 hex digits of the SHA-256 of [`LOCAL_RECIPE`].
fn local_image() -> (String, String) {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(LOCAL_RECIPE);
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    ("rotapool-test-servers".to_owned(), hex[..16].to_owned())
}

/// A started container. Removed when the test process exits (a reaper process does it: servers kept in statics
/// are never dropped), or when dropped.
pub(crate) struct Container {
    /// `None` once dropped.
    inner: Option<testcontainers::Container<GenericImage>>,
    _reaper: Supervised,
}

impl fmt::Debug for Container {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Container")
            .field("id", &self.inner().id())
            .finish()
    }
}

impl Drop for Container {
    /// Removes the container on a thread of its own: testcontainers' own drop runs a runtime, which would panic
    /// inside a test's runtime.
    fn drop(&mut self) {
        if let Some(inner) = self.inner.take() {
            let _ = std::thread::spawn(move || drop(inner)).join();
        }
    }
}

/// Whether `docker info` succeeds, i.e. an engine answers.
pub(crate) fn engine_answers() -> bool {
    std::process::Command::new("docker")
        .arg("info")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The throwaway CA and the server's certificate and key, made on the host in a scratch directory: the tests
/// keep `ca.crt`, the container gets copies of all three under [`TLS_IN`].
#[derive(Debug)]
pub(crate) struct TlsFiles {
    dir: PathBuf,
}

/// Where the certificate files are copied into a container (world-readable, owned by root).
const TLS_IN: &str = "/rotapool-tls-in";
/// Where the start script puts them for the server: owned by the server's user, the key readable by it alone.
const TLS_DIR: &str = "/run/rotapool-tls";

impl TlsFiles {
    /// Makes a CA and a certificate for 127.0.0.1 and localhost in a new scratch directory.
    pub(crate) fn make(prefix: &str) -> Self {
        let dir = scratch_dir(prefix, None);
        let status = std::process::Command::new("sh")
            .arg("-c")
            .arg(crate::supervisor::MAKE_TLS_CERTS)
            .current_dir(&dir)
            .status();
        assert!(
            status.as_ref().is_ok_and(|s| s.success()),
            "openssl could not make the test certificates in {} ({status:?}); see its server.log",
            dir.display()
        );
        Self { dir }
    }

    /// The CA certificate, for the tests' clients.
    pub(crate) fn ca_file(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }

    fn copy_into(&self, request: ContainerRequest<GenericImage>) -> ContainerRequest<GenericImage> {
        ["ca.crt", "server.crt", "server.key"]
            .into_iter()
            .fold(request, |request, file| {
                let data = std::fs::read(self.dir.join(file))
                    .unwrap_or_else(|e| panic!("{}: {e}", self.dir.join(file).display()));
                request.with_copy_to(format!("{TLS_IN}/{file}"), data)
            })
    }
}

/// How to start a server in a container: `sh -c SCRIPT sh ARGS...` with `ENV`, or `PROGRAM ARGS...` when there
/// is no script.
struct Launch<'a> {
    what: &'a str,
    images: Images,
    official: (&'a str, &'a str),
    entrypoint: &'a str,
    args: Vec<String>,
    env: Vec<(String, String)>,
    tls: Option<&'a TlsFiles>,
}

impl Launch<'_> {
    fn start(self) -> Container {
        let images = self.images;
        let (name, tag) = match images {
            Images::Official => (self.official.0.to_owned(), self.official.1.to_owned()),
            Images::Local => local_image(),
        };
        let image = GenericImage::new(name.clone(), tag.clone()).with_entrypoint(self.entrypoint);
        let mut request = image
            .with_network("host")
            .with_label("org.rotapool.testkit", "1")
            .with_cmd(self.args)
            .with_startup_timeout(Duration::from_secs(300));
        for (key, value) in self.env {
            request = request.with_env_var(key, value);
        }
        if let Some(tls) = self.tls {
            request = tls.copy_into(request);
        }
        let what = self.what;
        // The sync runner drives a runtime of its own, which must not run inside a test's runtime: use a thread.
        let inner = std::thread::scope(|scope| {
            scope
                .spawn(|| request.start())
                .join()
                .expect("the container thread does not panic")
        })
        .unwrap_or_else(|e| {
            let hint = match images {
                Images::Official => {
                    "where Docker cannot pull (no registry), build the local image with \
                     crates/rotapool-testkit/docker/build-local-images and set ROTAPOOL_TEST_IMAGES=local"
                }
                Images::Local => {
                    "build it with crates/rotapool-testkit/docker/build-local-images (its tag is the hash of that \
                     script, so an edited recipe needs a new build)"
                }
            };
            panic!("could not start {what} from the image {name}:{tag} with Docker: {e}; {hint}")
        });
        let reaper_dir = self.tls.map(|t| t.dir.clone()).unwrap_or_default();
        let reaper = Supervised::start(
            "a container reaper",
            REAPER_SCRIPT,
            &[inner.id(), reaper_dir.to_str().expect("utf-8 path")],
            None,
            Path::new("/dev/null"),
        );
        Container {
            inner: Some(inner),
            _reaper: reaper,
        }
    }
}

/// Removes the container (and the host's copy of its certificates) when the test process is gone. It ignores the
/// signals that stop a whole process group (a timeout, Ctrl-C), so that it outlives the test process it watches.
const REAPER_SCRIPT: &str = r#"
trap '' HUP INT TERM
echo ready
read _ || true
docker rm -f -v "$1" >/dev/null 2>&1
[ -z "$2" ] || rm -rf "$2"
"#;

impl Container {
    fn inner(&self) -> &testcontainers::Container<GenericImage> {
        self.inner
            .as_ref()
            .expect("a container is removed only when dropped")
    }

    /// Runs `command` on a thread of its own (see [`Launch::start`]).
    fn on_thread<T: Send>(&self, command: impl FnOnce(&Self) -> T + Send) -> T {
        std::thread::scope(|scope| {
            scope
                .spawn(|| command(self))
                .join()
                .expect("the container thread does not panic")
        })
    }

    /// What the server printed so far, stdout then stderr.
    pub(crate) fn logs(&self) -> String {
        self.on_thread(|c| {
            let mut out = c.inner().stdout_to_vec().unwrap_or_default();
            out.extend(c.inner().stderr_to_vec().unwrap_or_default());
            String::from_utf8_lossy(&out).into_owned()
        })
    }

    /// Stops the container as Docker does (the image's stop signal, then SIGKILL after 10 s), and starts it again:
    /// same data, same port. Returns once the container runs; the caller waits until its server serves.
    pub(crate) fn restart(&self, what: &str) {
        self.on_thread(|c| {
            c.inner()
                .stop()
                .and_then(|()| c.inner().start())
                .unwrap_or_else(|e| panic!("could not restart the container of {what}: {e}"))
        });
    }

    /// Waits, up to two minutes, until `serves` says the server serves; panics with the container's output if it
    /// stops or the time is up.
    pub(crate) fn wait_until_serving(&self, what: &str, mut serves: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(120);
        while !serves() {
            let running = self.on_thread(|c| c.inner().is_running()).unwrap_or(false);
            if !running || Instant::now() > deadline {
                panic!(
                    "{what} did not come to serve in its container ({}); its output:\n{}",
                    if running {
                        "no answer within 120 s"
                    } else {
                        "it stopped"
                    },
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// PostgreSQL with scram-sha-256 for every TCP login, TLS on, `admin_user` a superuser.
///
/// The official image initialises the cluster with its own entrypoint; on the local image the same is done here.
/// `docker stop` sends SIGTERM, which PostgreSQL takes as a "smart" shutdown that waits for every client: the
/// local script turns it into SIGINT, the fast shutdown the official image asks for with its STOPSIGNAL.
pub(crate) fn postgres(
    port: u16,
    admin_user: &str,
    admin_password: &str,
    tls: &TlsFiles,
) -> Container {
    let images = Images::from_env();
    let serve = match images {
        Images::Official => r#"exec docker-entrypoint.sh postgres "$@""#,
        Images::Local => {
            r#"
data=/var/lib/postgresql/data
if [ ! -s "$data/PG_VERSION" ]; then
    install -d -o postgres -g postgres -m 700 "$data"
    printf '%s' "$POSTGRES_PASSWORD" >/run/rotapool-pw && chown postgres /run/rotapool-pw
    setpriv --reuid=postgres --regid=postgres --init-groups initdb -D "$data" -U "$POSTGRES_USER" \
        --pwfile=/run/rotapool-pw --auth=scram-sha-256 -E UTF8 --locale=C -N >&2
    rm /run/rotapool-pw
fi
install -d -o postgres -g postgres /run/postgresql
setpriv --reuid=postgres --regid=postgres --init-groups postgres -D "$data" "$@" &
pid=$!
trap 'kill -INT $pid' TERM
wait $pid || wait $pid
"#
        }
    };
    let settings = [
        "listen_addresses=127.0.0.1".to_owned(),
        "fsync=off".to_owned(),
        "max_connections=300".to_owned(),
        "ssl=on".to_owned(),
        format!("ssl_cert_file={TLS_DIR}/server.crt"),
        format!("ssl_key_file={TLS_DIR}/server.key"),
    ];
    Launch {
        what: "PostgreSQL",
        images,
        official: ("postgres", "15"),
        entrypoint: "sh",
        args: script_args(
            "postgres",
            serve,
            settings.into_iter().flat_map(|s| ["-c".to_owned(), s]),
        ),
        env: vec![
            // The port through the environment: the official entrypoint's init server reads it too.
            ("PGPORT".to_owned(), port.to_string()),
            ("POSTGRES_USER".to_owned(), admin_user.to_owned()),
            ("POSTGRES_PASSWORD".to_owned(), admin_password.to_owned()),
        ],
        tls: Some(tls),
    }
    .start()
}

/// MariaDB with `root@'%'` logging in with `root_password`, TLS on.
pub(crate) fn mariadb(port: u16, root_password: &str, tls: &TlsFiles) -> Container {
    let images = Images::from_env();
    let serve = match images {
        Images::Official => r#"exec docker-entrypoint.sh mariadbd "$@""#,
        Images::Local => {
            r#"
[ -d /var/lib/mysql/mysql ] || mariadb-install-db --user=mysql --datadir=/var/lib/mysql --skip-test-db >&2
install -d -o mysql -g mysql /run/mysqld
printf "CREATE USER IF NOT EXISTS 'root'@'%%' IDENTIFIED BY '%s';
GRANT ALL PRIVILEGES ON *.* TO 'root'@'%%' WITH GRANT OPTION;\n" "$MARIADB_ROOT_PASSWORD" >/run/rotapool-init.sql
chown mysql /run/rotapool-init.sql
exec mariadbd --user=mysql --datadir=/var/lib/mysql --init-file=/run/rotapool-init.sql "$@"
"#
        }
    };
    let options = [
        format!("--port={port}"),
        "--bind-address=127.0.0.1".to_owned(),
        "--skip-name-resolve".to_owned(),
        "--max-connections=500".to_owned(),
        "--innodb-buffer-pool-size=32M".to_owned(),
        format!("--ssl-ca={TLS_DIR}/ca.crt"),
        format!("--ssl-cert={TLS_DIR}/server.crt"),
        format!("--ssl-key={TLS_DIR}/server.key"),
    ];
    Launch {
        what: "MariaDB",
        images,
        official: ("mariadb", "10.11"),
        entrypoint: "sh",
        args: script_args("mysql", serve, options),
        env: vec![("MARIADB_ROOT_PASSWORD".to_owned(), root_password.to_owned())],
        tls: Some(tls),
    }
    .start()
}

/// moto's server on 127.0.0.1:`port`, with `env` (moto reads its settings from the environment).
pub(crate) fn moto(port: u16, env: &[(&str, &str)]) -> Container {
    Launch {
        what: "moto",
        images: Images::from_env(),
        official: ("motoserver/moto", "5.1.22"),
        entrypoint: "moto_server",
        args: vec![
            "-H".to_owned(),
            "127.0.0.1".to_owned(),
            "-p".to_owned(),
            port.to_string(),
        ],
        env: env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        tls: None,
    }
    .start()
}

/// `-c <install the certificates for owner, then serve> sh <server arguments>`: the arguments of `sh`.
fn script_args(
    owner: &str,
    serve: &str,
    server_args: impl IntoIterator<Item = String>,
) -> Vec<String> {
    // Hand the certificate files to the server's user; the key readable by it alone.
    let script = format!(
        "set -e
install -d -m 755 {TLS_DIR}
install -o {owner} -g {owner} -m 644 {TLS_IN}/ca.crt {TLS_IN}/server.crt {TLS_DIR}/
install -o {owner} -g {owner} -m 600 {TLS_IN}/server.key {TLS_DIR}/
{serve}"
    );
    ["-c".to_owned(), script, "sh".to_owned()]
        .into_iter()
        .chain(server_args)
        .collect()
}
