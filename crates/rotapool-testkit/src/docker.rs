//! The testcontainers path: each server runs in a container, and the tests reach it on a free port of 127.0.0.1.
//!
//! How that port leads into the container is `ROTAPOOL_TEST_NETWORK`:
//! - `mapped`, testcontainers' usual way: the container is on the engine's default bridge network, its server
//!   listens on its usual port (5432, 3306, 5000) on every address of the container, and Docker publishes that port
//!   on the free port of the host. This is what Docker Desktop (Mac, Windows, Linux) and a stock Docker on Linux
//!   offer. The testkit picks the host port rather than leaving it to Docker, so that a test that restarts a
//!   container finds its server on the same port, as after a database restart.
//! - `host`: the container shares the host's network, and its server listens on the free port of 127.0.0.1 itself.
//!   For engines started without a bridge network (`dockerd --bridge none`), such as the one `docker/engine` starts
//!   for this project's CI, whose machine forbids traffic to a bridge's private-range addresses. Docker Desktop
//!   has it only when host networking is turned on in its settings.
//! - unset: `mapped` when the engine has a network named `bridge` (`docker network inspect bridge`, asked once per
//!   test process), `host` otherwise.
//!
//! Where the images come from is `ROTAPOOL_TEST_IMAGES`:
//! - `official` (the default): `postgres:15`, `mariadb:10.11` and `motoserver/moto:5.1.22`, pulled by Docker;
//! - `local`: one image with all three servers, built from Debian's packages by `docker/build-local-images`, for
//!   machines whose Docker has no registry to pull from. Its tag is a hash of that script and of the image's
//!   entrypoint, `docker/local-entrypoint.sh`, so a changed recipe asks for a new image.
//!
//! Both sources get the same command, the same environment, the same accounts and the same TLS certificate,
//! signed by a throwaway CA that the test process keeps, as for the local servers. The servers are configured
//! through the official images' environment variables (`POSTGRES_*`, `MARIADB_*`), which the official entrypoints
//! read and the local image's entrypoint reads the same way: so CI, which has only the local image, runs the
//! settings the official path relies on. Every login needs a password, local ones included: see [`postgres`].

use std::{
    fmt,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::OnceLock,
    time::{Duration, Instant},
};

use testcontainers::{
    core::ContainerPort, runners::SyncRunner, ContainerRequest, GenericImage, ImageExt,
};

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

/// The recipe of the local image, the build script followed by the image's entrypoint; its hash is the image's tag
/// (the script computes the same).
const LOCAL_RECIPE: [&[u8]; 2] = [
    include_bytes!("../docker/build-local-images"),
    include_bytes!("../docker/local-entrypoint.sh"),
];

/// `rotapool-test-servers` and the first 16 hex digits of the SHA-256 of [`LOCAL_RECIPE`].
fn local_image() -> (String, String) {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(LOCAL_RECIPE.concat());
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

/// How the tests reach a container's server (`ROTAPOOL_TEST_NETWORK`, see the module's documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Network {
    /// The engine's default bridge, the server's port published on a port of the host.
    Mapped,
    /// The host's network, the server listening on a port of 127.0.0.1 itself.
    Host,
}

impl Network {
    /// `ROTAPOOL_TEST_NETWORK`, else what the engine offers; decided once per test process.
    fn from_env() -> Self {
        static NETWORK: OnceLock<Network> = OnceLock::new();
        *NETWORK.get_or_init(|| {
            let setting = std::env::var("ROTAPOOL_TEST_NETWORK").ok();
            Self::choose(setting.as_deref(), engine_has_bridge).unwrap_or_else(|e| panic!("{e}"))
        })
    }

    /// `setting` (`mapped` or `host`) when there is one; else `mapped` if `has_bridge` says that the engine has a
    /// bridge network, `host` if not.
    fn choose(setting: Option<&str>, has_bridge: impl FnOnce() -> bool) -> Result<Self, String> {
        match setting {
            Some("mapped") => Ok(Self::Mapped),
            Some("host") => Ok(Self::Host),
            Some(other) => Err(format!(
                "ROTAPOOL_TEST_NETWORK must be `mapped` or `host`, not `{other}`"
            )),
            None if has_bridge() => Ok(Self::Mapped),
            None => Ok(Self::Host),
        }
    }
}

/// Where a container's server listens, for the tests to reach it on 127.0.0.1:`port`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Reach {
    network: Network,
    /// The port of 127.0.0.1 the tests connect to.
    port: u16,
    /// The address the server binds in the container.
    server_address: &'static str,
    /// The server's port in the container.
    server_port: u16,
}

