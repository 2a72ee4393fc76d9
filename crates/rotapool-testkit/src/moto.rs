//! The moto Secrets Manager emulator, reached through the real AWS SDK.

use std::{
    io::{Read, Write},
    net::TcpStream,
    path::{Path, PathBuf},
    process::Command,
    sync::OnceLock,
    time::{Duration, Instant},
};

use aws_sdk_secretsmanager::{types::Tag, Client};

use crate::{
    docker,
    supervisor::{free_port, scratch_dir, Supervised},
    Running, ServerMode,
};

/// Access key id and secret the SDK signs with against moto, which accepts any.
pub const MOTO_ACCESS_KEY: (&str, &str) = ("test", "test");
/// The region tests use.
pub const MOTO_REGION: &str = "us-east-1";

/// A running moto server.
#[derive(Debug)]
pub struct MotoServer {
    port: u16,
    _process: Running,
}

/// `sh START_SCRIPT moto port dir [NAME=VALUE...]`: the settings go to moto's environment.
const START_SCRIPT: &str = r#"
moto=$1 port=$2 dir=$3
shift 3
env "$@" "$moto" -H 127.0.0.1 -p "$port" >"$dir/moto.log" 2>&1 &
pid=$!
echo ready
read _ || true
kill "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
rm -rf "$dir"
"#;

impl MotoServer {
    /// The emulator for this test process, started on first use.
    pub fn shared() -> &'static MotoServer {
        static SERVER: OnceLock<MotoServer> = OnceLock::new();
        SERVER.get_or_init(|| Self::private(&[]))
    }

    /// An emulator of its own, with moto settings given as environment variables (for example
    /// `INITIAL_NO_AUTH_ACTION_COUNT`, which makes moto enforce IAM policies): a local process or a container, as
    /// [`ServerMode`] says. It stops when dropped, or when the test process exits.
    pub fn private(settings: &[(&str, &str)]) -> MotoServer {
        let port = free_port();
        let process = match ServerMode::from_env() {
            ServerMode::Docker => {
                let container = docker::moto(port, settings);
                container.wait_until_serving("moto", || answers_http(port));
                Running::Docker(Box::new(container))
            }
            ServerMode::Local => Self::start_local(port, settings),
        };
        Self {
            port,
            _process: process,
        }
    }

    fn start_local(port: u16, settings: &[(&str, &str)]) -> Running {
        let moto = moto_server_binary();
        let dir = scratch_dir("rotapool-moto", None);
        let log = dir.join("moto.log");
        let settings: Vec<String> = settings.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let args = [
            moto.to_str().expect("utf-8 path").to_owned(),
            port.to_string(),
            dir.to_str().expect("utf-8 path").to_owned(),
        ];
        let args: Vec<&str> = args.iter().chain(&settings).map(String::as_str).collect();
        let process = Supervised::start("moto_server", START_SCRIPT, &args, None, &log);
        wait_for_port(port, "moto_server", &log);
        Running::Local(process)
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The endpoint URL to give the SDK.
    pub fn endpoint_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// rotapool's Secrets Manager source for `secret_id` on this emulator.
    pub async fn source(&self, secret_id: &str) -> rotapool_core::source::AwsSecretsManager {
        source_at(&self.endpoint_url(), secret_id).await
    }

    /// An SDK client for this emulator, for the test's own administration of secrets.
    pub async fn client(&self) -> Client {
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(self.endpoint_url())
            .region(aws_config::Region::new(MOTO_REGION))
            .credentials_provider(aws_sdk_secretsmanager::config::Credentials::new(
                MOTO_ACCESS_KEY.0,
                MOTO_ACCESS_KEY.1,
                None,
                None,
                "rotapool-testkit",
            ))
            .load()
            .await;
        Client::new(&config)
    }

    /// Creates the secret `name` holding `secret_json` as its AWSCURRENT version; returns the version id.
    pub async fn create_secret(&self, name: &str, secret_json: &str) -> String {
        let out = self
            .client()
            .await
            .create_secret()
            .name(name)
            .secret_string(secret_json)
            .tags(Tag::builder().key("owner").value("rotapool-tests").build())
            .send()
            .await
            .expect("CreateSecret on moto");
        out.version_id().expect("a version id").to_owned()
    }

    /// Stores `secret_json` as a new AWSCURRENT version of `name` (the old one becomes AWSPREVIOUS).
    pub async fn put_current(&self, name: &str, secret_json: &str) -> String {
        let out = self
            .client()
            .await
            .put_secret_value()
            .secret_id(name)
            .secret_string(secret_json)
            .version_stages("AWSCURRENT")
            .send()
            .await
            .expect("PutSecretValue on moto");
        out.version_id().expect("a version id").to_owned()
    }
}

