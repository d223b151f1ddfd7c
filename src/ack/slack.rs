//! Slack interactivity: checking that a button press really comes from Slack,
//! and reading what was pressed.
//!
//! Slack signs every request with the app's signing secret:
//! `X-Slack-Signature: v0=hex(HMAC-SHA256(secret, "v0:" + timestamp + ":" + body))`
//! with `X-Slack-Request-Timestamp` in unix seconds. Requests older (or newer)
//! than five minutes are refused so a captured request cannot be replayed.
//! The MAC is compared in constant time.

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::config::Secret;

/// How far a request's timestamp may be from now.
pub const MAX_SKEW_SECS: i64 = 300;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SlackAuthError {
    #[error("X-Slack-Request-Timestamp is missing or not a number")]
    NoTimestamp,
    #[error("X-Slack-Request-Timestamp is more than five minutes from now (a replay?)")]
    Stale,
    #[error("X-Slack-Signature does not match")]
    BadSignature,
}

/// Checks a request's signature headers against its raw body.
pub fn verify(
    secret: &Secret,
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<(), SlackAuthError> {
    let ts: i64 = timestamp
        .and_then(|t| t.trim().parse().ok())
        .ok_or(SlackAuthError::NoTimestamp)?;
    if (now.timestamp() - ts).abs() > MAX_SKEW_SECS {
        return Err(SlackAuthError::Stale);
    }
    let expected = sign(secret, ts, body);
    let given = signature.unwrap_or("").trim().as_bytes();
    if !bool::from(expected.as_bytes().ct_eq(given)) {
        return Err(SlackAuthError::BadSignature);
    }
    Ok(())
}

/// `v0=<hex>` for `body` sent at `timestamp`.
pub fn sign(secret: &Secret, timestamp: i64, body: &[u8]) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes()) else {
        // HMAC takes keys of any length; an empty string would never match.
        return String::new();
    };
    mac.update(format!("v0:{timestamp}:").as_bytes());
    mac.update(body);
    let bytes = mac.finalize().into_bytes();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("v0={hex}")
}

/// The parts of a `block_actions` payload Rouse reads.
#[derive(Debug, Clone, Deserialize)]
pub struct Interaction {
    #[serde(rename = "type")]
    pub kind: String,
    pub user: SlackUser,
    #[serde(default)]
    pub actions: Vec<SlackAction>,
    /// Where an ephemeral answer to the presser can be posted.
    #[serde(default)]
    pub response_url: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SlackUser {
    pub id: String,
    #[serde(default)]
    pub username: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SlackAction {
    pub action_id: String,
    #[serde(default)]
    pub value: Option<String>,
    /// When the button was pressed, as Slack names the press: with the
    /// user, the id a re-sent interaction repeats.
    #[serde(default)]
    pub action_ts: Option<String>,
}

/// What a Rouse button asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ButtonPress {
    Acknowledge(i64),
    Resolve(i64),
}

impl SlackAction {
    /// `rouse_ack` / `rouse_resolve` with the alert id as value (see
    /// [`crate::channel::slack::blocks`]); anything else is not ours.
    pub fn press(&self) -> Option<ButtonPress> {
        let id: i64 = self.value.as_deref()?.trim().parse().ok()?;
        match self.action_id.as_str() {
            "rouse_ack" => Some(ButtonPress::Acknowledge(id)),
            "rouse_resolve" => Some(ButtonPress::Resolve(id)),
            _ => None,
        }
    }
}

/// The `payload` form field of an interaction request.
pub fn parse_payload(form: &[(String, String)]) -> Result<Interaction, String> {
    let raw = form
        .iter()
        .find(|(k, _)| k == "payload")
        .map(|(_, v)| v.as_str())
        .ok_or_else(|| "the payload form field is missing".to_owned())?;
    serde_json::from_str(raw).map_err(|e| format!("payload is not an interaction: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slacks_documented_example_verifies() {
        // From Slack's "Verifying requests from Slack" page.
        let secret = Secret::new("8f742231b10e8888abcd99yyyzzz85a5");
        let body = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
        let sig = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";
        assert_eq!(sign(&secret, 1_531_420_618, body.as_bytes()), sig);
        let then = DateTime::from_timestamp(1_531_420_618 + 10, 0).unwrap();
        assert_eq!(
            verify(
                &secret,
                Some("1531420618"),
                Some(sig),
                body.as_bytes(),
                then
            ),
            Ok(())
        );
        let late = DateTime::from_timestamp(1_531_420_618 + 301, 0).unwrap();
        assert_eq!(
            verify(
                &secret,
                Some("1531420618"),
                Some(sig),
                body.as_bytes(),
                late
            ),
            Err(SlackAuthError::Stale)
        );
        let mut tampered = body.as_bytes().to_vec();
        tampered.push(b'x');
        assert_eq!(
            verify(&secret, Some("1531420618"), Some(sig), &tampered, then),
            Err(SlackAuthError::BadSignature)
        );
        assert_eq!(
            verify(&secret, None, Some(sig), body.as_bytes(), then),
            Err(SlackAuthError::NoTimestamp)
        );
    }

    #[test]
    fn only_rouse_buttons_are_presses() {
        let action = |id: &str, value: Option<&str>| SlackAction {
            action_id: id.into(),
            value: value.map(Into::into),
            action_ts: None,
        };
        assert_eq!(
            action("rouse_ack", Some("42")).press(),
            Some(ButtonPress::Acknowledge(42))
        );
        assert_eq!(
            action("rouse_resolve", Some("7")).press(),
            Some(ButtonPress::Resolve(7))
        );
        assert_eq!(action("rouse_ack", Some("x")).press(), None);
        assert_eq!(action("rouse_ack", None).press(), None);
        assert_eq!(action("other", Some("42")).press(), None);
    }
}
