//! The four steps through the handler, for both engines and both strategies, and what the handler refuses.

use super::*;

// ---------------------------------------------------------------------------------------------------------------
// Scenarios, each run for both engines.

/// Single user through the handler: every step, createSecret and setSecret twice, finishSecret again on the
/// finished token; the new password from GetRandomPassword with AWS's default exclusions; no password logged.
async fn single_user_rotation<D: TestDb>(db: D) {
    let (function, client) = function().await;
    let user = unique_name("app");
    let (secret_id, old_password) = account_and_secret(&db, &user, None).await;
    let token = rotation_token();
    begin_rotation(&client, &secret_id, &token).await;

    invoke(&function, &secret_id, &token, "createSecret")
        .await
        .expect("createSecret");
    let pending = read(&client, &secret_id, Some(&token), Some(Stage::Pending))
        .await
        .expect("createSecret wrote the pending version");
    assert_eq!(pending.username(), user);
    assert_eq!(pending.password().chars().count(), 32);
    assert!(!pending.password().contains(['/', '@', '"', '\'', '\\']));
    invoke(&function, &secret_id, &token, "createSecret")
        .await
        .expect("createSecret again");
    let again = read(&client, &secret_id, Some(&token), None).await.unwrap();
    assert_eq!(
        again.password(),
        pending.password(),
        "a second createSecret changed nothing"
    );
    assert_rejected(&db, &user, pending.password()).await;

    invoke(&function, &secret_id, &token, "setSecret")
        .await
        .expect("setSecret");
    assert_rejected(&db, &user, &old_password).await;
    assert_accepted(
        &db,
        &user,
        pending.password(),
        "setSecret set the pending password",
    )
    .await;
    invoke(&function, &secret_id, &token, "setSecret")
        .await
        .expect("setSecret again");
    assert_accepted(
        &db,
        &user,
        pending.password(),
        "a second setSecret changed nothing",
    )
    .await;

    invoke(&function, &secret_id, &token, "testSecret")
        .await
        .expect("testSecret");
    invoke(&function, &secret_id, &token, "finishSecret")
        .await
        .expect("finishSecret");
    let (versions, _) = describe(&client, &secret_id).await;
    assert_eq!(
        holder(&versions, Stage::Current).as_deref(),
        Some(token.as_str())
    );

    // An already-finished token: every step is nothing left to do, and nothing changes.
    for step in ["finishSecret", "createSecret", "setSecret"] {
        invoke(&function, &secret_id, &token, step)
            .await
            .unwrap_or_else(|e| panic!("{step} on a finished token: {e}"));
    }
    assert_eq!(describe(&client, &secret_id).await.0, versions);
    assert_accepted(
        &db,
        &user,
        pending.password(),
        "the finished rotation's password",
    )
    .await;

    function.assert_logs_hide(&[&old_password, pending.password()]);
    // The handler's own lines, without the drivers' and the SDK's TRACE and DEBUG chatter.
    let lines: Vec<String> = function
        .logs()
        .lines()
        .filter(|line| line.contains(&secret_id))
        .filter(|line| {
            !line.trim_start().starts_with("TRACE") && !line.trim_start().starts_with("DEBUG")
        })
        .map(str::to_owned)
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("new password from secretsmanager:GetRandomPassword")),
        "the log says where the password came from"
    );
    assert!(lines
        .iter()
        .any(|l| l.contains("version is already AWSCURRENT")));
    println!("the Lambda's log of this rotation ({}):", db.engine());
    for line in lines {
        println!("{line}");
    }
}

