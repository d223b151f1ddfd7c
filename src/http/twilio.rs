//! Twilio's webhooks: the TwiML a call plays, the key a person presses, call
//! and message status callbacks, and SMS replies.
//!
//! Every request must carry a valid `X-Twilio-Signature` over the URL Twilio
//! was given (our `public_url` + path + query) and the form, checked in
//! constant time; anything else is answered 403 before it is read further.
//! The TwiML URLs also carry a signed token bound to the alert, so even a
//! leaked auth token cannot make Rouse speak about another alert.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::{ApiError, AppState};
use crate::alert::{Action, AlertStatus};
use crate::channel::twilio::callbacks::{
    call_reached_human, form_get, parse_form, parse_sms_reply, sms_failed, AnsweredBy, CallStatus,
    MessageStatus, Reached, SmsCommand,
};
use crate::channel::twilio::twiml::{self, GatherAction};
use crate::channel::twilio::{signature, Routes};
use crate::store::Act;

#[derive(Debug, Deserialize)]
pub struct TokenQuery {
    n: String,
}

type Form = Vec<(String, String)>;

/// Checks the signature; returns the form on success.
fn verified(
    state: &AppState,
    uri: &axum::http::Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Form, ApiError> {
    let Some(twilio) = state.config.channels.twilio.as_ref() else {
        return Err(ApiError::NotFound("Twilio is not configured".to_owned()));
    };
    let Some(token) = twilio.auth_token.as_ref() else {
        return Err(ApiError::NotFound("Twilio is not configured".to_owned()));
    };
    let form = parse_form(body);
    let path = uri.path_and_query().map_or(uri.path(), |p| p.as_str());
    let url = format!("{}{path}", state.config.public_url);
    let given = headers
        .get("x-twilio-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if given.is_empty() || !signature::verify(&url, &form, token, given) {
        metrics::counter!("rouse_intake_rejected_total", "reason" => "bad_twilio_signature")
            .increment(1);
        return Err(ApiError::Forbidden("invalid X-Twilio-Signature".to_owned()));
    }
    Ok(form)
}

/// A call's requests also carry the token signed for its alert.
fn verified_call(
    state: &AppState,
    alert_id: i64,
    q: &TokenQuery,
    uri: &axum::http::Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Form, ApiError> {
    let form = verified(state, uri, headers, body)?;
    state
        .signer
        .verify("voice", alert_id, &q.n, state.clock.now())
        .map_err(|e| ApiError::Forbidden(e.to_string()))?;
    Ok(form)
}

fn xml(body: String) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/xml; charset=utf-8")],
        body,
    )
        .into_response()
}

/// Who pressed the key or sent the SMS, by their number: a person id if the
/// number is in the configuration, else the number itself.
fn actor_for(state: &AppState, number: &str) -> String {
    state
        .catalog
        .current()
        .and_then(|c| {
            c.people()
                .find(|p| {
                    p.contact.voice.as_deref() == Some(number)
                        || p.contact.sms.as_deref() == Some(number)
                })
                .map(|p| p.id.clone())
        })
        .unwrap_or_else(|| number.to_owned())
}

/// `POST /twilio/voice/{alert}?n=TOKEN`: the TwiML a page call plays.
pub async fn voice(
    State(state): State<AppState>,
    Path(alert_id): Path<i64>,
    Query(q): Query<TokenQuery>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let form = verified_call(&state, alert_id, &q, &uri, &headers, &body)?;
    let answered_by = form_get(&form, "AnsweredBy").and_then(|a| a.parse::<AnsweredBy>().ok());
    if answered_by.is_some_and(AnsweredBy::is_machine) {
        // Voicemail is not a person: hang up, the status callback reports it.
        return Ok(xml(twiml::machine_hangup()));
    }
    let alert = state.store.alert(alert_id).await?;
    let Some(alert) = alert else {
        return Ok(xml(twiml::say_and_hangup(
            "This alert no longer exists. Goodbye.",
        )));
    };
    if alert.status != AlertStatus::Triggered {
        return Ok(xml(twiml::say_and_hangup(&format!(
            "Alert {} is already {}. Goodbye.",
            alert.id,
            alert.status.as_str()
        ))));
    }
    let gather = Routes::new(&state.config.public_url).gather_url(alert_id, &q.n);
    Ok(xml(twiml::voice_page(alert.id, &alert.summary, &gather)))
}

/// `POST /twilio/voice/{alert}/gather?n=TOKEN`: the key the person pressed.
pub async fn gather(
    State(state): State<AppState>,
    Path(alert_id): Path<i64>,
    Query(q): Query<TokenQuery>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let form = verified_call(&state, alert_id, &q, &uri, &headers, &body)?;
    let now = state.clock.now();
    let digits = form_get(&form, "Digits").unwrap_or("");
    let gather_url = Routes::new(&state.config.public_url).gather_url(alert_id, &q.n);
    let (action, answer) = twiml::gather_result(digits, &gather_url);
    let who = actor_for(&state, form_get(&form, "To").unwrap_or("phone"));
    match action {
        GatherAction::Acknowledge => {
            state
                .store
                .act(&Act {
                    alert_id,
                    action: Action::Acknowledge,
                    actor: who,
                    at: now,
                })
                .await?;
        }
        GatherAction::Escalate => {
            state.store.escalate_now(alert_id, now).await?;
            state.engine_wake.notify_one();
        }
        GatherAction::Reprompt => {}
    }
    Ok(xml(answer))
}

