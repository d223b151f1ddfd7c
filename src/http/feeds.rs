//! Calendar feeds: `GET /feeds/{token}.ics` for subscribers, and
//! `/v1/feeds` (admin token) to create, list and revoke them.
//!
//! A feed's token is its only credential (calendar apps cannot send headers),
//! so it is long and random, shown once when made, and stored only as a
//! SHA-256: a lookup by digest compares no secret byte by byte.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::alerts::Admin;
use super::extract::{Body, Path};
use super::{ApiError, AppState};
use crate::feed::{self, Subject};
use crate::store::feed::{Feed, NewFeed};

/// Prefix of feed tokens, so a leaked one is recognisable in a scan.
const TOKEN_PREFIX: &str = "rf_";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    schedule: Option<String>,
    person: Option<String>,
    #[serde(default)]
    label: String,
}

fn digest(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// 244 random bits (two v4 UUIDs, drawn from the OS's CSPRNG).
fn new_token() -> String {
    format!(
        "{TOKEN_PREFIX}{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

fn feed_url(state: &AppState, token: &str) -> String {
    format!("{}/feeds/{token}.ics", state.config.public_url)
}

fn view(feed: &Feed) -> serde_json::Value {
    json!({
        "id": feed.id,
        "kind": feed.kind,
        "subject": feed.subject,
        "label": feed.label,
        "created_at": feed.created_at,
        "revoked_at": feed.revoked_at,
        "state": if feed.revoked_at.is_some() { "revoked" } else { "active" },
    })
}

/// `POST /v1/feeds` with `{"schedule": ID}` or `{"person": ID}`.
#[utoipa::path(
    post, path = "/v1/feeds", tag = "alerts",
    request_body(content = serde_json::Value, content_type = "application/json", description = "`{schedule: ID}` or `{person: ID}`, and an optional `label`"),
    responses((status = 201, description = "The feed, with its `url` and `token` (shown this once only)", content_type = "application/json", body = serde_json::Value)),
    security(("admin_token" = []))
)]
pub async fn create(
    _: Admin,
    State(state): State<AppState>,
    Body(body): Body,
) -> Result<Response, ApiError> {
    let body: CreateBody = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("invalid feed: {e}")))?;
    let subject = match (body.schedule, body.person) {
        (Some(id), None) => Subject::Schedule(id),
        (None, Some(id)) => Subject::Person(id),
        _ => {
            return Err(ApiError::BadRequest(
                "invalid feed: give exactly one of \"schedule\" or \"person\"".to_owned(),
            ))
        }
    };
    if body.label.chars().count() > 200 {
        return Err(ApiError::BadRequest(
            "invalid feed: label is longer than 200 characters".to_owned(),
        ));
    }
    let catalog = state.catalog.current().ok_or_else(no_catalog)?;
    if !subject.exists(&catalog) {
        return Err(ApiError::BadRequest(format!(
            "invalid feed: no {} `{}` in the on-call configuration",
            subject.kind(),
            subject.id()
        )));
    }
    let token = new_token();
    let feed = state
        .store
        .create_feed(&NewFeed {
            kind: subject.kind().to_owned(),
            subject: subject.id().to_owned(),
            label: body.label,
            token_hash: digest(&token),
            created_at: state.clock.now(),
        })
        .await?;
    tracing::info!(feed = feed.id, kind = %feed.kind, subject = %feed.subject, "calendar feed created");
    let mut answer = view(&feed);
    // The only time the token is shown: it is not stored.
    answer["url"] = json!(feed_url(&state, &token));
    answer["token"] = json!(token);
    Ok((StatusCode::CREATED, Json(answer)).into_response())
}

/// `GET /v1/feeds`: every feed, without tokens.
#[utoipa::path(
    get, path = "/v1/feeds", tag = "alerts",
    responses((status = 200, description = "Every calendar feed, without tokens", content_type = "application/json", body = serde_json::Value)),
    security(("admin_token" = []))
)]
pub async fn list(_: Admin, State(state): State<AppState>) -> Result<Response, ApiError> {
    let feeds: Vec<serde_json::Value> = state.store.feeds().await?.iter().map(view).collect();
    Ok(Json(json!({ "feeds": feeds })).into_response())
}

/// `DELETE /v1/feeds/{id}`: the feed's URL answers 404 from now on.
#[utoipa::path(
    delete, path = "/v1/feeds/{id}", tag = "alerts",
    params(("id" = i64, Path, description = "The feed's id")),
    responses((status = 200, description = "The feed, now revoked", content_type = "application/json", body = serde_json::Value)),
    security(("admin_token" = []))
)]
pub async fn revoke(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Response, ApiError> {
    let Some(feed) = state.store.revoke_feed(id, state.clock.now()).await? else {
        return Err(ApiError::NotFound(format!("no feed #{id}")));
    };
    tracing::info!(feed = feed.id, "calendar feed revoked");
    Ok(Json(view(&feed)).into_response())
}

/// `GET /feeds/{token}.ics`. Unknown, revoked and malformed tokens all get
/// the same 404, so the answer says nothing about which tokens exist.
#[utoipa::path(
    get, path = "/feeds/{file}", tag = "operations",
    params(("file" = String, Path, description = "`{token}.ics`: the feed's token is the credential")),
    responses((status = 200, description = "The iCalendar feed (RFC 5545)", content_type = "text/calendar", body = String))
)]
pub async fn ics(
    State(state): State<AppState>,
    file: Result<Path<String>, ApiError>,
) -> Result<Response, ApiError> {
    let missing = || ApiError::NotFound("no such feed".to_owned());
    let Ok(Path(file)) = file else {
        return Err(missing());
    };
    let token = file.strip_suffix(".ics").ok_or_else(missing)?;
    if !token.starts_with(TOKEN_PREFIX) || token.len() > 100 {
        return Err(missing());
    }
    let feed = state
        .store
        .feed_by_token(&digest(token))
        .await?
        .ok_or_else(missing)?;
    let subject = Subject::parse(&feed.kind, &feed.subject).ok_or_else(missing)?;
    let catalog = state.catalog.current().ok_or_else(no_catalog)?;
    let now = state.clock.now();
    // A schedule or person since removed from the YAML: the feed is gone too.
    let shifts = feed::shifts(&catalog, &subject, now).ok_or_else(missing)?;
    let text = feed::render(&feed::title(&catalog, &subject), &shifts, now);
    Ok((
        [
            (header::CONTENT_TYPE, "text/calendar; charset=utf-8"),
            // Subscribers poll; a minute of caching spares the catalog walk.
            (header::CACHE_CONTROL, "private, max-age=60"),
        ],
        text,
    )
        .into_response())
}

fn no_catalog() -> ApiError {
    ApiError::Unavailable("no valid on-call configuration is loaded yet; retry later".to_owned())
}
