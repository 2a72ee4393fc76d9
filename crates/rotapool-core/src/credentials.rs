//! The database account stored in a secret, and the parser for the RDS secret JSON.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};

/// A database account as stored in an RDS secret.
///
/// The password is held as a [`SecretString`]: `Debug` and `Display` print `<redacted>` in its place,
/// and the memory is zeroed on drop. Read it with [`Credentials::password`], only where a driver needs it.
#[derive(Clone)]
pub struct Credentials {
    username: String,
    password: SecretString,
    engine: Option<String>,
    host: Option<String>,
    port: Option<u16>,
    dbname: Option<String>,
    master_arn: Option<String>,
}

impl Credentials {
    /// Credentials for `username` with `password`, with no connection details.
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        Self {
            username: username.into(),
            password: SecretString::from(password.into()),
            engine: None,
            host: None,
            port: None,
            dbname: None,
            master_arn: None,
        }
    }

    /// Parses the JSON document that AWS Secrets Manager keeps for an RDS database.
    ///
    /// `username` and `password` are required and must not be empty. `engine`, `host`, `port`, `dbname` and
    /// `masterarn` are optional, and unknown keys are ignored. A missing, empty or ill-typed field yields an
    /// error that names the field but never quotes the value.
    ///
    /// `port` is a number from 1 to 65535. A string of digits such as `"5432"` (surrounding spaces allowed) is
    /// accepted as well, deliberately: secrets written by hand often quote the port. Any other string, or a
    /// number out of range, is an error naming `port`.
    pub fn from_secret_json(text: &str) -> Result<Self, CredentialsError> {
        let value: Value = serde_json::from_str(text).map_err(|e| CredentialsError::NotJson {
            line: e.line(),
            column: e.column(),
        })?;
        let Value::Object(fields) = value else {
            return Err(CredentialsError::NotAnObject);
        };
        Ok(Self {
            username: required_string(&fields, "username")?,
            password: SecretString::from(required_string(&fields, "password")?),
            engine: optional_string(&fields, "engine")?,
            host: optional_string(&fields, "host")?,
            port: optional_port(&fields)?,
            dbname: optional_string(&fields, "dbname")?,
            master_arn: optional_string(&fields, "masterarn")?,
        })
    }

    /// Parses a database URL such as `postgres://app:secret@db.example:5432/orders`, for development setups
    /// that keep one in the environment. Schemes `postgres`, `postgresql`, `mysql` and `mariadb` set the
    /// `engine`; the user name and password are percent-decoded and required; host, port and database are taken
    /// when present. Query parameters are ignored (TLS is the pool's setting). Errors never quote the URL.
    pub fn from_url(text: &str) -> Result<Self, CredentialsError> {
        let invalid = |reason| CredentialsError::InvalidUrl { reason };
        let url = url::Url::parse(text).map_err(|_| invalid("it is not a URL"))?;
        let engine = match url.scheme() {
            "postgres" | "postgresql" => "postgres",
            "mysql" => "mysql",
            "mariadb" => "mariadb",
            _ => {
                return Err(invalid(
                    "its scheme is not postgres, postgresql, mysql or mariadb",
                ))
            }
        };
        let decode = |part: &str| {
            percent_encoding::percent_decode_str(part)
                .decode_utf8()
                .map(|text| text.into_owned())
                .map_err(|_| invalid("its user name or password is not UTF-8 once percent-decoded"))
        };
        let username = decode(url.username())?;
        let password = url.password().map(decode).transpose()?.unwrap_or_default();
        if username.is_empty() {
            return Err(invalid("it names no user"));
        }
        if password.is_empty() {
            return Err(invalid("it holds no password"));
        }
        let mut credentials = Credentials::new(username, password).with_engine(engine);
        match url.host() {
            Some(url::Host::Domain(host)) if !host.is_empty() => {
                credentials = credentials.with_host(host)
            }
            Some(url::Host::Ipv4(ip)) => credentials = credentials.with_host(ip.to_string()),
            Some(url::Host::Ipv6(ip)) => credentials = credentials.with_host(ip.to_string()),
            _ => {}
        }
        if let Some(port) = url.port() {
            credentials = credentials.with_port(port);
        }
        let dbname = decode(url.path().trim_start_matches('/'))?;
        if !dbname.is_empty() {
            credentials = credentials.with_dbname(dbname);
        }
        Ok(credentials)
    }

    /// Renders these credentials as RDS secret JSON, the inverse of [`Credentials::from_secret_json`].
    ///
    /// The result contains the password in clear: it is meant for a secret store, never for a log.
    pub fn to_secret_json(&self) -> String {
        let mut fields = Map::new();
        let mut put = |key: &str, value: Option<Value>| {
            if let Some(value) = value {
                fields.insert(key.to_owned(), value);
            }
        };
        put("engine", self.engine.clone().map(Value::from));
        put("host", self.host.clone().map(Value::from));
        put("port", self.port.map(Value::from));
        put("username", Some(Value::from(self.username.clone())));
        put(
            "password",
            Some(Value::from(self.password.expose_secret().to_owned())),
        );
        put("dbname", self.dbname.clone().map(Value::from));
        put("masterarn", self.master_arn.clone().map(Value::from));
        Value::Object(fields).to_string()
    }

    /// The database user name.
    pub fn username(&self) -> &str {
        &self.username
    }

    /// The password, in clear. Hand it to a driver; never log it.
    pub fn password(&self) -> &str {
        self.password.expose_secret()
    }

    /// The `engine` field (`postgres`, `mysql`, `mariadb`, ...), if the secret has one.
    pub fn engine(&self) -> Option<&str> {
        self.engine.as_deref()
    }

    /// The `host` field, if the secret has one.
    pub fn host(&self) -> Option<&str> {
        self.host.as_deref()
    }

    /// The `port` field, if the secret has one.
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// The `dbname` field, if the secret has one.
    pub fn dbname(&self) -> Option<&str> {
        self.dbname.as_deref()
    }

    /// The `masterarn` field: the ARN of the secret of the account that rotates this one.
    pub fn master_arn(&self) -> Option<&str> {
        self.master_arn.as_deref()
    }

    /// Returns these credentials with `password` in place of the current one.
    #[must_use]
    pub fn with_password(mut self, password: impl Into<String>) -> Self {
        self.password = SecretString::from(password.into());
        self
    }

    /// Returns these credentials with the `host` field set.
    #[must_use]
    pub fn with_host(mut self, host: impl Into<String>) -> Self {
        self.host = Some(host.into());
        self
    }

    /// Returns these credentials with the `port` field set.
    #[must_use]
    pub fn with_port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// Returns these credentials with the `dbname` field set.
    #[must_use]
    pub fn with_dbname(mut self, dbname: impl Into<String>) -> Self {
        self.dbname = Some(dbname.into());
        self
    }

    /// Returns these credentials with the `engine` field set.
    #[must_use]
    pub fn with_engine(mut self, engine: impl Into<String>) -> Self {
        self.engine = Some(engine.into());
        self
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("engine", &self.engine)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("dbname", &self.dbname)
            .field("master_arn", &self.master_arn)
            .finish()
    }
}

