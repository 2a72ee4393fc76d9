//! The one Secrets Manager adapter (rotapool-core's `AwsSecretsManager`), which pools and the function share,
//! against moto: its errors name what is missing, and the calls only the function makes (DescribeSecret,
//! GetRandomPassword, PutSecretValue and UpdateSecretVersionStage through `SecretAdmin`) do what they say.

use rotapool_core::{
    source::{SecretAdmin, SecretDescription},
    SecretSource, Stage,
};

use super::*;

async fn adapter(client: &Client, secret_id: &str) -> AwsSecretsManager {
    AwsSecretsManager::builder(secret_id)
        .client(client.clone())
        .build()
        .await
}

/// A missing secret, a missing label and a missing version each read as what they are:
/// the pool's refresh skips a missing label, and the rotator reads a missing label or version as "not yet".
/// (moto answers a missing label as a missing secret; the adapter goes by what it asked for.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_secret_label_or_version_is_named_as_such() {
    let client = MotoServer::shared().client().await;
    let missing = adapter(&client, &unique_name("rotapool/missing")).await;
    let error = missing.fetch(Stage::Current).await.unwrap_err();
    assert!(matches!(error, SourceError::NotFound { .. }), "{error:?}");
    assert!(
        error.to_string().contains("check the secret name"),
        "{error}"
    );

    let secret_id = unique_name("rotapool/store");
    let version = MotoServer::shared()
        .create_secret(&secret_id, r#"{"username":"app","password":"pw"}"#)
        .await;
    let store = adapter(&client, &secret_id).await;
    let error = store.fetch(Stage::Pending).await.unwrap_err();
    assert!(
        matches!(
            error,
            SourceError::StageNotFound {
                stage: Stage::Pending,
                ..
            }
        ),
        "{error:?}"
    );
    assert!(store.read_stage(Stage::Pending).await.unwrap().is_none());
    assert!(store
        .read_version(&rotation_token())
        .await
        .unwrap()
        .is_none());
    let current = store
        .read_version(&version)
        .await
        .unwrap()
        .expect("the first version");
    assert_eq!(current.stages, vec![Stage::Current]);
    // A secret created without a value: AWS says "can't find the specified secret value for staging label:
    // AWSCURRENT", which the adapter reads as a missing label (its unit tests); moto says the secret is missing.
}

/// The function's writes through the shared adapter: a pending version, AWSCURRENT moved onto it with the old
/// version left AWSPREVIOUS (a second move changes nothing), DescribeSecret's view of it, and GetRandomPassword.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_functions_calls_write_and_describe_the_secret() {
    let client = MotoServer::shared().client().await;
    let secret_id = unique_name("rotapool/store");
    let first = MotoServer::shared()
        .create_secret(&secret_id, r#"{"username":"app","password":"pw"}"#)
        .await;
    let store = adapter(&client, &secret_id).await;
    let token = rotation_token();
    store
        .put_pending(&token, r#"{"username":"app","password":"pw2"}"#)
        .await
        .expect("PutSecretValue");
    store
        .put_pending(&token, r#"{"username":"app","password":"pw2"}"#)
        .await
        .expect("the same PutSecretValue again");
    let described: SecretDescription = store.describe().await.expect("DescribeSecret");
    assert_eq!(described.holder(Stage::Current), Some(first.as_str()));
    assert_eq!(described.versions.get(&token), Some(&vec![Stage::Pending]));
    assert!(!described.rotation_enabled);

    store
        .promote(&token)
        .await
        .expect("UpdateSecretVersionStage");
    store
        .promote(&token)
        .await
        .expect("a second promote changes nothing");
    let described = store.describe().await.expect("DescribeSecret");
    assert_eq!(described.holder(Stage::Current), Some(token.as_str()));
    assert_eq!(described.holder(Stage::Previous), Some(first.as_str()));
    let current = store.fetch(Stage::Current).await.expect("AWSCURRENT");
    assert_eq!(current.version_id, token);

    // Its length and exclusions are checked where the function uses it (steps.rs).
    store
        .random_password(24, "abc")
        .await
        .expect("GetRandomPassword");
}
