//! The HTTP API: orders, a health check, a slow query on demand and the metrics page.

use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post},
    Json, Router,
};
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::{json, Value};
use std::time::Duration;

use crate::db::{Db, DbError};

/// What the handlers share.
#[derive(Clone)]
pub(crate) struct App {
    /// The database.
    pub db: Db,
    /// Renders the metrics page.
    pub metrics: PrometheusHandle,
}

/// The service's routes.
pub(crate) fn router(app: App) -> Router {
    Router::new()
        .route("/orders", post(create_order))
        .route("/orders/{id}", get(read_order))
        .route("/healthz", get(health))
        .route("/slow/{ms}", get(slow))
        .route("/metrics", get(metrics))
        .with_state(app)
}

/// A database failure answers 503 with a JSON body; the pool's messages never hold a secret.
impl IntoResponse for DbError {
    fn into_response(self) -> Response {
        tracing::warn!(error = %self.0, "database unavailable");
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "error": "database unavailable", "detail": self.0 })),
        )
            .into_response()
    }
}

async fn create_order(
    State(app): State<App>,
    Json(order): Json<Value>,
) -> Result<Response, DbError> {
    let id = app.db.insert(&order).await?;
    Ok((StatusCode::CREATED, Json(json!({ "id": id }))).into_response())
}

async fn read_order(State(app): State<App>, Path(id): Path<i64>) -> Result<Response, DbError> {
    Ok(match app.db.find(id).await? {
        Some(order) => Json(order).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({ "error": "no such order" })),
        )
            .into_response(),
    })
}

async fn health(State(app): State<App>) -> Result<Json<Value>, DbError> {
    app.db.ping().await?;
    Ok(Json(json!({ "status": "ok" })))
}

/// The longest sleep `/slow/{ms}` takes, so that the endpoint cannot hold connections for long.
const SLOWEST: Duration = Duration::from_secs(10);

/// Holds a pooled connection in the database for `ms` milliseconds (at most [`SLOWEST`]): a slow query on demand,
/// for watching what the service does with requests in flight, such as a graceful shutdown.
async fn slow(State(app): State<App>, Path(ms): Path<u64>) -> Result<Response, DbError> {
    let duration = Duration::from_millis(ms);
    if duration > SLOWEST {
        return Ok((
            StatusCode::BAD_REQUEST,
            Json(json!({ "error": format!("at most {} ms", SLOWEST.as_millis()) })),
        )
            .into_response());
    }
    app.db.sleep(duration).await?;
    Ok(Json(json!({ "slept_ms": ms })).into_response())
}

async fn metrics(State(app): State<App>) -> String {
    app.metrics.render()
}
