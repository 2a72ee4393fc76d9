//! Fuzzes the RDS secret parser, `Credentials::from_secret_json`.
//!
//! The input is either raw text, as a secret store could hold anything, or JSON objects built from fuzzed keys and
//! values, so that the accepted path is reached without the fuzzer having to guess JSON's syntax first. Whatever
//! the parser accepts must keep its password out of `Debug` and `Display` and must survive `to_secret_json` and a
//! second parse unchanged. Anything else must be rejected without a panic.

#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use rotapool_core::Credentials;
use serde_json::{Map, Value};

#[derive(Debug, Arbitrary)]
enum Input {
    /// Any text.
    Text(String),
    /// A JSON object with these fields, in this order (a repeated key keeps its last value).
    Object(Vec<(Key, Field)>),
}

#[derive(Debug, Arbitrary)]
enum Key {
    Username,
    Password,
    Engine,
    Host,
    Port,
    Dbname,
    Masterarn,
    Other(String),
}

#[derive(Debug, Arbitrary)]
enum Field {
    Null,
    Bool(bool),
    Integer(i64),
    Float(f64),
    Text(String),
    /// A port-like string: `n` as digits, with the given padding around it.
    Digits {
        n: u32,
        pad: String,
    },
    List(Vec<String>),
}

impl Key {
    fn name(&self) -> &str {
        match self {
            Key::Username => "username",
            Key::Password => "password",
            Key::Engine => "engine",
            Key::Host => "host",
            Key::Port => "port",
            Key::Dbname => "dbname",
            Key::Masterarn => "masterarn",
            Key::Other(name) => name,
        }
    }
}

impl Field {
    fn json(&self) -> Value {
        match self {
            Field::Null => Value::Null,
            Field::Bool(b) => Value::from(*b),
            Field::Integer(n) => Value::from(*n),
            // NaN and the infinities have no JSON form; serde_json makes them null.
            Field::Float(x) => Value::from(*x),
            Field::Text(s) => Value::from(s.as_str()),
            Field::Digits { n, pad } => Value::from(format!("{pad}{n}{pad}")),
            Field::List(items) => Value::from(items.clone()),
        }
    }
}

impl Input {
    fn text(&self) -> String {
        match self {
            Input::Text(text) => text.clone(),
            Input::Object(fields) => {
                let object: Map<String, Value> = fields
                    .iter()
                    .map(|(key, field)| (key.name().to_owned(), field.json()))
                    .collect();
                Value::Object(object).to_string()
            }
        }
    }
}

/// `Debug`, pretty `Debug` and `Display`: everything that may end up in a log.
fn renderings(credentials: &Credentials) -> [String; 3] {
    [
        format!("{credentials:?}"),
        format!("{credentials:#?}"),
        format!("{credentials}"),
    ]
}

fn check(text: &str) {
    let Ok(credentials) = Credentials::from_secret_json(text) else {
        return;
    };
    let password = credentials.password();
    let shown = renderings(&credentials);

    // The same credentials with a password that shares no character with this one: an occurrence of `password`
    // in their renderings comes from the other fields or the fixed text, not from the password.
    let unrelated = (' '..=char::MAX)
        .find(|&c| !password.contains(c))
        .expect("a password does not use every character")
        .to_string();
    let blind = renderings(&credentials.clone().with_password(unrelated));

    // A password of 4 or more characters that no other field contains is never shown.
    let port = credentials.port().map(|p| p.to_string());
    let others = [
        Some(credentials.username()),
        credentials.engine(),
        credentials.host(),
        credentials.dbname(),
        credentials.master_arn(),
        port.as_deref(),
    ];
    if password.chars().count() >= 4 && !others.into_iter().flatten().any(|f| f.contains(password))
    {
        for (shown, blind) in shown.iter().zip(&blind) {
            assert!(
                !shown.contains(password) || blind.contains(password),
                "the password is shown: {shown}"
            );
        }
    }
    // Stronger, and free of that condition: nothing shown depends on the password, not even its length.
    assert_eq!(shown, blind, "Debug or Display depends on the password");

    let json = credentials.to_secret_json();
    let again = Credentials::from_secret_json(&json).expect("to_secret_json's output parses");
    assert_eq!(again.password(), password, "the password round-trips");
    assert_eq!(renderings(&again), shown, "every other field round-trips");
}

fuzz_target!(|input: Input| check(&input.text()));
