//! Twilio's webhooks: the TwiML a call plays, the key a person presses, call
//! and message status callbacks, and SMS replies.
//!
//! Every request must carry a valid `X-Twilio-Signature` over the URL Twilio
//! was given (our `public_url` + path + query) and the form, checked in
//! constant time; anything else is answered 403 before it is read further.
//! The TwiML URLs also carry a signed token bound to the alert, so even a
//! leaked auth token cannot make Rouse speak about another alert.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::extract::{Path, Query};
use super::{replay, ApiError, AppState};
use crate::ack::token::Purpose;
use crate::alert::TimelineKind;
use crate::alert::{Action, AlertStatus};
use crate::channel::twilio::callbacks::{
    call_reached_human, form_get, parse_form, parse_sms_reply, sms_failed, AnsweredBy, CallStatus,
    MessageStatus, Reached, SmsCommand, SmsVerb,
};
use crate::channel::twilio::twiml::{self, GatherAction};
use crate::channel::twilio::{signature, Routes};
use crate::channel::ChannelKind;
use crate::escalation::plan;
use crate::store::{Act, Via};

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
        // Never the body: it may be a stranger's text or a forged payload.
        tracing::warn!(path = %uri.path(), signed = !given.is_empty(), "Twilio webhook refused: X-Twilio-Signature missing or invalid");
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
        .verify_for(Purpose::Voice, alert_id, &q.n, state.clock.now())
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

/// The person a phone number belongs to, if any in the configuration.
fn person_at(state: &AppState, number: &str) -> Option<String> {
    let catalog = state.catalog.current()?;
    let person = catalog.people().find(|p| {
        p.contact.voice.as_deref() == Some(number) || p.contact.sms.as_deref() == Some(number)
    })?;
    Some(person.id.clone())
}

/// `POST /twilio/voice/{alert}?n=TOKEN`: the TwiML a page call plays.
#[utoipa::path(
    post, path = "/twilio/voice/{alert}", tag = "acknowledging",
    params(("alert" = i64, Path, description = "The alert's id")),
    request_body(content = serde_json::Value, content_type = "application/x-www-form-urlencoded", description = "Twilio's voice webhook form (`CallSid`, `From`, `To`, …)"),
    responses((status = 200, description = "TwiML", content_type = "text/xml", body = String)),
    security(("twilio_signature" = [], "voice_token" = []))
)]
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
#[utoipa::path(
    post, path = "/twilio/voice/{alert}/gather", tag = "acknowledging",
    params(("alert" = i64, Path, description = "The alert's id")),
    request_body(content = serde_json::Value, content_type = "application/x-www-form-urlencoded", description = "Twilio's gather form: `Digits` 1 acknowledges, 2 escalates now, 3 resolves"),
    responses((status = 200, description = "TwiML", content_type = "text/xml", body = String)),
    security(("twilio_signature" = [], "voice_token" = []))
)]
pub async fn gather(
    State(state): State<AppState>,
    Path(alert_id): Path<i64>,
    Query(q): Query<TokenQuery>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let form = verified_call(&state, alert_id, &q, &uri, &headers, &body)?;
    // One call's key press for one alert is one event, whatever its retries.
    let id = form_get(&form, "CallSid").map(|sid| {
        let digits = form_get(&form, "Digits").unwrap_or("");
        format!("{sid}:{alert_id}:{digits}")
    });
    replay::once(
        &state,
        "twilio-gather",
        id,
        press(&state, alert_id, &q, &form),
    )
    .await
}

