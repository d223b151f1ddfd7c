//! `POST /v1/simulate` (admin token): what `rouse simulate` prints, as JSON,
//! with the silences in the store applied too.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, TimeDelta, Utc};
use serde::Deserialize;
use std::collections::BTreeMap;

use super::alerts::Admin;
use super::extract::Body;
use super::{ApiError, AppState};
use crate::alert::silence::SilenceSet;
use crate::alert::Severity;
use crate::escalation::simulate::{simulate as run, Question};

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct Ask {
    service: String,
    at: Option<DateTime<Utc>>,
    severity: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    /// Minutes to follow the escalation (default 120, at most 14 days).
    for_minutes: Option<i64>,
}

#[utoipa::path(
    post, path = "/v1/simulate", tag = "alerts",
    request_body(content = Ask, content_type = "application/json", description = "The alert to imagine: its service, when, severity and labels"),
    responses((status = 200, description = "What `rouse simulate --json` prints", content_type = "application/json", body = serde_json::Value)),
    security(("admin_token" = []))
)]
pub async fn simulate(
    _: Admin,
    State(state): State<AppState>,
    Body(body): Body,
) -> Result<Response, ApiError> {
    let ask: Ask = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("invalid question: {e}")))?;
    let catalog = state.catalog.current().ok_or_else(|| {
        ApiError::Unavailable(
            "no valid on-call configuration is loaded yet; retry later".to_owned(),
        )
    })?;
    let severity = match ask.severity.as_deref() {
        None => Severity::Critical,
        Some(s) => Severity::from_wire(s).ok_or_else(|| {
            ApiError::BadRequest("severity is critical, error, warning or info".to_owned())
        })?,
    };
    let minutes = ask.for_minutes.unwrap_or(120);
    if !(1..=14 * 24 * 60).contains(&minutes) {
        return Err(ApiError::BadRequest("for_minutes is 1 to 20160".to_owned()));
    }
    let now = state.clock.now();
    let at = ask.at.unwrap_or(now);
    let silences = SilenceSet::new(state.store.silences(at - TimeDelta::seconds(1)).await?);
    let question = Question {
        service_id: &ask.service,
        at,
        severity,
        labels: &ask.labels,
        horizon: TimeDelta::minutes(minutes),
        silences: &silences,
        number_cap_per_hour: state.config.pages_per_number_per_hour,
    };
    let sim = run(&catalog, &question).map_err(ApiError::BadRequest)?;
    Ok(Json(sim).into_response())
}
