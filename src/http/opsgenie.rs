//! Opsgenie-compatible endpoints: the Alert API's create, close and
//! acknowledge, and heartbeat pings, authenticated with
//! `Authorization: GenieKey <key>` where the key is a Rouse integration key,
//! and answered in Opsgenie's shapes so its clients behave as with Opsgenie
//! (`202 {"result":"Request will be processed","took":…,"requestId":…}`;
//! errors `{"message":…,"took":…,"requestId":…}`).

use std::time::Instant;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::extract::Body;
use super::intake::{authorize, commit, invalid, ping, Target};
use super::{ApiError, AppState};
use crate::alert::{Action, IntakeKind};
use crate::intake::opsgenie::{self, Identifier};
use crate::store::{Act, Via};

#[derive(Debug, Deserialize)]
pub struct IdentifierQuery {
    #[serde(rename = "identifierType")]
    identifier_type: Option<String>,
}

/// `POST /v2/alerts`
#[utoipa::path(
    post, path = "/v2/alerts", tag = "opsgenie",
    request_body(content = serde_json::Value, content_type = "application/json", description = "Opsgenie's create-alert body (`message`, `alias`, `description`, `priority`, `tags`, `details`, …)"),
    responses((status = 202, description = "`{result, took, requestId}`", content_type = "application/json", body = serde_json::Value)),
    security(("genie_key" = []))
)]
pub async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Body, ApiError>,
) -> Response {
    let started = Instant::now();
    let result = async {
        let target = genie(&state, &headers)?;
        let Body(body) = body?;
        let event = opsgenie::parse_create(&body).map_err(invalid)?;
        commit(&state, &target, IntakeKind::Opsgenie, vec![event]).await
    }
    .await;
    answer(result.map(|_| ()), started, "Request will be processed")
}

/// `POST /v2/alerts/{identifier}/close`
#[utoipa::path(
    post, path = "/v2/alerts/{identifier}/close", tag = "opsgenie",
    params(("identifier" = String, Path, description = "The alert's id, or its alias with `identifierType=alias`"), ("identifierType" = Option<String>, Query, description = "`id` (default), `alias` or `tiny`")),
    request_body(content = Option<serde_json::Value>, content_type = "application/json", description = "Optional `{user, source, note}`"),
    responses((status = 202, description = "`{result, took, requestId}`", content_type = "application/json", body = serde_json::Value)),
    security(("genie_key" = []))
)]
pub async fn close(
    state: State<AppState>,
    path: Path<String>,
    query: Result<Query<IdentifierQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
    body: Result<Body, ApiError>,
) -> Response {
    act(state, path, query, headers, body, Action::Resolve).await
}

/// `POST /v2/alerts/{identifier}/acknowledge`
#[utoipa::path(
    post, path = "/v2/alerts/{identifier}/acknowledge", tag = "opsgenie",
    params(("identifier" = String, Path, description = "The alert's id, or its alias with `identifierType=alias`"), ("identifierType" = Option<String>, Query, description = "`id` (default), `alias` or `tiny`")),
    request_body(content = Option<serde_json::Value>, content_type = "application/json", description = "Optional `{user, source, note}`"),
    responses((status = 202, description = "`{result, took, requestId}`", content_type = "application/json", body = serde_json::Value)),
    security(("genie_key" = []))
)]
pub async fn acknowledge(
    state: State<AppState>,
    path: Path<String>,
    query: Result<Query<IdentifierQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
    body: Result<Body, ApiError>,
) -> Response {
    act(state, path, query, headers, body, Action::Acknowledge).await
}

async fn act(
    State(state): State<AppState>,
    Path(identifier): Path<String>,
    query: Result<Query<IdentifierQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
    body: Result<Body, ApiError>,
    action: Action,
) -> Response {
    let started = Instant::now();
    let result = async {
        let target = genie(&state, &headers)?;
        let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
        let kind = Identifier::parse(query.identifier_type.as_deref()).map_err(invalid)?;
        let Body(body) = body?;
        let parsed = opsgenie::parse_action(&body).map_err(invalid)?;
        match kind {
            Identifier::Alias => {
                let event = opsgenie::action_event(&identifier, action, &parsed);
                commit(&state, &target, IntakeKind::Opsgenie, vec![event]).await?;
            }
            Identifier::Id => by_id(&state, &target, &identifier, action, parsed.user).await?,
        }
        Ok(())
    }
    .await;
    answer(result, started, "Request will be processed")
}

/// Opsgenie's ids are Rouse's alert ids here; only the integration's own
/// service's alerts can be acted on with its key.
async fn by_id(
    state: &AppState,
    target: &Target,
    identifier: &str,
    action: Action,
    user: Option<String>,
) -> Result<(), ApiError> {
    let id: i64 = identifier.parse().map_err(|_| ApiError::Invalid {
        message: "invalid identifier".to_owned(),
        errors: vec![format!(
            "alert ids in Rouse are numbers; use identifierType=alias for {identifier:?}"
        )],
    })?;
    let not_found = || ApiError::NotFound(format!("Alert with id [{id}] does not exist"));
    let alert = state.store.alert(id).await?.ok_or_else(not_found)?;
    if alert.service_id != target.service_id {
        return Err(not_found());
    }
    let actor = user.filter(|u| !u.trim().is_empty()).map_or_else(
        || format!("opsgenie:{}", target.integration),
        |u| u.chars().take(100).collect(),
    );
    state
        .store
        .act(&Act {
            alert_id: id,
            action,
            actor,
            via: Via::Api,
            at: state.clock.now(),
        })
        .await?;
    Ok(())
}

