//! Slack: an incoming webhook, or the Web API (`chat.postMessage`, then
//! `chat.update` for follow-ups) when a bot token is configured.
//!
//! The two speak differently about failure. A webhook answers with the HTTP
//! status (`200 ok`, `400 invalid_payload`, `404 no_service`, `429` with
//! `Retry-After`); the Web API answers HTTP 200 with `{"ok":false,"error":…}`
//! for almost everything and uses HTTP 429 only for rate limits. Only the Web
//! API returns the message `ts`, so only it can edit the page in place later:
//! its provider id is `"<channel id>:<ts>"`.

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::alert::AlertStatus;
use crate::channel::http::{classify_status, retry_after};
use crate::channel::{Channel, ChannelKind, Notification, Outcome};
use crate::config::Secret;

use super::render::{self, escape_slack, truncate};
use super::{chat_target, check_url, execute, secret_serde, ConfigError};

pub const DEFAULT_API_URL: &str = "https://slack.com/api";

/// `channels.slack`: a `webhook_url`, or a `bot_token` (with `channel`, or a
/// room recipient naming the channel) for Block Kit buttons and in-place updates.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackConfig {
    /// `https://hooks.slack.com/services/…`: anyone holding it can post.
    #[serde(default, deserialize_with = "secret_serde::optional")]
    pub webhook_url: Option<Secret>,
    /// `xoxb-…` with the `chat:write` scope.
    #[serde(default, deserialize_with = "secret_serde::optional")]
    pub bot_token: Option<Secret>,
    /// Channel id (`C0123456789`) used when the recipient is a person.
    #[serde(default)]
    pub channel: Option<String>,
    /// Web API base; only changed for tests or an egress proxy.
    #[serde(default)]
    pub api_url: Option<String>,
    /// The app's signing secret: enables the Acknowledge/Resolve buttons'
    /// request URL, `POST /slack/interactions`.
    #[serde(default, deserialize_with = "secret_serde::optional")]
    pub signing_secret: Option<Secret>,
}

enum Mode {
    Webhook {
        url: Secret,
    },
    Api {
        token: Secret,
        api_url: String,
        channel: Option<String>,
    },
}

pub struct Slack {
    mode: Mode,
    http: reqwest::Client,
}

impl Slack {
    pub fn new(config: &SlackConfig, http: reqwest::Client) -> Result<Self, ConfigError> {
        let mode = match (&config.bot_token, &config.webhook_url) {
            // The token wins: it can do everything the webhook can, and update.
            (Some(token), _) => {
                if token.expose().trim().is_empty() {
                    return Err(ConfigError::new("slack", "bot_token is empty"));
                }
                let api_url = config
                    .api_url
                    .clone()
                    .unwrap_or_else(|| DEFAULT_API_URL.to_owned());
                check_url("slack", "api_url", &api_url)?;
                Mode::Api {
                    token: token.clone(),
                    api_url: api_url.trim_end_matches('/').to_owned(),
                    channel: config.channel.clone(),
                }
            }
            (None, Some(url)) => {
                check_url("slack", "webhook_url", url.expose())?;
                Mode::Webhook { url: url.clone() }
            }
            (None, None) => {
                return Err(ConfigError::new(
                    "slack",
                    "set webhook_url or bot_token (and channel)",
                ))
            }
        };
        Ok(Self { mode, http })
    }

    async fn post_webhook(&self, url: &Secret, n: &Notification) -> Outcome {
        let body = json!({
            "text": fallback_text(n),
            "blocks": blocks(n, false),
            "unfurl_links": false,
        });
        match execute(self.http.post(url.expose()).json(&body)).await {
            Ok(reply) => classify_status(reply.status, &reply.headers, &reply.body, None),
            Err(outcome) => outcome,
        }
    }

    async fn call_api(&self, token: &Secret, api_url: &str, method: &str, body: &Value) -> Outcome {
        let request = self
            .http
            .post(format!("{api_url}/{method}"))
            .bearer_auth(token.expose())
            .json(body);
        let reply = match execute(request).await {
            Ok(reply) => reply,
            Err(outcome) => return outcome,
        };
        if !reply.status.is_success() {
            // 429 with Retry-After, 5xx: the shared mapping knows them.
            return classify_status(reply.status, &reply.headers, &reply.body, None);
        }
        api_outcome(&reply.body, retry_after(&reply.headers))
    }

