//! An emulator of the AWS Secrets Manager Agent's HTTP contract, over moto.
//!
//! What it implements, as the Agent's README and source document it:
//! - `GET /secretsmanager/get?secretId=..[&versionStage=..][&versionId=..][&refreshNow=true|false|1|0]`, answering
//!   GetSecretValue's JSON (`ARN`, `Name`, `VersionId`, `SecretString`, `VersionStages`, `CreatedDate`);
//! - the SSRF token: `X-Aws-Parameters-Secrets-Token` or `X-Vault-Token` must equal the token, else 403
//!   `Bad Token`; a request with `X-Forwarded-For` gets 400; `GET /ping` answers `healthy` without a token;
//! - 405 for a method other than GET, 404 for another path, 400 for an unknown parameter, a missing `secretId` or
//!   a `refreshNow` that is not a boolean;
//! - a cache per (secretId, versionId, versionStage) with a TTL (0: no caching): a request within the TTL is
//!   answered from it, whatever happened to the secret since; after the TTL, the next request reads moto again;
//! - `refreshNow=true` reads moto whatever the cache holds, and replaces the cache entry (and its age) on success;
//!   on failure it answers the error and leaves the cache as it was;
//! - Secrets Manager's errors relayed with moto's status and `{"__type": code, "message": ..}`; a timeout as 504
//!   and a network failure as 502, as the Agent does.
//!
//! What it leaves out: path-style requests (`/v1/<secretId>`), the connection limit (429), the cache size, the
//! DescribeSecret check the Agent makes before re-reading an expired entry (this emulator re-reads with
//! GetSecretValue), binary secrets, and the Agent's configuration file.

