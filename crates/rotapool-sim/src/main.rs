//! `rotapool-sim`: runs the same workload against rotapool, a read-once pool and a read-every-login pool while the
//! database password rotates, and compares them in one report.

#![forbid(unsafe_code)]

mod backends;
mod clients;
mod fake_engine;
mod fleet;
mod fleet_report;
mod login_log;
mod metrics;
mod plot;
mod report;
mod sim;
mod soak;
mod soak_report;
mod sqlx_clients;
mod store;
mod switch;

use std::{path::PathBuf, process::ExitCode, time::Duration};

use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use rotapool_mysql::MySqlBackend;
use rotapool_postgres::PgBackend;
use rotapool_testkit::{MariaDbServer, PgServer, TestServer};

use crate::{
    clients::ClientKind,
    fake_engine::FakeServer,
    fleet::FleetPlan,
    fleet_report::FleetSummary,
    report::Summary,
    sim::{Churn, Settings, SimBackend, StrategyKind},
    soak::SoakPlan,
    sqlx_clients::SqlxEngine,
    store::{Store, StoreKind},
};

/// Simulated password rotations under load: rotapool against its baselines, side by side.
///
/// Each client runs the same workload (tasks looping `get()` + `SELECT 1`) for the same duration, while
/// rotapool-rotator runs the four rotation steps on the same schedule. The database is a private,
/// password-checking server started for the run.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Database engine.
    #[arg(long, value_enum, default_value = "postgres")]
    backend: BackendKind,
    /// `spawn` starts a private password-checking server; otherwise an admin URL
    /// (`postgres://admin:pw@host:port/db` or `mysql://admin:pw@host:port`) of a server that checks passwords.
    #[arg(long, default_value = "spawn")]
    database: String,
    /// Clients to compare, in order. The sqlx clients (`sqlx-rotapool`, `sqlx-static`, `sqlx-naive`) run the
    /// same three ways over `sqlx::Pool`; they are not in the default run, which they would make twice as long.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "rotapool,static,naive"
    )]
    clients: Vec<ClientKind>,
    /// Where the secret lives.
    #[arg(long, value_enum, default_value = "memory")]
    store: StoreKind,
    /// Rotation strategy.
    #[arg(long, value_enum, default_value = "single")]
    strategy: StrategyKind,
    /// Length of each client's run, in seconds.
    #[arg(long, default_value_t = 16.0)]
    duration: f64,
    /// Run this many rotations per client: the run lasts as long as they need (instead of `--duration`). With
    /// `--soak`, the rotations of the soak (1000 if not given).
    #[arg(long, conflicts_with = "duration", value_parser = clap::value_parser!(u32).range(1..))]
    rotations: Option<u32>,
    /// When the first rotation starts, in seconds.
    #[arg(long, default_value_t = 3.0)]
    first_rotation: f64,
    /// Seconds between rotations.
    #[arg(long, default_value_t = 6.0)]
    interval: f64,
    /// Seconds between setSecret and finishSecret (the single-user window).
    #[arg(long, default_value_t = 2.0)]
    window: f64,
    /// Milliseconds added to every read of the secret by the clients, as a store over the network takes (the
    /// in-memory store answers at once).
    #[arg(long, default_value_t = 0.0)]
    read_latency: f64,
    /// Concurrent workload tasks.
    #[arg(long, default_value_t = 16)]
    tasks: usize,
    /// Pool size.
    #[arg(long, default_value_t = 8)]
    pool_size: usize,
    /// Connection churn: a max lifetime in milliseconds, or `kill` to end every session at setSecret.
    #[arg(long, default_value = "500")]
    churn: String,
    /// Run a fleet instead of comparing: for each count given (e.g. `1,10,50`), that many replicas of rotapool,
    /// then of naive, each replica a pool with its own secret client (and proactive schedule), all over one
    /// account and one secret, through `--rotations` rotations (5 if not given) `--interval` apart. `--tasks` and
    /// `--pool-size` are per replica. Reports secret reads, failed and concurrent logins, and errors per rotation.
    #[arg(long, value_delimiter = ',', value_parser = clap::value_parser!(u32).range(1..), conflicts_with = "soak")]
    replicas: Vec<u32>,
    /// With `--replicas`: seconds after a rotation window opens (the store's `NextRotationDate`, here the
    /// rotation's start) before each rotapool replica reads the secret first (`ProactiveRefresh::after_rotation`).
    #[arg(long, default_value_t = 3.0)]
    after_rotation: f64,
    /// With `--backend fake`: milliseconds a login takes.
    #[arg(long, default_value_t = 20.0)]
    login_latency: f64,
    /// Write every figure as JSON to this path.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Draw requests and errors per second to this SVG (with `--soak`: memory and old-generation connections
    /// over rotations).
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Soak instead of comparing: one rotapool pool under the same workload, `--rotations` rotations back to
    /// back, each followed by the drain of the old connections, sampling memory, connections by generation and
    /// secret reads. Exits with 1 if a goal is missed. Needs `--store memory`.
    #[arg(long)]
    soak: bool,
    /// With `--soak`: take a sample after every this many rotations.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..))]
    sample_every: u32,
    /// With `--soak`: rotations before memory growth counts (must be fewer than `--rotations`).
    #[arg(long, default_value_t = 100)]
    warmup: u32,
    /// With `--soak`: seconds to wait, after a rotation, for its old-generation connections to be gone.
    #[arg(long, default_value_t = 10.0)]
    drain_timeout: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum BackendKind {
    /// PostgreSQL through tokio-postgres (sqlx::Postgres for the sqlx clients).
    Postgres,
    /// MariaDB through mysql_async (sqlx::MySql for the sqlx clients).
    Mysql,
    /// A model: rotapool-core's fake database, in process, checking passwords, with `--login-latency` per login
    /// and 10 ms per query. For `--replicas` and `--soak`; it has no sqlx client and no second account.
    Fake,
}

