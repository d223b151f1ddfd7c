//! Liveness and readiness for load balancers and orchestrators.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde_json::json;

use super::AppState;

/// The process is up and serving; says nothing about its dependencies.
pub async fn healthz() -> impl IntoResponse {
    Json(json!({ "status": "ok" }))
}

/// Ready to take alerts: the database answers and a configuration is loaded.
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let database = match state.store.ping().await {
        Ok(()) => json!({ "ok": true, "backend": state.store.backend() }),
        Err(err) => {
            tracing::warn!(error = %err, "readiness: database unreachable");
            json!({ "ok": false, "backend": state.store.backend(), "error": "database unreachable" })
        }
    };
    let ready = database["ok"] == true;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({ "status": if ready { "ready" } else { "not ready" }, "database": database })),
    )
}
