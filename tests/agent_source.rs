//! The Secrets Manager Agent source against the testkit's emulator of the Agent's documented contract, over moto:
//! the token check, the stages, the cache with its TTL, refreshNow, and an Agent that is not there.

use std::time::Duration;

use rotapool_core::{
    source::{AgentError, SecretsManagerAgent},
    Credentials, SecretSource, SourceError, Stage,
};
use rotapool_testkit::{error_chain, unique_name, AgentEmulator, MotoServer};

const TOKEN: &str = "agent-token-7f3a9c";
const LONG_TTL: Duration = Duration::from_secs(300);

fn secret(password: &str) -> String {
    Credentials::new("app", password).to_secret_json()
}

/// A new secret in moto holding `password`; returns its name.
async fn new_secret(password: &str) -> String {
    let name = unique_name("rotapool/agent");
    MotoServer::shared()
        .create_secret(&name, &secret(password))
        .await;
    name
}

async fn put_pending(name: &str, password: &str) {
    MotoServer::shared()
        .client()
        .await
        .put_secret_value()
        .secret_id(name)
        .secret_string(secret(password))
        .client_request_token(rotapool_testkit::rotation_token())
        .version_stages("AWSPENDING")
        .send()
        .await
        .expect("PutSecretValue AWSPENDING on moto");
}

async fn password(source: &SecretsManagerAgent, stage: Stage) -> String {
    source
        .fetch(stage)
        .await
        .unwrap_or_else(|e| panic!("{stage}: {}", error_chain(&e)))
        .credentials
        .password()
        .to_owned()
}

