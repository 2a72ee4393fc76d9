//! Every error prints each message once when a log walks its chain (`{err}`, then each `source()`): a variant
//! either prints its cause in its own message or returns it as its source, never both. The driver's error behind
//! a login failure is in the message's `detail`, and reached through `Error::driver_error`, not the chain.

use std::{io, sync::Arc, time::Duration};

use rotapool_core::{
    error::TlsError, BuildError, ConfigError, CreatePoolError, CredentialsError, Error, PoolError,
    SourceError, SslMode, Stage,
};

/// The messages of `error` and of each of its sources, outermost first.
fn chain(error: &dyn std::error::Error) -> Vec<String> {
    let mut messages = vec![error.to_string()];
    let mut source = error.source();
    while let Some(cause) = source {
        messages.push(cause.to_string());
        source = cause.source();
    }
    messages
}

/// Panics if a message of the chain is repeated inside an outer one.
fn assert_each_message_once(error: &dyn std::error::Error) {
    let messages = chain(error);
    for (i, outer) in messages.iter().enumerate() {
        for inner in &messages[i + 1..] {
            assert!(
                !outer.contains(inner.as_str()),
                "`{inner}` is printed twice in the chain {messages:#?}"
            );
        }
    }
}

fn store_down() -> SourceError {
    SourceError::Unreachable {
        secret_id: "prod/db".into(),
        source: Box::new(io::Error::other("dns error: failed to lookup address")),
    }
}

fn malformed() -> SourceError {
    SourceError::InvalidContent {
        secret_id: "prod/db".into(),
        stage: Stage::Current,
        source: CredentialsError::MissingField { field: "password" },
    }
}

fn rejected() -> Error<io::Error> {
    Error::AuthRejected {
        attempts: 1,
        generation: 2,
        detail: "28P01: password authentication failed for user \"app\"".into(),
        remedy: "check that the last rotation completed".into(),
        driver: Some(io::Error::other(
            "28P01: password authentication failed for user \"app\"",
        )),
    }
}

#[test]
fn every_error_chain_prints_each_message_once() {
    let errors: Vec<Box<dyn std::error::Error>> = vec![
        Box::new(rejected()),
        Box::new(Error::<io::Error>::Refresh(Arc::new(store_down()))),
        Box::new(Error::<io::Error>::Refresh(Arc::new(malformed()))),
        Box::new(Error::Connect {
            detail: "connection refused".into(),
            driver: io::Error::from(io::ErrorKind::ConnectionRefused),
        }),
        Box::new(PoolError::Backend(rejected())),
        Box::new(PoolError::<io::Error>::Backend(Error::Refresh(Arc::new(
            store_down(),
        )))),
        Box::new(SourceError::Other {
            secret_id: "prod/db".into(),
            source: Box::new(io::Error::other("HTTP 500 from the endpoint")),
        }),
        Box::new(BuildError::Source(SourceError::TimedOut {
            secret_id: "prod/db".into(),
            stage: Stage::Current,
            after: Duration::from_secs(5),
        })),
        Box::new(CreatePoolError::Build(BuildError::Source(malformed()))),
        Box::new(ConfigError::Tls(TlsError::Read {
            path: "/etc/rds.pem".into(),
            source: io::Error::from(io::ErrorKind::NotFound),
        })),
        Box::new("sometimes".parse::<SslMode>().expect_err("not a mode")),
    ];
    for error in &errors {
        assert_each_message_once(error.as_ref());
    }
    // The chains still say everything: the store's own words reach a log that walks the chain.
    let refresh = Error::<io::Error>::Refresh(Arc::new(store_down()));
    assert_eq!(
        chain(&refresh).last().map(String::as_str),
        Some("dns error: failed to lookup address")
    );
}

#[test]
fn the_driver_error_behind_a_login_failure_is_reached_by_name_not_by_chain() {
    let error = rejected();
    assert!(std::error::Error::source(&error).is_none());
    assert_eq!(
        error.driver_error().map(ToString::to_string).as_deref(),
        Some("28P01: password authentication failed for user \"app\"")
    );
    assert!(Error::<io::Error>::Refresh(Arc::new(store_down()))
        .into_driver_error()
        .is_none());
}