/// Whether an HTTP server answers on 127.0.0.1:`port`. Accepting the connection is not enough: with mapped ports,
/// Docker's proxy accepts it before moto listens, and then closes it.
fn answers_http(port: u16) -> bool {
    let answer = || -> std::io::Result<bool> {
        let mut stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_read_timeout(Some(Duration::from_secs(2)))?;
        stream.write_all(b"GET / HTTP/1.0\r\n\r\n")?;
        let mut start = [0; 5];
        stream.read_exact(&mut start)?;
        Ok(&start == b"HTTP/")
    };
    answer().unwrap_or(false)
}

/// Waits until moto answers HTTP on `port`: it prints nothing reliable when it is up.
fn wait_for_port(port: u16, what: &str, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !answers_http(port) {
        if Instant::now() > deadline {
            panic!(
                "{what} did not answer HTTP on port {port} within 60 s; log:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The `moto_server` program for local moto processes: `ROTAPOOL_MOTO_SERVER`, else `moto_server` on the PATH
/// if it runs, else `moto-venv` in the target directory (`CARGO_TARGET_DIR` if set, else the workspace's
/// `target/`), created when missing (`python3 -m venv` and `pip install 'moto[server]'`, about 20 s once).
pub fn moto_server_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("ROTAPOOL_MOTO_SERVER") {
        return path.into();
    }
    if Command::new("moto_server")
        .arg("--help")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        return "moto_server".into();
    }
    // CARGO_TARGET_DIR when the tests run with one, else the workspace's target/.
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    std::fs::create_dir_all(&target).unwrap_or_else(|e| panic!("{}: {e}", target.display()));
    let venv = target.join("moto-venv");
    let binary = venv.join("bin/moto_server");
    let lock = std::fs::File::create(venv.with_extension("lock"))
        .unwrap_or_else(|e| panic!("{}: {e}", venv.with_extension("lock").display()));
    lock.lock().expect("lock the venv");
    if !binary.exists() {
        let run = |program: &Path, args: &[&str]| {
            let status = Command::new(program).args(args).status();
            assert!(
                status.as_ref().is_ok_and(|s| s.success()),
                "`{} {}` failed ({status:?}): moto is needed for the Secrets Manager tests. Install it with \
                 `pip install 'moto[server]'` or set ROTAPOOL_MOTO_SERVER to a moto_server binary",
                program.display(),
                args.join(" ")
            );
        };
        run(
            Path::new("python3"),
            &["-m", "venv", venv.to_str().expect("utf-8 path")],
        );
        run(
            &venv.join("bin/pip"),
            &["install", "--quiet", "moto[server]"],
        );
    }
    binary
}

/// rotapool's Secrets Manager source for `secret_id` at `endpoint_url` (moto, or a faulty link in front of it),
/// with moto's region and keys.
pub async fn source_at(
    endpoint_url: &str,
    secret_id: &str,
) -> rotapool_core::source::AwsSecretsManager {
    rotapool_core::source::AwsSecretsManager::builder(secret_id)
        .endpoint_url(endpoint_url)
        .region(MOTO_REGION)
        .static_credentials(MOTO_ACCESS_KEY.0, MOTO_ACCESS_KEY.1)
        .build()
        .await
}
