//! The AWS Secrets Manager Agent (and the AWS Parameters and Secrets Lambda Extension): a local HTTP cache in
//! front of Secrets Manager, read with an SSRF token header.
//!
//! The contract this source relies on, as the Agent documents it: `GET /secretsmanager/get?secretId=..` with
//! `versionStage=..` and `refreshNow=true`, the token in `X-Aws-Parameters-Secrets-Token`, GetSecretValue's JSON
//! as the answer, 403 for a missing or wrong token, and Secrets Manager's own error (`__type`, `message`) with its
//! status otherwise.

use std::{
    fmt,
    path::PathBuf,
    sync::atomic::{AtomicU64, Ordering},
};

use async_trait::async_trait;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::{header::HeaderValue, Request, StatusCode, Uri};
use hyper_util::{
    client::legacy::{connect::HttpConnector, Client},
    rt::TokioExecutor,
};
use secrecy::{ExposeSecret, SecretString};

use super::contract::{parse_version, BoxError, SecretSource, SecretVersion, SourceError, Stage};

/// Where the Agent and the Lambda extension listen unless configured otherwise.
pub const DEFAULT_AGENT_URL: &str = "http://localhost:2773";

/// The header that carries the SSRF token.
pub const TOKEN_HEADER: &str = "X-Aws-Parameters-Secrets-Token";

/// The variables the Agent takes its token from, in its order: `AWS_TOKEN` (set by hand, a value or
/// `file://PATH`), `AWS_SESSION_TOKEN` (what the Lambda extension uses) and `AWS_CONTAINER_AUTHORIZATION_TOKEN`
/// (Lambda with SnapStart).
pub const TOKEN_VARIABLES: [&str; 3] = [
    "AWS_TOKEN",
    "AWS_SESSION_TOKEN",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
];

/// The most an answer may weigh: a secret value is at most 64 KiB, and the Agent's own buffer is 321 KiB.
const MAX_ANSWER_BYTES: usize = 1024 * 1024;

/// Reads an RDS secret through the Secrets Manager Agent or the Lambda extension on localhost.
///
/// A routine read ([`SecretSource::fetch`]) may be answered from the Agent's cache (300 s by default). The read a
/// pool makes after the database rejected its credentials ([`SecretSource::refetch`]) asks `refreshNow=true`, so
/// that the Agent reads Secrets Manager and a rotation is seen at once. Every read names its staging label. The
/// token is looked up at each request, so a token file that is replaced is picked up.
pub struct SecretsManagerAgent {
    secret_id: String,
    /// `http://host:port`, without a trailing slash.
    base: String,
    token: TokenSource,
    client: Client<HttpConnector, Empty<Bytes>>,
    requests: AtomicU64,
}

/// Builds a [`SecretsManagerAgent`]; see [`SecretsManagerAgent::builder`].
#[must_use]
#[derive(Clone)]
pub struct SecretsManagerAgentBuilder {
    secret_id: String,
    url: String,
    token: TokenSource,
}

/// Where the SSRF token comes from. Never holds a token read from the environment or a file: those are read at
/// each request.
#[derive(Clone)]
enum TokenSource {
    /// Given to the builder.
    Value(SecretString),
    /// The first of these variables that is set; a value `file://PATH` names a file that holds the token.
    Variables(Vec<String>),
    /// A file that holds the token (surrounding white space is ignored).
    File(PathBuf),
}

impl fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Value(_) => f.write_str("<redacted>"),
            Self::Variables(names) => write!(f, "from {}", names.join(", ")),
            Self::File(path) => write!(f, "from {}", path.display()),
        }
    }
}

impl SecretsManagerAgentBuilder {
    /// Sends requests to the Agent at `url`, an `http://` URL. Defaults to [`DEFAULT_AGENT_URL`]
    /// (`http://localhost:2773`). In Lambda, the extension listens on `PARAMETERS_SECRETS_EXTENSION_HTTP_PORT` if
    /// the function sets that variable.
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.url = url.into();
        self
    }

    /// Sends `token` as the SSRF token. Defaults to the Agent's own variables, [`TOKEN_VARIABLES`].
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = TokenSource::Value(SecretString::from(token.into()));
        self
    }

    /// Takes the token from the variable `name`, read at each request: the token itself, or `file://PATH` for a
    /// file that holds it. Defaults to the Agent's own variables, [`TOKEN_VARIABLES`], the first that is set.
    pub fn token_env(mut self, name: impl Into<String>) -> Self {
        self.token = TokenSource::Variables(vec![name.into()]);
        self
    }

    /// Takes the token from the file at `path` (the Agent's install script writes `/var/run/awssmatoken`), read at
    /// each request. Defaults to the Agent's own variables, [`TOKEN_VARIABLES`].
    pub fn token_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.token = TokenSource::File(path.into());
        self
    }

    /// Checks the URL and creates the source. Does not contact the Agent, and needs no runtime.
    pub fn build(self) -> Result<SecretsManagerAgent, InvalidAgentUrl> {
        let base = base_url(&self.url)?;
        let client = Client::builder(TokioExecutor::new())
            // One connection per read: reads are rare, and the Agent closes a connection after 61 s, which a
            // pooled one would meet at the worst time.
            .pool_max_idle_per_host(0)
            .build_http();
        Ok(SecretsManagerAgent {
            secret_id: self.secret_id,
            base,
            token: self.token,
            client,
            requests: AtomicU64::new(0),
        })
    }
}

