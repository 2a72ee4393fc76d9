//! PostgreSQL with `log_statement=all`: the server log never sees a new password.

use super::*;

/// PostgreSQL with `log_statement=all`: after a single-user and an alternating-users rotation through the
/// handler, the server log holds the SCRAM verifiers the rotator sent and none of the new passwords; nor does the
/// Lambda's own log at TRACE.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_server_log_never_sees_a_new_password() {
    let server: &'static PgServer = Box::leak(Box::new(PgServer::private()));
    let db = Postgres(server);
    let admin = server.admin().await;
    // Two statements: ALTER SYSTEM refuses to run inside the implicit transaction of a multi-statement query.
    for sql in [
        "ALTER SYSTEM SET log_statement = 'all'",
        "SELECT pg_reload_conf()",
    ] {
        admin.batch_execute(sql).await.expect("log_statement=all");
    }
    let marker = unique_name("log_statement_marker");
    let fresh = server.admin().await;
    fresh
        .batch_execute(&format!("SELECT '{marker}'"))
        .await
        .expect("the marker query");
    // The server's log file, or its container's output: the testkit knows which.
    let log = || server.server_log();
    assert!(log().contains(&marker), "the server logs every statement");

    let (function, client) = function().await;
    let mut new_passwords = Vec::new();
    let user = unique_name("app");
    let (single, _) = account_and_secret(&db, &user, None).await;
    let master = master_secret(&db).await;
    let (alternating, _) = account_and_secret(&db, &unique_name("app"), Some(&master)).await;
    for (secret_id, rounds) in [(&single, 1), (&alternating, 2)] {
        for _ in 0..rounds {
            let token = rotation_token();
            begin_rotation(&client, secret_id, &token).await;
            run_all_steps(&function, secret_id, &token).await;
            let current = read(&client, secret_id, None, Some(Stage::Current))
                .await
                .unwrap();
            assert_accepted(
                &db,
                current.username(),
                current.password(),
                "the rotated account",
            )
            .await;
            new_passwords.push(current.password().to_owned());
        }
    }
    let log = log();
    for password in &new_passwords {
        assert!(
            !log.contains(password.as_str()),
            "a new password is in the server log"
        );
    }
    assert!(
        log.matches("PASSWORD 'SCRAM-SHA-256$4096:").count() >= 3,
        "the log holds the rotator's ALTER ROLE and CREATE ROLE statements"
    );
    let new_passwords: Vec<&str> = new_passwords.iter().map(String::as_str).collect();
    function.assert_logs_hide(&new_passwords);
}