fn agent_error(err: &SourceError) -> &AgentError {
    match err {
        SourceError::Other { source, .. } => source
            .downcast_ref::<AgentError>()
            .unwrap_or_else(|| panic!("not an Agent error: {}", error_chain(err))),
        other => panic!("expected SourceError::Other, got {}", error_chain(other)),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_token_is_a_typed_error_that_names_the_variables_and_sends_nothing() {
    let agent = AgentEmulator::start(MotoServer::shared(), TOKEN, LONG_TTL).await;
    let name = new_secret("pw-missing-token").await;
    let source = SecretsManagerAgent::builder(&name)
        .url(agent.url())
        .token_env("ROTAPOOL_TEST_AGENT_TOKEN_NEVER_SET")
        .build()
        .unwrap();
    let err = source.fetch(Stage::Current).await.unwrap_err();
    assert!(
        matches!(agent_error(&err), AgentError::TokenMissing { .. }),
        "{err:?}"
    );
    let text = error_chain(&err);
    assert!(
        text.contains("ROTAPOOL_TEST_AGENT_TOKEN_NEVER_SET") && text.contains("AWS_TOKEN"),
        "{text}"
    );
    assert_eq!(agent.requests(), 0, "no request without a token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_token_is_refused_with_a_typed_error_that_says_how_to_set_it_and_never_shows_it() {
    let agent = AgentEmulator::start(MotoServer::shared(), TOKEN, LONG_TTL).await;
    let name = new_secret("pw-wrong-token").await;
    let source = SecretsManagerAgent::builder(&name)
        .url(agent.url())
        .token("not-the-agents-token")
        .build()
        .unwrap();
    let err = source.fetch(Stage::Current).await.unwrap_err();
    assert!(
        matches!(agent_error(&err), AgentError::TokenRefused { .. }),
        "{err:?}"
    );
    assert_eq!(agent.refused_tokens(), 1, "the emulator refused it");
    assert_eq!(agent.upstream_reads(), 0);
    let text = error_chain(&err);
    assert!(
        text.contains("AWS_TOKEN") && text.contains("as given to the source"),
        "{text}"
    );
    for shown in [text, format!("{err:?}"), format!("{source:?}")] {
        assert!(!shown.contains("not-the-agents-token"), "{shown}");
        assert!(!shown.contains(TOKEN), "{shown}");
        assert!(!shown.contains("pw-wrong-token"), "{shown}");
    }
    // The right token from a file, read at the request.
    let dir = std::env::temp_dir().join(unique_name("rotapool-agent-token"));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("awssmatoken");
    std::fs::write(&file, format!("{TOKEN}\n")).unwrap();
    let from_file = SecretsManagerAgent::builder(&name)
        .url(agent.url())
        .token_file(&file)
        .build()
        .unwrap();
    assert_eq!(password(&from_file, Stage::Current).await, "pw-wrong-token");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_stage_is_read_by_its_label_and_a_missing_one_is_typed() {
    let agent = AgentEmulator::start(MotoServer::shared(), TOKEN, LONG_TTL).await;
    let name = new_secret("one").await;
    let source = agent.source(&name);
    let err = source.fetch(Stage::Pending).await.unwrap_err();
    assert!(
        matches!(
            err,
            SourceError::StageNotFound {
                stage: Stage::Pending,
                ..
            }
        ),
        "{}",
        error_chain(&err)
    );
    MotoServer::shared()
        .put_current(&name, &secret("two"))
        .await;
    put_pending(&name, "three").await;
    assert_eq!(password(&source, Stage::Current).await, "two");
    assert_eq!(password(&source, Stage::Previous).await, "one");
    assert_eq!(password(&source, Stage::Pending).await, "three");

    let missing = agent.source(&unique_name("rotapool/agent-missing"));
    let err = missing.fetch(Stage::Current).await.unwrap_err();
    assert!(
        matches!(err, SourceError::NotFound { .. }),
        "{}",
        error_chain(&err)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn within_the_ttl_the_cached_value_is_served_and_refresh_now_reads_the_new_one() {
    let agent = AgentEmulator::start(MotoServer::shared(), TOKEN, LONG_TTL).await;
    let name = new_secret("before").await;
    let source = agent.source(&name);
    assert_eq!(password(&source, Stage::Current).await, "before");
    assert_eq!(agent.upstream_reads(), 1);

    MotoServer::shared()
        .put_current(&name, &secret("after"))
        .await;
    assert_eq!(
        password(&source, Stage::Current).await,
        "before",
        "the Agent's cache answers within its TTL, whatever moto holds"
    );
    assert_eq!(agent.upstream_reads(), 1, "answered from the cache");

    let fresh = source
        .refetch(Stage::Current)
        .await
        .unwrap_or_else(|e| panic!("{}", error_chain(&e)));
    assert_eq!(fresh.credentials.password(), "after");
    assert_eq!(agent.refresh_now_requests(), 1);
    assert_eq!(agent.upstream_reads(), 2);
    assert_eq!(
        password(&source, Stage::Current).await,
        "after",
        "refreshNow replaced the cached value"
    );
    assert_eq!(agent.upstream_reads(), 2);
    assert_eq!(agent.requests(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_ttl_the_next_read_reaches_moto() {
    let ttl = Duration::from_millis(300);
    let agent = AgentEmulator::start(MotoServer::shared(), TOKEN, ttl).await;
    let name = new_secret("before").await;
    let source = agent.source(&name);
    assert_eq!(password(&source, Stage::Current).await, "before");
    MotoServer::shared()
        .put_current(&name, &secret("after"))
        .await;
    // Only a lower bound: once the TTL has passed, the entry is stale however slow the machine is.
    tokio::time::sleep(ttl * 2).await;
    assert_eq!(password(&source, Stage::Current).await, "after");
    assert_eq!(agent.upstream_reads(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_that_is_not_there_is_unreachable_naming_its_url() {
    let agent = AgentEmulator::start(MotoServer::shared(), TOKEN, LONG_TTL).await;
    let name = new_secret("pw-dead").await;
    let source = agent.source(&name);
    assert_eq!(password(&source, Stage::Current).await, "pw-dead");
    let url = agent.url();
    drop(agent);
    let err = source.fetch(Stage::Current).await.unwrap_err();
    assert!(
        matches!(err, SourceError::Unreachable { .. }),
        "{}",
        error_chain(&err)
    );
    assert!(err.is_transient());
    let text = error_chain(&err);
    assert!(text.contains(&url) && text.contains("runs"), "{text}");
    assert!(!text.contains(TOKEN) && !text.contains("pw-dead"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_secret_through_the_agent_is_invalid_content_and_its_value_is_never_shown() {
    let agent = AgentEmulator::start(MotoServer::shared(), TOKEN, LONG_TTL).await;
    let name = unique_name("rotapool/agent-bad");
    MotoServer::shared()
        .create_secret(
            &name,
            r#"{"username":"app","password":"leak-me-not","port":"x"}"#,
        )
        .await;
    let err = agent.source(&name).fetch(Stage::Current).await.unwrap_err();
    assert!(
        matches!(err, SourceError::InvalidContent { .. }),
        "{}",
        error_chain(&err)
    );
    for shown in [error_chain(&err), format!("{err:?}")] {
        assert!(!shown.contains("leak-me-not"), "{shown}");
    }
}
