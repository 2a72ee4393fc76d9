//! The shipped policies' actions under moto's IAM enforcement.

use super::*;

// ---------------------------------------------------------------------------------------------------------------
// moto's IAM enforcement (INITIAL_NO_AUTH_ACTION_COUNT): it covers Secrets Manager, by action. That setting is
// process-wide, so each test here starts a moto of its own, whose first requests (IAM users with their policies and
// access keys, as raw HTTP calls) are the only unauthenticated ones.

/// A moto of a test's own (a local process or a container, as the other servers), enforcing IAM once `users` IAM
/// users have been set up (CreateUser, PutUserPolicy and CreateAccessKey each); stopped when dropped.
struct EnforcingMoto {
    server: MotoServer,
    port: u16,
}

impl EnforcingMoto {
    fn start(users: usize) -> Self {
        let server =
            MotoServer::private(&[("INITIAL_NO_AUTH_ACTION_COUNT", &(3 * users).to_string())]);
        let port = server.port();
        Self { server, port }
    }

    fn url(&self) -> String {
        self.server.endpoint_url()
    }

    /// A Secrets Manager client signing with `key`.
    fn client(&self, (key, secret): &(String, String)) -> Client {
        let config = aws_sdk_secretsmanager::Config::builder()
            .behavior_version(aws_sdk_secretsmanager::config::BehaviorVersion::latest())
            .region(aws_sdk_secretsmanager::config::Region::new("us-east-1"))
            .endpoint_url(self.url())
            .credentials_provider(aws_sdk_secretsmanager::config::Credentials::new(
                key,
                secret,
                None,
                None,
                "iam-tests",
            ))
            .build();
        Client::from_conf(config)
    }

    /// One unauthenticated IAM request (moto routes it by the credential scope); returns the answer's body.
    async fn iam(&self, params: &[(&str, &str)]) -> String {
        let body: Vec<String> = params
            .iter()
            .chain(&[("Version", "2010-05-08")])
            .map(|(k, v)| format!("{k}={}", form_encode(v)))
            .collect();
        let body = body.join("&");
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .expect("connect to moto");
        let request = format!(
            "POST / HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\nContent-Length: {}\r\n\
             Content-Type: application/x-www-form-urlencoded\r\n\
             Authorization: AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/iam/aws4_request, \
             SignedHeaders=host, Signature=00\r\n\r\n{body}",
            self.port,
            body.len()
        );
        stream.write_all(request.as_bytes()).await.expect("send");
        let mut response = String::new();
        stream.read_to_string(&mut response).await.expect("read");
        assert!(
            response.starts_with("HTTP/1.1 200"),
            "IAM {params:?}: {response}"
        );
        response
    }

    /// An IAM user with `policy` inline; returns its access key id and secret.
    async fn user_with_policy(&self, policy: serde_json::Value) -> (String, String) {
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
        serde_json::from_str(include_str!("../../deploy/iam/service-policy.json"))
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

/// An identity policy allowing `actions` on every resource (moto evaluates resources as `*`; see
/// [`service_policy`]).
fn allow(actions: &[impl AsRef<str>]) -> serde_json::Value {
    let actions: Vec<&str> = actions.iter().map(AsRef::as_ref).collect();
    serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{ "Effect": "Allow", "Action": actions, "Resource": "*" }],
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_policy_is_enough_and_get_secret_value_is_needed() {
    let db = pg();
    let moto = EnforcingMoto::start(3);
    let admin = moto.client(&moto.user_with_policy(allow(&["secretsmanager:*"])).await);
    let allowed = moto.user_with_policy(service_policy(None)).await;
    let denied = moto
        .user_with_policy(service_policy(Some("secretsmanager:GetSecretValue")))
        .await;
    let (user, password) = (unique_name("app"), random_password());
    db.server().create_account(&user, &password).await;
    let arn = admin
        .create_secret()
        .name(unique_name("rotapool/iam"))
        .secret_string(secret_json(&db, &user, &password))
        .send()
        .await
        .expect("CreateSecret as the admin")
        .arn()
        .expect("an ARN")
        .to_owned();

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
    // Against AWS the denial is `{"__type": "AccessDeniedException"}`. moto answers this JSON-protocol service's
    // denial with an XML body (`<Code>AccessDenied</Code>`, HTTP 403) from which the SDK reads no error code;
    // rotapool-core reads an HTTP 403 without a code as a denial too, so both are `SourceError::AccessDenied`,
    // naming the action to grant.
    match pool_with(denied).await {
        Err(BuildError::Source(error)) => {
            let SourceError::AccessDenied {
                secret_id, action, ..
            } = &error
            else {
                panic!("expected the store's refusal, got {error:?}")
            };
            assert_eq!((secret_id, *action), (&arn, "GetSecretValue"));
            assert!(
                error
                    .to_string()
                    .contains("grant secretsmanager:GetSecretValue"),
                "{error}"
            );
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

/// The rotation function's role as the SAM template grants it on the secret, without GetRandomPassword: a full
/// rotation through the handler still succeeds, with a password from the local generator, and the log says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_get_random_password_the_lambda_uses_its_own_generator() {
    let db = pg();
    let moto = EnforcingMoto::start(2);
    let admin = moto.client(&moto.user_with_policy(allow(&["secretsmanager:*"])).await);
    let template = include_str!("../../deploy/sam/template.yaml");
    let on_secret: Vec<String> = template
        .lines()
        .skip_while(|l| !l.contains("Sid: TheFourStepsOnTheRotatedSecret"))
        .take_while(|l| !l.contains("Resource:"))
        .filter_map(|l| l.trim().strip_prefix("- secretsmanager:"))
        .map(|action| format!("secretsmanager:{action}"))
        .collect();
    assert_eq!(
        on_secret.len(),
        4,
        "the template's actions on the secret: {on_secret:?}"
    );
    let role = moto.client(&moto.user_with_policy(allow(&on_secret)).await);

    let (user, password) = (unique_name("app"), random_password());
    db.server().create_account(&user, &password).await;
    let secret_id = unique_name("rotapool/iam");
    admin
        .create_secret()
        .name(&secret_id)
        .secret_string(secret_json(&db, &user, &password))
        .send()
        .await
        .expect("CreateSecret as the admin");
    let token = rotation_token();
    begin_rotation(&admin, &secret_id, &token).await;
    let function = Lambda::new(
        role,
        Settings {
            ssl_mode: SslMode::Require,
            ..Settings::default()
        },
    );
    run_all_steps(&function, &secret_id, &token).await;

    let current = read(&admin, &secret_id, None, Some(Stage::Current))
        .await
        .unwrap();
    assert_rejected(&db, &user, &password).await;
    assert_accepted(&db, &user, current.password(), "the rotated password").await;
    assert!(
        current
            .password()
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.~".contains(c)),
        "the local generator's alphabet"
    );
    assert!(
        function.logs().lines().any(|l| l.contains(&secret_id)
            && l.contains("GetRandomPassword denied; new password from the local generator")),
        "the log says the password came from the local generator"
    );
    function.assert_logs_hide(&[&password, current.password()]);
}