impl fmt::Debug for SecretsManagerAgentBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretsManagerAgentBuilder")
            .field("secret_id", &self.secret_id)
            .field("url", &self.url)
            .field("token", &self.token)
            .finish()
    }
}

/// The URL given for the Agent cannot be used.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the Secrets Manager Agent URL `{url}` cannot be used: {reason}")]
#[non_exhaustive]
pub struct InvalidAgentUrl {
    /// The URL as given.
    pub url: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// `url` as `http://host[:port]`, or why it cannot be the Agent's.
fn base_url(url: &str) -> Result<String, InvalidAgentUrl> {
    let invalid = |reason| InvalidAgentUrl {
        url: url.to_owned(),
        reason,
    };
    let uri: Uri = url
        .parse()
        .map_err(|_| invalid("it is not a URL such as http://localhost:2773"))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some(_) => {
            return Err(invalid(
                "the Agent serves plain HTTP on localhost; use http://",
            ))
        }
        None => return Err(invalid("it has no scheme; use http://HOST:PORT")),
    }
    let authority = uri
        .authority()
        .ok_or_else(|| invalid("it has no host; use http://HOST:PORT"))?;
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err(invalid(
            "give only the scheme, host and port; the path is /secretsmanager/get",
        ));
    }
    Ok(format!("http://{authority}"))
}

impl SecretsManagerAgent {
    /// Starts a builder for the secret `secret_id`, a name or an ARN.
    pub fn builder(secret_id: impl Into<String>) -> SecretsManagerAgentBuilder {
        SecretsManagerAgentBuilder {
            secret_id: secret_id.into(),
            url: DEFAULT_AGENT_URL.to_owned(),
            token: TokenSource::Variables(TOKEN_VARIABLES.map(str::to_owned).to_vec()),
        }
    }

    /// The secret's name or ARN.
    pub fn secret_id(&self) -> &str {
        &self.secret_id
    }

    /// The Agent's address, `http://host:port`.
    pub fn url(&self) -> &str {
        &self.base
    }

    /// How many requests this source has sent to the Agent.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// The GET for the version labelled `stage`, past the Agent's cache if `refresh_now`, with the token.
    fn request(
        &self,
        stage: Stage,
        refresh_now: bool,
    ) -> Result<Request<Empty<Bytes>>, SourceError> {
        let token = self
            .token
            .resolve(|name| std::env::var(name).ok())
            .map_err(|e| self.other(e))?;
        let mut query = form_urlencoded::Serializer::new(String::new());
        query
            .append_pair("secretId", &self.secret_id)
            .append_pair("versionStage", stage.label());
        if refresh_now {
            query.append_pair("refreshNow", "true");
        }
        let uri = format!("{}/secretsmanager/get?{}", self.base, query.finish());
        let mut header = HeaderValue::from_str(token.expose_secret())
            .map_err(|_| self.other(AgentError::TokenNotAHeader))?;
        header.set_sensitive(true);
        Request::get(uri)
            .header(TOKEN_HEADER, header)
            .body(Empty::new())
            .map_err(|e| self.other(AgentError::Request(e.to_string())))
    }

