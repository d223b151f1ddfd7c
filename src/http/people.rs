//! The people API (admin token): send someone a test page through each of
//! their high-urgency methods, and read what became of their test pages.
//! The decisions are in [`crate::escalation::test_page`]; this only opens
//! the alerts, queues the pages and answers.

use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;

use super::alerts::Admin;
use super::{ApiError, AppState};
use crate::alert::{Action, Event, IntakeKind, Severity, Urgency};
use crate::channel::Recipient;
use crate::escalation::test_page::{self, Method, PROOF_MAX_AGE};
use crate::oncall::Person;
use crate::store::{Ingest, NewNotification, Store, StoreError};

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct TestPageRequest {
    /// `push`, `sms`, `voice` or `all` (the default).
    #[serde(default)]
    via: Option<String>,
}

fn person_path(path: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    path.map(|Path(id)| id)
        .map_err(|e| ApiError::BadRequest(format!("invalid path: {}", e.body_text())))
}

fn person(state: &AppState, id: &str) -> Result<Person, ApiError> {
    let catalog = state.catalog.current().ok_or_else(|| {
        ApiError::Unavailable("no valid on-call configuration is loaded".to_owned())
    })?;
    catalog
        .person(id)
        .cloned()
        .ok_or_else(|| ApiError::NotFound(format!("no person `{id}` in the configuration")))
}

/// `POST /v1/people/{id}/test-page` with an optional `{"via": "voice"}`.
#[utoipa::path(
    post, path = "/v1/people/{id}/test-page", tag = "alerts",
    params(("id" = String, Path, description = "A person's id in the configuration")),
    request_body(content = Option<TestPageRequest>, content_type = "application/json", description = "Optional `{via: push|sms|voice|all}` (default all)"),
    responses((status = 202, description = "`{status: queued, person, pages: [{method, alert_id}]}`", content_type = "application/json", body = serde_json::Value)),
    security(("admin_token" = []))
)]
pub async fn send_test_page(
    _: Admin,
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let id = person_path(path)?;
    let request: TestPageRequest = if body.iter().all(u8::is_ascii_whitespace) {
        TestPageRequest::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))?
    };
    let person = person(&state, &id)?;
    let via = request.via.as_deref().unwrap_or("all");
    let methods = test_page::methods(&person, via).map_err(ApiError::BadRequest)?;
    let now = state.clock.now();
    let mut pages = Vec::new();
    for method in methods {
        let alert_id = open(state.store.as_ref(), &person, method, now).await?;
        pages.push(json!({"method": method, "alert_id": alert_id}));
    }
    state.engine_wake.notify_one();
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"status": "queued", "person": person.id, "pages": pages})),
    )
        .into_response())
}

/// Opens one method's test-page alert and queues its pages.
async fn open(
    store: &dyn Store,
    person: &Person,
    method: Method,
    now: DateTime<Utc>,
) -> Result<i64, StoreError> {
    let key = format!(
        "test-page/{}/{}/{}",
        person.id,
        method.as_str(),
        uuid::Uuid::new_v4().simple()
    );
    let mut labels = std::collections::BTreeMap::new();
    labels.insert("rouse_test_page".to_owned(), method.as_str().to_owned());
    let opened = store
        .ingest(&[Ingest {
            encoded: None,
            service_id: test_page::SERVICE.to_owned(),
            actor: "test-page".to_owned(),
            policy_id: None,
            // Loud on purpose: the page must prove what a real one would do.
            urgency: Urgency::High,
            dedup_key: key.clone(),
            event: Event {
                kind: IntakeKind::Native,
                action: Action::Trigger,
                dedup_key: Some(key),
                summary: test_page::summary(person, method),
                severity: Severity::Info,
                source: "rouse".to_owned(),
                labels,
                details: json!({"test_page": {"person": person.id, "method": method}}),
                links: Vec::new(),
                occurred_at: Some(now),
            },
            received_at: now,
            storm_threshold: u64::MAX,
            // No escalation: each method is tested alone.
            first_step_due: None,
        }])
        .await?;
    store.sync().await?;
    let alert_id = opened
        .first()
        .and_then(|o| o.alert_id)
        .ok_or_else(|| StoreError::Corrupt("a test page opened no alert".to_owned()))?;
    let pages: Vec<NewNotification> = test_page::addresses(person, method)
        .into_iter()
        .map(|(channel, address)| NewNotification {
            idempotency_key: format!("test-page-{alert_id}/{}/{address}", channel.as_str()),
            channel,
            target: "test-page".to_owned(),
            recipient: Recipient::Person {
                id: person.id.clone(),
                name: person.name.clone(),
                address,
            },
            delay: chrono::TimeDelta::zero(),
        })
        .collect();
    store
        .queue_test_page(alert_id, &person.id, method, &pages, now)
        .await?;
    Ok(alert_id)
}

/// `GET /v1/people/{id}/test-pages`: the last 90 days' test pages, newest first.
#[utoipa::path(
    get, path = "/v1/people/{id}/test-pages", tag = "alerts",
    params(("id" = String, Path, description = "A person's id in the configuration")),
    responses((status = 200, description = "The last 90 days' test pages and the proven methods", content_type = "application/json", body = serde_json::Value)),
    security(("admin_token" = []))
)]
pub async fn test_pages(
    _: Admin,
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let id = person_path(path)?;
    let person = person(&state, &id)?;
    let now = state.clock.now();
    let results = state
        .store
        .test_pages(Some(&person.id), now - PROOF_MAX_AGE)
        .await?;
    let proven: Vec<Method> = test_page::high_urgency_methods(&person)
        .into_iter()
        .filter(|m| {
            results
                .iter()
                .any(|r| r.method == *m && r.proves(&person.id, now))
        })
        .collect();
    Ok(Json(json!({
        "person": person.id,
        "proven": proven,
        "test_pages": results,
    }))
    .into_response())
}
