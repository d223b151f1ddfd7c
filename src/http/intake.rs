//! Intake endpoints: authenticate the integration key, throttle, parse the
//! wire format (see [`crate::intake`]), route to a policy, and commit durably
//! before answering 202.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::extract::{Body, Credential, Path, Query};
use super::{ApiError, AppState};
use crate::alert::{Action, Event, IntakeKind};
use crate::catalog::Catalog;
use crate::escalation::plan;
use crate::intake::{self, IntakeError};
use crate::store::{EventJson, Ingest, IngestOutcome};

/// One event's result, as every intake endpoint reports it.
#[derive(Debug, Serialize)]
pub struct Accepted {
    pub dedup_key: String,
    pub alert_id: Option<i64>,
    pub outcome: &'static str,
}

/// `POST /v1/events`: Rouse's own format, key in a header.
#[utoipa::path(
    post, path = "/v1/events", tag = "intake",
    request_body(content = serde_json::Value, content_type = "application/json", description = "`{action: trigger|acknowledge|resolve, dedup_key?, summary, severity, source?, labels?, details?, links?}`; unknown fields are rejected"),
    responses((status = 202, description = "Committed to disk: `{status, message, dedup_key, alert_id, outcome}`", content_type = "application/json", body = serde_json::Value)),
    security(("integration_key" = []))
)]
pub async fn native(
    State(state): State<AppState>,
    Credential(key): Credential,
    Body(body): Body,
) -> Result<Response, ApiError> {
    let target = authorize(&state, &key)?;
    let event = intake::native::parse(&body).map_err(invalid)?;
    let mut accepted = commit(&state, &target, IntakeKind::Native, vec![event]).await?;
    let one = accepted
        .pop()
        .ok_or_else(|| ApiError::BadRequest("the request produced no event".to_owned()))?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({
            "status": "success",
            "message": "Event processed",
            "dedup_key": one.dedup_key,
            "alert_id": one.alert_id,
            "outcome": one.outcome,
        })),
    )
        .into_response())
}

/// `POST /v2/enqueue`: PagerDuty Events API v2, answered in PagerDuty's shapes
/// so its clients (Alertmanager's `pagerduty_configs`, SDKs) behave as with PagerDuty.
#[utoipa::path(
    post, path = "/v2/enqueue", tag = "intake",
    request_body(content = serde_json::Value, content_type = "application/json", description = "A PagerDuty Events API v2 event; `routing_key` is the integration key"),
    responses((status = 202, description = "`{status: success, message, dedup_key}`", content_type = "application/json", body = serde_json::Value))
)]
pub async fn pagerduty(State(state): State<AppState>, body: Result<Body, ApiError>) -> Response {
    let result = async {
        let Body(body) = body?;
        let (routing_key, event) = intake::pagerduty::parse(&body).map_err(invalid)?;
        let target = authorize(&state, &routing_key)?;
        commit(&state, &target, IntakeKind::PagerDuty, vec![event]).await
    }
    .await;
    match result {
        Ok(mut accepted) => {
            let dedup_key = accepted.pop().map(|a| a.dedup_key);
            (
                StatusCode::ACCEPTED,
                Json(json!({
                    "status": "success",
                    "message": "Event processed",
                    "dedup_key": dedup_key,
                })),
            )
                .into_response()
        }
        Err(err) => pagerduty_error(err),
    }
}

/// PagerDuty answers every failure as `{status, message, errors}`; keep that
/// shape, and our status codes, so senders retry exactly when they should.
fn pagerduty_error(err: ApiError) -> Response {
    let status = err.status();
    let (label, message) = match &err {
        ApiError::Invalid { .. } | ApiError::BadRequest(_) => {
            ("invalid event", "Event object is invalid".to_owned())
        }
        ApiError::TooManyRequests { .. } => ("throttle exceeded", err.public_message()),
        _ => ("error", err.public_message()),
    };
    let errors: Vec<String> = match &err {
        ApiError::Invalid { errors, .. } => errors.clone(),
        _ => vec![err.public_message()],
    };
    let mut response = err.into_response();
    *response.body_mut() = axum::body::Body::from(
        json!({ "status": label, "message": message, "errors": errors }).to_string(),
    );
    *response.status_mut() = status;
    response
}

/// `POST /integrations/alertmanager/{key}`: Alertmanager's webhook (version 4).
#[utoipa::path(
    post, path = "/integrations/alertmanager/{key}", tag = "intake",
    params(("key" = String, Path, description = "The integration key")),
    request_body(content = serde_json::Value, content_type = "application/json", description = "Alertmanager's webhook payload, version 4"),
    responses((status = 202, description = "Every alert of the group committed", content_type = "application/json", body = serde_json::Value))
)]
pub async fn alertmanager(
    State(state): State<AppState>,
    Path(key): Path<String>,
    Body(body): Body,
) -> Result<Response, ApiError> {
    group(
        state,
        key,
        body,
        IntakeKind::Alertmanager,
        intake::alertmanager::parse,
    )
    .await
}