/// `POST /twilio/status`: call progress. A call that ended without reaching
/// a person (busy, no answer, failed, voicemail) moves the escalation on now.
pub async fn call_status(
    State(state): State<AppState>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let form = verified(&state, &uri, &headers, &body)?;
    let (Some(sid), Some(status)) = (
        form_get(&form, "CallSid"),
        form_get(&form, "CallStatus").and_then(|s| s.parse::<CallStatus>().ok()),
    ) else {
        return Err(ApiError::BadRequest(
            "CallSid and CallStatus are required".to_owned(),
        ));
    };
    if !status.is_final() {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let answered_by = form_get(&form, "AnsweredBy").and_then(|a| a.parse::<AnsweredBy>().ok());
    let (message, fall_through) = match call_reached_human(status, answered_by) {
        Reached::Human => (format!("call {sid}: answered by a person"), false),
        Reached::Machine => (
            format!("call {sid}: voicemail answered, not a person; escalating"),
            true,
        ),
        Reached::NotReached(reason) => (format!("call {sid}: {reason}; escalating"), true),
    };
    report(&state, sid, &message, fall_through).await
}

/// `POST /twilio/sms/status`: an SMS that could not be delivered falls
/// through to the next step at once instead of waiting out the delay.
pub async fn sms_status(
    State(state): State<AppState>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let form = verified(&state, &uri, &headers, &body)?;
    let (Some(sid), Some(status)) = (
        form_get(&form, "MessageSid"),
        form_get(&form, "MessageStatus").and_then(|s| s.parse::<MessageStatus>().ok()),
    ) else {
        return Err(ApiError::BadRequest(
            "MessageSid and MessageStatus are required".to_owned(),
        ));
    };
    if !sms_failed(status) {
        if status == MessageStatus::Delivered {
            return report(
                &state,
                sid,
                &format!("sms {sid}: delivered to the phone"),
                false,
            )
            .await;
        }
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let code = form_get(&form, "ErrorCode").unwrap_or("none");
    let message = format!("sms {sid}: {} (error {code}); escalating", status.as_str());
    report(&state, sid, &message, true).await
}

async fn report(
    state: &AppState,
    sid: &str,
    message: &str,
    fall_through: bool,
) -> Result<Response, ApiError> {
    let now = state.clock.now();
    if state
        .store
        .provider_report(sid, now, message, fall_through)
        .await?
        .is_some()
        && fall_through
    {
        state.engine_wake.notify_one();
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /twilio/sms`: a reply to a page. `ACK 42` acknowledges alert 42 if
/// it was paged to this number; a bare `ACK` the newest open one paged here.
pub async fn inbound_sms(
    State(state): State<AppState>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let form = verified(&state, &uri, &headers, &body)?;
    let from = form_get(&form, "From").unwrap_or("");
    let text = form_get(&form, "Body").unwrap_or("");
    let reply = |text: &str| {
        xml(format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Message>{}</Message></Response>",
            twiml::escape(text)
        ))
    };
    let Some(command) = parse_sms_reply(text) else {
        return Ok(reply(
            "Reply ACK <number> to acknowledge, RESOLVE <number> to resolve.",
        ));
    };
    let (action, wanted) = match command {
        SmsCommand::Ack(id) => (Action::Acknowledge, id),
        SmsCommand::Resolve(id) => (Action::Resolve, id),
        SmsCommand::Escalate(id) => (Action::Trigger, id),
    };
    let paged = state.store.alerts_paged_at(from, 50).await?;
    // Only alerts paged to this very number can be acted on from it.
    let target = match wanted {
        Some(id) => paged.iter().find(|(a, _)| *a == id).map(|(a, _)| *a),
        None => paged
            .iter()
            .find(|(_, s)| *s == AlertStatus::Triggered)
            .map(|(a, _)| *a),
    };
    let Some(alert_id) = target else {
        return Ok(reply("No alert of yours matches. Reply ACK <number>."));
    };
    let now = state.clock.now();
    if action == Action::Trigger {
        state.store.escalate_now(alert_id, now).await?;
        state.engine_wake.notify_one();
        return Ok(reply(&format!("Escalating #{alert_id} to the next step.")));
    }
    let decision = state
        .store
        .act(&Act {
            alert_id,
            action,
            actor: actor_for(&state, from),
            at: now,
        })
        .await?;
    let done = match (action, decision) {
        (_, None) => "not found".to_owned(),
        (Action::Resolve, _) => "resolved".to_owned(),
        (_, Some(d)) => d.name().replace('_', " "),
    };
    Ok(reply(&format!("#{alert_id} {done}.")))
}
