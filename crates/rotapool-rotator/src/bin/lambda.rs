//! The rotation Lambda: Secrets Manager invokes it once per step with `{SecretId, ClientRequestToken, Step}`.
//! The work is [`rotapool_rotator::lambda::RotationFunction`]; this file only wires it to the runtime.

use lambda_runtime::{service_fn, Error, LambdaEvent};
use rotapool_rotator::lambda::{RotationEvent, RotationFunction};

#[tokio::main]
async fn main() -> Result<(), Error> {
    // Honours AWS_LAMBDA_LOG_LEVEL / RUST_LOG and AWS_LAMBDA_LOG_FORMAT=JSON (Lambda's advanced logging controls).
    lambda_runtime::tracing::init_default_subscriber();
    // Built once per container: the SDK client (and its credentials and connections) serve every invocation.
    let function = RotationFunction::from_env().await?;
    lambda_runtime::run(service_fn(|event: LambdaEvent<RotationEvent>| {
        let function = function.clone();
        async move { function.handle(event).await }
    }))
    .await
}
