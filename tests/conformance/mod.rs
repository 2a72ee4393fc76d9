//! The rotation scenarios, written once and run for every backend.
//!
//! A backend's test file implements [`TestDb`] for its server and calls [`conformance_suite!`], which turns each
//! scenario below into a `#[tokio::test]`. Every scenario proves that the server rejects the old or wrong password
//! before it proves that the pool copes, so none of them can pass against a server that ignores passwords.

// Each test binary uses one backend's half of this module, and not every binary runs the suite.
#![allow(dead_code, unused_macros, unreachable_pub)]

pub mod mariadb;
pub mod pools;
pub mod postgres;
pub mod rotation;
pub mod scenarios;
pub mod sqlx;
pub mod workload;

use std::{path::Path, sync::Arc};

use async_trait::async_trait;
use rotapool_core::{source::AwsSecretsManager, Backend, Credentials, Object, SslMode};
use rotapool_rotator::RotationTarget;
use rotapool_testkit::{Login, MotoServer, TestServer};

/// What a scenario needs from a database server.
#[async_trait]
pub trait TestDb: Clone + Sync + Send + 'static {
    /// The backend under test, which the rotator also uses to change passwords.
    type Backend: Backend + RotationTarget;
    /// The server it talks to.
    type Server: TestServer;

    /// The server.
    fn server(&self) -> &'static Self::Server;
    /// The backend under test, pointed at this server by the secret, with TLS as given.
    fn backend_with_tls(&self, mode: SslMode, ca_file: Option<&Path>) -> Self::Backend;
    /// The backend under test, with TLS off.
    fn backend(&self) -> Self::Backend {
        self.backend_with_tls(SslMode::Disable, None)
    }
    /// Whether the server sees this session as encrypted.
    async fn is_encrypted(&self, conn: &mut Object<Self::Backend>) -> bool;
    /// The RDS secret's `engine` value.
    fn engine(&self) -> &'static str;
    /// The database the secret names.
    fn dbname(&self) -> &'static str;
    /// Runs a trivial query on a pooled connection.
    async fn ping(&self, conn: &mut Object<Self::Backend>) -> Result<(), String>;
}

/// Panics unless the server rejects `password` for `user` as bad credentials.
pub async fn assert_rejected<D: TestDb>(db: &D, user: &str, password: &str) {
    match db.server().try_login(user, password).await {
        Login::BadCredentials => {}
        Login::Failed(e) => panic!("login as {user} failed, but not as bad credentials: {e}"),
        Login::Accepted => panic!("the server accepted a password it must reject for {user}"),
    }
}

/// An account on the server and a secret for it in moto.
pub struct Fixture {
    /// The account name.
    pub user: String,
    /// Its password now.
    pub password: String,
    /// The secret's name in moto.
    pub secret_id: String,
    /// The secret source, with its call counter.
    pub source: Arc<AwsSecretsManager>,
}

impl Fixture {
    /// Creates an account and a secret that describes it.
    pub async fn new<D: TestDb>(db: &D) -> Self {
        let user = rotapool_testkit::unique_name("app");
        let password = rotapool_testkit::random_password();
        db.server().create_account(&user, &password).await;
        let secret_id = rotapool_testkit::unique_name("rotapool/test");
        let moto = MotoServer::shared();
        moto.create_secret(&secret_id, &secret_json(db, &user, &password))
            .await;
        let source = Arc::new(moto.source(&secret_id).await);
        Self {
            user,
            password,
            secret_id,
            source,
        }
    }

    /// Rotates the way the scenario does: a new AWSCURRENT version in moto, then the database password.
    /// Returns the old password, already proven rejected.
    pub async fn rotate<D: TestDb>(&mut self, db: &D) -> String {
        let new_password = rotapool_testkit::random_password();
        self.put_secret(db, &new_password).await;
        db.server().set_password(&self.user, &new_password).await;
        let old = std::mem::replace(&mut self.password, new_password);
        assert_rejected(db, &self.user, &old).await;
        old
    }

    /// Stores `password` as the secret's new AWSCURRENT version.
    pub async fn put_secret<D: TestDb>(&self, db: &D, password: &str) {
        MotoServer::shared()
            .put_current(&self.secret_id, &secret_json(db, &self.user, password))
            .await;
    }
}

/// The RDS secret JSON for `user` on `db`.
pub fn secret_json<D: TestDb>(db: &D, user: &str, password: &str) -> String {
    Credentials::new(user, password)
        .with_engine(db.engine())
        .with_host(db.server().host())
        .with_port(db.server().port())
        .with_dbname(db.dbname())
        .to_secret_json()
}

/// Expands to one `#[tokio::test]` per scenario, each running against the server `$db` returns, with rotapool's
/// own pool; or, given a [`pools::PoolKind`], the rotation scenarios with that kind of pool.
macro_rules! conformance_suite {
    ($db:expr) => {
        conformance_suite!(@tests $db;
            scenarios::wrong_secret_is_capped_and_typed,
            scenarios::malformed_secret_is_a_typed_error_naming_the_field,
            scenarios::a_secret_for_another_engine_is_refused_by_name,
            scenarios::passwords_never_appear_in_debug_display_or_errors,
            scenarios::tls_modes_encrypt_and_verify_as_documented,
            scenarios::failures_are_classified_so_only_bad_credentials_refresh,
            scenarios::endpoint_overrides_replace_the_secrets_host_and_port,
            rotation::every_rotation_step_is_idempotent,
        );
        conformance_suite!($db, $crate::conformance::pools::Rotapool);
    };
    ($db:expr, $kind:ty) => {
        conformance_suite!(@with $kind; $db;
            scenarios::rotation_under_load_with_churn_has_zero_errors,
            scenarios::herd_after_rotation_reads_the_secret_once,
            rotation::single_user_rotation_with_no_window,
            rotation::single_user_rotation_with_a_2s_window,
            rotation::single_user_rotation_with_a_10s_window,
            rotation::alternating_users_rotate_three_times_without_errors,
            rotation::a_dangling_pending_version_is_never_adopted,
            rotation::gradual_drain_retires_old_connections_without_a_storm,
        );
    };
    (@tests $db:expr; $($module:ident::$scenario:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $scenario() {
                $crate::conformance::$module::$scenario($db).await;
            }
        )+
    };
    (@with $kind:ty; $db:expr; $($module:ident::$scenario:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $scenario() {
                $crate::conformance::$module::$scenario::<_, $kind>($db).await;
            }
        )+
    };
}
