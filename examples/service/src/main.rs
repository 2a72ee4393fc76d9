//! An orders API whose database pool survives AWS Secrets Manager password rotation.
//!
//! Configuration comes from the environment only: `DB__SECRET_ID` (required) and the other `DB__*` variables of
//! [`rotapool_postgres::Config`], `LISTEN_ADDR` (default `127.0.0.1:8080`), `LOG_FORMAT` (`text`, the default, or
//! `json`: one JSON object per line, as log pipelines of containers expect), `RUST_LOG` (default `info`), and the
//! AWS SDK's own variables (`AWS_REGION`, `AWS_ENDPOINT_URL`, credentials). The engine, PostgreSQL or
//! MySQL/MariaDB, follows the secret's `engine` field. `DB_CLIENT` chooses the pools: `rotapool` (the default),
//! rotapool's own over tokio-postgres and mysql_async, or `sqlx`, a real `sqlx::Pool` whose logins
//! [`rotapool_sqlx`] keeps in step with the secret (the same `DB__*` settings; see [`db_sqlx::SqlxDb::connect`]).
//! Run it with `cargo run --release -p rotapool-example-service`, or with `DB_CLIENT=sqlx` in the environment to
//! run it on sqlx.

mod db;
mod db_sqlx;
mod routes;

use rotapool_postgres::{AwsSecretsManager, Config, SecretSource, Stage};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    if let Err(error) = init_logging(std::env::var("LOG_FORMAT").ok().as_deref()) {
        eprintln!("{error}");
        return std::process::ExitCode::FAILURE;
    }
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "the service stopped");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Logs to stdout as text, or with `LOG_FORMAT=json` as one JSON object per line: the event's fields at the top
/// level (`message`, `db.client.connection.pool.name`, `rotapool.secret_id`, ...) and the spans it ran in under
/// `spans`.
fn init_logging(format: Option<&str>) -> Result<(), String> {
    let logs = tracing_subscriber::fmt().with_env_filter(
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
    );
    match format {
        None | Some("text") => logs.init(),
        Some("json") => logs
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(true)
            .init(),
        Some(_) => return Err("invalid `LOG_FORMAT`: must be text or json".to_owned()),
    }
    Ok(())
}

async fn run() -> Result<(), String> {
    let config = Config::from_env("DB").map_err(|e| rotapool_postgres::report(&e))?;
    let client = db::Client::from_env(std::env::var("DB_CLIENT").ok().as_deref())?;
    let listen = std::env::var("LISTEN_ADDR").unwrap_or_else(|_| "127.0.0.1:8080".to_owned());
    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .map_err(|e| format!("could not install the metrics recorder: {e}"))?;
    // One SDK configuration for the process: the engine probe and the pool share its credentials and connections.
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let engine = engine_of(&config, &sdk).await?;
    let db = db::Db::connect(client, &engine, &config, &sdk).await?;
    db.create_table().await.map_err(|e| e.0)?;
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .map_err(|e| format!("could not listen on {listen}: {e}"))?;
    tracing::info!(%listen, %engine, ?client, "serving");
    axum::serve(listener, routes::router(routes::App { db, metrics }))
        .with_graceful_shutdown(shutdown())
        .await
        .map_err(|e| e.to_string())?;
    tracing::info!("stopped gracefully");
    Ok(())
}

/// The secret's `engine` field, read once at start-up.
async fn engine_of(config: &Config, sdk: &aws_config::SdkConfig) -> Result<String, String> {
    let secret_id = config.secret_id.clone().ok_or(
        "`DB__SECRET_ID` is not set: name the Secrets Manager secret of the database account",
    )?;
    let mut source = AwsSecretsManager::builder(secret_id).sdk_config(sdk);
    if let Some(url) = &config.endpoint_url {
        source = source.endpoint_url(url);
    }
    if let Some(region) = &config.region {
        source = source.region(region);
    }
    let current = source
        .build()
        .await
        .fetch(Stage::Current)
        .await
        .map_err(|e| rotapool_postgres::report(&e))?;
    current
        .credentials
        .engine()
        .map(str::to_owned)
        .ok_or_else(|| {
            "the secret has no `engine` field; add `postgres` or `mysql` to it".to_owned()
        })
}

/// Resolves on SIGTERM or Ctrl-C.
async fn shutdown() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate => {}
    }
    tracing::info!("shutting down");
}