/// What every part of a run reads: the command line, its settings, the database server and the secret store.
struct Ctx<'a> {
    args: &'a Args,
    settings: &'a Settings,
    server: &'static dyn TestServer,
    store: &'a Store,
}

impl<'a> Ctx<'a> {
    fn new(
        args: &'a Args,
        settings: &'a Settings,
        server: &'static dyn TestServer,
        store: &'a Store,
    ) -> Self {
        Self {
            args,
            settings,
            server,
            store,
        }
    }
}

/// What the run does.
enum Mode {
    /// Compares `--clients`.
    Compare,
    /// Soaks one rotapool pool.
    Soak(SoakPlan),
    /// Runs a fleet of each size.
    Fleet(Vec<FleetPlan>),
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(args).await {
        Ok(code) => code,
        Err(message) => {
            eprintln!("rotapool-sim: {message}");
            ExitCode::from(2)
        }
    }
}

async fn run(args: Args) -> Result<ExitCode, String> {
    let seconds = |s: f64, what: &str| {
        Duration::try_from_secs_f64(s)
            .map_err(|_| format!("--{what} must be a non-negative number of seconds"))
    };
    let churn = match args.churn.as_str() {
        "kill" => Churn::KillAtSetSecret,
        ms => Churn::MaxLifetime(Duration::from_millis(ms.parse().map_err(|_| {
            format!("--churn `{ms}`: give a max lifetime in milliseconds, or `kill`")
        })?)),
    };
    let mut settings = Settings {
        tasks: args.tasks.max(1),
        pool_size: args.pool_size.max(1),
        duration: seconds(args.duration, "duration")?,
        first_rotation: seconds(args.first_rotation, "first-rotation")?,
        interval: seconds(args.interval, "interval")?,
        window: seconds(args.window, "window")?,
        churn,
        strategy: args.strategy,
        read_latency: Duration::try_from_secs_f64(args.read_latency / 1000.0).map_err(|_| {
            "--read-latency must be a non-negative number of milliseconds".to_owned()
        })?,
    };
    if let (Some(rotations), false) = (args.rotations, args.soak) {
        settings.duration = settings.duration_for(rotations);
    }
    let mode = if args.soak {
        Mode::Soak(soak_plan(
            &args,
            seconds(args.drain_timeout, "drain-timeout")?,
        )?)
    } else if !args.replicas.is_empty() {
        let after_rotation = seconds(args.after_rotation, "after-rotation")?;
        let rotations = args.rotations.unwrap_or(5);
        if settings.window + Duration::from_secs(1) >= settings.interval {
            return Err(
                "--replicas: the rotation (--window, plus a second) must end within --interval"
                    .into(),
            );
        }
        Mode::Fleet(
            args.replicas
                .iter()
                .map(|&replicas| FleetPlan {
                    replicas: replicas as usize,
                    rotations,
                    interval: settings.interval,
                    after_rotation,
                })
                .collect(),
        )
    } else {
        Mode::Compare
    };
    let store = Store::new(args.store);
    let external = (args.database != "spawn").then_some(args.database.as_str());
    let outcome = match args.backend {
        BackendKind::Postgres => {
            let backend = PgBackend::new().ssl_mode(rotapool_core::SslMode::Disable);
            let server: &'static PgServer = match external {
                None => PgServer::shared(),
                Some(url) => Box::leak(Box::new(PgServer::external(url)?)),
            };
            run_on(&Ctx::new(&args, &settings, server, &store), mode, backend).await
        }
        BackendKind::Mysql => {
            let backend = MySqlBackend::new().ssl_mode(rotapool_core::SslMode::Disable);
            let server: &'static MariaDbServer = match external {
                None => MariaDbServer::shared(),
                Some(url) => Box::leak(Box::new(MariaDbServer::external(url)?)),
            };
            run_on(&Ctx::new(&args, &settings, server, &store), mode, backend).await
        }
        BackendKind::Fake => {
            if external.is_some() || settings.strategy != StrategyKind::Single {
                return Err(
                    "--backend fake is in process, with one account: it takes no --database, and \
                            only --strategy single"
                        .into(),
                );
            }
            let latency =
                Duration::try_from_secs_f64(args.login_latency / 1000.0).map_err(|_| {
                    "--login-latency must be a non-negative number of milliseconds".to_owned()
                })?;
            let (server, backend) = FakeServer::start(latency);
            run_model(&Ctx::new(&args, &settings, server, &store), mode, backend).await
        }
    };
    store.clean_up().await;
    outcome
}