    async fn post_message(&self, n: &Notification) -> Outcome {
        match &self.mode {
            Mode::Webhook { url } => self.post_webhook(url, n).await,
            Mode::Api {
                token,
                api_url,
                channel,
            } => {
                let target = chat_target(&n.recipient, channel.as_deref());
                if target.trim().is_empty() {
                    return Outcome::Failed {
                        reason: "slack: no channel for this recipient".into(),
                    };
                }
                let body = json!({
                    "channel": target,
                    "text": fallback_text(n),
                    "blocks": blocks(n, true),
                    "unfurl_links": false,
                    "unfurl_media": false,
                });
                self.call_api(token, api_url, "chat.postMessage", &body)
                    .await
            }
        }
    }
}

/// What `chat.postMessage`/`chat.update` answered inside an HTTP 200.
#[derive(Deserialize)]
struct ApiReply {
    ok: bool,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    channel: Option<String>,
    #[serde(default)]
    ts: Option<String>,
}

fn api_outcome(body: &str, after: Option<std::time::Duration>) -> Outcome {
    let reply: ApiReply = match serde_json::from_str(body) {
        Ok(reply) => reply,
        // HTTP 200 that is not Slack's JSON: a proxy or captive portal; the
        // message may or may not exist.
        Err(_) => {
            return Outcome::Unknown {
                reason: format!("slack: unexpected answer: {}", truncate(body.trim(), 200)),
            }
        }
    };
    if reply.ok {
        let provider_id = match (reply.channel, reply.ts) {
            (Some(c), Some(ts)) => Some(format!("{c}:{ts}")),
            _ => None,
        };
        return Outcome::Delivered { provider_id };
    }
    let error = reply.error.unwrap_or_else(|| "unknown_error".into());
    let reason = format!("slack: {error}");
    match error.as_str() {
        "ratelimited" | "rate_limited" => Outcome::Retry { after, reason },
        // Slack's own transient failures.
        "internal_error"
        | "fatal_error"
        | "service_unavailable"
        | "request_timeout"
        | "team_added_to_org" => Outcome::Retry {
            after: None,
            reason,
        },
        // channel_not_found, not_in_channel, invalid_auth, not_authed,
        // account_inactive, token_revoked, missing_scope, is_archived,
        // invalid_blocks, msg_too_long…: configuration or payload, no retry fixes them.
        _ => Outcome::Failed { reason },
    }
}

/// Notification text: shown in push notifications and where blocks cannot be.
pub fn fallback_text(n: &Notification) -> String {
    truncate(
        &escape_slack(&format!(
            "{} {} — {}",
            render::emoji(n),
            render::headline(n),
            render::status_line(n)
        )),
        3000,
    )
}

