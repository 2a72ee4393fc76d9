//! Base user names too long for the `_clone` suffix are refused at createSecret, before anything is written.

use super::*;

/// A user name too long for `_clone` within the engine's limit is refused at createSecret, naming the limit,
/// and nothing is written.
async fn long_user_names_are_refused<D: TestDb>(db: D, limit: usize) {
    let (function, client) = function().await;
    let master = master_secret(&db).await;
    let base = unique_name("app");
    let user = format!(
        "{base}{}",
        "x".repeat(limit - "_clone".len() + 1 - base.len())
    );
    let (secret_id, password) = account_and_secret(&db, &user, Some(&master)).await;
    let token = rotation_token();
    begin_rotation(&client, &secret_id, &token).await;
    let refused = invoke(&function, &secret_id, &token, "createSecret").await;
    match &refused {
        Err(HandlerError::Rotation(RotationError::UserNameTooLong { max, .. })) => {
            assert_eq!(*max, limit)
        }
        other => panic!("expected UserNameTooLong, got {other:?}"),
    }
    let message = refused.unwrap_err().to_string();
    assert!(message.contains(&format!("limit of {limit}")), "{message}");
    assert!(
        read(&client, &secret_id, Some(&token), None)
            .await
            .is_none(),
        "no pending version was written"
    );
    assert_accepted(&db, &user, &password, "the account is untouched").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_user_names_longer_than_56_are_refused() {
    long_user_names_are_refused(pg(), 63).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_user_names_longer_than_26_are_refused() {
    long_user_names_are_refused(mariadb(), 32).await;
}
