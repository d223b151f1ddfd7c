//! Signed acknowledgement links, as sent in SMS, chat and email.
//!
//! `GET` only shows the alert and its buttons: link previewers (Slack, mail
//! scanners) fetch every link they see, and must not acknowledge anything.
//! Each button `POST`s back with a token bound to its own action, which acts.
//! Tokens are bound to the alert, the person and the action, and expire (see
//! [`crate::ack::token`]). The page needs no login and works on a phone.

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::extract::{Path, Query};
use super::{ApiError, AppState};
use crate::ack::token::{Grant, Purpose};
use crate::alert::{Action, Alert, AlertStatus, Decision};
use crate::channel::render::escape_html as escape;
use crate::channel::twilio::percent_encode;
use crate::store::{Act, Via};

#[derive(Debug, Deserialize)]
pub struct AckQuery {
    t: String,
}

/// How long an ack link works: a night's sleep and a morning.
pub const ACK_LINK_LIFETIME: chrono::TimeDelta = chrono::TimeDelta::hours(24);

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:32rem;margin:2rem auto;padding:0 1rem;line-height:1.4}\
    .sev{font-weight:bold}.meta{color:#555}form{display:inline-block;margin:.5rem .5rem 0 0}\
    button{font-size:1.25rem;padding:.75rem 1.5rem;border-radius:.4rem;border:1px solid #444;cursor:pointer}\
    button.primary{background:#1d6f42;color:#fff;border-color:#1d6f42}";

fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"robots\" content=\"noindex\"><title>{t}</title>\
         <style>{STYLE}</style></head><body><h1>{t}</h1>{body}</body></html>",
        t = escape(title)
    );
    let mut response = (status, html).into_response();
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_TYPE, "text/html; charset=utf-8"),
        // The token is in the URL: keep it out of caches and Referer headers.
        (header::CACHE_CONTROL, "no-store"),
        (header::REFERRER_POLICY, "no-referrer"),
        // No framing: nobody may overlay the button on another page.
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
        ),
        (header::X_FRAME_OPTIONS, "DENY"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

fn refused(err: impl std::fmt::Display) -> Response {
    page(
        StatusCode::FORBIDDEN,
        "Link not valid",
        &format!(
            "<p>{}. Nothing was changed.</p><p class=\"meta\">Ask for a new page, or use the SMS reply or the alert API.</p>",
            escape(&err.to_string())
        ),
    )
}

fn check(state: &AppState, alert_id: i64, token: &str) -> Result<Grant, Box<Response>> {
    let grant = state
        .signer
        .verify(alert_id, token, state.clock.now())
        .map_err(|e| Box::new(refused(e)))?;
    // Only links made for this page: a call's URL token or a push button's
    // token is refused here, as theirs refuse ack links.
    if !matches!(grant.purpose, Purpose::Acknowledge | Purpose::Resolve) {
        return Err(Box::new(refused(
            "this link is not an acknowledgement link",
        )));
    }
    Ok(grant)
}

fn describe(alert: &Alert) -> String {
    let by = match alert.status {
        AlertStatus::Acknowledged => alert.acknowledged_by.as_deref(),
        AlertStatus::Resolved => alert.resolved_by.as_deref(),
        AlertStatus::Triggered => None,
    }
    .map(|who| format!(" by {}", escape(who)))
    .unwrap_or_default();
    format!(
        "<p><span class=\"sev\">{sev}</span> #{id} · {service}</p><p><strong>{summary}</strong></p>\
         <p class=\"meta\">Opened {opened} · seen {count}× · <span id=\"status\">{status}{by}</span></p>",
        sev = escape(&alert.severity.as_str().to_uppercase()),
        id = alert.id,
        service = escape(&alert.service_id),
        summary = escape(&alert.summary),
        opened = alert.created_at.format("%Y-%m-%d %H:%M UTC"),
        count = alert.event_count,
        status = alert.status.as_str(),
    )
}

fn button(alert_id: i64, token: &str, label: &str, primary: bool) -> String {
    format!(
        "<form method=\"post\" action=\"/ack/{alert_id}?t={}\"><button type=\"submit\"{}>{label}</button></form>",
        escape(&percent_encode(token)),
        if primary { " class=\"primary\"" } else { "" }
    )
}

/// `GET /ack/{alert}?t=TOKEN`: shows the alert and what the link allows.
#[utoipa::path(
    get, path = "/ack/{alert}", tag = "acknowledging",
    params(("alert" = i64, Path, description = "The alert's id")),
    responses(
        (status = 200, description = "The alert and the buttons the link allows; changes nothing", content_type = "text/html", body = String),
        (status = 403, description = "A page saying the link is not valid (tampered, expired, for another alert)", content_type = "text/html", body = String)
    ),
    security(("signed_link" = []))
)]
pub async fn show(
    State(state): State<AppState>,
    Path(alert_id): Path<i64>,
    Query(q): Query<AckQuery>,
) -> Result<Response, ApiError> {
    let grant = match check(&state, alert_id, &q.t) {
        Ok(grant) => grant,
        Err(refusal) => return Ok(*refusal),
    };
    let Some(alert) = state.store.alert(alert_id).await? else {
        return Ok(refused("the alert does not exist"));
    };
    let mut body = describe(&alert);
    // Whoever may acknowledge may also resolve: they are the one on call.
    let resolve_token = state
        .signer
        .sign(Purpose::Resolve, alert_id, &grant.person, grant.expires);
    let title = match (alert.status, grant.purpose) {
        (AlertStatus::Triggered, Purpose::Acknowledge) => {
            body.push_str(&button(alert_id, &q.t, "Acknowledge", true));
            body.push_str(&button(alert_id, &resolve_token, "Resolve", false));
            "Acknowledge this alert?"
        }
        (AlertStatus::Resolved, _) => "Nothing to do",
        _ => {
            body.push_str(&button(alert_id, &resolve_token, "Resolve", true));
            "Resolve this alert?"
        }
    };
    if !grant.person.is_empty() {
        body.push_str(&format!(
            "<p class=\"meta\">This link was sent to {}.</p>",
            escape(&grant.person)
        ));
    }
    Ok(page(StatusCode::OK, title, &body))
}

