//! The service as a user runs it: the release binary as a child process, configured from the environment only,
//! against a private password-checking database and moto (the secret read through the AWS source), under 16
//! concurrent HTTP clients while rotapool-rotator rotates the secret three times (single user, at least 2 s
//! between setSecret and finishSecret, connections churned every 200 ms). Nothing may fail, and nothing may be
//! lost. Inside each window (after setSecret, before finishSecret) the service must log that it adopted this
//! rotation's AWSPENDING version by the pending path, naming the pool, and its `/metrics` must count it. The
//! PostgreSQL run logs JSON (`LOG_FORMAT=json`) and the MariaDB run text, so each log line checked is read in
//! one format or the other. Then SIGTERM arrives
//! while four requests hold database sleeps: they finish with 200, new connections are refused from then on,
//! and the process exits 0. Each engine runs twice: on rotapool's own pools (`DB_CLIENT` unset) and on sqlx's
//! pool through rotapool-sqlx (`DB_CLIENT=sqlx`), with the same assertions.

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use rotapool_core::{source::AwsSecretsManager, Backend, Credentials, SecretSource, Stage};
use rotapool_rotator::{RotationTarget, Rotator, Strategy};
use rotapool_testkit::{
    random_password, rotation_token, unique_name, Login, MariaDbServer, MotoServer, PgServer,
    TestServer, MOTO_ACCESS_KEY, MOTO_REGION,
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_service_stays_up_through_three_rotations() {
    postgres(Pools::Rotapool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_service_stays_up_through_three_rotations() {
    mariadb(Pools::Rotapool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_sqlx_service_stays_up_through_three_rotations() {
    postgres(Pools::Sqlx).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_sqlx_service_stays_up_through_three_rotations() {
    mariadb(Pools::Sqlx).await;
}

async fn postgres(pools: Pools) {
    let backend = rotapool_postgres::PgBackend::new().ssl_mode(rotapool_core::SslMode::Disable);
    stays_up(
        PgServer::shared(),
        "postgres",
        "postgres",
        backend,
        pools,
        LogFormat::Json,
    )
    .await;
}

async fn mariadb(pools: Pools) {
    let backend = rotapool_mysql::MySqlBackend::new().ssl_mode(rotapool_core::SslMode::Disable);
    stays_up(
        MariaDbServer::shared(),
        "mariadb",
        "test_orders",
        backend,
        pools,
        LogFormat::Text,
    )
    .await;
}

/// The service's pools (`DB_CLIENT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pools {
    /// rotapool's own (`DB_CLIENT` unset).
    Rotapool,
    /// sqlx's, through rotapool-sqlx (`DB_CLIENT=sqlx`).
    Sqlx,
}

async fn stays_up<S: Sessions, B: Backend + RotationTarget>(
    server: &'static S,
    engine: &str,
    dbname: &str,
    backend: B,
    pools: Pools,
    logs: LogFormat,
) {
    // The label of this run's lines: the engine, and sqlx's pool if it runs on that.
    let run = match pools {
        Pools::Rotapool => engine.to_owned(),
        Pools::Sqlx => format!("{engine} on sqlx"),
    };
    let run = run.as_str();
    let user = unique_name("svc");
    let password = random_password();
    server.create_account(&user, &password).await;
    if engine == "mariadb" {
        server
            .execute(&format!("CREATE DATABASE IF NOT EXISTS {dbname}"))
            .await;
        server
            .execute(&format!("GRANT ALL ON {dbname}.* TO '{user}'@'%'"))
            .await;
    } else {
        // A schema of the user's own, first on PostgreSQL's default search path ("$user", public): each run has
        // its own orders table, which another run's account could not write to.
        server
            .execute(&format!(
                "CREATE SCHEMA \"{user}\" AUTHORIZATION \"{user}\""
            ))
            .await;
    }
    let secret_id = unique_name("rotapool/service");
    let moto = MotoServer::shared();
    let secret = Credentials::new(&user, &password)
        .with_engine(engine)
        .with_host(server.host())
        .with_port(server.port())
        .with_dbname(dbname)
        .to_secret_json();
    moto.create_secret(&secret_id, &secret).await;

    let port = rotapool_testkit::free_port();
    let mut service = Service::start(&secret_id, port, pools, logs);
    wait_healthy(port, &mut service).await;

    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let clients: Vec<_> = (0..16)
        .map(|i| tokio::spawn(client(port, i, stop.clone(), tally.clone())))
        .collect();
    let health = tokio::spawn(health_checks(port, stop.clone(), tally.clone()));

    let admin = Arc::new(
        AwsSecretsManager::builder(&secret_id)
            .endpoint_url(moto.endpoint_url())
            .region(MOTO_REGION)
            .static_credentials(MOTO_ACCESS_KEY.0, MOTO_ACCESS_KEY.1)
            .build()
            .await,
    );
    let rotator = Rotator::new(admin.clone(), backend, Strategy::SingleUser);
    let started = Instant::now();
    let mut old = password;
    // Each rotation's window, from setSecret to finishSecret: /healthz must be checked, and green, inside each.
    let mut windows = Vec::new();
    for rotation in 1..=3 {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let token = rotation_token();
        rotator.create_secret(&token).await.expect("createSecret");
        rotator.set_secret(&token).await.expect("setSecret");
        let window_opened = Instant::now();
        assert_eq!(
            server.try_login(&user, &old).await,
            Login::BadCredentials,
            "the old password is dead"
        );
        rotator.test_secret(&token).await.expect("testSecret");
        // The window: AWSCURRENT is dead for new logins and only AWSPENDING logs in. finishSecret waits until the
        // service has logged adopting this rotation's AWSPENDING version (the version id is the token) by the
        // pending path, so the adoption happened inside the window.
        let adoption = service
            .wait_for_line(
                |line| line.contains("adopted a new version of the secret") && line.contains(&token),
                Duration::from_secs(30),
            )
            .await
            .unwrap_or_else(|| {
                panic!("rotation {rotation}: the service did not adopt AWSPENDING between setSecret and finishSecret")
            });
        assert_eq!(
            logs.field(&adoption, "rotapool.adopted_by").as_deref(),
            Some("pending"),
            "rotation {rotation} was adopted by the pending path: {adoption}"
        );
        assert_eq!(
            logs.field(&adoption, "db.client.connection.pool.name")
                .as_deref(),
            Some(secret_id.as_str()),
            "the adoption names the pool (by default, its secret id): {adoption}"
        );
        assert_eq!(
            logs.field(&adoption, "rotapool.version_id").as_deref(),
            Some(token.as_str()),
            "{adoption}"
        );
        if logs == LogFormat::Json {
            assert_eq!(
                logs.field(&adoption, "message").as_deref(),
                Some("adopted a new version of the secret"),
                "one JSON object per line, the event's fields at the top level: {adoption}"
            );
        }
        if rotation == 1 {
            println!("SERVICE | {run} | the adoption, as logged ({logs:?}): {adoption}");
        }
        tokio::time::sleep(Duration::from_secs(2).saturating_sub(window_opened.elapsed())).await;
        let (_, during) = http(port, "GET", "/metrics", None)
            .await
            .expect("GET /metrics");
        assert_eq!(
            sum_of(
                &during,
                "rotapool_rotations_adopted",
                r#"rotapool_adopted_by="pending""#
            ),
            f64::from(rotation),
            "rotation {rotation}: /metrics counts one AWSPENDING adoption per window so far:\n{}",
            excerpt(&during)
        );
        if rotation == 2 {
            println!(
                "SERVICE | {run} | /metrics between setSecret and finishSecret of rotation 2:\n{}",
                excerpt(&during)
            );
        }
        windows.push((window_opened, Instant::now()));
        rotator.finish_secret(&token).await.expect("finishSecret");
        let current = admin.fetch(Stage::Current).await.expect("AWSCURRENT");
        old = current.credentials.password().to_owned();
    }
    tokio::time::sleep(Duration::from_secs(15).saturating_sub(started.elapsed())).await;
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.expect("a client task");
    }
    health.await.expect("the health checker");

    // Every order answered 2xx reads back as it was written.
    let written = tally.written.lock().unwrap().clone();
    for (id, body) in &written {
        let (status, text) = http(port, "GET", &format!("/orders/{id}"), None)
            .await
            .expect("GET");
        assert_eq!(status, 200, "order {id}: {text}");
        assert_eq!(&text, body, "order {id} came back changed");
    }
    let (_, metrics) = http(port, "GET", "/metrics", None)
        .await
        .expect("GET /metrics");
    let adopted = sum_of(&metrics, "rotapool_rotations_adopted", "");
    let adopted_pending = sum_of(
        &metrics,
        "rotapool_rotations_adopted",
        r#"rotapool_adopted_by="pending""#,
    );
    let reads = sum_of(&metrics, "rotapool_secret_reads", "");
    let non_2xx = tally.non_2xx.lock().unwrap().clone();
    println!(
        "SERVICE | {run} | requests {} | non-2xx {} | orders written and read back {} | healthz {} checks, {} failed | \
         rotations adopted {adopted} ({adopted_pending} from AWSPENDING) | secret reads {reads} (1 at start-up)",
        tally.requests.load(Ordering::Relaxed),
        non_2xx.len(),
        written.len(),
        tally.health_answered.lock().unwrap().len(),
        tally.health_failures.load(Ordering::Relaxed),
    );
    println!("SERVICE | {run} | metrics excerpt:\n{}", excerpt(&metrics));
    shutdown_with_requests_in_flight(server, &user, port, service).await;

    assert!(
        non_2xx.is_empty(),
        "{} non-2xx answers: {:?}",
        non_2xx.len(),
        &non_2xx[..non_2xx.len().min(3)]
    );
    assert!(written.len() > 100, "only {} orders written", written.len());
    assert_eq!(
        tally.health_failures.load(Ordering::Relaxed),
        0,
        "/healthz went red"
    );
    // Checked inside every window, so that "none failed" covers the rotations. (Not a count over the run: four
    // services at once on 2 cores answered 38 to 50 checks in 15 s, against 130 alone.)
    let answered = tally.health_answered.lock().unwrap().clone();
    for (rotation, (opened, closed)) in windows.iter().enumerate() {
        let inside = answered
            .iter()
            .filter(|(asked, got)| asked >= opened && got <= closed)
            .count();
        assert!(
            inside > 0,
            "rotation {}: no /healthz check was asked and answered between setSecret and finishSecret",
            rotation + 1
        );
    }
    assert_eq!(
        (adopted, adopted_pending),
        (3.0, 3.0),
        "three rotations adopted, each from AWSPENDING inside its window:\n{}",
        excerpt(&metrics)
    );
    assert!(
        reads <= 1.0 + 2.0 * 3.0,
        "{reads} secret reads for 3 rotations"
    );
}

/// What the clients saw.
#[derive(Default)]
struct Tally {
    requests: AtomicU64,
    non_2xx: Mutex<Vec<String>>,
    written: Mutex<Vec<(i64, String)>>,
    health_failures: AtomicU64,
    /// When each check was asked and answered (green or not).
    health_answered: Mutex<Vec<(Instant, Instant)>>,
}

/// One client: POSTs an order, then GETs one of its own, until told to stop.
async fn client(port: u16, client: usize, stop: Arc<AtomicBool>, tally: Arc<Tally>) {
    let mut mine: Vec<i64> = Vec::new();
    for n in 0u64.. {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        tally.requests.fetch_add(1, Ordering::Relaxed);
        let outcome = if n % 2 == 0 || mine.is_empty() {
            // Keys in sorted order, as serde_json writes them back.
            let body = format!(r#"{{"client":{client},"item":"widget","n":{n}}}"#);
            let answer = http(port, "POST", "/orders", Some(&body)).await;
            if let Ok((201, text)) = &answer {
                let id = text
                    .trim_start_matches("{\"id\":")
                    .trim_end_matches('}')
                    .parse()
                    .unwrap_or_else(|_| panic!("an id in {text}"));
                mine.push(id);
                tally.written.lock().unwrap().push((id, body));
            }
            answer
        } else {
            let id = mine[n as usize % mine.len()];
            http(port, "GET", &format!("/orders/{id}"), None).await
        };
        match outcome {
            Ok((status, _)) if (200..300).contains(&status) => {}
            Ok((status, text)) => tally
                .non_2xx
                .lock()
                .unwrap()
                .push(format!("{status}: {text}")),
            Err(e) => tally
                .non_2xx
                .lock()
                .unwrap()
                .push(format!("no answer: {e}")),
        }
    }
}

/// `/healthz` every 100 ms.
async fn health_checks(port: u16, stop: Arc<AtomicBool>, tally: Arc<Tally>) {
    while !stop.load(Ordering::Relaxed) {
        let asked = Instant::now();
        let answer = http(port, "GET", "/healthz", None).await;
        tally
            .health_answered
            .lock()
            .unwrap()
            .push((asked, Instant::now()));
        if !matches!(answer, Ok((200, _))) {
            tally.health_failures.fetch_add(1, Ordering::Relaxed);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// SIGTERM while requests are in flight. Four `/slow` requests hold database sleeps when the signal arrives. By
/// design (axum's graceful shutdown) the service stops accepting at once and drops its listener, so a new
/// connection is refused by the kernel rather than answered 503; the requests it accepted finish normally; and
/// the process exits 0 once they have been answered.
///
/// Only connections made after the first refusal count as new: one the kernel queued in the instant before the
/// listener closed is reset instead, which is the same design seen from a client racing the signal.
async fn shutdown_with_requests_in_flight<S: Sessions>(
    server: &S,
    user: &str,
    port: u16,
    mut service: Service,
) {
    const HELD_MS: u64 = 5_000;
    let in_flight: Vec<_> = (0..4)
        .map(|_| {
            tokio::spawn(async move { http(port, "GET", &format!("/slow/{HELD_MS}"), None).await })
        })
        .collect();
    // The database runs all four sleeps: the requests are past the listener and inside their handlers.
    let deadline = Instant::now() + Duration::from_secs(30);
    while server.sleeping(user).await < 4 {
        assert!(
            Instant::now() < deadline,
            "the four /slow requests never all reached the database"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    service.terminate();

    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match TcpStream::connect(("127.0.0.1", port)).await {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => break,
            _ => assert!(
                Instant::now() < deadline,
                "the service still accepts connections 30 s after SIGTERM"
            ),
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        service.0.try_wait().expect("the child's status").is_none(),
        "the listener closed only when the process exited: it did not wait for its requests in flight"
    );
    for path in ["/healthz", "/orders/1", "/slow/10"] {
        let answer = http(port, "GET", path, None).await;
        assert!(
            matches!(&answer, Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused),
            "GET {path} after the listener closed must be refused, not {answer:?}"
        );
    }
    for request in in_flight {
        let answer = request.await.expect("an in-flight request's task");
        assert!(
            matches!(&answer, Ok((200, body)) if *body == format!(r#"{{"slept_ms":{HELD_MS}}}"#)),
            "a request in flight at SIGTERM finishes normally, not {answer:?}"
        );
    }
    let status = service.exit_status();
    assert!(
        status.success(),
        "the service did not stop gracefully: {status}"
    );
    assert!(
        service.has_line(|line| line.contains("stopped gracefully")),
        "the service logs its graceful stop"
    );
    println!("SERVICE | SIGTERM with 4 requests in flight: 4 answered 200, new connections refused, {status}");
}

/// What this test reads from a server beyond [`TestServer`].
trait Sessions: TestServer {
    /// How many sessions of `user` are running a sleep: the `/slow` requests in flight, as the database sees them.
    async fn sleeping(&self, user: &str) -> i64;
}

impl Sessions for PgServer {
    async fn sleeping(&self, user: &str) -> i64 {
        self.admin()
            .await
            .query_one(
                "SELECT count(*) FROM pg_stat_activity \
                 WHERE usename = $1 AND state = 'active' AND query LIKE '%pg_sleep%'",
                &[&user],
            )
            .await
            .expect("pg_stat_activity")
            .get(0)
    }
}

impl Sessions for MariaDbServer {
    async fn sleeping(&self, user: &str) -> i64 {
        use rotapool_mysql::mysql_async::prelude::Queryable;
        self.admin()
            .await
            .exec_first(
                "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = ? AND INFO LIKE '%SLEEP(%'",
                (user,),
            )
            .await
            .expect("information_schema.PROCESSLIST")
            .unwrap_or(0)
    }
}

/// The service binary, built by cargo for this test, run as a child process; its log lines (stdout) are kept and
/// echoed by a thread of their own (the third field), which ends when the process has exited and its last line is
/// kept.
struct Service(
    Child,
    Arc<Mutex<Vec<String>>>,
    Option<std::thread::JoinHandle<()>>,
);

/// How the service logs (`LOG_FORMAT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LogFormat {
    Text,
    Json,
}

impl LogFormat {
    /// The value of the field `name` in a log line of this format. A JSON line must be one JSON object with the
    /// event's fields at the top level; a text line has `name=value` or `name="value"`.
    fn field(self, line: &str, name: &str) -> Option<String> {
        match self {
            Self::Text => line
                .split_whitespace()
                .find_map(|word| word.strip_prefix(name)?.strip_prefix('='))
                .map(|value| value.trim_matches('"').to_owned()),
            Self::Json => {
                let object: serde_json::Value = serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
                match object.get(name)? {
                    serde_json::Value::String(text) => Some(text.clone()),
                    other => Some(other.to_string()),
                }
            }
        }
    }
}

impl Service {
    fn start(secret_id: &str, port: u16, pools: Pools, logs: LogFormat) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_rotapool-example-service"))
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("DB__SECRET_ID", secret_id)
            .env("DB__SSL_MODE", "disable")
            .env("DB__MAX_LIFETIME", "200ms")
            .env("DB__POOL__MAX_SIZE", "8")
            .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
            .env(
                "DB_CLIENT",
                match pools {
                    Pools::Rotapool => "rotapool",
                    Pools::Sqlx => "sqlx",
                },
            )
            .env("AWS_ENDPOINT_URL", MotoServer::shared().endpoint_url())
            .env("AWS_REGION", MOTO_REGION)
            .env("AWS_ACCESS_KEY_ID", MOTO_ACCESS_KEY.0)
            .env("AWS_SECRET_ACCESS_KEY", MOTO_ACCESS_KEY.1)
            .env(
                "RUST_LOG",
                "warn,rotapool_core=info,rotapool_example_service=info",
            )
            .env("NO_COLOR", "1")
            .env(
                "LOG_FORMAT",
                match logs {
                    LogFormat::Text => "text",
                    LogFormat::Json => "json",
                },
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("the service binary runs");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let kept = lines.clone();
        let reader = std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                println!("service | {line}");
                kept.lock().unwrap().push(line);
            }
        });
        Self(child, lines, Some(reader))
    }

    /// Waits for the process to exit, then for the reader to keep its last log lines: the process may exit before
    /// the reader has read what it wrote last, so a look at the lines right after `wait` could miss them.
    fn exit_status(&mut self) -> std::process::ExitStatus {
        let status = self.0.wait().expect("the service exits");
        if let Some(reader) = self.2.take() {
            reader.join().expect("the log reader");
        }
        status
    }

    /// The first log line that `matches`, waiting up to `patience` for it.
    async fn wait_for_line(
        &self,
        matches: impl Fn(&str) -> bool,
        patience: Duration,
    ) -> Option<String> {
        let deadline = Instant::now() + patience;
        loop {
            let found = self.1.lock().unwrap().iter().find(|l| matches(l)).cloned();
            if found.is_some() || Instant::now() >= deadline {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Whether a log line so far `matches`.
    fn has_line(&self, matches: impl Fn(&str) -> bool) -> bool {
        self.1.lock().unwrap().iter().any(|l| matches(l))
    }

    /// Sends SIGTERM.
    fn terminate(&self) {
        let killed = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status()
            .expect("kill");
        assert!(killed.success());
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.0.kill();
    }
}

async fn wait_healthy(port: u16, service: &mut Service) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok((200, _)) = http(port, "GET", "/healthz", None).await {
            return;
        }
        if let Ok(Some(status)) = service.0.try_wait() {
            panic!("the service exited at start-up: {status}");
        }
        assert!(
            Instant::now() < deadline,
            "the service did not become healthy within a minute"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One HTTP/1.1 request on a fresh connection; the status and the body.
async fn http(
    port: u16,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await?;
    let body = body.unwrap_or("");
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await?;
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not HTTP: {answer:.80}")))?;
    let body = answer
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    Ok((status, body))
}

/// The sum of every sample of the Prometheus series `name` whose line contains `label` (`""` for every sample).
fn sum_of(metrics: &str, name: &str, label: &str) -> f64 {
    metrics
        .lines()
        .filter(|line| line.starts_with(name) && line[name.len()..].starts_with(['{', ' ']))
        .filter(|line| line.contains(label))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The rotapool lines of the metrics page.
fn excerpt(metrics: &str) -> String {
    metrics
        .lines()
        .filter(|l| l.starts_with("rotapool_") || l.starts_with("db_client_connection_"))
        .collect::<Vec<_>>()
        .join("\n")
}
