//! `rotapool-sim`: runs the same workload against rotapool, a read-once pool and a read-every-login pool while the
//! database password rotates, and compares them in one report.

#![forbid(unsafe_code)]

mod backends;
mod clients;
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
    report::Summary,
    sim::{Churn, Settings, SimBackend, StrategyKind},
    soak::SoakPlan,
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
    let soak = args
        .soak
        .then(|| soak_plan(&args, seconds(args.drain_timeout, "drain-timeout")?))
        .transpose()?;
    let store = Store::new(args.store);
    let external = (args.database != "spawn").then_some(args.database.as_str());
    let outcome = match args.backend {
        BackendKind::Postgres => {
            let backend = PgBackend::new().ssl_mode(rotapool_core::SslMode::Disable);
            let server: &'static PgServer = match external {
                None => PgServer::shared(),
                Some(url) => Box::leak(Box::new(PgServer::external(url)?)),
            };
            run_on(&args, &settings, soak, backend, server, &store).await
        }
        BackendKind::Mysql => {
            let backend = MySqlBackend::new().ssl_mode(rotapool_core::SslMode::Disable);
            let server: &'static MariaDbServer = match external {
                None => MariaDbServer::shared(),
                Some(url) => Box::leak(Box::new(MariaDbServer::external(url)?)),
            };
            run_on(&args, &settings, soak, backend, server, &store).await
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

/// Runs the soak if there is one, else every client of `args`, on `backend` and `server`, and reports.
async fn run_on<B: SimBackend>(
    args: &Args,
    settings: &Settings,
    soak: Option<SoakPlan>,
    backend: B,
    server: &'static dyn TestServer,
    store: &Store,
) -> Result<ExitCode, String> {
    match soak {
        Some(plan) => run_soak(args, settings, plan, backend, server, store).await,
        None => {
            let summaries = run_all(args, settings, backend, server, store).await?;
            report_comparison(args, settings, &summaries)
        }
    }
}

/// Runs the soak with a progress bar, prints and writes its figures, and exits with 1 if a goal is missed.
async fn run_soak<B: SimBackend>(
    args: &Args,
    settings: &Settings,
    plan: SoakPlan,
    backend: B,
    server: &'static dyn TestServer,
    store: &Store,
) -> Result<ExitCode, String> {
    let bar = ProgressBar::new(u64::from(plan.rotations)).with_style(
        ProgressStyle::with_template("{prefix:>13} [{bar:30}] {pos}/{len} rotations {elapsed}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    bar.set_prefix("soak");
    let ticker = bar.clone();
    let run = soak::run(plan, settings, backend, server, store, move |done| {
        ticker.set_position(u64::from(done))
    })
    .await?;
    bar.finish();
    let goals = soak_report::goals(&run, matches!(settings.churn, Churn::KillAtSetSecret));
    println!("\n{}", soak_report::table(&run, &goals));
    let backend = format!("{:?}", args.backend).to_lowercase();
    if let Some(path) = &args.json {
        let command = std::env::args().collect::<Vec<_>>().join(" ");
        write_json(path, &soak_report::json(&run, &goals, &backend, &command))?;
    }
    if let Some(path) = &args.plot {
        let title = format!(
            "{backend} soak: {} rotations, {:?} from setSecret to finishSecret",
            plan.rotations, settings.window
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

async fn run_all<B: SimBackend>(
    args: &Args,
    settings: &Settings,
    backend: B,
    server: &'static dyn TestServer,
    store: &Store,
) -> Result<Vec<Summary>, String> {
    let mut summaries = Vec::new();
    for &kind in &args.clients {
        let bar = ProgressBar::new(settings.duration.as_millis() as u64).with_style(
            ProgressStyle::with_template("{prefix:>13} [{bar:30}] {msg}")
                .expect("a valid template")
                .progress_chars("=> "),
        );
        bar.set_prefix(kind.name());
        let ticker = bar.clone();
        let total = settings.duration;
        let run = sim::run_client(
            kind,
            settings,
            backend.clone(),
            server,
            store,
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
        summaries.push(Summary::of(run, settings));
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