/// Block Kit for one page or follow-up, within Slack's documented limits
/// (header 150 chars, section text 3000, field 2000, button text 75).
/// `buttons` adds Acknowledge/Resolve (`rouse_ack`/`rouse_resolve`, value =
/// alert id) — only for the Web API, where a Slack app receives the clicks.
pub fn blocks(n: &Notification, buttons: bool) -> Value {
    let mut blocks = vec![json!({
        "type": "header",
        "text": {
            "type": "plain_text",
            "text": truncate(&format!("{} {}", render::emoji(n), render::headline(n)), 150),
            "emoji": true,
        }
    })];
    let mut fields = vec![
        json!({"type": "mrkdwn", "text": format!("*Severity*\n{}", render::severity_label(n.severity))}),
        json!({"type": "mrkdwn", "text": truncate(&format!("*Service*\n{}", escape_slack(&n.service_id)), 2000)}),
        json!({"type": "mrkdwn", "text": truncate(&format!("*Status*\n{}", escape_slack(&render::status_line(n))), 2000)}),
    ];
    if let Some(url) = render::ack_url(n) {
        fields.push(json!({"type": "mrkdwn", "text": format!("*Acknowledge*\n<{}|Acknowledge in Rouse>", escape_slack(url))}));
    }
    blocks.push(json!({
        "type": "section",
        "text": {"type": "mrkdwn", "text": truncate(&format!("*{}*", escape_slack(&render::one_line(&n.summary))), 3000)},
        "fields": fields,
    }));
    let links = render::links(n);
    if !links.is_empty() {
        let text = links
            .iter()
            .map(|(text, href)| {
                format!(
                    "<{}|{}>",
                    escape_slack(href),
                    escape_slack(&text.replace('|', "/"))
                )
            })
            .collect::<Vec<_>>()
            .join(" · ");
        blocks.push(json!({
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": truncate(&text, 3000)}],
        }));
    }
    if buttons && n.status != AlertStatus::Resolved {
        let value = n.alert_id.to_string();
        let mut elements = Vec::new();
        if n.status == AlertStatus::Triggered {
            elements.push(json!({
                "type": "button",
                "action_id": "rouse_ack",
                "text": {"type": "plain_text", "text": "Acknowledge"},
                "style": "primary",
                "value": value,
            }));
        }
        elements.push(json!({
            "type": "button",
            "action_id": "rouse_resolve",
            "text": {"type": "plain_text", "text": "Resolve"},
            "value": value,
        }));
        blocks.push(json!({
            "type": "actions",
            "block_id": format!("rouse_alert_{}", n.alert_id),
            "elements": elements,
        }));
    }
    Value::Array(blocks)
}

#[async_trait]
impl Channel for Slack {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Chat
    }

    fn name(&self) -> &str {
        "slack"
    }

    async fn send(&self, n: &Notification) -> Outcome {
        self.post_message(n).await
    }

    /// With the Web API and a known `channel:ts`, `chat.update` rewrites the
    /// page (buttons gone once resolved); otherwise a new message says what
    /// changed. An update Slack refuses because the message is gone falls back
    /// to a new message, so the room still learns the alert's state.
    async fn follow_up(&self, n: &Notification, previous_provider_id: Option<&str>) -> Outcome {
        let (Mode::Api { token, api_url, .. }, Some((channel, ts))) = (
            &self.mode,
            previous_provider_id.and_then(|p| p.split_once(':')),
        ) else {
            return self.post_message(n).await;
        };
        let body = json!({
            "channel": channel,
            "ts": ts,
            "text": fallback_text(n),
            "blocks": blocks(n, true),
        });
        let outcome = self.call_api(token, api_url, "chat.update", &body).await;
        match &outcome {
            Outcome::Failed { reason }
                if [
                    "message_not_found",
                    "cant_update_message",
                    "edit_window_closed",
                ]
                .iter()
                .any(|e| reason.ends_with(e)) =>
            {
                self.post_message(n).await
            }
            _ => outcome,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn web_api_errors_map_to_outcomes() {
        assert_eq!(
            api_outcome(r#"{"ok":true,"channel":"C1","ts":"1.2"}"#, None),
            Outcome::Delivered {
                provider_id: Some("C1:1.2".into())
            }
        );
        assert_eq!(
            api_outcome(
                r#"{"ok":false,"error":"ratelimited"}"#,
                Some(Duration::from_secs(3))
            ),
            Outcome::Retry {
                after: Some(Duration::from_secs(3)),
                reason: "slack: ratelimited".into()
            }
        );
        for e in ["channel_not_found", "invalid_auth", "not_in_channel"] {
            assert!(matches!(
                api_outcome(&format!(r#"{{"ok":false,"error":"{e}"}}"#), None),
                Outcome::Failed { .. }
            ));
        }
        assert!(matches!(
            api_outcome("<html>", None),
            Outcome::Unknown { .. }
        ));
    }

    #[test]
    fn config_needs_a_destination() {
        let c: SlackConfig = serde_json::from_str("{}").unwrap_or_else(|e| panic!("{e}"));
        assert!(Slack::new(&c, reqwest::Client::new()).is_err());
        assert!(serde_json::from_str::<SlackConfig>(r#"{"webhok_url":"x"}"#).is_err());
    }
}