/// `PUT /v2/alerts/{identifier}/message`
#[utoipa::path(
    put, path = "/v2/alerts/{identifier}/message", tag = "opsgenie",
    params(("identifier" = String, Path, description = "The alert's id, or its alias with `identifierType=alias`"), ("identifierType" = Option<String>, Query, description = "`id` (default), `alias` or `tiny`")),
    request_body(content = Option<serde_json::Value>, content_type = "application/json", description = "Accepted and ignored: every create already refreshes the alert"),
    responses((status = 202, description = "`{result, took, requestId}`", content_type = "application/json", body = serde_json::Value)),
    security(("genie_key" = []))
)]
pub async fn update_message(state: State<AppState>, headers: HeaderMap) -> Response {
    update(state, headers).await
}

/// `PUT /v2/alerts/{identifier}/description`
#[utoipa::path(
    put, path = "/v2/alerts/{identifier}/description", tag = "opsgenie",
    params(("identifier" = String, Path, description = "The alert's id, or its alias with `identifierType=alias`"), ("identifierType" = Option<String>, Query, description = "`id` (default), `alias` or `tiny`")),
    request_body(content = Option<serde_json::Value>, content_type = "application/json", description = "Accepted and ignored: every create already refreshes the alert"),
    responses((status = 202, description = "`{result, took, requestId}`", content_type = "application/json", body = serde_json::Value)),
    security(("genie_key" = []))
)]
pub async fn update_description(state: State<AppState>, headers: HeaderMap) -> Response {
    update(state, headers).await
}

/// `PUT /v2/alerts/{identifier}/message` and `…/description`, which
/// Alertmanager sends with `update_alerts: true`. Every create already
/// refreshes the alert's summary and details, so these change nothing; they
/// are answered (after authentication) so the sender does not retry them.
async fn update(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let started = Instant::now();
    answer(
        genie(&state, &headers).map(|_| ()),
        started,
        "Request will be processed",
    )
}

/// `GET|POST /v2/heartbeats/{name}/ping`
#[utoipa::path(
    method(get, post), path = "/v2/heartbeats/{name}/ping", tag = "opsgenie",
    params(("name" = String, Path, description = "The monitor's name")),
    responses((status = 202, description = "`{result, took, requestId}`", content_type = "application/json", body = serde_json::Value)),
    security(("genie_key" = []))
)]
pub async fn heartbeat(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    let started = Instant::now();
    let result = async {
        let target = genie(&state, &headers)?;
        ping(&state, &target, &name).await.map(|_| ())
    }
    .await;
    answer(result, started, "PONG - Heartbeat received")
}

/// The integration a `GenieKey` names. Opsgenie answers a bad key with 401
/// (and a missing one with 401 too); so do we.
fn genie(state: &AppState, headers: &HeaderMap) -> Result<Target, ApiError> {
    let key = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("GenieKey ")
                .or_else(|| v.strip_prefix("genieKey "))
        })
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .ok_or_else(|| {
            ApiError::Unauthorized(
                "Could not authenticate: send Authorization: GenieKey <integration key>".to_owned(),
            )
        })?;
    authorize(state, key).map_err(|e| match e {
        ApiError::NotFound(_) => ApiError::Unauthorized("Could not authenticate".to_owned()),
        other => other,
    })
}

/// Opsgenie's answer shapes, with Rouse's status codes (and `Retry-After`)
/// so senders retry exactly when they should. Validation errors are 422, as
/// Opsgenie answers them.
fn answer(result: Result<(), ApiError>, started: Instant, ok: &str) -> Response {
    let took = (started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0;
    let request_id = uuid::Uuid::new_v4().to_string();
    match result {
        Ok(()) => (
            StatusCode::ACCEPTED,
            Json(json!({ "result": ok, "took": took, "requestId": request_id })),
        )
            .into_response(),
        Err(err) => {
            let status = match &err {
                ApiError::Invalid { .. } | ApiError::BadRequest(_) => {
                    StatusCode::UNPROCESSABLE_ENTITY
                }
                _ => err.status(),
            };
            let mut body =
                json!({ "message": err.public_message(), "took": took, "requestId": request_id });
            if let ApiError::Invalid { errors, .. } = &err {
                body["message"] =
                    json!("Request body is not processable. Please check the errors.");
                body["errors"] = json!({ "message": errors.join("; ") });
            }
            // Keep the mapping's headers (Retry-After) and replace the body.
            let mut response = err.into_response();
            *response.body_mut() = axum::body::Body::from(body.to_string());
            *response.status_mut() = status;
            response
        }
    }
}
