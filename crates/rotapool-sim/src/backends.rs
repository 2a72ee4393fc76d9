//! The two engines, as the simulator drives them: through rotapool's own drivers, and through sqlx.

use mysql_async::prelude::Queryable;
use rotapool_mysql::MySqlBackend;
use rotapool_postgres::{PgBackend, PgClient};
use sqlx::{
    mysql::{MySqlConnectOptions, MySqlConnection, MySqlSslMode},
    postgres::{PgConnectOptions, PgConnection, PgSslMode},
    Executor as _,
};

use crate::{sim::SimBackend, sqlx_clients::SqlxEngine};

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

impl SqlxEngine for PgBackend {
    type Sqlx = sqlx::Postgres;

    fn sqlx_options() -> PgConnectOptions {
        PgConnectOptions::new_without_pgpass().ssl_mode(PgSslMode::Disable)
    }

    async fn sqlx_ping(conn: &mut PgConnection) -> Result<(), String> {
        // A query without arguments goes through the simple (text) protocol, as `ping` does.
        conn.execute("SELECT 1")
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

impl SqlxEngine for MySqlBackend {
    type Sqlx = sqlx::MySql;

    fn sqlx_options() -> MySqlConnectOptions {
        MySqlConnectOptions::new().ssl_mode(MySqlSslMode::Disabled)
    }

    async fn sqlx_ping(conn: &mut MySqlConnection) -> Result<(), String> {
        // A query without arguments goes through the simple (text) protocol, as `ping` does.
        conn.execute("SELECT 1")
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    }
}