/// Alternating users through the handler, three rotations: each switches user, the previous user keeps working,
/// and the user of two rotations back no longer takes its old password.
async fn alternating_users_rotation<D: TestDb>(db: D) {
    let (function, client) = function().await;
    let master = master_secret(&db).await;
    let user = unique_name("app");
    let (secret_id, password) = account_and_secret(&db, &user, Some(&master)).await;
    let mut history = vec![Credentials::new(&user, &password)];
    for round in 1..=3 {
        let token = rotation_token();
        begin_rotation(&client, &secret_id, &token).await;
        invoke(&function, &secret_id, &token, "createSecret")
            .await
            .expect("createSecret");
        let pending = read(&client, &secret_id, Some(&token), None).await.unwrap();
        let previous = history.last().unwrap().clone();
        assert_ne!(
            pending.username(),
            previous.username(),
            "round {round} switches users"
        );
        assert_rejected(&db, pending.username(), pending.password()).await;
        for step in ["setSecret", "testSecret", "finishSecret"] {
            invoke(&function, &secret_id, &token, step)
                .await
                .unwrap_or_else(|e| panic!("round {round}, {step}: {e}"));
        }
        assert_accepted(&db, pending.username(), pending.password(), "the new user").await;
        assert_accepted(
            &db,
            previous.username(),
            previous.password(),
            "the previous user",
        )
        .await;
        if let Some(two_back) = history.len().checked_sub(2).map(|i| &history[i]) {
            assert_rejected(&db, two_back.username(), two_back.password()).await;
        }
        history.push(pending);
    }
    let passwords: Vec<&str> = history.iter().map(Credentials::password).collect();
    function.assert_logs_hide(&passwords);
}

/// Refusals, before any change: rotation disabled, a token unknown to the secret, a token that is neither
/// AWSPENDING nor AWSCURRENT. The database password and the secret's labels stay as they were.
async fn refusals<D: TestDb>(db: D) {
    let (function, client) = function().await;
    let user = unique_name("app");
    let (secret_id, password) = account_and_secret(&db, &user, None).await;

    let token = rotation_token();
    let disabled = invoke(&function, &secret_id, &token, "createSecret").await;
    assert!(
        matches!(disabled, Err(HandlerError::RotationDisabled { .. })),
        "{disabled:?}"
    );
    assert_eq!(
        describe(&client, &secret_id).await.0.len(),
        1,
        "nothing was written"
    );

    begin_rotation(&client, &secret_id, &token).await;
    let (before, _) = describe(&client, &secret_id).await;
    let stranger = rotation_token();
    for step in ["createSecret", "setSecret", "testSecret", "finishSecret"] {
        let unknown = invoke(&function, &secret_id, &stranger, step).await;
        assert!(
            matches!(&unknown, Err(HandlerError::UnknownVersion { token, .. }) if *token == stranger),
            "{step}: {unknown:?}"
        );
    }
    assert_eq!(describe(&client, &secret_id).await.0, before);

    run_all_steps(&function, &secret_id, &token).await;
    let (finished, _) = describe(&client, &secret_id).await;
    let old_version = holder(&finished, Stage::Previous).expect("the first version is AWSPREVIOUS");
    let next = rotation_token();
    begin_rotation(&client, &secret_id, &next).await;
    let stale = invoke(&function, &secret_id, &old_version, "setSecret").await;
    assert!(
        matches!(stale, Err(HandlerError::NotPending { .. })),
        "{stale:?}"
    );
    let current = read(&client, &secret_id, None, Some(Stage::Current))
        .await
        .unwrap();
    assert_rejected(&db, &user, &password).await;
    assert_accepted(
        &db,
        &user,
        current.password(),
        "the refused events changed nothing",
    )
    .await;
    let message = format!("{stale:?} {}", stale.as_ref().unwrap_err());
    assert!(!message.contains(current.password()));
}

macro_rules! for_both_engines {
    ($($scenario:ident),+ $(,)?) => {
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    super::$scenario(super::pg()).await;
                }
            )+
        }
        mod mariadb {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    super::$scenario(super::mariadb()).await;
                }
            )+
        }
    };
}

for_both_engines!(single_user_rotation, alternating_users_rotation, refusals);
