//! The shipped service policy (`deploy/iam/service-policy.json`) under moto's IAM enforcement: a pool whose keys
//! carry only that policy's actions serves connections, and one whose policy lacks `secretsmanager:GetSecretValue`
//! fails at start-up, refused by the store. moto checks actions, not resources (see [`service_policy`]).
//!
//! moto enforces IAM after its first `INITIAL_NO_AUTH_ACTION_COUNT` requests, for Secrets Manager too. That
//! setting is process-wide, so this binary starts a moto of its own; the setup (the secret, two IAM users with
//! their policies and access keys) spends exactly those unauthenticated requests, as raw HTTP calls.

#[macro_use]
mod conformance;

use std::{
    net::TcpListener,
    process::{Child, Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use conformance::{postgres::Postgres, secret_json, TestDb};
use rotapool_core::{source::AwsSecretsManager, BuildError, PoolBuilder, SourceError};
use rotapool_testkit::{random_password, unique_name, PgServer, TestServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Requests moto answers before it enforces IAM: CreateSecret, then CreateUser, PutUserPolicy and CreateAccessKey
/// for each of two users.
const SETUP_REQUESTS: usize = 7;

/// A moto_server of this test's own, enforcing IAM after the setup; stopped when dropped.
struct EnforcingMoto {
    child: Child,
    port: u16,
}

impl EnforcingMoto {
    fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let binary = std::env::var("ROTAPOOL_MOTO_SERVER").unwrap_or_else(|_| "moto_server".into());
        let child = Command::new(&binary)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .env("INITIAL_NO_AUTH_ACTION_COUNT", SETUP_REQUESTS.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("`{binary}` did not start ({e}); install moto (pip install 'moto[server]')")
            });
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "moto_server did not listen within 30 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { child, port }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// One unauthenticated request (moto routes it by the credential scope's service); returns status and body.
    async fn call(&self, service: &str, headers: &[(&str, &str)], body: &str) -> (u16, String) {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .expect("connect to moto");
        let mut request = format!(
            "POST / HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\nContent-Length: {}\r\n\
             Authorization: AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/{service}/aws4_request, \
             SignedHeaders=host, Signature=00\r\n",
            self.port,
            body.len()
        );
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        request.push_str(body);
        stream.write_all(request.as_bytes()).await.expect("send");
        let mut response = String::new();
        stream.read_to_string(&mut response).await.expect("read");
        let status = response
            .get(9..12)
            .and_then(|code| code.parse().ok())
            .unwrap_or(0);
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        (status, body)
    }

    async fn iam(&self, params: &[(&str, &str)]) -> String {
        let body: Vec<String> = params
            .iter()
            .chain(&[("Version", "2010-05-08")])
            .map(|(k, v)| format!("{k}={}", form_encode(v)))
            .collect();
        let (status, body) = self
            .call(
                "iam",
                &[("Content-Type", "application/x-www-form-urlencoded")],
                &body.join("&"),
            )
            .await;
        assert_eq!(status, 200, "IAM {params:?}: {body}");
        body
    }

    /// An IAM user with `policy` inline; returns its access key id and secret.
    async fn user_with_policy(&self, policy: &serde_json::Value) -> (String, String) {
        let name = unique_name("svc");
        self.iam(&[("Action", "CreateUser"), ("UserName", &name)])
            .await;
        self.iam(&[
            ("Action", "PutUserPolicy"),
            ("UserName", &name),
            ("PolicyName", "service"),
            ("PolicyDocument", &policy.to_string()),
        ])
        .await;
        let key = self
            .iam(&[("Action", "CreateAccessKey"), ("UserName", &name)])
            .await;
        (
            xml_value(&key, "AccessKeyId"),
            xml_value(&key, "SecretAccessKey"),
        )
    }
}

impl Drop for EnforcingMoto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn form_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn xml_value(xml: &str, tag: &str) -> String {
    let open = format!("<{tag}>");
    let start = xml.find(&open).expect("the tag is in the answer") + open.len();
    let end = start + xml[start..].find('<').expect("the tag closes");
    xml[start..end].to_owned()
}

/// The shipped service policy's actions, with `drop_action` removed if given.
///
/// moto 5 checks identity policies by action only: it evaluates every request against the resource `*` (its
/// `iam/access_control.py`: "once the Resource element in IAM policies is supported"), so a statement scoped to
/// the secret's ARN, as shipped, denies everything there. The statement's resource becomes `*` here; what this
/// test proves is that the policy's actions are enough, and that GetSecretValue among them is needed.
fn service_policy(drop_action: Option<&str>) -> serde_json::Value {
    let mut policy: serde_json::Value =
        serde_json::from_str(include_str!("../deploy/iam/service-policy.json"))
            .expect("the shipped policy parses");
    let read = &mut policy["Statement"][0];
    assert!(
        read["Resource"]
            .as_str()
            .is_some_and(|arn| arn.starts_with("arn:aws:secretsmanager:")),
        "the shipped policy names one secret"
    );
    read["Resource"] = serde_json::Value::from("*");
    if let Some(action) = drop_action {
        let actions = read["Action"].as_array_mut().expect("a list of actions");
        actions.retain(|a| a != action);
    }
    policy
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_policy_is_enough_and_get_secret_value_is_needed() {
    let db = Postgres(PgServer::shared());
    let moto = EnforcingMoto::start();
    let user = unique_name("app");
    let password = random_password();
    db.server().create_account(&user, &password).await;
    let create = serde_json::json!({
        "Name": unique_name("rotapool/iam"),
        "SecretString": secret_json(&db, &user, &password),
    });
    let (status, answer) = moto
        .call(
            "secretsmanager",
            &[
                ("Content-Type", "application/x-amz-json-1.1"),
                ("X-Amz-Target", "secretsmanager.CreateSecret"),
            ],
            &create.to_string(),
        )
        .await;
    assert_eq!(status, 200, "CreateSecret: {answer}");
    let arn = serde_json::from_str::<serde_json::Value>(&answer).unwrap()["ARN"]
        .as_str()
        .expect("an ARN")
        .to_owned();
    let allowed = moto.user_with_policy(&service_policy(None)).await;
    let denied = moto
        .user_with_policy(&service_policy(Some("secretsmanager:GetSecretValue")))
        .await;

    let pool_with = |(key, secret): (String, String)| {
        let (url, arn, backend) = (moto.url(), arn.clone(), db.backend());
        async move {
            let source = AwsSecretsManager::builder(arn)
                .endpoint_url(url)
                .region("us-east-1")
                .static_credentials(key, secret)
                .build()
                .await;
            PoolBuilder::new(backend)
                .secret_source(Arc::new(source))
                .max_size(2)
                .build()
                .await
        }
    };

    // The key without GetSecretValue first: it proves moto enforces IAM for Secrets Manager at all.
    //
    // Against AWS the denial is `SourceError::AccessDenied`: the service answers `{"__type":
    // "AccessDeniedException"}`. moto answers this JSON-protocol service's denial with an XML body (`<Code>
    // AccessDenied</Code>`, HTTP 403) from which the SDK reads no error code, so rotapool-core can only call it
    // `SourceError::Other`. The test therefore pins the denial by its words, wherever the variant lands.
    match pool_with(denied).await {
        Err(BuildError::Source(error)) => {
            let (SourceError::AccessDenied { secret_id, .. }
            | SourceError::Other { secret_id, .. }) = &error
            else {
                panic!("expected an access or store error, got {error:?}")
            };
            assert_eq!(secret_id, &arn);
            let chain = format!("{error:?}");
            assert!(
                chain.contains("not authorized to perform: secretsmanager:GetSecretValue"),
                "{chain}"
            );
        }
        Err(other) => panic!("expected the store's refusal, got {other:?}"),
        Ok(_) => panic!("a pool read the secret without secretsmanager:GetSecretValue"),
    }

    let pool = pool_with(allowed)
        .await
        .expect("the service policy lets the pool read its secret");
    let mut conn = pool.get().await.expect("a connection");
    db.ping(&mut conn).await.expect("SELECT 1");
}
