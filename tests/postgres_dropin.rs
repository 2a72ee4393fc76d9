//! Code written for deadpool-postgres keeps working: `Object` is used as a `tokio_postgres::Client`, with
//! `prepare_cached` and transactions; only the pool construction changes.

use std::sync::Arc;

use rotapool_postgres::{
    tokio_postgres::{self, GenericClient},
    Credentials, InMemorySecretStore, PgBackend, Pool, PoolBuilder, SslMode,
};
use rotapool_testkit::{random_password, unique_name, PgServer, TestServer};

async fn pool() -> Pool {
    let server = PgServer::shared();
    let (user, password) = (unique_name("dropin"), random_password());
    server.create_account(&user, &password).await;
    server
        .admin()
        .await
        .batch_execute(&format!("GRANT CREATE ON SCHEMA public TO \"{user}\""))
        .await
        .unwrap();
    let credentials = Credentials::new(&user, password)
        .with_host(server.host())
        .with_port(server.port())
        .with_dbname("postgres");
    PoolBuilder::new(PgBackend::new().ssl_mode(SslMode::Disable))
        .secret_source(Arc::new(InMemorySecretStore::new("dropin", &credentials)))
        .max_size(2)
        .build()
        .await
        .unwrap()
}

/// A helper written against the driver's trait, as application code often is.
async fn count<C: GenericClient>(client: &C, table: &str) -> Result<i64, tokio_postgres::Error> {
    Ok(client
        .query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .await?
        .get(0))
}

#[tokio::test]
async fn object_works_as_a_tokio_postgres_client() {
    let pool = pool().await;
    let table = unique_name("items");
    let mut client = pool.get().await.unwrap();
    client
        .batch_execute(&format!(
            "CREATE TABLE {table} (id int PRIMARY KEY, name text)"
        ))
        .await
        .unwrap();

    let insert = client
        .prepare_cached(&format!("INSERT INTO {table} VALUES ($1, $2)"))
        .await
        .unwrap();
    let again = client
        .prepare_cached(&format!("INSERT INTO {table} VALUES ($1, $2)"))
        .await
        .unwrap();
    assert_eq!(insert.columns().len(), again.columns().len());
    assert_eq!(
        client.cached_statements(),
        1,
        "the second prepare comes from the cache"
    );
    client.execute(&insert, &[&1i32, &"one"]).await.unwrap();

    let tx = client.transaction().await.unwrap();
    tx.execute(&format!("INSERT INTO {table} VALUES (2, 'two')"), &[])
        .await
        .unwrap();
    assert_eq!(count(&tx, &table).await.unwrap(), 2);
    tx.rollback().await.unwrap();
    assert_eq!(count(client.as_client(), &table).await.unwrap(), 1);

    let tx = client.transaction().await.unwrap();
    tx.execute(&format!("INSERT INTO {table} VALUES (3, 'three')"), &[])
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let names: Vec<String> = client
        .query(&format!("SELECT name FROM {table} ORDER BY id"), &[])
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(names, ["one", "three"]);
}