impl fmt::Display for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:<redacted>", self.username)?;
        if let Some(host) = &self.host {
            write!(f, "@{host}")?;
            if let Some(port) = self.port {
                write!(f, ":{port}")?;
            }
        }
        if let Some(dbname) = &self.dbname {
            write!(f, "/{dbname}")?;
        }
        Ok(())
    }
}

/// Why a secret's text is not a usable RDS secret. Messages name the field, never its value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CredentialsError {
    /// The text is not JSON.
    #[error(
        "the secret is not valid JSON (syntax error at line {line}, column {column}); \
         store the RDS secret as a JSON object such as {{\"username\": ..., \"password\": ...}}"
    )]
    NotJson {
        /// Line of the syntax error, starting at 1.
        line: usize,
        /// Column of the syntax error, starting at 1.
        column: usize,
    },
    /// The JSON is not an object.
    #[error("the secret is JSON but not an object; an RDS secret is a JSON object with `username` and `password` keys")]
    NotAnObject,
    /// A required field is absent.
    #[error("the secret has no `{field}` field; add it to the secret's JSON")]
    MissingField {
        /// The name of the missing key.
        field: &'static str,
    },
    /// A required field is present but empty.
    #[error("the secret's `{field}` field is empty; put the database account's value in the secret's JSON")]
    EmptyField {
        /// The name of the empty key.
        field: &'static str,
    },
    /// A field has the wrong JSON type or an unusable value.
    #[error("the secret's `{field}` field is not {expected}; fix its value in the secret's JSON")]
    InvalidField {
        /// The name of the offending key.
        field: &'static str,
        /// What the field must be, e.g. "a string" or "a port number from 1 to 65535".
        expected: &'static str,
    },
    /// A database URL could not be read (see [`Credentials::from_url`]).
    #[error(
        "the database URL is not usable: {reason}; write it as postgres://user:password@host:5432/dbname (or \
         mysql://...), with reserved characters of the password percent-encoded"
    )]
    InvalidUrl {
        /// What is wrong with it, without quoting it.
        reason: &'static str,
    },
    /// The `engine` field names a database the pool's backend does not speak (another engine, or none known).
    #[error(
        "the secret's `engine` is `{found}`, which this pool's backend does not speak (it takes {}); \
         use the pool for that engine, or fix `engine` in the secret's JSON",
        supported.join(", ")
    )]
    UnsupportedEngine {
        /// The secret's `engine` value.
        found: String,
        /// The values the backend takes.
        supported: &'static [&'static str],
    },
}

