//! `GET /v1/watchers`: what each watcher watches, when it runs next and what
//! it last found, for people, scripts and the coming web UI. Admin token.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::alerts::Admin;
use super::{ApiError, AppState};
use crate::watch::decide::WatchState;
use crate::watch::runner::target;

#[utoipa::path(
    get, path = "/v1/watchers", tag = "alerts",
    responses((status = 200, description = "Every configured watcher with its state", content_type = "application/json", body = serde_json::Value)),
    security(("admin_token" = []))
)]
pub async fn list(_: Admin, State(state): State<AppState>) -> Result<Response, ApiError> {
    let catalog = state.catalog.current().ok_or_else(|| {
        ApiError::Unavailable(
            "no valid on-call configuration is loaded yet; retry later".to_owned(),
        )
    })?;
    let rows = state.store.watchers().await?;
    let watchers: Vec<serde_json::Value> = catalog
        .watchers()
        .map(|spec| {
            let row = rows.iter().find(|r| r.id == spec.id);
            let stored: Option<WatchState> = row
                .and_then(|r| r.state.clone())
                .and_then(|s| serde_json::from_value(s).ok());
            let open: Vec<serde_json::Value> = stored
                .as_ref()
                .map(|s| {
                    s.findings
                        .iter()
                        .filter_map(|(code, f)| {
                            f.open.map(|level| json!({ "code": code, "level": level }))
                        })
                        .collect()
                })
                .unwrap_or_default();
            json!({
                "id": spec.id,
                "kind": spec.kind.name(),
                "service": spec.service,
                "target": target(spec),
                "schedule": spec.when.describe(),
                "next_run_at": row.map(|r| r.next_due_at),
                "running": row.is_some_and(|r| r.leased),
                "last_run_at": stored.as_ref().and_then(|s| s.last_run_at),
                "last_success_at": stored.as_ref().and_then(|s| s.last_success_at),
                "last_result": stored.as_ref().map_or("never run", |s| s.last_result.as_str()),
                "last_status": stored.as_ref().map(|s| s.last_status.clone()),
                "consecutive_failures": stored.as_ref().map_or(0, |s| s.consecutive_failures),
                "open_findings": open,
            })
        })
        .collect();
    Ok(Json(json!({ "watchers": watchers })).into_response())
}
