//! The alert API for people and scripts: list, show with timeline,
//! acknowledge, resolve. Guarded by the admin token.

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::extract::{Body, Credential, Path, Query};
use super::{ApiError, AppState};
use crate::alert::{Action, AlertStatus, Decision};
use crate::store::{Act, AlertFilter};

const MAX_PAGE: u32 = 500;

/// Proof that the request carried the admin token.
pub struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Some(expected) = &state.config.admin_token else {
            return Err(ApiError::NotFound(
                "the alert API is disabled: set ROUSE_ADMIN_TOKEN to enable it".to_owned(),
            ));
        };
        let Credential(given) = Credential::from_request_parts(parts, state).await?;
        // Compare digests so neither the length nor a prefix of the token leaks through timing.
        let a = Sha256::digest(given.as_bytes());
        let b = Sha256::digest(expected.expose().as_bytes());
        if bool::from(a.ct_eq(&b)) {
            Ok(Admin)
        } else {
            Err(ApiError::Unauthorized("invalid admin token".to_owned()))
        }
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Comma-separated: `triggered,acknowledged`; `open` means both.
    status: Option<String>,
    /// A service id.
    service: Option<String>,
    /// Continue a page: only alerts with a smaller id (`next_before` of the last page).
    before: Option<i64>,
    /// At most this many (default 50, at most 500).
    limit: Option<u32>,
}

/// `GET /v1/alerts`
#[utoipa::path(
    get, path = "/v1/alerts", tag = "alerts",
    params(ListQuery),
    responses((status = 200, description = "`{alerts: [...], next_before}`, newest first", content_type = "application/json", body = serde_json::Value)),
    security(("admin_token" = []))
)]
pub async fn list(
    _: Admin,
    State(state): State<AppState>,
    Query(query): Query<ListQuery>,
) -> Result<Response, ApiError> {
    let mut statuses = Vec::new();
    for part in query.status.iter().flat_map(|s| s.split(',')) {
        match part.trim() {
            "" => {}
            "open" => statuses.extend([AlertStatus::Triggered, AlertStatus::Acknowledged]),
            other => statuses.push(other.parse().map_err(|_| {
                ApiError::BadRequest(format!(
                    "unknown status {other:?}: use triggered, acknowledged, resolved or open"
                ))
            })?),
        }
    }
    let limit = query.limit.unwrap_or(50).clamp(1, MAX_PAGE);
    let filter = AlertFilter {
        service_id: query.service,
        statuses,
        before_id: query.before,
        limit,
        ..AlertFilter::default()
    };
    let alerts = crate::store::stats::timed("alerts", state.store.alerts(&filter)).await?;
    let next = (alerts.len() == limit as usize)
        .then(|| alerts.last().map(|a| a.id))
        .flatten();
    Ok(Json(json!({ "alerts": alerts, "next_before": next })).into_response())
}

/// `GET /v1/alerts/{id}`: the alert and its timeline.
#[utoipa::path(
    get, path = "/v1/alerts/{id}", tag = "alerts",
    params(("id" = i64, Path, description = "The alert's id")),
    responses((status = 200, description = "The alert and its timeline", content_type = "application/json", body = serde_json::Value)),
    security(("admin_token" = []))
)]
pub async fn show(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Response, ApiError> {
    let alert = state
        .store
        .alert(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no alert {id}")))?;
    let timeline = crate::store::stats::timed("timeline", state.store.timeline(id)).await?;
    Ok(Json(json!({ "alert": alert, "timeline": timeline })).into_response())
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActBody {
    /// Who is acting (a person id or a script's name); recorded in the timeline.
    by: Option<String>,
}

/// `POST /v1/alerts/{id}/acknowledge`
#[utoipa::path(
    post, path = "/v1/alerts/{id}/acknowledge", tag = "alerts",
    params(("id" = i64, Path, description = "The alert's id")),
    request_body(content = Option<ActBody>, content_type = "application/json", description = "Optional: who is acting, recorded in the timeline"),
    responses(
        (status = 200, description = "The decision and the alert", content_type = "application/json", body = serde_json::Value),
        (status = 409, description = "The alert is already resolved: nothing changed; the body shows it", content_type = "application/json", body = serde_json::Value)
    ),
    security(("admin_token" = []))
)]
pub async fn acknowledge(
    admin: Admin,
    state: State<AppState>,
    id: Path<i64>,
    body: Body,
) -> Result<Response, ApiError> {
    act(admin, state, id, body, Action::Acknowledge).await
}

/// `POST /v1/alerts/{id}/resolve`
#[utoipa::path(
    post, path = "/v1/alerts/{id}/resolve", tag = "alerts",
    params(("id" = i64, Path, description = "The alert's id")),
    request_body(content = Option<ActBody>, content_type = "application/json", description = "Optional: who is acting, recorded in the timeline"),
    responses(
        (status = 200, description = "The decision and the alert", content_type = "application/json", body = serde_json::Value),
        (status = 409, description = "The alert is already resolved: nothing changed; the body shows it", content_type = "application/json", body = serde_json::Value)
    ),
    security(("admin_token" = []))
)]
pub async fn resolve(
    admin: Admin,
    state: State<AppState>,
    id: Path<i64>,
    body: Body,
) -> Result<Response, ApiError> {
    act(admin, state, id, body, Action::Resolve).await
}

async fn act(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<i64>,
    body: Body,
    action: Action,
) -> Result<Response, ApiError> {
    // No body at all is fine (`by` defaults); a body must be valid JSON.
    let Body(bytes) = body;
    let parsed: ActBody = if bytes.iter().all(u8::is_ascii_whitespace) {
        ActBody::default()
    } else {
        serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::BadRequest(format!("body is not valid JSON: {e}")))?
    };
    let by = parsed.by.unwrap_or_else(|| "api".to_owned());
    if by.chars().count() > 128 || by.chars().any(char::is_control) {
        return Err(ApiError::BadRequest(
            "by must be at most 128 printable characters".to_owned(),
        ));
    }
    let decision = state
        .store
        .act(&Act {
            alert_id: id,
            action,
            actor: by,
            via: crate::store::Via::Api,
            at: state.clock.now(),
        })
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no alert {id}")))?;
    let status = match decision {
        Decision::NothingOpen => StatusCode::CONFLICT,
        _ => StatusCode::OK,
    };
    let alert = state.store.alert(id).await?;
    Ok((
        status,
        Json(json!({ "outcome": decision.name(), "alert": alert })),
    )
        .into_response())
}