/// The soak `args` ask for, or why they cannot be soaked.
fn soak_plan(args: &Args, drain_timeout: Duration) -> Result<SoakPlan, String> {
    let rotations = args.rotations.unwrap_or(1000);
    if args.store != StoreKind::Memory {
        return Err(
            "--soak runs on the in-memory store only (`--store memory`, the default)".to_owned(),
        );
    }
    if args.warmup >= rotations {
        return Err(format!(
            "--warmup {} must be fewer than the soak's {rotations} rotations",
            args.warmup
        ));
    }
    Ok(SoakPlan {
        rotations,
        sample_every: args.sample_every,
        warmup: args.warmup,
        drain_timeout,
    })
}

/// Runs `mode` on `backend` and `server`, and reports.
async fn run_on<B: SqlxEngine>(cx: &Ctx<'_>, mode: Mode, backend: B) -> Result<ExitCode, String> {
    match mode {
        Mode::Compare => {
            let summaries = run_all(cx, backend).await?;
            report_comparison(cx.args, cx.settings, &summaries)
        }
        mode => run_model(cx, mode, backend).await,
    }
}

/// Runs the soak or the fleets of `mode` (which need no sqlx client) on `backend` and `server`, and reports.
async fn run_model<B: SimBackend>(
    cx: &Ctx<'_>,
    mode: Mode,
    backend: B,
) -> Result<ExitCode, String> {
    match mode {
        Mode::Soak(plan) => run_soak(cx, plan, backend).await,
        Mode::Fleet(plans) => run_fleets(cx, &plans, backend).await,
        Mode::Compare => Err(
            "--backend fake compares no clients (it has no sqlx client): give --replicas or --soak"
                .into(),
        ),
    }
}