/// `POST /integrations/grafana/{key}`: Grafana's webhook contact point.
#[utoipa::path(
    post, path = "/integrations/grafana/{key}", tag = "intake",
    params(("key" = String, Path, description = "The integration key")),
    request_body(content = serde_json::Value, content_type = "application/json", description = "Grafana's webhook contact point payload"),
    responses((status = 202, description = "Every alert of the notification committed", content_type = "application/json", body = serde_json::Value))
)]
pub async fn grafana(
    State(state): State<AppState>,
    Path(key): Path<String>,
    Body(body): Body,
) -> Result<Response, ApiError> {
    group(
        state,
        key,
        body,
        IntakeKind::Grafana,
        intake::grafana::parse,
    )
    .await
}

async fn group(
    state: AppState,
    key: String,
    body: axum::body::Bytes,
    kind: IntakeKind,
    parse: fn(&[u8]) -> Result<Vec<Event>, IntakeError>,
) -> Result<Response, ApiError> {
    let target = authorize(&state, &key)?;
    let events = parse(&body).map_err(invalid)?;
    let accepted = commit(&state, &target, kind, events).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({
            "status": "success",
            "message": format!("{} events processed", accepted.len()),
            "events": accepted,
        })),
    )
        .into_response())
}

#[derive(Debug, Deserialize)]
pub struct HeartbeatQuery {
    /// Several monitors may share one integration key; default: the integration's name.
    name: Option<String>,
}

/// `POST /v1/heartbeat/{key}?name=…`: a monitor says it is alive.
#[utoipa::path(
    post, path = "/v1/heartbeat/{key}", tag = "intake",
    params(("key" = String, Path, description = "The integration key"), ("name" = Option<String>, Query, description = "The monitor's name (default: the integration's)")),
    responses((status = 202, description = "`{status, service, name, ping_count, last_ping_at}`", content_type = "application/json", body = serde_json::Value))
)]
pub async fn heartbeat(
    State(state): State<AppState>,
    Path(key): Path<String>,
    Query(query): Query<HeartbeatQuery>,
) -> Result<Response, ApiError> {
    let target = authorize(&state, &key)?;
    let name = query.name.unwrap_or_else(|| target.integration.clone());
    let beat = ping(&state, &target, &name).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({
            "status": "success",
            "service": beat.service_id,
            "name": beat.name,
            "ping_count": beat.ping_count,
            "last_ping_at": beat.last_ping_at,
        })),
    )
        .into_response())
}

/// Records a heartbeat ping of `target`'s service (every endpoint that
/// takes pings comes here).
pub(super) async fn ping(
    state: &AppState,
    target: &Target,
    name: &str,
) -> Result<crate::store::Heartbeat, ApiError> {
    if name.is_empty() || name.chars().count() > 128 || name.chars().any(char::is_control) {
        return Err(ApiError::BadRequest(
            "name must be 1 to 128 printable characters".to_owned(),
        ));
    }
    let beat = state
        .store
        .record_heartbeat(&target.service_id, name, state.clock.now())
        .await?;
    metrics::counter!("rouse_heartbeats_total").increment(1);
    Ok(beat)
}

/// Who an integration key belongs to, resolved against the current configuration.
pub(super) struct Target {
    pub(super) catalog: Arc<Catalog>,
    pub(super) service_id: String,
    pub(super) integration: String,
}

pub(super) fn authorize(state: &AppState, key: &str) -> Result<Target, ApiError> {
    let catalog = state.catalog.current().ok_or_else(|| {
        ApiError::Unavailable(
            "no valid on-call configuration is loaded yet; retry later".to_owned(),
        )
    })?;
    let (service_id, integration) = match catalog.service_for_key(key) {
        Some((service, integration)) => (service.id.clone(), integration.to_owned()),
        None => {
            metrics::counter!("rouse_intake_rejected_total", "reason" => "unknown_key")
                .increment(1);
            return Err(ApiError::NotFound("unknown integration key".to_owned()));
        }
    };
    if let Err(retry_after_secs) = state.throttle.check(&format!("{service_id}/{integration}")) {
        metrics::counter!("rouse_intake_rejected_total", "reason" => "rate_limited").increment(1);
        tracing::warn!(service = %service_id, %integration, "integration over its rate limit");
        return Err(ApiError::TooManyRequests { retry_after_secs });
    }
    Ok(Target {
        catalog,
        service_id,
        integration,
    })
}

