//! The testcontainers path, used where a Docker engine answers (a developer laptop, a CI with Docker).

use std::fmt;

use testcontainers::{
    core::{IntoContainerPort, WaitFor},
    runners::SyncRunner,
    GenericImage, ImageExt,
};

/// A started container; removed when dropped.
pub(crate) struct Container {
    pub(crate) port: u16,
    _inner: testcontainers::Container<GenericImage>,
}

impl fmt::Debug for Container {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Container")
            .field("port", &self.port)
            .finish()
    }
}

/// Whether `docker info` succeeds, i.e. an engine answers.
pub(crate) fn engine_answers() -> bool {
    std::process::Command::new("docker")
        .arg("info")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn start(image: GenericImage, envs: &[(&str, &str)], port: u16) -> Container {
    let envs: Vec<(String, String)> = envs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    // The sync runner drives its own runtime, which must not be nested in a test's runtime: use a thread.
    std::thread::spawn(move || {
        let mut request = image.with_exposed_port(port.tcp()).into();
        for (key, value) in envs {
            request = ImageExt::with_env_var(request, key, value);
        }
        let inner = request
            .start()
            .unwrap_or_else(|e| panic!("could not start a container with Docker: {e}"));
        let host_port = inner
            .get_host_port_ipv4(port)
            .expect("the container maps its port");
        Container {
            port: host_port,
            _inner: inner,
        }
    })
    .join()
    .expect("the container thread does not panic")
}

/// PostgreSQL 16 with scram-sha-256 for TCP clients (the image's default).
pub(crate) fn postgres(user: &str, password: &str) -> Container {
    let image = GenericImage::new("postgres", "16-alpine").with_wait_for(
        WaitFor::message_on_stderr("database system is ready to accept connections"),
    );
    start(
        image,
        &[("POSTGRES_USER", user), ("POSTGRES_PASSWORD", password)],
        5432,
    )
}

/// The moto server image.
pub(crate) fn moto() -> Container {
    let image = GenericImage::new("motoserver/moto", "5.1.0")
        .with_wait_for(WaitFor::message_on_stderr("Running on"));
    start(image, &[], 5000)
}

/// MySQL 8.4 with a root password.
pub(crate) fn mysql(root_password: &str) -> Container {
    let image = GenericImage::new("mysql", "8.4").with_wait_for(WaitFor::message_on_stderr(
        "port: 3306  MySQL Community Server",
    ));
    start(image, &[("MYSQL_ROOT_PASSWORD", root_password)], 3306)
}