fn optional_string(
    fields: &Map<String, Value>,
    field: &'static str,
) -> Result<Option<String>, CredentialsError> {
    match fields.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(CredentialsError::InvalidField {
            field,
            expected: "a string",
        }),
    }
}

fn required_string(
    fields: &Map<String, Value>,
    field: &'static str,
) -> Result<String, CredentialsError> {
    match optional_string(fields, field)? {
        None => Err(CredentialsError::MissingField { field }),
        Some(value) if value.is_empty() => Err(CredentialsError::EmptyField { field }),
        Some(value) => Ok(value),
    }
}

fn optional_port(fields: &Map<String, Value>) -> Result<Option<u16>, CredentialsError> {
    let invalid = CredentialsError::InvalidField {
        field: "port",
        expected: "a port number from 1 to 65535",
    };
    let port = match fields.get("port") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(n)) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
        Some(Value::String(s)) => s.trim().parse::<u16>().ok(),
        Some(_) => None,
    };
    match port {
        Some(p) if p > 0 => Ok(Some(p)),
        _ => Err(invalid),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "s3cr3t-Pa55";

    #[test]
    fn parses_a_full_rds_secret_and_tolerates_unknown_keys() {
        let json = format!(
            r#"{{"engine":"postgres","host":"db.example","port":5432,"username":"app",
               "password":"{SECRET}","dbname":"orders","masterarn":"arn:aws:x","extra":[1,2]}}"#
        );
        let c = Credentials::from_secret_json(&json).unwrap();
        assert_eq!(c.username(), "app");
        assert_eq!(c.password(), SECRET);
        assert_eq!(c.engine(), Some("postgres"));
        assert_eq!(c.host(), Some("db.example"));
        assert_eq!(c.port(), Some(5432));
        assert_eq!(c.dbname(), Some("orders"));
        assert_eq!(c.master_arn(), Some("arn:aws:x"));
    }

    #[test]
    fn accepts_port_as_numeric_string() {
        for (port, expected) in [(r#""5432""#, 5432), (r#"" 3306""#, 3306), ("5432", 5432)] {
            let json = format!(r#"{{"username":"a","password":"b","port":{port}}}"#);
            let c = Credentials::from_secret_json(&json).unwrap();
            assert_eq!(c.port(), Some(expected), "{port}");
        }
    }

    #[test]
    fn rejects_ports_that_are_not_1_to_65535() {
        for port in [
            r#""fivefour""#,
            r#""5432a""#,
            r#""70000""#,
            r#""0""#,
            r#""-1""#,
            r#""""#,
            "70000",
            "0",
            "-1",
            "5432.5",
            "true",
        ] {
            let json = format!(r#"{{"username":"a","password":"b","port":{port}}}"#);
            let err = Credentials::from_secret_json(&json).unwrap_err();
            assert_eq!(
                err,
                CredentialsError::InvalidField {
                    field: "port",
                    expected: "a port number from 1 to 65535",
                },
                "{port}"
            );
        }
    }

    #[test]
    fn empty_username_or_password_is_an_error_naming_the_field() {
        for (json, field) in [
            (
                format!(r#"{{"username":"","password":"{SECRET}"}}"#),
                "username",
            ),
            (r#"{"username":"app","password":""}"#.to_owned(), "password"),
        ] {
            let err = Credentials::from_secret_json(&json).unwrap_err();
            assert_eq!(err, CredentialsError::EmptyField { field });
            let message = err.to_string();
            assert!(message.contains(&format!("`{field}`")), "{message}");
            assert!(!message.contains(SECRET), "{message}");
        }
    }

    #[test]
    fn each_bad_field_gets_an_error_naming_it() {
        let cases: &[(&str, CredentialsError)] = &[
            (
                r#"{"password":"x"}"#,
                CredentialsError::MissingField { field: "username" },
            ),
            (
                r#"{"username":"a"}"#,
                CredentialsError::MissingField { field: "password" },
            ),
            (
                r#"{"username":"a","password":7}"#,
                CredentialsError::InvalidField {
                    field: "password",
                    expected: "a string",
                },
            ),
            (
                r#"{"username":"a","password":"b","host":1}"#,
                CredentialsError::InvalidField {
                    field: "host",
                    expected: "a string",
                },
            ),
            (r#"["username"]"#, CredentialsError::NotAnObject),
        ];
        for (json, expected) in cases {
            assert_eq!(&Credentials::from_secret_json(json).unwrap_err(), expected);
        }
    }

    #[test]
    fn syntax_errors_report_position_but_not_content() {
        let json = format!(r#"{{"username":"a","password":"{SECRET}" "#);
        let err = Credentials::from_secret_json(&json).unwrap_err();
        assert!(matches!(err, CredentialsError::NotJson { line: 1, .. }));
        assert!(!err.to_string().contains(SECRET));
        assert!(!format!("{err:?}").contains(SECRET));
    }

    #[test]
    fn debug_and_display_redact_the_password() {
        let c = Credentials::new("app", SECRET).with_host("h").with_port(1);
        for text in [format!("{c:?}"), format!("{c}"), format!("{c:#?}")] {
            assert!(!text.contains(SECRET), "{text}");
            assert!(text.contains("redacted"), "{text}");
        }
    }

    #[test]
    fn json_round_trip_keeps_every_field() {
        let c = Credentials::new("app", SECRET)
            .with_engine("postgres")
            .with_host("h")
            .with_port(5432)
            .with_dbname("d");
        let back = Credentials::from_secret_json(&c.to_secret_json()).unwrap();
        assert_eq!(format!("{back:?}"), format!("{c:?}"));
        assert_eq!(back.password(), SECRET);
    }

    #[test]
    fn a_url_gives_the_account_and_the_endpoint() {
        let c = Credentials::from_url("postgresql://app%40corp:p%3Ass%2Fw@db.example:6432/orders")
            .unwrap();
        assert_eq!(c.username(), "app@corp");
        assert_eq!(c.password(), "p:ss/w");
        assert_eq!(c.engine(), Some("postgres"));
        assert_eq!(c.host(), Some("db.example"));
        assert_eq!(c.port(), Some(6432));
        assert_eq!(c.dbname(), Some("orders"));
        let c = Credentials::from_url("mariadb://app:pw@[::1]").unwrap();
        assert_eq!(
            (c.engine(), c.host(), c.port(), c.dbname()),
            (Some("mariadb"), Some("::1"), None, None)
        );
    }

    #[test]
    fn a_bad_url_says_what_is_wrong_without_quoting_it() {
        for (url, reason) in [
            ("sekrit", "not a URL"),
            ("redis://app:sekrit@db", "scheme"),
            ("postgres://db.example/orders", "no user"),
            ("postgres://app@db.example/orders", "no password"),
            ("postgres://app:%FFsekrit@db", "UTF-8"),
        ] {
            let text = Credentials::from_url(url).unwrap_err().to_string();
            assert!(text.contains(reason), "{url}: {text}");
            assert!(!text.contains("sekrit"), "{url}: {text}");
        }
    }
}
