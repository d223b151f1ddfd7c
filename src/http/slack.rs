//! `POST /slack/interactions`: Slack's request URL for the Acknowledge and
//! Resolve buttons on pages. The request must carry a valid signature made
//! with the app's signing secret, less than five minutes old, before anything
//! in it is read. The presser must be a person in the configuration (their
//! `contact.slack` user id): a Slack workspace is bigger than the on-call
//! team, and nobody else may stop a page for them.
//!
//! The page's message is then updated by the escalation engine's follow-up
//! (`chat.update`: "ACKNOWLEDGED by alice"), like every chat message already
//! sent for the alert. Slack wants an answer within three seconds, so the
//! handler only records the action and wakes the engine.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::{replay, ApiError, AppState};
use crate::ack::slack::{self, ButtonPress};
use crate::alert::{Action, Decision};
use crate::channel::twilio::callbacks::parse_form;
use crate::store::{Act, Via};

#[utoipa::path(
    post, path = "/slack/interactions", tag = "acknowledging",
    request_body(content = serde_json::Value, content_type = "application/x-www-form-urlencoded", description = "Slack's interaction form: `payload` holds the JSON of the press"),
    responses((status = 200, description = "The button's effect", content_type = "application/json", body = serde_json::Value)),
    security(("slack_signature" = []))
)]
pub async fn interactions(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let Some(secret) = state
        .config
        .channels
        .slack
        .as_ref()
        .and_then(|s| s.signing_secret.as_ref())
    else {
        return Err(ApiError::NotFound(
            "Slack interactivity is not configured (channels.slack.signing_secret)".to_owned(),
        ));
    };
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Err(e) = slack::verify(
        secret,
        header("x-slack-request-timestamp"),
        header("x-slack-signature"),
        &body,
        state.clock.now(),
    ) {
        metrics::counter!("rouse_intake_rejected_total", "reason" => "bad_slack_signature")
            .increment(1);
        tracing::warn!(error = %e, "Slack interaction refused");
        return Err(ApiError::Unauthorized(e.to_string()));
    }
    let interaction = slack::parse_payload(&parse_form(&body)).map_err(ApiError::BadRequest)?;
    if interaction.kind != "block_actions" {
        return Ok(StatusCode::OK.into_response());
    }
    // Slack retries an interaction it got no answer to in time; the same
    // press (its action_ts, on the same button, by the same user) acts once.
    let stamps: Vec<String> = interaction
        .actions
        .iter()
        .filter_map(|a| {
            let ts = a.action_ts.as_deref()?;
            Some(format!(
                "{ts}/{}/{}",
                a.action_id,
                a.value.as_deref().unwrap_or("")
            ))
        })
        .collect();
    let id = (!stamps.is_empty()).then(|| format!("{}:{}", interaction.user.id, stamps.join(",")));
    replay::once(&state, "slack", id, pressed(&state, &interaction)).await
}

async fn pressed(state: &AppState, interaction: &slack::Interaction) -> Result<Response, ApiError> {
    let person = state.catalog.current().and_then(|c| {
        c.people()
            .find(|p| p.contact.slack.as_deref() == Some(interaction.user.id.as_str()))
            .map(|p| p.id.clone())
    });
    let presses: Vec<ButtonPress> = interaction
        .actions
        .iter()
        .filter_map(slack::SlackAction::press)
        .collect();
    let Some(person) = person else {
        if !presses.is_empty() {
            tracing::warn!(slack_user = %interaction.user.id, "Slack button pressed by someone who is not in the on-call configuration; ignored");
            metrics::counter!("rouse_slack_presses_total", "outcome" => "unknown_user")
                .increment(1);
            tell(
                state,
                interaction.response_url.as_deref(),
                &format!(
                    "Rouse does not know your Slack user ({}): ask an admin to add `slack: {}` to your contact in the on-call configuration. Nothing was changed.",
                    interaction.user.id, interaction.user.id
                ),
            );
        }
        return Ok(StatusCode::OK.into_response());
    };
    let now = state.clock.now();
    for press in presses {
        let (alert_id, action) = match press {
            ButtonPress::Acknowledge(id) => (id, Action::Acknowledge),
            ButtonPress::Resolve(id) => (id, Action::Resolve),
        };
        let decision = state
            .store
            .act(&Act {
                alert_id,
                action,
                actor: person.clone(),
                via: Via::Slack,
                at: now,
            })
            .await?;
        let outcome = match decision {
            Some(Decision::Acknowledge { .. } | Decision::Resolve { .. }) => "done",
            _ => "no_change",
        };
        metrics::counter!("rouse_slack_presses_total", "outcome" => outcome).increment(1);
        if outcome == "no_change" {
            let status = match state.store.alert(alert_id).await? {
                Some(alert) => format!("#{alert_id} is already {}.", alert.status.as_str()),
                None => format!("#{alert_id} no longer exists."),
            };
            tell(state, interaction.response_url.as_deref(), &status);
        }
    }
    state.engine_wake.notify_one();
    Ok(StatusCode::OK.into_response())
}

/// An ephemeral note to the presser through the interaction's `response_url`,
/// sent in the background (Slack waits three seconds at most). Only Slack's
/// own hosts, or the configured API host, are ever contacted: the URL comes
/// from a request body.
fn tell(state: &AppState, response_url: Option<&str>, text: &str) {
    let Some(url) = response_url.filter(|u| allowed_response_url(state, u)) else {
        return;
    };
    let body = serde_json::json!({
        "response_type": "ephemeral",
        "replace_original": false,
        "text": text,
    });
    let (http, url) = (state.http.clone(), url.to_owned());
    tokio::spawn(async move {
        if let Err(e) = http.post(&url).json(&body).send().await {
            tracing::warn!(error = %crate::channel::http::error_chain(&e), "could not answer a Slack button press");
        }
    });
}

fn allowed_response_url(state: &AppState, url: &str) -> bool {
    let Ok(parsed) = reqwest::Url::parse(url) else {
        return false;
    };
    let host = parsed.host_str().unwrap_or("");
    if parsed.scheme() == "https" && (host == "hooks.slack.com" || host.ends_with(".slack.com")) {
        return true;
    }
    let configured = state
        .config
        .channels
        .slack
        .as_ref()
        .and_then(|s| s.api_url.as_deref())
        .and_then(|u| reqwest::Url::parse(u).ok());
    configured.is_some_and(|c| c.origin() == parsed.origin())
}