    /// GETs the version labelled `stage`, past the Agent's cache if `refresh_now`.
    async fn get(&self, stage: Stage, refresh_now: bool) -> Result<SecretVersion, SourceError> {
        let request = self.request(stage, refresh_now)?;
        self.requests.fetch_add(1, Ordering::Relaxed);
        let answer = self.client.request(request).await.map_err(|e| {
            let what = if e.is_connect() {
                "did not accept a connection; check that the Agent runs and listens there"
            } else {
                "dropped the request before it answered; check that the Agent runs and listens there"
            };
            SourceError::Unreachable {
                secret_id: self.secret_id.clone(),
                source: Box::new(AgentError::Transport {
                    url: self.base.clone(),
                    what,
                    source: Box::new(e),
                }),
            }
        })?;
        let status = answer.status();
        let body = Limited::new(answer.into_body(), MAX_ANSWER_BYTES)
            .collect()
            .await
            .map_err(|e| SourceError::Unreachable {
                secret_id: self.secret_id.clone(),
                source: Box::new(AgentError::Transport {
                    url: self.base.clone(),
                    what: "broke off its answer",
                    source: e,
                }),
            })?
            .to_bytes();
        if status == StatusCode::OK {
            return self.version(stage, &body);
        }
        Err(self.refusal(stage, status, &body))
    }

    /// The version in a 200 answer: GetSecretValue's JSON.
    fn version(&self, stage: Stage, body: &[u8]) -> Result<SecretVersion, SourceError> {
        let answer: Answer = serde_json::from_slice(body).map_err(|e| {
            // serde's message can quote a value; only the position is kept.
            self.other(AgentError::Answer(format!(
                "it is not GetSecretValue's JSON ({:?} error at line {}, column {})",
                e.classify(),
                e.line(),
                e.column()
            )))
        })?;
        let version_id = answer
            .version_id
            .ok_or_else(|| self.other(AgentError::Answer("it has no VersionId".to_owned())))?;
        let text = answer.secret_string.ok_or_else(|| {
            self.other(AgentError::Answer(
                "it has no SecretString (a binary secret is not an RDS secret)".to_owned(),
            ))
        })?;
        parse_version(&self.secret_id, stage, version_id, &text)
    }

    /// The error for an answer other than 200.
    fn refusal(&self, stage: Stage, status: StatusCode, body: &[u8]) -> SourceError {
        let secret_id = self.secret_id.clone();
        if status == StatusCode::FORBIDDEN {
            return self.other(AgentError::TokenRefused {
                url: self.base.clone(),
                token: self.token.origin(),
            });
        }
        let fault: Fault = serde_json::from_slice(body).unwrap_or_default();
        let code = fault
            .code
            .as_deref()
            .map(|c| c.rsplit('#').next().unwrap_or(c));
        let says = |words: &str| fault.message.as_deref().is_some_and(|m| m.contains(words));
        let status_error = || {
            Box::new(AgentError::Status {
                url: self.base.clone(),
                status: status.as_u16(),
                code: code.map(str::to_owned),
                message: fault.message.clone(),
            })
        };
        match (code, status.as_u16()) {
            // Secrets Manager says ResourceNotFoundException for a missing secret and a missing label alike; its
            // message tells them apart (see the `aws` source).
            (Some("ResourceNotFoundException"), _) => match stage {
                Stage::Current if !says("secret value") => SourceError::NotFound { secret_id },
                stage => SourceError::StageNotFound { secret_id, stage },
            },
            (Some("AccessDeniedException"), _) => SourceError::AccessDenied {
                secret_id,
                action: "GetSecretValue",
                source: status_error(),
            },
            (
                Some(
                    "UnrecognizedClientException"
                    | "InvalidSignatureException"
                    | "ExpiredTokenException"
                    | "InvalidClientTokenId",
                ),
                _,
            ) => SourceError::Unauthenticated {
                secret_id,
                source: status_error(),
            },
            (Some("ThrottlingException" | "TooManyRequestsException"), _) | (_, 429) => {
                SourceError::Throttled {
                    secret_id,
                    source: status_error(),
                }
            }
            // 502 and 504: the Agent could not reach Secrets Manager in time; 500 and 503: a passing fault.
            (_, 500..=599) => SourceError::Unreachable {
                secret_id,
                source: status_error(),
            },
            _ => SourceError::Other {
                secret_id,
                source: status_error(),
            },
        }
    }

    fn other(&self, error: AgentError) -> SourceError {
        SourceError::Other {
            secret_id: self.secret_id.clone(),
            source: Box::new(error),
        }
    }
}

impl TokenSource {
    /// Where the token was taken from, for an error message.
    fn origin(&self) -> String {
        match self {
            Self::Value(_) => "as given to the source".to_owned(),
            Self::Variables(names) => format!("from the first set of {}", names.join(", ")),
            Self::File(path) => format!("from the file {}", path.display()),
        }
    }

