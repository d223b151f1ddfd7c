//! Idempotent provider webhooks. Twilio re-sends a webhook it timed out on,
//! and an operator's proxy may too; a repeat of the same message (same
//! provider id) must get the first answer, byte for byte, and change
//! nothing: a replayed `a` must not acknowledge the next alert.
//!
//! The id is claimed in the store before acting, with the pair as the
//! primary key, so of two identical requests at once exactly one acts; the
//! other waits a little for its answer, or is told to retry (503). Seen ids
//! are kept [`KEEP`] and pruned opportunistically.

use std::future::Future;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::{ApiError, AppState};
use crate::store::inbound::{Answer, Seen};

/// How long a provider id is remembered: Twilio and Slack retry within
/// minutes, so a day is far beyond any retry.
pub const KEEP: chrono::TimeDelta = chrono::TimeDelta::hours(36);

/// A claim not answered this long after it was made belongs to a request
/// that died (the process stopped mid-request): the next repeat acts.
const ABANDONED: chrono::TimeDelta = chrono::TimeDelta::minutes(2);

/// Largest answer kept: TwiML and Slack answers are a few hundred bytes.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// Runs `act` once per `(provider, message_id)`; a repeat gets the first answer.
/// Without an id (a provider that sent none) the request simply acts.
pub(super) async fn once(
    state: &AppState,
    provider: &str,
    message_id: Option<String>,
    act: impl Future<Output = Result<Response, ApiError>>,
) -> Result<Response, ApiError> {
    let Some(message_id) = message_id.filter(|id| !id.is_empty() && id.len() <= 512) else {
        return act.await;
    };
    let now = state.clock.now();
    let mut seen = state
        .store
        .claim_inbound(provider, &message_id, now, now - ABANDONED)
        .await?;
    // The identical request beside this one is still acting: wait a little
    // for its answer rather than act twice.
    for _ in 0..40 {
        if seen != Seen::InProgress {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = state.clock.now();
        seen = state
            .store
            .claim_inbound(provider, &message_id, now, now - ABANDONED)
            .await?;
    }
    match seen {
        Seen::Answered(answer) => {
            metrics::counter!("rouse_inbound_repeats_total", "provider" => provider.to_owned())
                .increment(1);
            tracing::info!(
                provider,
                "a provider webhook came again; answered as the first time, nothing changed"
            );
            Ok(replay(answer))
        }
        Seen::InProgress => Err(ApiError::Unavailable(
            "the same webhook is being handled right now; retry".to_owned(),
        )),
        Seen::First => {
            let result = act.await;
            let response = match result {
                Ok(response) => response,
                Err(err) => {
                    // Nothing was answered: let the provider's retry act.
                    if let Err(e) = state.store.forget_inbound(provider, &message_id).await {
                        tracing::error!(error = %e, provider, "cannot release a webhook's claim; its retries get 503 until it is abandoned");
                    }
                    return Err(err);
                }
            };
            let answer = capture(response).await?;
            state
                .store
                .answer_inbound(provider, &message_id, &answer)
                .await?;
            prune(state, now);
            Ok(replay(answer))
        }
    }
}

/// The response as stored: status, content type, body.
async fn capture(response: Response) -> Result<Answer, ApiError> {
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_ANSWER_BYTES)
        .await
        .map_err(|e| ApiError::Unavailable(format!("cannot read the answer: {e}")))?;
    Ok(Answer {
        status: parts.status.as_u16(),
        content_type: parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        body: String::from_utf8_lossy(&bytes).into_owned(),
    })
}

fn replay(answer: Answer) -> Response {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::OK);
    let mut response = (status, Body::from(answer.body)).into_response();
    if let Some(value) = answer
        .content_type
        .and_then(|c| HeaderValue::from_str(&c).ok())
    {
        response.headers_mut().insert(header::CONTENT_TYPE, value);
    }
    response
}

/// Drops ids older than [`KEEP`] in the background; a failure only means
/// they stay until the next webhook.
fn prune(state: &AppState, now: chrono::DateTime<chrono::Utc>) {
    let store = state.store.clone();
    tokio::spawn(async move {
        if let Err(e) = store.prune_inbound(now - KEEP).await {
            tracing::warn!(error = %e, "cannot prune the webhooks seen");
        }
    });
}
