//! Signed acknowledgement links, as sent in SMS, chat and email.
//!
//! `GET` only shows a page with a button: link previewers (Slack, mail
//! scanners) fetch every link they see, and must not acknowledge anything.
//! The button `POST`s back to the same URL, which acknowledges. The token is
//! bound to the alert and expires (see [`crate::ack::token`]).

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::{ApiError, AppState};
use crate::alert::{Action, AlertStatus};
use crate::channel::twilio::twiml::escape;
use crate::store::Act;

#[derive(Debug, Deserialize)]
pub struct AckQuery {
    t: String,
}

/// How long an ack link works: a night's sleep and a morning.
pub const ACK_LINK_LIFETIME: chrono::TimeDelta = chrono::TimeDelta::hours(24);

fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"robots\" content=\"noindex\"><title>{t}</title>\
         <style>body{{font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem}}\
         button{{font-size:1.25rem;padding:.75rem 1.5rem}}</style></head>\
         <body><h1>{t}</h1>{body}</body></html>",
        t = escape(title)
    );
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        html,
    )
        .into_response()
}

fn refused(err: impl std::fmt::Display) -> Response {
    page(
        StatusCode::FORBIDDEN,
        "Link not valid",
        &format!("<p>{}</p>", escape(&err.to_string())),
    )
}

/// `GET /ack/{alert}?t=TOKEN`: shows the alert and an Acknowledge button.
pub async fn show(
    State(state): State<AppState>,
    Path(alert_id): Path<i64>,
    Query(q): Query<AckQuery>,
) -> Result<Response, ApiError> {
    if let Err(e) = state
        .signer
        .verify("ack", alert_id, &q.t, state.clock.now())
    {
        return Ok(refused(e));
    }
    let Some(alert) = state.store.alert(alert_id).await? else {
        return Ok(refused("the alert does not exist"));
    };
    let summary = format!(
        "<p><strong>#{} {}</strong> — {}</p><p>Status: {}</p>",
        alert.id,
        escape(&alert.severity.as_str().to_uppercase()),
        escape(&alert.summary),
        alert.status.as_str()
    );
    if alert.status != AlertStatus::Triggered {
        return Ok(page(StatusCode::OK, "Nothing to do", &summary));
    }
    let form = format!(
        "{summary}<form method=\"post\" action=\"/ack/{}?t={}\"><button type=\"submit\">Acknowledge</button></form>",
        alert.id,
        escape(&crate::channel::twilio::percent_encode(&q.t))
    );
    Ok(page(StatusCode::OK, "Acknowledge this alert?", &form))
}

/// `POST /ack/{alert}?t=TOKEN`: acknowledges.
pub async fn confirm(
    State(state): State<AppState>,
    Path(alert_id): Path<i64>,
    Query(q): Query<AckQuery>,
) -> Result<Response, ApiError> {
    let now = state.clock.now();
    if let Err(e) = state.signer.verify("ack", alert_id, &q.t, now) {
        return Ok(refused(e));
    }
    let decision = state
        .store
        .act(&Act {
            alert_id,
            action: Action::Acknowledge,
            actor: "ack link".to_owned(),
            at: now,
        })
        .await?;
    let (title, body) = match decision {
        None => ("Not found", "The alert does not exist.".to_owned()),
        Some(d) => (
            "Thank you",
            format!("Alert #{alert_id}: {}.", d.name().replace('_', " ")),
        ),
    };
    Ok(page(
        StatusCode::OK,
        title,
        &format!("<p>{}</p>", escape(&body)),
    ))
}