    /// The token, looking variables up through `var`.
    fn resolve(&self, var: impl Fn(&str) -> Option<String>) -> Result<SecretString, AgentError> {
        match self {
            Self::Value(token) => Ok(token.clone()),
            Self::File(path) => read_token_file(path, None),
            Self::Variables(names) => {
                let found = names
                    .iter()
                    .find_map(|name| var(name).filter(|v| !v.is_empty()).map(|v| (name, v)));
                let Some((name, value)) = found else {
                    return Err(AgentError::TokenMissing {
                        variables: names.join(", "),
                    });
                };
                match value.strip_prefix("file://") {
                    Some(path) => read_token_file(&PathBuf::from(path), Some(name)),
                    None => Ok(SecretString::from(value)),
                }
            }
        }
    }
}

/// The token in the file at `path`, without surrounding white space; `variable` named the file, if one did.
fn read_token_file(path: &PathBuf, variable: Option<&str>) -> Result<SecretString, AgentError> {
    let unreadable = |reason: String| AgentError::TokenFile {
        path: path.clone(),
        variable: variable.map(str::to_owned),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| unreadable(e.kind().to_string()))?;
    let token = text.trim();
    if token.is_empty() {
        return Err(unreadable("it is empty".to_owned()));
    }
    Ok(SecretString::from(token.to_owned()))
}

/// GetSecretValue's answer, as the Agent relays it; only what the pool uses. Deliberately not `Debug`.
#[derive(serde::Deserialize)]
struct Answer {
    #[serde(rename = "VersionId")]
    version_id: Option<String>,
    #[serde(rename = "SecretString")]
    secret_string: Option<String>,
}

/// A Secrets Manager error as the Agent relays it: `{"__type": .., "message": ..}`.
#[derive(Debug, Default, serde::Deserialize)]
struct Fault {
    #[serde(rename = "__type")]
    code: Option<String>,
    #[serde(alias = "Message")]
    message: Option<String>,
}

/// What went wrong between the pool and the Agent, as the source of a [`SourceError`]. No message holds the token
/// or the secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AgentError {
    /// None of the token's variables is set.
    #[error(
        "no SSRF token for the Secrets Manager Agent: none of {variables} is set; set AWS_TOKEN to the token the \
         Agent was started with, or to file://PATH of its token file (/var/run/awssmatoken after the Agent's \
         install script); in Lambda, AWS_SESSION_TOKEN is set for you"
    )]
    TokenMissing {
        /// The variables looked at, in order.
        variables: String,
    },
    /// The token file could not be read, or is empty.
    #[error(
        "the SSRF token file {} {}could not be used: {reason}; check that it exists and that this service's user \
         may read it (the Agent's install script gives read access to the group awssmatokenreader)",
        path.display(),
        variable.as_ref().map(|v| format!("(named by {v}) ")).unwrap_or_default()
    )]
    TokenFile {
        /// The file.
        path: PathBuf,
        /// The variable that named it, if one did.
        variable: Option<String>,
        /// Why it could not be used.
        reason: String,
    },
    /// The token holds characters an HTTP header cannot carry.
    #[error("the SSRF token holds characters an HTTP header cannot carry (a line break?); check its source")]
    TokenNotAHeader,
    /// The Agent answered 403: the token was missing or wrong.
    #[error(
        "the Secrets Manager Agent at {url} refused the SSRF token (HTTP 403; the token was taken {token}); \
         give the pool the token the Agent was started with: AWS_TOKEN (the token, or file://PATH of its file), or \
         the token settings of the source"
    )]
    TokenRefused {
        /// The Agent's address.
        url: String,
        /// Where the token was taken from (never the token).
        token: String,
    },
    /// The request could not be made.
    #[error("the request to the Secrets Manager Agent could not be made: {0}")]
    Request(String),
    /// The Agent could not be reached, or its answer broke off.
    #[error("the Secrets Manager Agent at {url} {what}")]
    Transport {
        /// The Agent's address.
        url: String,
        /// What happened.
        what: &'static str,
        /// The HTTP client's error.
        #[source]
        source: BoxError,
    },
    /// The Agent answered with an error status.
    #[error(
        "the Secrets Manager Agent at {url} answered HTTP {status}{}{}",
        code.as_ref().map(|c| format!(": {c}")).unwrap_or_default(),
        message.as_ref().map(|m| format!(": {m}")).unwrap_or_default()
    )]
    Status {
        /// The Agent's address.
        url: String,
        /// The HTTP status.
        status: u16,
        /// Secrets Manager's error code (`__type`), if the answer had one.
        code: Option<String>,
        /// Secrets Manager's or the Agent's message, if any.
        message: Option<String>,
    },
    /// A 200 answer that is not a usable GetSecretValue answer.
    #[error("the Secrets Manager Agent's answer cannot be used: {0}")]
    Answer(String),
}

