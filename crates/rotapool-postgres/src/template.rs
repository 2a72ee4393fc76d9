//! The `tokio_postgres::Config` template and the one function that lays a secret over it, shared by
//! [`PgBackend`](crate::PgBackend) and the deadpool-postgres adapter, so that both log in the same way.

use std::time::Duration;

use rotapool_core::Credentials;
use tokio_postgres::Config;

/// The connect timeout when the template sets none: without one, a hung TCP connect would hold a login permit
/// for ever.
pub(crate) const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The config one login uses: `template` with the secret's `credentials` laid over it.
///
/// | field | taken from, the first that is set |
/// |---|---|
/// | user, password | the secret, always (a template's are ignored; see [`check_template`]) |
/// | host / hostaddr | the template (any host or hostaddr), else the secret, else `localhost` |
/// | port | the template (any port), else the secret, else 5432 |
/// | dbname | the template, else the secret, else the secret's user name |
/// | connect_timeout | the template, else 10 s |
/// | everything else | the template |
///
/// The pool builder's `host`, `port` and `dbname` overrides reach this function already laid into
/// `credentials` by the core, so they rank with the secret, below the template.
pub(crate) fn apply_secret(template: &Config, credentials: &Credentials) -> Config {
    // tokio-postgres can add hosts and ports but never remove them: clone the template and fill what it lacks.
    let mut config = template.clone();
    config
        .user(credentials.username())
        .password(credentials.password());
    if config.get_hosts().is_empty() && config.get_hostaddrs().is_empty() {
        config.host(credentials.host().unwrap_or("localhost"));
    }
    if config.get_ports().is_empty() {
        config.port(credentials.port().unwrap_or(5432));
    }
    if config.get_dbname().is_none() {
        config.dbname(credentials.dbname().unwrap_or(credentials.username()));
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(DEFAULT_CONNECT_TIMEOUT);
    }
    config
}

/// Warns once, when a template is given, about the fields the secret always replaces; names the field, never
/// its value.
pub(crate) fn check_template(template: &Config) {
    if template.get_password().is_some() {
        tracing::warn!(
            field = "password",
            "the tokio_postgres::Config template sets a password; it is ignored: every login uses the secret's"
        );
    }
    if template.get_user().is_some() {
        tracing::warn!(
            field = "user",
            "the tokio_postgres::Config template sets a user; it is ignored: every login uses the secret's \
             (with alternating-users rotation the user changes)"
        );
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio_postgres::config::{Host, TargetSessionAttrs};

    use super::*;

    fn secret() -> Credentials {
        Credentials::new("app", "s3cret-from-the-store")
            .with_host("db.secret.example")
            .with_port(6432)
            .with_dbname("orders")
    }

    fn host_names(config: &Config) -> Vec<String> {
        config
            .get_hosts()
            .iter()
            .map(|host| match host {
                Host::Tcp(name) => name.clone(),
                #[cfg(unix)]
                Host::Unix(path) => path.display().to_string(),
            })
            .collect()
    }

    #[test]
    fn the_template_keeps_keepalives_options_application_name_and_target_session_attrs() {
        let mut template = Config::new();
        template
            .keepalives(false)
            .keepalives_idle(Duration::from_secs(7))
            .options("-c statement_timeout=5s")
            .application_name("orders-api")
            .target_session_attrs(TargetSessionAttrs::ReadWrite)
            .connect_timeout(Duration::from_secs(3));
        let config = apply_secret(&template, &secret());
        assert!(!config.get_keepalives());
        assert_eq!(config.get_keepalives_idle(), Duration::from_secs(7));
        assert_eq!(config.get_options(), Some("-c statement_timeout=5s"));
        assert_eq!(config.get_application_name(), Some("orders-api"));
        assert_eq!(
            config.get_target_session_attrs(),
            TargetSessionAttrs::ReadWrite
        );
        assert_eq!(config.get_connect_timeout(), Some(&Duration::from_secs(3)));
    }

    #[test]
    fn the_secret_fills_host_port_and_dbname_only_where_template_and_builder_are_silent() {
        let silent = apply_secret(&Config::new(), &secret());
        assert_eq!(host_names(&silent), ["db.secret.example"]);
        assert_eq!(silent.get_ports(), [6432]);
        assert_eq!(silent.get_dbname(), Some("orders"));
        assert_eq!(
            silent.get_connect_timeout(),
            Some(&DEFAULT_CONNECT_TIMEOUT),
            "a connect timeout even when nobody sets one"
        );

        let mut template = Config::new();
        template
            .host("primary.example")
            .host("replica.example")
            .port(5433)
            .dbname("reports");
        let config = apply_secret(&template, &secret());
        assert_eq!(
            host_names(&config),
            ["primary.example", "replica.example"],
            "the template's hosts, none of the secret's"
        );
        assert_eq!(config.get_ports(), [5433], "one port serves every host");
        assert_eq!(config.get_dbname(), Some("reports"));

        let mut by_address = Config::new();
        by_address.hostaddr(std::net::Ipv4Addr::LOCALHOST.into());
        let config = apply_secret(&by_address, &secret());
        assert!(
            config.get_hosts().is_empty(),
            "a template hostaddr is an address"
        );
        assert_eq!(
            config.get_ports(),
            [6432],
            "the port still comes from the secret"
        );

        let bare = apply_secret(&Config::new(), &Credentials::new("app", "pw"));
        assert_eq!(host_names(&bare), ["localhost"]);
        assert_eq!(bare.get_ports(), [5432]);
        assert_eq!(
            bare.get_dbname(),
            Some("app"),
            "the user's own database, as libpq does"
        );

        // The builder's overrides arrive laid into the credentials by the core: they rank with the secret.
        let overridden = secret().with_host("proxy.example").with_port(5439);
        let config = apply_secret(&Config::new(), &overridden);
        assert_eq!(host_names(&config), ["proxy.example"]);
        assert_eq!(config.get_ports(), [5439]);
    }

    #[test]
    fn user_and_password_always_come_from_the_secret() {
        let mut template = Config::new();
        template.user("fixed_user").password("template-password");
        let config = apply_secret(&template, &secret());
        assert_eq!(config.get_user(), Some("app"));
        assert_eq!(config.get_password(), Some(&b"s3cret-from-the-store"[..]));
        let debug = format!("{config:?}");
        assert!(!debug.contains("s3cret"), "{debug}");
    }
}
