//! Reading a [`Config`] from `<PREFIX>__*` variables, and errors that name the variable without quoting its value.

use std::collections::HashMap;

use secrecy::SecretString;

use super::{Config, Hidden};
use crate::error::ConfigError;

/// The settings read from the environment as they are, bypassing the config crate's parsing: a password of
/// `1e5` or a user named `007` must not come back as `100000` or `7`.
const VERBATIM: [&str; 3] = ["USERNAME", "PASSWORD", "URL"];

/// Reads `<prefix>__*` variables into a [`Config`].
pub(super) fn read(prefix: &str) -> Result<Config, ConfigError> {
    read_from(
        prefix,
        std::env::vars_os().filter_map(|(name, value)| {
            Some((name.into_string().ok()?, value.into_string().ok()?))
        }),
    )
}

/// Reads a [`Config`] from `vars`, the `<prefix>__*` ones among them.
fn read_from(
    prefix: &str,
    vars: impl Iterator<Item = (String, String)>,
) -> Result<Config, ConfigError> {
    let head = format!("{prefix}__");
    let mut verbatim = HashMap::new();
    let mut rest = config::Map::new();
    for (name, value) in vars {
        let Some(key) = name.strip_prefix(&head) else {
            continue;
        };
        match VERBATIM.iter().find(|v| **v == key) {
            Some(v) => {
                verbatim.insert(*v, value);
            }
            None => {
                rest.insert(name, value);
            }
        }
    }
    let environment = config::Environment::with_prefix(prefix)
        .prefix_separator("__")
        .separator("__")
        .try_parsing(true)
        .source(Some(rest));
    let mut config: Config = config::Config::builder()
        .add_source(environment)
        .build()
        .and_then(config::Config::try_deserialize)
        .map_err(|e| env_error(prefix, &e))?;
    config.username = verbatim.remove("USERNAME").or(config.username);
    config.password = verbatim
        .remove("PASSWORD")
        .map(|p| Hidden(SecretString::from(p)));
    config.url = verbatim
        .remove("URL")
        .map(|u| Hidden(SecretString::from(u)));
    config.prefix = Some(prefix.to_owned());
    Ok(config)
}

pub(super) fn variable(prefix: Option<&str>, path: &str) -> String {
    match prefix {
        Some(prefix) => format!("{prefix}__{}", path.replace('.', "__").to_uppercase()),
        None => path.to_owned(),
    }
}

/// Maps the environment layer's error to one that names the variable. Its messages may quote a value, so only
/// the key and the expectation are kept.
fn env_error(prefix: &str, error: &config::ConfigError) -> ConfigError {
    let mut current = error;
    let mut key = None;
    loop {
        match current {
            config::ConfigError::At { error, key: at, .. } => {
                key = key.or(at.clone());
                current = error;
            }
            config::ConfigError::Type {
                key: at, expected, ..
            } => {
                return ConfigError::Invalid {
                    variable: variable(
                        Some(prefix),
                        at.as_deref().or(key.as_deref()).unwrap_or("?"),
                    ),
                    reason: format!("must be {expected}"),
                };
            }
            other => {
                let reason = match other {
                    config::ConfigError::Message(text) if text.starts_with("must be") => {
                        text.clone()
                    }
                    config::ConfigError::Message(text) if text.starts_with("unknown field") => {
                        "is not a setting rotapool knows: check its spelling".to_owned()
                    }
                    config::ConfigError::Message(text) if text.starts_with("invalid value") => {
                        "must be a duration such as 30s or 15m".to_owned()
                    }
                    _ => "could not be read".to_owned(),
                };
                let field = match other {
                    config::ConfigError::Message(text) if text.starts_with("unknown field") => {
                        text.split('`').nth(1)
                    }
                    _ => None,
                };
                let path = match (&key, field) {
                    (Some(key), Some(field)) => Some(format!("{key}.{field}")),
                    (Some(key), None) => Some(key.clone()),
                    (None, field) => field.map(str::to_owned),
                };
                let variable =
                    path.map_or_else(|| format!("{prefix}__*"), |p| variable(Some(prefix), &p));
                return ConfigError::Invalid { variable, reason };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        read_from(
            "RPV",
            vars.iter()
                .map(|(k, v)| (format!("RPV__{k}"), (*v).to_owned())),
        )
    }

    #[test]
    fn credentials_are_read_as_written_not_as_numbers() {
        let config = read(&[("USERNAME", "007"), ("PASSWORD", "1e5"), ("PORT", "5432")]).unwrap();
        assert_eq!(config.username.as_deref(), Some("007"));
        assert_eq!(config.password.as_ref().map(Hidden::expose), Some("1e5"));
        assert_eq!(config.port, Some(5432));
    }

    #[test]
    fn variables_of_another_prefix_are_not_read() {
        let config = read(&[]).unwrap();
        let other = read_from(
            "RPV",
            [("RPVX__PASSWORD".to_owned(), "x".to_owned())].into_iter(),
        );
        assert_eq!(config, other.unwrap());
    }
}
