//! Push acknowledgements: Pushover's callback for an emergency page and the
//! ntfy notification's acknowledge button.
//!
//! Neither provider signs its requests, so each carries its own credential:
//! Pushover's callback URL a per-page random secret (checked with the page's
//! receipt, see [`crate::ack::push`]), the ntfy button a signed token that
//! only acknowledges, only its alert, for its person. Anything that does not
//! check out is answered 403 and changes nothing; a repeat changes nothing.

use axum::body::Bytes;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::{ApiError, AppState};
use crate::ack::push::{acknowledge, actor, callback_matches};
use crate::ack::token::Purpose;
use crate::alert::{Action, Decision};
use crate::channel::twilio::callbacks::{form_get, parse_form};
use crate::store::{Act, Via};

fn bad_path(e: PathRejection) -> ApiError {
    ApiError::BadRequest(format!("invalid path: {}", e.body_text()))
}

/// `POST /pushover/callback/{notification}/{secret}`: Pushover reports that
/// someone acknowledged an emergency page (form: `receipt`, `acknowledged`,
/// `acknowledged_by`, …).
#[utoipa::path(
    post, path = "/pushover/callback/{notification}/{secret}", tag = "acknowledging",
    params(("notification" = i64, Path, description = "The page"), ("secret" = String, Path, description = "The random per-page secret Rouse gave Pushover")),
    request_body(content = serde_json::Value, content_type = "application/x-www-form-urlencoded", description = "Pushover's callback form (`receipt`, `acknowledged`, `acknowledged_by`, …)"),
    responses((status = 200, description = "`{status: acknowledged|already_recorded, alert_id}`", content_type = "application/json", body = serde_json::Value))
)]
pub async fn callback(
    State(state): State<AppState>,
    path: Result<Path<(i64, String)>, PathRejection>,
    body: Bytes,
) -> Result<Response, ApiError> {
    if state.config.channels.pushover.is_none() {
        return Err(ApiError::NotFound("Pushover is not configured".to_owned()));
    }
    let Path((notification_id, secret)) = path.map_err(bad_path)?;
    let form = parse_form(&body);
    let receipt = form_get(&form, "receipt").unwrap_or("");
    let page = state.store.push_page(notification_id).await?;
    let Some(page) = page.filter(|p| callback_matches(p, &secret, receipt)) else {
        metrics::counter!("rouse_intake_rejected_total", "reason" => "bad_pushover_callback")
            .increment(1);
        // Never the secret or the body: the URL is the credential.
        tracing::warn!(
            notification = notification_id,
            "Pushover callback refused: unknown page, wrong secret or wrong receipt"
        );
        return Err(ApiError::Forbidden(
            "this callback does not match any page".to_owned(),
        ));
    };
    if form_get(&form, "acknowledged") != Some("1") {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let now = state.clock.now();
    let who = actor(&state.catalog, &page, form_get(&form, "acknowledged_by"));
    let decision = acknowledge(state.store.as_ref(), &page, who, now).await?;
    if decision.is_some() {
        state.engine_wake.notify_one();
    }
    Ok(Json(json!({
        "status": if decision.is_some() { "acknowledged" } else { "already_recorded" },
        "alert_id": page.alert_id,
    }))
    .into_response())
}

#[derive(Debug, Deserialize)]
pub struct TokenQuery {
    t: String,
}

/// `POST /ntfy/ack/{alert}?t=TOKEN`: the notification's Acknowledge button.
#[utoipa::path(
    post, path = "/ntfy/ack/{alert}", tag = "acknowledging",
    params(("alert" = i64, Path, description = "The alert's id")),
    responses((status = 200, description = "`{status: acknowledged|already_acknowledged, alert_id}`", content_type = "application/json", body = serde_json::Value)),
    security(("signed_link" = []))
)]
pub async fn ntfy_ack(
    State(state): State<AppState>,
    path: Result<Path<i64>, PathRejection>,
    query: Result<Query<TokenQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Path(alert_id) = path.map_err(bad_path)?;
    let Query(q) = query.map_err(|_| ApiError::BadRequest("the token `t` is missing".into()))?;
    let grant = state
        .signer
        .verify_for(Purpose::PushAck, alert_id, &q.t, state.clock.now())
        .map_err(|e| ApiError::Forbidden(e.to_string()))?;
    let decision = state
        .store
        .act(&Act {
            alert_id,
            action: Action::Acknowledge,
            actor: grant.person,
            via: Via::Ntfy,
            at: state.clock.now(),
        })
        .await?;
    state.engine_wake.notify_one();
    let status = match decision {
        None => return Err(ApiError::NotFound("no such alert".to_owned())),
        Some(Decision::Acknowledge { .. }) => "acknowledged",
        Some(Decision::AlreadyAcknowledged { .. }) => "already_acknowledged",
        Some(_) => "unchanged",
    };
    Ok(Json(json!({ "status": status, "alert_id": alert_id })).into_response())
}
