//! Liveness and readiness for load balancers and orchestrators.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde_json::json;

use super::AppState;

/// The process is up and serving; says nothing about its dependencies.
#[utoipa::path(
    get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "The process is up: `{\"status\":\"ok\"}`", content_type = "application/json", body = serde_json::Value))
)]
pub async fn healthz() -> impl IntoResponse {
    Json(json!({ "status": "ok" }))
}

/// Ready to take alerts: the database answers and a configuration is loaded.
///
/// A rejected edit does not make Rouse unready (the last good configuration
/// still routes alerts), but it is shown here so the admin sees it.
#[utoipa::path(
    get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "Ready: the database answers and a configuration is loaded (a rejected edit's problems are shown too)", content_type = "application/json", body = serde_json::Value),
        (status = 503, description = "Not ready, with the same body saying why", content_type = "application/json", body = serde_json::Value)
    )
)]
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let database_ok = match state.store.ping().await {
        Ok(()) => true,
        Err(err) => {
            tracing::warn!(error = %err, "readiness: database unreachable");
            false
        }
    };
    let catalog = state.catalog.status();
    let ready = database_ok && catalog.loaded_at.is_some();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({
            "status": if ready { "ready" } else { "not ready" },
            "database": { "ok": database_ok, "backend": state.store.backend() },
            "configuration": catalog,
        })),
    )
}
