//! The rotation Lambda: Secrets Manager invokes it once per step with `{SecretId, ClientRequestToken, Step}`.

use std::sync::Arc;

use lambda_runtime::{service_fn, Error, LambdaEvent};
use rotapool_core::{
    source::{AwsSecretsManager, SecretAdmin},
    Credentials, SslMode, Stage,
};
use rotapool_mysql::MySqlBackend;
use rotapool_postgres::PgBackend;
use rotapool_rotator::{RotationTarget, Rotator, Step, Strategy};
use serde::Deserialize;

/// The event Secrets Manager sends to a rotation function.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RotationEvent {
    secret_id: String,
    client_request_token: String,
    step: String,
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(handle)).await
}

async fn handle(event: LambdaEvent<RotationEvent>) -> Result<(), Error> {
    let RotationEvent {
        secret_id,
        client_request_token: token,
        step,
    } = event.payload;
    let step: Step = step.parse()?;
    let secrets = Arc::new(AwsSecretsManager::builder(&secret_id).build().await);
    let current = secrets
        .read_stage(Stage::Current)
        .await?
        .ok_or("the secret has no AWSCURRENT version")?;
    let credentials = Credentials::from_secret_json(current.text())?;
    let strategy = match credentials.master_arn() {
        Some(arn) => Strategy::AlternatingUsers {
            master: Arc::new(AwsSecretsManager::builder(arn).build().await),
        },
        None => Strategy::SingleUser,
    };
    let (mode, ca_file) = tls_from_env()?;
    match credentials.engine().unwrap_or("postgres") {
        "postgres" | "aurora-postgresql" => {
            let mut backend = PgBackend::new().ssl_mode(mode);
            if let Some(path) = &ca_file {
                backend = backend.ca_file(path)?;
            }
            run(secrets, backend, strategy, step, &token).await
        }
        "mysql" | "mariadb" | "aurora-mysql" | "aurora" => {
            let mut backend = MySqlBackend::new().ssl_mode(mode);
            if let Some(path) = &ca_file {
                backend = backend.ca_file(path)?;
            }
            run(secrets, backend, strategy, step, &token).await
        }
        other => Err(format!("unsupported engine `{other}` in the secret").into()),
    }
}

async fn run<T: RotationTarget>(
    secrets: Arc<AwsSecretsManager>,
    target: T,
    strategy: Strategy,
    step: Step,
    token: &str,
) -> Result<(), Error> {
    Ok(Rotator::new(secrets, target, strategy)
        .run(step, token)
        .await?)
}

fn tls_from_env() -> Result<(SslMode, Option<String>), Error> {
    let mode = match std::env::var("ROTAPOOL_SSL_MODE").as_deref() {
        Err(_) | Ok("require") => SslMode::Require,
        Ok("disable") => SslMode::Disable,
        Ok("verify-full") => SslMode::VerifyFull,
        Ok(other) => {
            return Err(
                format!("ROTAPOOL_SSL_MODE `{other}`: use disable, require or verify-full").into(),
            )
        }
    };
    Ok((mode, std::env::var("ROTAPOOL_CA_FILE").ok()))
}
