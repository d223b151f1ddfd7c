//! The alert pages: the filtered list (which refreshes itself) and one
//! alert's whole story, with the buttons that act on it.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::{Deserialize, Serialize};

use super::login::CsrfForm;
use super::{age, render, Instant, Viewer, WebState};
use crate::alert::{Action, Alert, AlertStatus, Severity, TimelineKind};
use crate::http::ApiError;
use crate::store::{Act, AlertFilter, DeliveryStatus, Via};

const PAGE_SIZE: u32 = 25;

#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    status: String,
    #[serde(default)]
    service: String,
    #[serde(default)]
    severity: String,
    #[serde(default)]
    q: String,
    before: Option<i64>,
    /// Only the rows, for the script that refreshes the list.
    #[serde(default)]
    fragment: Option<String>,
}

#[derive(Serialize)]
struct Row {
    id: i64,
    status: &'static str,
    severity: &'static str,
    service: String,
    summary: String,
    age: String,
    created: Instant,
    count: i64,
    last_seen: Instant,
    who: String,
}

/// Who has the alert: who acknowledged or resolved it, or whom the latest
/// notifications are paging.
async fn who(web: &WebState, alert: &Alert) -> Result<String, ApiError> {
    Ok(match alert.status {
        AlertStatus::Acknowledged => format!(
            "acknowledged by {}",
            alert.acknowledged_by.as_deref().unwrap_or("someone")
        ),
        AlertStatus::Resolved => format!(
            "resolved by {}",
            alert.resolved_by.as_deref().unwrap_or("someone")
        ),
        AlertStatus::Triggered => {
            let notes = web.app.store.notifications(alert.id).await?;
            let mut paging: Vec<&str> = Vec::new();
            for n in notes.iter().rev() {
                let label = n.recipient.label();
                if !paging.contains(&label) && paging.len() < 3 {
                    paging.push(label);
                }
            }
            if paging.is_empty() {
                "nobody paged yet".to_owned()
            } else {
                format!("paging {}", paging.join(", "))
            }
        }
    })
}

fn parse_status(s: &str) -> Result<Vec<AlertStatus>, ApiError> {
    Ok(match s {
        "" | "all" => Vec::new(),
        "open" => vec![AlertStatus::Triggered, AlertStatus::Acknowledged],
        other => vec![other.parse().map_err(|_| {
            ApiError::BadRequest(format!(
                "unknown status {other:?}: use triggered, acknowledged, resolved or open"
            ))
        })?],
    })
}

/// `GET /ui/alerts`
pub async fn alerts(
    viewer: Viewer,
    State(web): State<WebState>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::BadRequest(format!("query: {e}")))?;
    let statuses = parse_status(&query.status)?;
    let severities = match query.severity.as_str() {
        "" | "all" => Vec::new(),
        s => vec![s.parse::<Severity>().map_err(|_| {
            ApiError::BadRequest(format!(
                "unknown severity {s:?}: use critical, error, warning or info"
            ))
        })?],
    };
    if query.q.chars().count() > 200 || query.service.chars().count() > 200 {
        return Err(ApiError::BadRequest(
            "filters are at most 200 characters".to_owned(),
        ));
    }
    let found = web
        .app
        .store
        .alerts(&AlertFilter {
            service_id: Some(query.service.trim().to_owned()).filter(|s| !s.is_empty()),
            statuses,
            before_id: query.before,
            limit: PAGE_SIZE,
            severities,
            text: Some(query.q.trim().to_owned()).filter(|s| !s.is_empty()),
        })
        .await?;
    let now = web.app.clock.now();
    let mut rows = Vec::with_capacity(found.len());
    for a in &found {
        rows.push(Row {
            id: a.id,
            status: a.status.as_str(),
            severity: a.severity.as_str(),
            service: a.service_id.clone(),
            summary: a.summary.clone(),
            age: age(a.created_at, now),
            created: Instant::new(a.created_at),
            count: a.event_count,
            last_seen: Instant::new(a.last_seen_at),
            who: who(&web, a).await?,
        });
    }
    let older = (found.len() == PAGE_SIZE as usize)
        .then(|| found.last().map(|a| a.id))
        .flatten();
    let services: Vec<String> = web
        .app
        .catalog
        .current()
        .map(|c| c.services().map(|s| s.id.clone()).collect())
        .unwrap_or_default();
    let filter = minijinja::context! {
        status => query.status,
        service => query.service,
        severity => query.severity,
        q => query.q,
    };
    let template = if query.fragment.is_some() {
        "alert_rows.html"
    } else {
        "alerts.html"
    };
    Ok(viewer.finish(render(
        StatusCode::OK,
        template,
        minijinja::context! {
            viewer => viewer.context(),
            page => "alerts",
            rows => rows,
            filter => filter,
            services => services,
            older => older,
            paged => query.before.is_some(),
            now => Instant::new(now),
        },
    )))
}

#[derive(Serialize)]
struct Entry {
    at: Instant,
    kind: &'static str,
    actor: String,
    message: String,
    data: Option<String>,
}

#[derive(Serialize)]
struct Note {
    channel: &'static str,
    recipient: String,
    address: String,
    attempt: u32,
    status: &'static str,
    /// How people read the status: failures with their reason.
    outcome: String,
    due: Instant,
    provider_id: Option<String>,
}

