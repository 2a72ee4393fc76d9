//! MariaDB, alternating users: grants given between rotations reach the clone.

use super::*;

/// MariaDB, alternating users: a grant given to the base user after the clone exists reaches the clone at the
/// next rotation to it (AWS's function replays the current user's grants on every setSecret; so does this one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_grants_given_between_rotations_reach_the_clone() {
    let db = mariadb();
    let (function, client) = function().await;
    let master = master_secret(&db).await;
    let user = unique_name("app");
    let (secret_id, _) = account_and_secret(&db, &user, Some(&master)).await;
    let schema = unique_name("lambda_grants");
    db.server()
        .execute(&format!(
            "CREATE DATABASE `{schema}`; CREATE TABLE `{schema}`.t (n INT); INSERT INTO `{schema}`.t VALUES (7)"
        ))
        .await;
    let select = format!("SELECT n FROM `{schema}`.t");
    let rotate = || async {
        let token = rotation_token();
        begin_rotation(&client, &secret_id, &token).await;
        run_all_steps(&function, &secret_id, &token).await;
        read(&client, &secret_id, None, Some(Stage::Current))
            .await
            .unwrap()
    };
    let clone = rotate().await;
    assert_eq!(clone.username(), format!("{user}_clone"));
    db.server()
        .execute(&format!("GRANT SELECT ON `{schema}`.t TO '{user}'@'%'"))
        .await;
    let base = rotate().await;
    assert_eq!(base.username(), user);

    // The clone's password is the one from the first rotation, still valid; its privileges lack the new grant.
    let mut conn = db
        .server()
        .login(clone.username(), clone.password())
        .await
        .expect("the clone logs in");
    match conn.query_first::<i32, _>(&select).await {
        Err(mysql_async::Error::Server(e)) => assert_eq!(e.code, 1142, "{e}"),
        other => panic!("the clone read the table before the grant reached it: {other:?}"),
    }
    conn.disconnect().await.ok();

    let clone = rotate().await;
    assert_eq!(clone.username(), format!("{user}_clone"));
    let mut conn = db
        .server()
        .login(clone.username(), clone.password())
        .await
        .expect("the clone logs in");
    let n: Option<i32> = conn
        .query_first(&select)
        .await
        .expect("the clone has the grant");
    assert_eq!(n, Some(7));
    conn.disconnect().await.ok();
}