/// Runs each fleet of `plans` for each of its clients with a progress bar, prints and writes the figures, and
/// exits with 1 if rotapool let an error through.
async fn run_fleets<B: SimBackend>(
    cx: &Ctx<'_>,
    plans: &[FleetPlan],
    backend: B,
) -> Result<ExitCode, String> {
    let mut runs = Vec::new();
    for plan in plans {
        for kind in fleet::CLIENTS {
            let bar = ProgressBar::new(u64::from(plan.rotations)).with_style(
                ProgressStyle::with_template(
                    "{prefix:>20} [{bar:30}] {pos}/{len} rotations {elapsed}",
                )
                .expect("a valid template")
                .progress_chars("=> "),
            );
            bar.set_prefix(format!("{} x {}", plan.replicas, kind.name()));
            let ticker = bar.clone();
            let run = fleet::run(
                kind,
                *plan,
                cx.settings,
                backend.clone(),
                cx.server,
                cx.store,
                move |done| ticker.set_position(u64::from(done)),
            )
            .await?;
            bar.finish();
            runs.push(run);
        }
    }
    let summaries: Vec<FleetSummary> = runs.iter().map(FleetSummary::of).collect();
    println!("\n{}", fleet_report::table(&summaries));
    let backend = format!("{:?}", cx.args.backend).to_lowercase();
    if let Some(path) = &cx.args.json {
        let command = std::env::args().collect::<Vec<_>>().join(" ");
        write_json(path, &fleet_report::json(&summaries, &backend, &command))?;
    }
    if let Some(path) = &cx.args.plot {
        let title = format!(
            "{backend} fleet: pool of {} per replica, {:?} between rotations",
            cx.settings.pool_size, cx.settings.interval
        );
        plot::draw_fleet(path, &summaries, &title)?;
        println!("plot written to {}", path.display());
    }
    let killed = matches!(cx.settings.churn, Churn::KillAtSetSecret);
    let rotapool_errors: u64 = runs
        .iter()
        .filter(|run| run.kind == ClientKind::Rotapool)
        .flat_map(|run| run.errors_by_kind.iter())
        .filter(|(kind, _)| !(killed && **kind == "query"))
        .map(|(_, count)| count)
        .sum();
    if rotapool_errors > 0 {
        eprintln!("rotapool-sim: rotapool's fleet let {rotapool_errors} errors through to the application");
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs the soak with a progress bar, prints and writes its figures, and exits with 1 if a goal is missed.
async fn run_soak<B: SimBackend>(
    cx: &Ctx<'_>,
    plan: SoakPlan,
    backend: B,
) -> Result<ExitCode, String> {
    let bar = ProgressBar::new(u64::from(plan.rotations)).with_style(
        ProgressStyle::with_template("{prefix:>13} [{bar:30}] {pos}/{len} rotations {elapsed}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    bar.set_prefix("soak");
    let ticker = bar.clone();
    let run = soak::run(
        plan,
        cx.settings,
        backend,
        cx.server,
        cx.store,
        move |done| ticker.set_position(u64::from(done)),
    )
    .await?;
    bar.finish();
    let goals = soak_report::goals(&run, matches!(cx.settings.churn, Churn::KillAtSetSecret));
    println!("\n{}", soak_report::table(&run, &goals));
    let backend = format!("{:?}", cx.args.backend).to_lowercase();
    if let Some(path) = &cx.args.json {
        let command = std::env::args().collect::<Vec<_>>().join(" ");
        write_json(path, &soak_report::json(&run, &goals, &backend, &command))?;
    }
    if let Some(path) = &cx.args.plot {
        let title = format!(
            "{backend} soak: {} rotations, {:?} from setSecret to finishSecret",
            plan.rotations, cx.settings.window
        );
        plot::draw_soak(path, &run, &title)?;
        println!("plot written to {}", path.display());
    }
    if goals.iter().any(|goal| !goal.met) {
        eprintln!("rotapool-sim: the soak missed a goal");
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes `document` to `path` for `--json`.
fn write_json(path: &std::path::Path, document: &serde_json::Value) -> Result<(), String> {
    let text = serde_json::to_string_pretty(document).expect("JSON values serialize");
    std::fs::write(path, text).map_err(|e| format!("--json {}: {e}", path.display()))?;
    println!("figures written to {}", path.display());
    Ok(())
}

/// Prints the comparison of `summaries`, writes its JSON and plot, and exits with 1 if rotapool let an error
/// through.
fn report_comparison(
    args: &Args,
    settings: &Settings,
    summaries: &[Summary],
) -> Result<ExitCode, String> {
    println!("\n{}", report::table(summaries));
    print_comparison(summaries);
    for summary in summaries {
        if let Some(switches) = &summary.run.switches {
            println!("\n{}", switches.table(summary.client));
        }
    }
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let backend = format!("{:?}", args.backend).to_lowercase();
    if let Some(path) = &args.json {
        write_json(path, &report::json(summaries, settings, &backend, &command))?;
    }
    if let Some(path) = &args.plot {
        let strategy = format!("{:?}", settings.strategy).to_lowercase();
        let title = format!(
            "{backend}, {strategy} user: {} rotation(s), {:?} from setSecret to finishSecret",
            summaries[0].rotations, settings.window
        );
        plot::draw(path, summaries, &title)?;
        println!("plot written to {}", path.display());
    }
    // Queries on sessions the simulator itself killed (`--churn kill`) fail for every client alike; any other
    // error rotapool (on deadpool or on sqlx) lets through is a regression.
    let rotapool_errors: u64 = summaries
        .iter()
        .filter(|s| s.run.kind.rotapool_peer() == s.run.kind)
        .flat_map(|s| s.run.timeline.error_kinds.iter())
        .filter(|(kind, _)| !(matches!(settings.churn, Churn::KillAtSetSecret) && *kind == "query"))
        .map(|(_, count)| count)
        .sum();
    if rotapool_errors > 0 {
        eprintln!("rotapool-sim: rotapool let {rotapool_errors} errors through to the application");
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

async fn run_all<B: SqlxEngine>(cx: &Ctx<'_>, backend: B) -> Result<Vec<Summary>, String> {
    let mut summaries = Vec::new();
    for &kind in &cx.args.clients {
        let bar = ProgressBar::new(cx.settings.duration.as_millis() as u64).with_style(
            ProgressStyle::with_template("{prefix:>13} [{bar:30}] {msg}")
                .expect("a valid template")
                .progress_chars("=> "),
        );
        bar.set_prefix(kind.name());
        let ticker = bar.clone();
        let total = cx.settings.duration;
        let run = sim::run_client(
            kind,
            cx.settings,
            backend.clone(),
            cx.server,
            cx.store,
            move |recorder| {
                let elapsed = recorder.start().elapsed().min(total);
                let (ok, errors) = recorder.totals();
                ticker.set_position(elapsed.as_millis() as u64);
                ticker.set_message(format!(
                    "{:>4.1}s  ok {ok}  errors {errors}",
                    elapsed.as_secs_f64()
                ));
            },
        )
        .await?;
        bar.finish();
        summaries.push(Summary::of(run, cx.settings));
    }
    Ok(summaries)
}

/// rotapool's secret reads and recovery beside those of the baselines over the same pool library, in words.
fn print_comparison(summaries: &[Summary]) {
    for other in summaries {
        let peer = other.run.kind.rotapool_peer();
        if peer == other.run.kind {
            continue;
        }
        let Some(rotapool) = summaries.iter().find(|s| s.run.kind == peer) else {
            continue;
        };
        println!(
            "{} vs {}: errors {} vs {}, secret reads per rotation {:.1} vs {:.1}, steady ops/s ratio {:.2}",
            rotapool.client,
            other.client,
            rotapool.errors,
            other.errors,
            rotapool.reads_per_rotation(),
            other.reads_per_rotation(),
            if other.ops_steady > 0.0 { rotapool.ops_steady / other.ops_steady } else { 0.0 },
        );
    }
}