/// `POST /ack/{alert}?t=TOKEN`: does what the token was signed for.
/// Idempotent: a second press reports the state, changes nothing.
#[utoipa::path(
    post, path = "/ack/{alert}", tag = "acknowledging",
    params(("alert" = i64, Path, description = "The alert's id")),
    responses(
        (status = 200, description = "What was done (or the state, for a repeat)", content_type = "text/html", body = String),
        (status = 403, description = "A page saying the link is not valid (tampered, expired, for another alert)", content_type = "text/html", body = String)
    ),
    security(("signed_link" = []))
)]
pub async fn confirm(
    State(state): State<AppState>,
    Path(alert_id): Path<i64>,
    Query(q): Query<AckQuery>,
) -> Result<Response, ApiError> {
    let grant = match check(&state, alert_id, &q.t) {
        Ok(grant) => grant,
        Err(refusal) => return Ok(*refusal),
    };
    let action = match grant.purpose {
        Purpose::Resolve => Action::Resolve,
        _ => Action::Acknowledge,
    };
    let actor = if grant.person.is_empty() {
        "someone with the chat link".to_owned()
    } else {
        grant.person.clone()
    };
    let decision = state
        .store
        .act(&Act {
            alert_id,
            action,
            actor,
            via: Via::Link,
            at: state.clock.now(),
        })
        .await?;
    state.engine_wake.notify_one();
    let Some(alert) = state.store.alert(alert_id).await? else {
        return Ok(refused("the alert does not exist"));
    };
    let title = match decision {
        Some(Decision::Acknowledge { .. }) => "Acknowledged",
        Some(Decision::Resolve { .. }) => "Resolved",
        Some(Decision::AlreadyAcknowledged { .. }) => "Already acknowledged",
        _ => match alert.status {
            AlertStatus::Resolved => "Already resolved",
            _ => "Nothing changed",
        },
    };
    let mut body = describe(&alert);
    if alert.status == AlertStatus::Acknowledged {
        body.push_str("<p>Escalation stopped: nobody else will be paged for this alert.</p>");
    }
    Ok(page(StatusCode::OK, title, &body))
}
