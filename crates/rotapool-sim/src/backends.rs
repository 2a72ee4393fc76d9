//! The two engines, as the simulator drives them.

use mysql_async::prelude::Queryable;
use rotapool_mysql::MySqlBackend;
use rotapool_postgres::{PgBackend, PgClient};

use crate::sim::SimBackend;

impl SimBackend for PgBackend {
    const ENGINE: &'static str = "postgres";
    const DBNAME: &'static str = "postgres";

    async fn ping(conn: &mut PgClient) -> Result<(), String> {
        conn.simple_query("SELECT 1")
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    }
}

impl SimBackend for MySqlBackend {
    const ENGINE: &'static str = "mariadb";
    const DBNAME: &'static str = "information_schema";

    async fn ping(conn: &mut mysql_async::Conn) -> Result<(), String> {
        conn.query_drop("SELECT 1").await.map_err(|e| e.to_string())
    }
}