use std::{
    collections::HashMap,
    convert::Infallible,
    net::SocketAddr,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use aws_sdk_secretsmanager::{error::ProvideErrorMetadata, error::SdkError, Client};
use bytes::Bytes;
use http_body_util::Full;
use hyper::{body::Incoming, server::conn::http1, service::service_fn, Method, Request, Response};
use hyper_util::rt::TokioIo;

use crate::MotoServer;

/// The headers the Agent looks for the token in, by default.
const TOKEN_HEADERS: [&str; 2] = ["X-Aws-Parameters-Secrets-Token", "X-Vault-Token"];

/// A running emulator on 127.0.0.1; dropping it stops it, open connections included (the port closes once the
/// runtime has cancelled the server's task).
#[derive(Debug)]
pub struct AgentEmulator {
    addr: SocketAddr,
    state: Arc<State>,
    server: tokio::task::JoinHandle<()>,
}

/// Counters of what the emulator was asked and what it asked moto.
#[derive(Debug, Default)]
struct Counters {
    requests: AtomicU64,
    refresh_now: AtomicU64,
    upstream: AtomicU64,
    refused_tokens: AtomicU64,
}

/// One cache key: secretId, versionId, versionStage.
type Key = (String, Option<String>, Option<String>);

struct State {
    client: Client,
    token: String,
    ttl: Duration,
    cache: Mutex<HashMap<Key, (String, Instant)>>,
    counters: Counters,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("ttl", &self.ttl)
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

impl AgentEmulator {
    /// Starts an emulator in front of `moto` that takes `token` and caches for `ttl`, on a free port of
    /// 127.0.0.1, as a task of the current runtime.
    pub async fn start(moto: &MotoServer, token: &str, ttl: Duration) -> AgentEmulator {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("bind the Agent emulator to a free port of 127.0.0.1");
        let addr = listener.local_addr().expect("the emulator's address");
        let state = Arc::new(State {
            client: moto.client().await,
            token: token.to_owned(),
            ttl,
            cache: Mutex::new(HashMap::new()),
            counters: Counters::default(),
        });
        let server = tokio::spawn(serve(listener, Arc::clone(&state)));
        AgentEmulator {
            addr,
            state,
            server,
        }
    }

    /// The emulator's URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The token it takes.
    pub fn token(&self) -> &str {
        &self.state.token
    }

    /// A source that reads `secret_id` through this emulator with its token.
    pub fn source(&self, secret_id: &str) -> rotapool_core::source::SecretsManagerAgent {
        rotapool_core::source::SecretsManagerAgent::builder(secret_id)
            .url(self.url())
            .token(self.token())
            .build()
            .expect("the emulator's URL is a valid Agent URL")
    }

    /// Requests for secrets so far (`/ping` aside), refused ones included.
    pub fn requests(&self) -> u64 {
        self.state.counters.requests.load(Ordering::Relaxed)
    }

    /// Requests that asked `refreshNow=true`.
    pub fn refresh_now_requests(&self) -> u64 {
        self.state.counters.refresh_now.load(Ordering::Relaxed)
    }

    /// GetSecretValue calls made to moto.
    pub fn upstream_reads(&self) -> u64 {
        self.state.counters.upstream.load(Ordering::Relaxed)
    }

    /// Requests refused for a missing or wrong token.
    pub fn refused_tokens(&self) -> u64 {
        self.state.counters.refused_tokens.load(Ordering::Relaxed)
    }
}

impl Drop for AgentEmulator {
    fn drop(&mut self) {
        // The connections are tasks of a JoinSet the server task owns: aborting it drops them all.
        self.server.abort();
    }
}

async fn serve(listener: tokio::net::TcpListener, state: Arc<State>) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        while connections.try_join_next().is_some() {}
        let state = Arc::clone(&state);
        connections.spawn(async move {
            let service = service_fn(move |request| {
                let state = Arc::clone(&state);
                async move { Ok::<_, Infallible>(respond(&state, request).await) }
            });
            // A client that hangs up mid-request is no failure of the emulator.
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn respond(state: &State, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let (status, body) = answer(state, &request).await;
    Response::builder()
        .status(status)
        .body(Full::new(Bytes::from(body)))
        .expect("a status and a body make a response")
}

/// The status and body for `request`, in the order the Agent checks: token, method, path, parameters.
async fn answer(state: &State, request: &Request<Incoming>) -> (u16, String) {
    if request.uri().path() == "/ping" {
        return (200, "healthy".to_owned());
    }
    let counters = &state.counters;
    counters.requests.fetch_add(1, Ordering::Relaxed);
    let headers = request.headers();
    if headers.contains_key("X-Forwarded-For") {
        return (400, "Forwarded".to_owned());
    }
    let token_ok = TOKEN_HEADERS.iter().any(|name| {
        headers
            .get(*name)
            .is_some_and(|value| value.as_bytes() == state.token.as_bytes())
    });
    if !token_ok {
        counters.refused_tokens.fetch_add(1, Ordering::Relaxed);
        return (403, "Bad Token".to_owned());
    }
    if request.method() != Method::GET {
        return (405, "Not allowed".to_owned());
    }
    if request.uri().path() != "/secretsmanager/get" {
        return (404, "Not found".to_owned());
    }
    let query = match Query::parse(request.uri().query().unwrap_or("")) {
        Ok(query) => query,
        Err(reason) => return (400, reason),
    };
    if query.refresh_now {
        counters.refresh_now.fetch_add(1, Ordering::Relaxed);
    }
    state.get(query).await
}

/// A `/secretsmanager/get` request's parameters.
struct Query {
    secret_id: String,
    version_id: Option<String>,
    version_stage: Option<String>,
    refresh_now: bool,
}

impl Query {
    fn parse(query: &str) -> Result<Query, String> {
        let mut parsed = Query {
            secret_id: String::new(),
            version_id: None,
            version_stage: None,
            refresh_now: false,
        };
        for (name, value) in form_urlencoded::parse(query.as_bytes()) {
            match name.as_ref() {
                "secretId" => parsed.secret_id = value.into_owned(),
                "versionId" => parsed.version_id = Some(value.into_owned()),
                "versionStage" => parsed.version_stage = Some(value.into_owned()),
                "refreshNow" => {
                    parsed.refresh_now = match value.to_lowercase().as_str() {
                        "true" | "1" => true,
                        "false" | "0" => false,
                        _ => return Err("invalid refreshNow value".to_owned()),
                    }
                }
                other => return Err(format!("unknown parameter: {other}")),
            }
        }
        if parsed.secret_id.is_empty() {
            return Err("missing parameter secretId".to_owned());
        }
        Ok(parsed)
    }
}

impl State {
    /// The cached answer within the TTL, unless `refreshNow`; else moto's, cached on success.
    async fn get(&self, query: Query) -> (u16, String) {
        let key: Key = (
            query.secret_id.clone(),
            query.version_id.clone(),
            query.version_stage.clone(),
        );
        if !query.refresh_now {
            let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((body, at)) = cache.get(&key) {
                if at.elapsed() < self.ttl {
                    return (200, body.clone());
                }
            }
        }
        self.counters.upstream.fetch_add(1, Ordering::Relaxed);
        let read = self
            .client
            .get_secret_value()
            .secret_id(&query.secret_id)
            .set_version_id(query.version_id)
            .set_version_stage(query.version_stage)
            .send()
            .await;
        match read {
            Ok(out) => {
                let body = serde_json::json!({
                    "ARN": out.arn(),
                    "Name": out.name(),
                    "VersionId": out.version_id(),
                    "SecretString": out.secret_string(),
                    "VersionStages": out.version_stages(),
                    "CreatedDate": out.created_date().map(|at| {
                        format!("{}.{:03}", at.secs(), at.subsec_nanos() / 1_000_000)
                    }),
                })
                .to_string();
                self.cache
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(key, (body.clone(), Instant::now()));
                (200, body)
            }
            Err(error) => relay(&error),
        }
    }
}

/// A Secrets Manager error as the Agent relays it.
fn relay<E: ProvideErrorMetadata>(
    error: &SdkError<E, aws_sdk_secretsmanager::config::http::HttpResponse>,
) -> (u16, String) {
    let fault = |status: u16, code: &str, message: &str| {
        (
            status,
            serde_json::json!({ "__type": code, "message": message }).to_string(),
        )
    };
    match error {
        SdkError::ServiceError(service) => {
            let code = service.err().code().unwrap_or("InternalFailure");
            let message = service.err().message().unwrap_or_default();
            fault(service.raw().status().as_u16(), code, message)
        }
        SdkError::TimeoutError(_) => fault(504, "TimeoutError", "Timeout"),
        SdkError::DispatchFailure(failure) if failure.is_timeout() => {
            fault(504, "TimeoutError", "Timeout")
        }
        SdkError::DispatchFailure(failure) if failure.is_io() => {
            fault(502, "ConnectionError", "Read Error")
        }
        SdkError::ResponseError(_) => fault(502, "ConnectionError", "Response Error"),
        _ => (500, r#"{"__type":"InternalFailure"}"#.to_owned()),
    }
}