#[async_trait]
impl SecretSource for SecretsManagerAgent {
    fn secret_id(&self) -> &str {
        &self.secret_id
    }

    async fn fetch(&self, stage: Stage) -> Result<SecretVersion, SourceError> {
        self.get(stage, false).await
    }

    async fn refetch(&self, stage: Stage) -> Result<SecretVersion, SourceError> {
        self.get(stage, true).await
    }
}

impl fmt::Debug for SecretsManagerAgent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretsManagerAgent")
            .field("secret_id", &self.secret_id)
            .field("url", &self.base)
            .field("token", &self.token)
            .field("requests", &self.requests())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars<'a>(set: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            set.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    fn default_lookup() -> TokenSource {
        SecretsManagerAgent::builder("s").token
    }

    #[test]
    fn the_default_token_follows_the_agents_variables_in_order() {
        let token = default_lookup()
            .resolve(vars(&[
                ("AWS_SESSION_TOKEN", "session"),
                ("AWS_CONTAINER_AUTHORIZATION_TOKEN", "container"),
            ]))
            .unwrap();
        assert_eq!(token.expose_secret(), "session");
        let token = default_lookup()
            .resolve(vars(&[
                ("AWS_TOKEN", "mine"),
                ("AWS_SESSION_TOKEN", "session"),
            ]))
            .unwrap();
        assert_eq!(token.expose_secret(), "mine", "AWS_TOKEN comes first");
        let token = default_lookup()
            .resolve(vars(&[("AWS_CONTAINER_AUTHORIZATION_TOKEN", "snapstart")]))
            .unwrap();
        assert_eq!(token.expose_secret(), "snapstart");
    }

    #[test]
    fn a_missing_token_names_every_variable_and_how_to_set_one() {
        let err = default_lookup().resolve(vars(&[])).unwrap_err();
        let text = err.to_string();
        for name in TOKEN_VARIABLES {
            assert!(text.contains(name), "{text}");
        }
        assert!(text.contains("file://"), "{text}");
    }

    #[test]
    fn a_file_url_in_the_variable_is_read_at_each_lookup_and_trimmed() {
        let dir = std::env::temp_dir().join(format!("rotapool-agent-token-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("token");
        std::fs::write(&path, "first-token\n").unwrap();
        let value = format!("file://{}", path.display());
        let set = [("AWS_TOKEN", value.as_str())];
        let lookup = vars(&set);
        assert_eq!(
            default_lookup().resolve(&lookup).unwrap().expose_secret(),
            "first-token"
        );
        std::fs::write(&path, "second-token").unwrap();
        assert_eq!(
            default_lookup().resolve(&lookup).unwrap().expose_secret(),
            "second-token",
            "a replaced token file is picked up"
        );
        std::fs::remove_file(&path).unwrap();
        let err = default_lookup().resolve(&lookup).unwrap_err().to_string();
        assert!(
            err.contains("AWS_TOKEN") && err.contains(&path.display().to_string()),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn urls_other_than_plain_http_to_a_host_are_refused_by_name() {
        assert_eq!(
            base_url("http://localhost:2773").unwrap(),
            "http://localhost:2773"
        );
        assert_eq!(
            base_url("http://127.0.0.1:9/").unwrap(),
            "http://127.0.0.1:9"
        );
        for (url, words) in [
            ("https://localhost:2773", "plain HTTP"),
            ("localhost:2773", "scheme"),
            (
                "http://localhost:2773/secretsmanager/get",
                "only the scheme",
            ),
            ("not a url", "not a URL"),
        ] {
            let err = base_url(url).unwrap_err().to_string();
            assert!(err.contains(url) && err.contains(words), "{url}: {err}");
        }
    }

    #[test]
    fn debug_shows_where_the_token_comes_from_never_the_token() {
        let agent = SecretsManagerAgent::builder("db/app")
            .token("s3cr3t-token-value")
            .build()
            .unwrap();
        let text = format!("{agent:?}");
        assert!(!text.contains("s3cr3t-token-value"), "{text}");
        assert!(
            text.contains("<redacted>") && text.contains("db/app"),
            "{text}"
        );
        let builder = SecretsManagerAgent::builder("db/app").token("s3cr3t-token-value");
        assert!(!format!("{builder:?}").contains("s3cr3t-token-value"));
        let from_env = SecretsManagerAgent::builder("db/app").build().unwrap();
        assert!(format!("{from_env:?}").contains("AWS_TOKEN, AWS_SESSION_TOKEN"));
    }
}