impl Reach {
    /// For a server whose usual port is `usual_port`, reached on 127.0.0.1:`port` through `network`.
    fn new(network: Network, port: u16, usual_port: u16) -> Self {
        let (server_address, server_port) = match network {
            // Published ports arrive through the container's bridge address, not its loopback.
            Network::Mapped => ("0.0.0.0", usual_port),
            Network::Host => ("127.0.0.1", port),
        };
        Self {
            network,
            port,
            server_address,
            server_port,
        }
    }

    /// Puts the container on the host's network, or publishes the server's port on [`Reach::port`].
    fn apply(self, request: ContainerRequest<GenericImage>) -> ContainerRequest<GenericImage> {
        match self.network {
            Network::Mapped => {
                request.with_mapped_port(self.port, ContainerPort::Tcp(self.server_port))
            }
            Network::Host => request.with_network("host"),
        }
    }
}

/// What `docker ARGS...` prints, if it succeeds.
fn docker_says(args: &[&str]) -> Option<String> {
    let out = Command::new("docker")
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Whether `docker info` succeeds, i.e. an engine answers.
pub(crate) fn engine_answers() -> bool {
    docker_says(&["info"]).is_some()
}

/// Whether the engine has the default bridge network that published ports go through (an engine started with
/// `--bridge none` has none).
fn engine_has_bridge() -> bool {
    docker_says(&["network", "inspect", "--format", "{{.Driver}}", "bridge"])
        .is_some_and(|driver| driver == "bridge")
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
    reach: Reach,
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
        let mut request = self.reach.apply(
            image
                .with_label("org.rotapool.testkit", "1")
                .with_cmd(self.args)
                .with_startup_timeout(Duration::from_secs(300)),
        );
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

/// The arguments `initdb` gets in both images: scram-sha-256 for logins over the socket and from 127.0.0.1 and ::1.
/// Without an `--auth` option initdb trusts those logins (the official image leaves it so), and on the host's
/// network every login of the tests comes from 127.0.0.1: any password would do. `--no-sync`, as `fsync=off`
/// for the server: a test cluster need not survive a power cut.
const PG_INITDB_ARGS: &str = "--auth-host=scram-sha-256 --auth-local=scram-sha-256 --no-sync";

/// The method of the `host all all all` line both entrypoints add to pg_hba.conf, after initdb's lines: logins from
/// any other address, such as mapped ports' logins, which arrive from the bridge's gateway.
const PG_HOST_AUTH_METHOD: &str = "scram-sha-256";

/// PostgreSQL with scram-sha-256 for every login ([`PG_INITDB_ARGS`], [`PG_HOST_AUTH_METHOD`]), TLS on,
/// `admin_user` a superuser, reached on 127.0.0.1:`port`.
///
/// Each image's `docker-entrypoint.sh` initialises the cluster from the environment. `docker stop` sends the
/// official image's STOPSIGNAL, SIGINT (a fast shutdown); the local image's entrypoint turns the default SIGTERM
/// (a "smart" shutdown, which waits for every client) into SIGINT.
pub(crate) fn postgres(
    port: u16,
    admin_user: &str,
    admin_password: &str,
    tls: &TlsFiles,
) -> Container {
    let reach = Reach::new(Network::from_env(), port, 5432);
    let settings = [
        format!("listen_addresses={}", reach.server_address),
        "fsync=off".to_owned(),
        "max_connections=300".to_owned(),
        "ssl=on".to_owned(),
        format!("ssl_cert_file={TLS_DIR}/server.crt"),
        format!("ssl_key_file={TLS_DIR}/server.key"),
    ];
    Launch {
        what: "PostgreSQL",
        images: Images::from_env(),
        reach,
        official: ("postgres", "15"),
        entrypoint: "sh",
        args: script_args(
            "postgres",
            r#"exec docker-entrypoint.sh postgres "$@""#,
            settings.into_iter().flat_map(|s| ["-c".to_owned(), s]),
        ),
        env: owned_pairs(&[
            // The port through the environment: the official entrypoint's init server reads it too.
            ("PGPORT", &reach.server_port.to_string()),
            ("POSTGRES_USER", admin_user),
            ("POSTGRES_PASSWORD", admin_password),
            ("POSTGRES_INITDB_ARGS", PG_INITDB_ARGS),
            ("POSTGRES_HOST_AUTH_METHOD", PG_HOST_AUTH_METHOD),
        ]),
        tls: Some(tls),
    }
    .start()
}

/// MariaDB with root logging in with `root_password` from anywhere (`root@'%'`, and `root@localhost`), TLS on,
/// reached on 127.0.0.1:`port`. Each image's `docker-entrypoint.sh` makes the accounts from the environment.
pub(crate) fn mariadb(port: u16, root_password: &str, tls: &TlsFiles) -> Container {
    let reach = Reach::new(Network::from_env(), port, 3306);
    let options = [
        format!("--port={}", reach.server_port),
        format!("--bind-address={}", reach.server_address),
        "--skip-name-resolve".to_owned(),
        "--max-connections=500".to_owned(),
        "--innodb-buffer-pool-size=32M".to_owned(),
        format!("--ssl-ca={TLS_DIR}/ca.crt"),
        format!("--ssl-cert={TLS_DIR}/server.crt"),
        format!("--ssl-key={TLS_DIR}/server.key"),
    ];
    Launch {
        what: "MariaDB",
        images: Images::from_env(),
        reach,
        official: ("mariadb", "10.11"),
        entrypoint: "sh",
        args: script_args(
            "mysql",
            r#"exec docker-entrypoint.sh mariadbd "$@""#,
            options,
        ),
        env: owned_pairs(&[
            ("MARIADB_ROOT_PASSWORD", root_password),
            ("MARIADB_ROOT_HOST", "%"),
        ]),
        tls: Some(tls),
    }
    .start()
}

/// moto's server, reached on 127.0.0.1:`port`, with `env` (moto reads its settings from the environment). moto
/// checks no passwords: both images just run `moto_server`.
pub(crate) fn moto(port: u16, env: &[(&str, &str)]) -> Container {
    let reach = Reach::new(Network::from_env(), port, 5000);
    Launch {
        what: "moto",
        images: Images::from_env(),
        reach,
        official: ("motoserver/moto", "5.1.22"),
        entrypoint: "moto_server",
        args: vec![
            "-H".to_owned(),
            reach.server_address.to_owned(),
            "-p".to_owned(),
            reach.server_port.to_string(),
        ],
        env: owned_pairs(env),
        tls: None,
    }
    .start()
}

/// `pairs` as owned strings, as testcontainers takes a container's environment.
fn owned_pairs(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn engine_not_asked() -> bool {
        panic!("a set ROTAPOOL_TEST_NETWORK is taken as it is, without asking the engine")
    }

    #[test]
    fn a_set_network_is_taken_without_asking_the_engine() {
        assert_eq!(
            Network::choose(Some("mapped"), engine_not_asked),
            Ok(Network::Mapped)
        );
        assert_eq!(
            Network::choose(Some("host"), engine_not_asked),
            Ok(Network::Host)
        );
    }

    #[test]
    fn unset_an_engine_with_a_bridge_gets_mapped_ports() {
        assert_eq!(Network::choose(None, || true), Ok(Network::Mapped));
    }

    #[test]
    fn unset_an_engine_without_a_bridge_gets_the_host_network() {
        assert_eq!(Network::choose(None, || false), Ok(Network::Host));
    }

    #[test]
    fn an_unknown_network_is_refused_naming_the_variable_and_its_choices() {
        let error = Network::choose(Some("bridge"), engine_not_asked).unwrap_err();
        assert_eq!(
            error,
            "ROTAPOOL_TEST_NETWORK must be `mapped` or `host`, not `bridge`"
        );
    }

    #[test]
    fn mapped_servers_listen_on_their_usual_port_host_ones_on_the_tests_port_of_loopback() {
        for (network, listens) in [
            (Network::Mapped, ("0.0.0.0", 5432)),
            (Network::Host, ("127.0.0.1", 40123)),
        ] {
            let reach = Reach::new(network, 40123, 5432);
            assert_eq!(reach.port, 40123, "the tests' port is kept ({network:?})");
            assert_eq!(
                (reach.server_address, reach.server_port),
                listens,
                "{network:?}"
            );
        }
    }

    #[test]
    fn the_local_image_tag_is_the_one_the_build_script_computes() {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/docker/build-local-images");
        let out = Command::new(script)
            .arg("--name")
            .output()
            .expect("the build script runs");
        assert!(out.status.success(), "{script} --name: {out:?}");
        let (name, tag) = local_image();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            format!("{name}:{tag}")
        );
    }
}