async fn press(
    state: &AppState,
    alert_id: i64,
    q: &TokenQuery,
    form: &Form,
) -> Result<Response, ApiError> {
    let now = state.clock.now();
    let digits = form_get(form, "Digits").unwrap_or("");
    let gather_url = Routes::new(&state.config.public_url).gather_url(alert_id, &q.n);
    let (action, answer) = twiml::gather_result(digits, &gather_url);
    // The call went out to the person paged, so `To` is their number; the
    // signed URL token names them too.
    let called = form_get(form, "To").unwrap_or("");
    let who = person_at(state, called).unwrap_or_else(|| called.to_owned());
    match action {
        GatherAction::Acknowledge | GatherAction::Resolve => {
            let action = if action == GatherAction::Resolve {
                Action::Resolve
            } else {
                Action::Acknowledge
            };
            state
                .store
                .act(&Act {
                    alert_id,
                    action,
                    actor: who,
                    via: Via::Voice,
                    at: now,
                })
                .await?;
            state.engine_wake.notify_one();
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
#[utoipa::path(
    post, path = "/twilio/status", tag = "acknowledging",
    request_body(content = serde_json::Value, content_type = "application/x-www-form-urlencoded", description = "Twilio's call status callback (`CallSid`, `CallStatus`, `AnsweredBy`, …)"),
    responses((status = 200, description = "Recorded", content_type = "application/json", body = serde_json::Value)),
    security(("twilio_signature" = []))
)]
pub async fn call_status(
    State(state): State<AppState>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let form = verified(&state, &uri, &headers, &body)?;
    let id = form_get(&form, "CallSid")
        .map(|sid| format!("{sid}:{}", form_get(&form, "CallStatus").unwrap_or("")));
    replay::once(
        &state,
        "twilio-call-status",
        id,
        call_progress(&state, &form),
    )
    .await
}

async fn call_progress(state: &AppState, form: &Form) -> Result<Response, ApiError> {
    let (Some(sid), Some(status)) = (
        form_get(form, "CallSid"),
        form_get(form, "CallStatus").and_then(|s| s.parse::<CallStatus>().ok()),
    ) else {
        return Err(ApiError::BadRequest(
            "CallSid and CallStatus are required".to_owned(),
        ));
    };
    if !status.is_final() {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let answered_by = form_get(form, "AnsweredBy").and_then(|a| a.parse::<AnsweredBy>().ok());
    let reached = call_reached_human(status, answered_by);
    let unanswered =
        matches!(status, CallStatus::NoAnswer | CallStatus::Busy) || reached == Reached::Machine;
    if unanswered {
        let what = match &reached {
            Reached::Machine => "voicemail answered, not a person".to_owned(),
            _ => status.to_string(),
        };
        if let Breakthrough::Applies = breakthrough(state, sid, &what).await? {
            return Ok(StatusCode::NO_CONTENT.into_response());
        }
    }
    let (message, fall_through) = match reached {
        Reached::Human => (format!("call {sid}: answered by a person"), false),
        Reached::Machine => (
            format!("call {sid}: voicemail answered, not a person; escalating"),
            true,
        ),
        Reached::NotReached(reason) => (format!("call {sid}: {reason}; escalating"), true),
    };
    report(state, sid, &message, fall_through).await
}

enum Breakthrough {
    /// The policy calls again (or already did for this call): the escalation
    /// waits for that call instead of moving on now.
    Applies,
    DoesNotApply,
}

/// Queues the breakthrough call after an unanswered page call, when its
/// policy wants one (see [`plan::breakthrough_at`]). A repeated callback
/// finds it queued and changes nothing.
async fn breakthrough(state: &AppState, sid: &str, what: &str) -> Result<Breakthrough, ApiError> {
    let Some(page) = state.store.page_by_provider_id(sid).await? else {
        return Ok(Breakthrough::DoesNotApply);
    };
    let Some(alert) = state.store.alert(page.alert_id).await? else {
        return Ok(Breakthrough::DoesNotApply);
    };
    let Some(catalog) = state.catalog.current() else {
        return Ok(Breakthrough::DoesNotApply);
    };
    // As the engine does: a policy renamed since the alert opened falls back
    // to the service's current one.
    let policy = alert
        .policy_id
        .as_deref()
        .and_then(|id| catalog.policy(id))
        .or_else(|| {
            catalog
                .service(&alert.service_id)
                .and_then(|s| catalog.policy(&s.policy_id))
        });
    let now = state.clock.now();
    let due = policy
        .filter(|_| page.channel == ChannelKind::Voice)
        .and_then(|p| {
            plan::breakthrough_at(p, plan::CallEnd::Unanswered, page.is_breakthrough(), now)
        });
    let Some(due) = due else {
        return Ok(Breakthrough::DoesNotApply);
    };
    let message = format!(
        "call {sid}: {what}; calling the same number again at {} from the same caller id \
         (a second call within 3 minutes rings through Do Not Disturb)",
        due.format("%H:%M:%S UTC")
    );
    if state
        .store
        .queue_breakthrough(page.notification_id, due, now, &message)
        .await?
    {
        state.engine_wake.notify_one();
    }
    Ok(Breakthrough::Applies)
}

/// `POST /twilio/sms/status`: an SMS that could not be delivered falls
/// through to the next step at once instead of waiting out the delay.
#[utoipa::path(
    post, path = "/twilio/sms/status", tag = "acknowledging",
    request_body(content = serde_json::Value, content_type = "application/x-www-form-urlencoded", description = "Twilio's message status callback (`MessageSid`, `MessageStatus`, `ErrorCode`)"),
    responses((status = 200, description = "Recorded", content_type = "application/json", body = serde_json::Value)),
    security(("twilio_signature" = []))
)]
pub async fn sms_status(
    State(state): State<AppState>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let form = verified(&state, &uri, &headers, &body)?;
    let id = form_get(&form, "MessageSid")
        .map(|sid| format!("{sid}:{}", form_get(&form, "MessageStatus").unwrap_or("")));
    replay::once(&state, "twilio-sms-status", id, sms_progress(&state, &form)).await
}