fn outcome(status: DeliveryStatus, error: Option<&str>) -> String {
    let reason = error.map(|e| format!(": {e}")).unwrap_or_default();
    match status {
        DeliveryStatus::Pending => "queued".to_owned(),
        DeliveryStatus::Retry => format!("will retry{reason}"),
        DeliveryStatus::Delivered => "sent".to_owned(),
        DeliveryStatus::Failed => format!("failed{reason}"),
        DeliveryStatus::Unknown => format!("outcome unknown{reason}"),
        // Canceled: the alert was acknowledged first, or a cap or an opt-out held it back.
        DeliveryStatus::Canceled => format!("not sent{reason}"),
    }
}

/// `GET /ui/alerts/{id}`
pub async fn alert(
    viewer: Viewer,
    State(web): State<WebState>,
    id: Result<Path<i64>, axum::extract::rejection::PathRejection>,
) -> Result<Response, ApiError> {
    let Path(id) = id.map_err(|_| ApiError::NotFound("no such alert".to_owned()))?;
    let Some(alert) = web.app.store.alert(id).await? else {
        return Err(ApiError::NotFound(format!("no alert {id}")));
    };
    let timeline: Vec<Entry> = web
        .app
        .store
        .timeline(id)
        .await?
        .into_iter()
        .map(|e| Entry {
            at: Instant::new(e.at),
            kind: e.kind.as_str(),
            actor: e.actor,
            message: e.message,
            data: e
                .data
                .filter(|d| d.as_object().is_none_or(|o| !o.is_empty()))
                .map(|d| d.to_string()),
        })
        .collect();
    let notifications: Vec<Note> = web
        .app
        .store
        .notifications(id)
        .await?
        .into_iter()
        .map(|n| Note {
            channel: n.channel.as_str(),
            recipient: n.recipient.label().to_owned(),
            address: n.recipient.address().to_owned(),
            attempt: n.attempt,
            status: n.status.as_str(),
            outcome: outcome(n.status, n.last_error.as_deref()),
            due: Instant::new(n.due_at),
            provider_id: n.provider_id,
        })
        .collect();
    let now = web.app.clock.now();
    let details = match &alert.details {
        serde_json::Value::Null => None,
        serde_json::Value::Object(o) if o.is_empty() => None,
        d => serde_json::to_string_pretty(d).ok(),
    };
    // Only web links become anchors: a `javascript:` href from a sender must
    // not run in the viewer's session.
    let links: Vec<&crate::alert::Link> = alert
        .links
        .iter()
        .filter(|l| {
            let h = l.href.to_ascii_lowercase();
            h.starts_with("https://") || h.starts_with("http://")
        })
        .collect();
    Ok(viewer.finish(render(
        StatusCode::OK,
        "alert.html",
        minijinja::context! {
            viewer => viewer.context(),
            page => "alerts",
            who => who(&web, &alert).await?,
            status => alert.status.as_str(),
            severity => alert.severity.as_str(),
            created => Instant::new(alert.created_at),
            last_seen => Instant::new(alert.last_seen_at),
            acknowledged => alert.acknowledged_at.map(Instant::new),
            resolved => alert.resolved_at.map(Instant::new),
            age => age(alert.created_at, now),
            details => details,
            links => links,
            alert => alert,
            timeline => timeline,
            notifications => notifications,
        },
    )))
}

/// `POST /ui/alerts/{id}/{acknowledge|resolve|escalate}`: acts as the
/// logged-in person; the timeline says who, and that it was the web UI.
pub async fn act(
    viewer: Viewer,
    State(web): State<WebState>,
    path: Result<Path<(i64, String)>, axum::extract::rejection::PathRejection>,
    _headers: HeaderMap,
    form: Result<Form<CsrfForm>, axum::extract::rejection::FormRejection>,
) -> Result<Response, ApiError> {
    let Path((id, action)) = path.map_err(|_| ApiError::NotFound("no such alert".to_owned()))?;
    // CSRF before anything else: a forged form changes nothing, whatever it asks.
    let csrf = form.map(|f| f.0.csrf).unwrap_or_default();
    if !web.sessions.csrf_ok(&viewer.session.id, &csrf) {
        return Err(ApiError::Forbidden(
            "missing or wrong CSRF token; nothing was changed".to_owned(),
        ));
    }
    let now = web.app.clock.now();
    let person = viewer.session.person.clone();
    let store = &web.app.store;
    match action.as_str() {
        "acknowledge" | "resolve" => {
            let action = if action == "resolve" {
                Action::Resolve
            } else {
                Action::Acknowledge
            };
            store
                .act(&Act {
                    alert_id: id,
                    action,
                    actor: person,
                    via: Via::Web,
                    at: now,
                })
                .await?
                .ok_or_else(|| ApiError::NotFound(format!("no alert {id}")))?;
        }
        "escalate" => {
            if store.alert(id).await?.is_none() {
                return Err(ApiError::NotFound(format!("no alert {id}")));
            }
            if store.escalate_now(id, now).await? {
                store
                    .note(
                        &[id],
                        now,
                        TimelineKind::Escalated,
                        &person,
                        "escalated now via web: the next step fires without waiting",
                    )
                    .await?;
            }
        }
        _ => return Err(ApiError::NotFound("no such action".to_owned())),
    }
    web.app.engine_wake.notify_one();
    Ok(viewer.finish(Redirect::to(&format!("/ui/alerts/{id}")).into_response()))
}