pub(super) fn invalid(err: IntakeError) -> ApiError {
    metrics::counter!("rouse_intake_rejected_total", "reason" => "invalid").increment(1);
    match err {
        IntakeError::Invalid(errors) => ApiError::Invalid {
            message: "invalid event".to_owned(),
            errors,
        },
        other => ApiError::BadRequest(other.to_string()),
    }
}

/// Routes each event and commits them all in one group-commit job: a request
/// is stored whole or not at all.
pub(super) async fn commit(
    state: &AppState,
    target: &Target,
    kind: IntakeKind,
    events: Vec<Event>,
) -> Result<Vec<Accepted>, ApiError> {
    let Some(service) = target.catalog.service(&target.service_id) else {
        return Err(ApiError::NotFound("unknown integration key".to_owned()));
    };
    let now = state.clock.now();
    // An always-firing Watchdog alert is a ping for its watchdog watcher, not
    // an alert to page about: it would otherwise page around the clock.
    let mut pings = Vec::new();
    let events: Vec<Event> = events
        .into_iter()
        .filter_map(|event| {
            let hits = target.catalog.watchdog_hits(&service.id, &event.labels);
            if hits.is_empty() {
                return Some(event);
            }
            pings.push((event.dedup_key.clone().unwrap_or_default(), hits));
            None
        })
        .collect();
    let mut watchdog = Vec::with_capacity(pings.len());
    for (dedup_key, hits) in pings {
        for id in hits {
            let name = crate::watch::spec::WatchdogSpec::heartbeat_name(&id);
            state
                .store
                .record_heartbeat(&target.service_id, &name, now)
                .await?;
        }
        metrics::counter!("rouse_events_total", "intake" => kind.as_str(), "outcome" => "watchdog_ping")
            .increment(1);
        watchdog.push(Accepted {
            dedup_key,
            alert_id: None,
            outcome: "watchdog_ping",
        });
    }
    if events.is_empty() {
        return Ok(watchdog);
    }
    let items: Vec<Ingest> = events
        .into_iter()
        .map(|event| {
            let route = service.route(&event.labels, event.severity.as_str());
            let dedup_key = match (&event.dedup_key, event.action) {
                (Some(key), _) => key.clone(),
                // A trigger without a key always opens a new alert.
                (None, Action::Trigger) => format!("rouse-{}", uuid::Uuid::new_v4().simple()),
                (None, _) => String::new(),
            };
            let first_step_due = target
                .catalog
                .policy(&route.policy_id)
                .map(|policy| plan::first_due(policy, now));
            Ingest {
                first_step_due,
                // Here, on the HTTP worker, not on the group-commit writer
                // (see `EventJson`); should encoding ever fail, the store
                // encodes it again and reports the error.
                encoded: EventJson::of(&event).ok(),
                service_id: target.service_id.clone(),
                actor: format!("{}:{}", kind.as_str(), target.integration),
                policy_id: Some(route.policy_id),
                urgency: route.urgency,
                dedup_key,
                event,
                received_at: now,
                storm_threshold: u64::from(state.config.intake.storm_threshold),
            }
        })
        .collect();
    let keys: Vec<String> = items.iter().map(|i| i.dedup_key.clone()).collect();
    let due_now: Vec<bool> = items
        .iter()
        .map(|i| i.first_step_due.is_some_and(|due| due <= now))
        .collect();
    let outcomes: Vec<IngestOutcome> = state.commits.submit(items).await?;
    if outcomes
        .iter()
        .zip(&due_now)
        .any(|(o, due)| *due && o.decision == crate::alert::Decision::Open)
    {
        // A first step with no delay is due now: do not wait for the next
        // poll. A later one is found by the engine's own timer, so there is
        // no need to wake it (and have it ask the store) after every commit.
        state.engine_wake.notify_one();
    }
    Ok(watchdog
        .into_iter()
        .chain(keys.into_iter().zip(outcomes).map(|(dedup_key, outcome)| {
            let name = outcome.decision.name();
            metrics::counter!("rouse_events_total", "intake" => kind.as_str(), "outcome" => name)
                .increment(1);
            match name {
                "storm_folded" => tracing::warn!(alert_id = outcome.alert_id, service = %target.service_id, %dedup_key, "alert folded into the storm alert"),
                "opened" => tracing::info!(alert_id = outcome.alert_id, service = %target.service_id, %dedup_key, intake = kind.as_str(), "alert opened"),
                _ => {}
            }
            Accepted {
                dedup_key,
                alert_id: outcome.alert_id,
                outcome: name,
            }
        }))
        .collect())
}