async fn sms_progress(state: &AppState, form: &Form) -> Result<Response, ApiError> {
    let (Some(sid), Some(status)) = (
        form_get(form, "MessageSid"),
        form_get(form, "MessageStatus").and_then(|s| s.parse::<MessageStatus>().ok()),
    ) else {
        return Err(ApiError::BadRequest(
            "MessageSid and MessageStatus are required".to_owned(),
        ));
    };
    if !sms_failed(status) {
        if status == MessageStatus::Delivered {
            return report(
                state,
                sid,
                &format!("sms {sid}: delivered to the phone"),
                false,
            )
            .await;
        }
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let code = form_get(form, "ErrorCode").unwrap_or("none");
    let message = format!("sms {sid}: {} (error {code}); escalating", status.as_str());
    report(state, sid, &message, true).await
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

/// `POST /twilio/sms`: a reply to a page (see [`parse_sms_reply`] for what
/// people may write). Only numbers that belong to someone in the
/// configuration can act, and only on alerts paged to that very number.
#[utoipa::path(
    post, path = "/twilio/sms", tag = "acknowledging",
    request_body(content = serde_json::Value, content_type = "application/x-www-form-urlencoded", description = "Twilio's incoming message form (`MessageSid`, `From`, `Body`)"),
    responses((status = 200, description = "TwiML with the reply text", content_type = "text/xml", body = String)),
    security(("twilio_signature" = []))
)]
pub async fn inbound_sms(
    State(state): State<AppState>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let form = verified(&state, &uri, &headers, &body)?;
    let id = form_get(&form, "MessageSid").map(str::to_owned);
    replay::once(&state, "twilio-sms", id, sms_reply_to(&state, &form)).await
}

async fn sms_reply_to(state: &AppState, form: &Form) -> Result<Response, ApiError> {
    let from = form_get(form, "From").unwrap_or("");
    let Some(person) = person_at(state, from) else {
        // Never echo or log the body: it is a stranger's text.
        tracing::info!(
            from = %redact_number(from),
            "SMS from a number that belongs to nobody in the configuration; ignored"
        );
        metrics::counter!("rouse_sms_replies_total", "outcome" => "unknown_number").increment(1);
        return Ok(sms_reply(None));
    };
    let command = parse_sms_reply(form_get(form, "Body").unwrap_or(""));
    let (label, outcome) = match command {
        Some(SmsCommand::Act { verb, code }) => {
            ("act", act_on(state, from, &person, verb, code).await?)
        }
        Some(SmsCommand::AckAll) => ("ack_all", ack_all(state, from, &person).await?),
        Some(SmsCommand::Stop) => ("stop", opt(state, from, &person, true).await?),
        Some(SmsCommand::Start) => ("start", opt(state, from, &person, false).await?),
        // Rate-limited: an auto-responder answering our help with its own
        // text must not start an endless exchange.
        Some(SmsCommand::Help) | None => (
            "help",
            state
                .sms_help
                .check_key(&from.to_owned())
                .is_ok()
                .then(|| HELP.to_owned()),
        ),
    };
    metrics::counter!("rouse_sms_replies_total", "outcome" => label).increment(1);
    Ok(sms_reply(outcome.as_deref()))
}

const HELP: &str = "Rouse: reply 4a to ack the alert marked 4, 4r to resolve, 4e to escalate. \
     A acks your newest alert, ACK ALL acks all of them.";

/// TwiML answering an inbound SMS: one message, or none at all.
fn sms_reply(text: Option<&str>) -> Response {
    let inner = text
        .map(|t| format!("<Message>{}</Message>", twiml::escape(t)))
        .unwrap_or_default();
    xml(format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response>{inner}</Response>"
    ))
}

/// `+15551234567` → `+1555…67`: enough to tell numbers apart in a log.
fn redact_number(number: &str) -> String {
    let chars: Vec<char> = number.chars().collect();
    if chars.len() <= 7 {
        return "…".to_owned();
    }
    let head: String = chars[..5].iter().collect();
    let tail: String = chars[chars.len() - 2..].iter().collect();
    format!("{head}…{tail}")
}

