//! `/v1/silences`: create, list and expire silences (admin token).
//!
//! Matchers are written `{name, op, value}` with `op` one of `=`, `!=`, `=~`,
//! `!~`, or in Alertmanager's shape `{name, value, isRegex, isEqual}`, so a
//! silence copied from Alertmanager's API works unchanged.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, TimeDelta, Utc};
use serde::Deserialize;
use serde_json::json;

use super::alerts::Admin;
use super::extract::{Body, Path};
use super::{ApiError, AppState};
use crate::alert::silence::{
    MatchOp, Matcher, MatcherSpec, Silence, SilenceSet, Subject, MAX_MATCHERS,
};
use crate::alert::AlertStatus;
use crate::store::silence::NewSilence;
use crate::store::AlertFilter;

/// A silence may not be set further ahead than this: a forgotten silence is
/// an outage nobody hears about.
pub const MAX_SILENCE: TimeDelta = TimeDelta::days(30);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    matchers: Vec<MatcherBody>,
    starts_at: Option<DateTime<Utc>>,
    ends_at: DateTime<Utc>,
    comment: String,
    created_by: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MatcherBody {
    name: String,
    value: String,
    op: Option<MatchOp>,
    #[serde(rename = "isRegex")]
    is_regex: Option<bool>,
    #[serde(rename = "isEqual")]
    is_equal: Option<bool>,
}

impl MatcherBody {
    fn spec(self) -> MatcherSpec {
        let op = self.op.unwrap_or(
            match (
                self.is_regex.unwrap_or(false),
                self.is_equal.unwrap_or(true),
            ) {
                (false, true) => MatchOp::Equal,
                (false, false) => MatchOp::NotEqual,
                (true, true) => MatchOp::Regex,
                (true, false) => MatchOp::NotRegex,
            },
        );
        MatcherSpec {
            name: self.name,
            op,
            value: self.value,
        }
    }
}

fn invalid(errors: Vec<String>) -> ApiError {
    ApiError::Invalid {
        message: "invalid silence".to_owned(),
        errors,
    }
}

/// `POST /v1/silences`
#[utoipa::path(
    post, path = "/v1/silences", tag = "alerts",
    request_body(content = serde_json::Value, content_type = "application/json", description = "`{matchers: [{name, op, value}], starts_at?, ends_at, comment, created_by}`"),
    responses((status = 201, description = "The silence as stored", content_type = "application/json", body = serde_json::Value)),
    security(("admin_token" = []))
)]
pub async fn create(
    _: Admin,
    State(state): State<AppState>,
    Body(body): Body,
) -> Result<Response, ApiError> {
    let body: CreateBody = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("invalid silence: {e}")))?;
    let now = state.clock.now();
    let new = validate(body, now)?;
    let silence = state.store.create_silence(&new).await?;
    tracing::info!(silence = silence.id, by = %silence.created_by, "silence created");
    Ok((StatusCode::CREATED, Json(view(&silence, now))).into_response())
}

fn validate(body: CreateBody, now: DateTime<Utc>) -> Result<NewSilence, ApiError> {
    let mut errors = Vec::new();
    if body.matchers.is_empty() || body.matchers.len() > MAX_MATCHERS {
        errors.push(format!("matchers: give 1 to {MAX_MATCHERS}"));
    }
    let matchers: Vec<MatcherSpec> = body.matchers.into_iter().map(MatcherBody::spec).collect();
    for m in &matchers {
        if let Err(e) = Matcher::new(m.clone()) {
            errors.push(format!("matchers: {e}"));
        }
    }
    let starts_at = body
        .starts_at
        .unwrap_or(now)
        .max(now - TimeDelta::minutes(1));
    if body.ends_at <= starts_at || body.ends_at <= now {
        errors.push("ends_at: must be in the future and after starts_at".to_owned());
    }
    if body.ends_at > now + MAX_SILENCE {
        errors.push(format!(
            "ends_at: at most {} days from now",
            MAX_SILENCE.num_days()
        ));
    }
    let comment = body.comment.trim().to_owned();
    if comment.is_empty() || comment.chars().count() > 1000 {
        errors.push("comment: say why, in 1 to 1000 characters".to_owned());
    }
    let created_by = body.created_by.trim().to_owned();
    if created_by.is_empty() || created_by.chars().count() > 100 {
        errors.push("created_by: 1 to 100 characters".to_owned());
    }
    if !errors.is_empty() {
        return Err(invalid(errors));
    }
    Ok(NewSilence {
        matchers,
        starts_at,
        ends_at: body.ends_at,
        comment,
        created_by,
        created_at: now,
    })
}

fn state_of(s: &Silence, now: DateTime<Utc>) -> &'static str {
    if s.ends_at <= now {
        "expired"
    } else if s.starts_at > now {
        "pending"
    } else {
        "active"
    }
}

fn view(s: &Silence, now: DateTime<Utc>) -> serde_json::Value {
    json!({
        "id": s.id,
        "state": state_of(s, now),
        "matchers": s.matchers,
        "starts_at": s.starts_at,
        "ends_at": s.ends_at,
        "comment": s.comment,
        "created_by": s.created_by,
        "created_at": s.created_at,
    })
}

/// `GET /v1/silences`: active and pending ones, and those that ended in the
/// last day.
#[utoipa::path(
    get, path = "/v1/silences", tag = "alerts",
    responses((status = 200, description = "Active and pending silences, and those that ended in the last day", content_type = "application/json", body = serde_json::Value)),
    security(("admin_token" = []))
)]
pub async fn list(_: Admin, State(state): State<AppState>) -> Result<Response, ApiError> {
    let now = state.clock.now();
    let silences = state.store.silences(now - TimeDelta::days(1)).await?;
    let shown: Vec<_> = silences.iter().map(|s| view(s, now)).collect();
    Ok(Json(json!({ "silences": shown })).into_response())
}

/// `DELETE /v1/silences/{id}`: ends the silence now. Open alerts it held
/// back start paging at once instead of at its planned end.
#[utoipa::path(
    delete, path = "/v1/silences/{id}", tag = "alerts",
    params(("id" = i64, Path, description = "The silence's id")),
    responses((status = 200, description = "The silence, now ended", content_type = "application/json", body = serde_json::Value)),
    security(("admin_token" = []))
)]
pub async fn expire(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Response, ApiError> {
    let now = state.clock.now();
    let planned = state
        .store
        .silences(now - TimeDelta::days(1))
        .await?
        .into_iter()
        .find(|s| s.id == id);
    let Some(silence) = state.store.expire_silence(id, now).await? else {
        return Err(ApiError::NotFound(format!("no silence #{id}")));
    };
    if let Some(held) = planned.filter(|s| s.active_at(now)) {
        release(&state, held, now).await?;
    }
    Ok(Json(view(&silence, now)).into_response())
}

/// Pulls forward the postponed steps of open alerts `silence` matched.
async fn release(state: &AppState, silence: Silence, now: DateTime<Utc>) -> Result<(), ApiError> {
    let set = SilenceSet::new(vec![silence]);
    let open = state
        .store
        .alerts(&AlertFilter {
            statuses: vec![AlertStatus::Triggered],
            limit: 1000,
            ..AlertFilter::default()
        })
        .await?;
    let mut woke = false;
    for alert in &open {
        let subject = Subject {
            service: &alert.service_id,
            severity: alert.severity.as_str(),
            labels: &alert.labels,
        };
        if set.matching(&subject, now).is_some() {
            woke |= state.store.escalate_now(alert.id, now).await?;
        }
    }
    if woke {
        state.engine_wake.notify_one();
    }
    Ok(())
}