/// Alerts paged to this number, newest first.
async fn paged_to(state: &AppState, number: &str) -> Result<Vec<(i64, AlertStatus)>, ApiError> {
    Ok(state.store.alerts_paged_at(number, 500).await?)
}

async fn act_on(
    state: &AppState,
    from: &str,
    person: &str,
    verb: SmsVerb,
    code: Option<u32>,
) -> Result<Option<String>, ApiError> {
    let paged = paged_to(state, from).await?;
    let target = match code {
        Some(code) => state
            .store
            .sms_code_alert(from, code)
            .await?
            .and_then(|id| paged.iter().find(|(a, _)| *a == id).copied()),
        // A bare verb: the newest alert it can still apply to.
        None => paged.iter().copied().find(|(_, status)| match verb {
            SmsVerb::Acknowledge => *status == AlertStatus::Triggered,
            SmsVerb::Resolve | SmsVerb::Escalate => status.is_open(),
        }),
    };
    let Some((alert_id, status)) = target else {
        let which = code.map(|c| format!(" {c}")).unwrap_or_default();
        return Ok(Some(format!(
            "No open alert{which} was paged to this number. Reply HELP for help."
        )));
    };
    if status == AlertStatus::Resolved {
        return Ok(Some(format!("#{alert_id} is already resolved.")));
    }
    let now = state.clock.now();
    let action = match verb {
        SmsVerb::Escalate => {
            if state.store.escalate_now(alert_id, now).await? {
                state.engine_wake.notify_one();
                return Ok(Some(format!("Escalating #{alert_id} to the next step.")));
            }
            return Ok(Some(format!(
                "#{alert_id} has no escalation left to move on."
            )));
        }
        SmsVerb::Acknowledge => Action::Acknowledge,
        SmsVerb::Resolve => Action::Resolve,
    };
    let decision = state
        .store
        .act(&Act {
            alert_id,
            action,
            actor: person.to_owned(),
            via: Via::Sms,
            at: now,
        })
        .await?;
    state.engine_wake.notify_one();
    Ok(Some(match (action, decision) {
        (_, None) => format!("#{alert_id} no longer exists."),
        (Action::Resolve, _) => format!("#{alert_id} resolved. Thank you."),
        (_, Some(d)) => format!("#{alert_id} {}. Thank you.", d.name().replace('_', " ")),
    }))
}

async fn ack_all(state: &AppState, from: &str, person: &str) -> Result<Option<String>, ApiError> {
    let now = state.clock.now();
    let mut done = Vec::new();
    for (alert_id, status) in paged_to(state, from).await? {
        if status != AlertStatus::Triggered {
            continue;
        }
        state
            .store
            .act(&Act {
                alert_id,
                action: Action::Acknowledge,
                actor: person.to_owned(),
                via: Via::Sms,
                at: now,
            })
            .await?;
        done.push(format!("#{alert_id}"));
    }
    if done.is_empty() {
        return Ok(Some("Nothing to acknowledge.".to_owned()));
    }
    state.engine_wake.notify_one();
    let mut text = format!("Acknowledged {}: {}", done.len(), done.join(", "));
    text = crate::channel::render::truncate(&text, 150);
    Ok(Some(text))
}

/// STOP / START. Twilio (and the carrier) enforce the opt-out themselves and
/// answer STOP with their own confirmation, so Rouse records it, tells the
/// admins, and sends nothing back to a STOP.
async fn opt(
    state: &AppState,
    from: &str,
    person: &str,
    out: bool,
) -> Result<Option<String>, ApiError> {
    let now = state.clock.now();
    let changed = state.store.set_sms_opt_out(from, out, now).await?;
    if changed {
        let message = if out {
            tracing::warn!(person, number = %redact_number(from), "replied STOP: Rouse can no longer text this person; pages fall through to their next channel");
            format!("{person} replied STOP from {from}: Rouse can no longer text this number until it replies START; pages fall through to the next channel")
        } else {
            tracing::info!(person, number = %redact_number(from), "replied START: texts are on again");
            format!("{person} replied START from {from}: texts to this number are on again")
        };
        let open: Vec<i64> = paged_to(state, from)
            .await?
            .into_iter()
            .filter(|(_, status)| status.is_open())
            .map(|(id, _)| id)
            .collect();
        state
            .store
            .note(&open, now, TimelineKind::Contact, person, &message)
            .await?;
    }
    Ok((!out).then(|| "Rouse pages by SMS are on again for this number.".to_owned()))
}
