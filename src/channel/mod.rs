//! Outbound notifications: one [`Channel`] trait, one [`Outcome`] enum.
//!
//! A channel never panics and never returns a raw transport error: every
//! failure, from a 500 to a TLS certificate for the wrong host, becomes an
//! outcome the escalation engine can act on (retry later, fall through to
//! the next channel, or record that the result is unknown).

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use reqwest::header::HeaderMap;
use reqwest::StatusCode;
use serde::{Deserialize, Deserializer, Serialize};

use crate::channel::http::classify_error;
use crate::config::Secret;

use crate::alert::{AlertStatus, Link, Severity, Urgency};

pub mod console;
pub mod discord;
pub mod email;
pub mod http;
pub mod matrix;
pub mod mattermost;
pub mod ntfy;
pub mod pushover;
pub mod registry;
pub mod render;
pub mod slack;
pub mod teams;
pub mod twilio;
pub mod vcard;
pub mod webhook;

/// How a notification travels; also the names used in policy YAML.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChannelKind {
    Console,
    Chat,
    Sms,
    Voice,
    Email,
    /// Push through Pushover (a policy's `push` channel, for people with a
    /// Pushover user key).
    Pushover,
    /// Push through an ntfy server (a policy's `push` channel, for people
    /// with an ntfy topic).
    Ntfy,
}

impl ChannelKind {
    pub fn parse(s: &str) -> Option<ChannelKind> {
        [
            ChannelKind::Console,
            ChannelKind::Chat,
            ChannelKind::Sms,
            ChannelKind::Voice,
            ChannelKind::Email,
            ChannelKind::Pushover,
            ChannelKind::Ntfy,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ChannelKind::Console => "console",
            ChannelKind::Chat => "chat",
            ChannelKind::Sms => "sms",
            ChannelKind::Voice => "voice",
            ChannelKind::Email => "email",
            ChannelKind::Pushover => "pushover",
            ChannelKind::Ntfy => "ntfy",
        }
    }
}

/// Who a notification is for, with the address the channel needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Recipient {
    /// A person, reached at `address` (a phone number, an email, a chat handle).
    Person {
        id: String,
        name: String,
        address: String,
    },
    /// A chat room or channel (`#ops`, a Matrix room id).
    Room { address: String },
}

impl Recipient {
    /// How people read it in a timeline: a person's name, or the room.
    pub fn label(&self) -> &str {
        match self {
            Recipient::Person { name, .. } => name,
            Recipient::Room { address } => address,
        }
    }

    pub fn address(&self) -> &str {
        match self {
            Recipient::Person { address, .. } | Recipient::Room { address } => address,
        }
    }
}

/// Everything a channel needs to tell a human about one alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    /// `alert/step/target/channel/attempt`: providers that support it dedupe on
    /// this, and the outbox uses it so a retry after a crash never pages twice.
    pub idempotency_key: String,
    pub alert_id: i64,
    pub service_id: String,
    pub summary: String,
    pub severity: Severity,
    pub urgency: Urgency,
    /// `Triggered` for a page; `Acknowledged`/`Resolved` for follow-ups that
    /// update what chat rooms show.
    pub status: AlertStatus,
    pub links: Vec<Link>,
    /// Signed, expiring link that acknowledges this alert (confirmed by POST).
    pub ack_url: Option<String>,
    /// For SMS: the short code this number replies with (`4a` acknowledges).
    #[serde(default)]
    pub reply_code: Option<u32>,
    /// For push: a URL that acknowledges this page with one POST from the
    /// provider or the app (Pushover's `callback`, an ntfy `http` action). It
    /// carries a credential, so it is a [`Secret`] and never serialized.
    #[serde(skip)]
    pub action_url: Option<Secret>,
    /// People paged by this step, for chat messages ("paging alice, bob").
    pub paged: Vec<String>,
    pub recipient: Recipient,
    pub attempt: u32,
    pub created_at: DateTime<Utc>,
}

/// What happened to one send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// The provider accepted it. For SMS and voice this means queued: the final
    /// status arrives later by callback.
    Delivered { provider_id: Option<String> },
    /// A transient failure (5xx, 429, connection refused, TLS, DNS): try again,
    /// not before `after` when the provider said so.
    Retry {
        #[serde(with = "opt_secs")]
        after: Option<Duration>,
        reason: String,
    },
    /// A failure that no retry can fix (4xx, bad number, auth): fall through.
    Failed { reason: String },
    /// The request left but no answer came back (timeout): it may or may not
    /// have arrived. Recorded as such; the escalation carries on.
    Unknown { reason: String },
}

impl Outcome {
    pub fn name(&self) -> &'static str {
        match self {
            Outcome::Delivered { .. } => "delivered",
            Outcome::Retry { .. } => "retry",
            Outcome::Failed { .. } => "failed",
            Outcome::Unknown { .. } => "unknown",
        }
    }
}

#[async_trait]
pub trait Channel: Send + Sync {
    fn kind(&self) -> ChannelKind;
    /// A short name for logs and the timeline (`twilio-sms`, `slack`).
    fn name(&self) -> &str;
    async fn send(&self, notification: &Notification) -> Outcome;

    /// Updates what a room shows once an alert is acknowledged or resolved.
    ///
    /// `previous_provider_id` is what [`Channel::send`] returned for the first
    /// message about this alert (Slack `channel:ts`, a Matrix event id, a Discord
    /// message id); with it a channel edits that message in place, without it the
    /// channel posts a new one. Either way the room never keeps showing "firing".
    /// By default the follow-up is sent as a new message.
    async fn follow_up(&self, n: &Notification, previous_provider_id: Option<&str>) -> Outcome {
        let _ = previous_provider_id;
        self.send(n).await
    }

    /// Several pages for one recipient at once (an alert storm). Channels that
    /// can say it in one message (SMS) override this; by default each is sent
    /// and the first outcome that is not a delivery is returned.
    async fn send_bundle(&self, ns: &[Notification]) -> Outcome {
        let mut first = None;
        for n in ns {
            let outcome = self.send(n).await;
            if !matches!(outcome, Outcome::Delivered { .. }) {
                return outcome;
            }
            first.get_or_insert(outcome);
        }
        first.unwrap_or(Outcome::Delivered { provider_id: None })
    }
}

mod opt_secs {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&d.as_secs_f64()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<f64>::deserialize(d)?
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(Duration::from_secs_f64))
    }
}

// ---- Configuration and helpers shared by the chat and email channels ----

/// The `channels:` block of the configuration file. Every channel is optional;
/// unknown keys are rejected so a typo (`webhok_url`) fails at start-up
/// instead of silently disabling a page.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelsConfig {
    /// SMS and voice.
    pub twilio: Option<TwilioSettings>,
    /// The generic signed JSON chat webhook.
    pub webhook: Option<WebhookSettings>,
    pub slack: Option<slack::SlackConfig>,
    pub teams: Option<teams::TeamsConfig>,
    pub discord: Option<discord::DiscordConfig>,
    pub mattermost: Option<mattermost::MattermostConfig>,
    pub matrix: Option<matrix::MatrixConfig>,
    pub email: Option<email::EmailConfig>,
    /// Push that can ring through Do Not Disturb.
    pub pushover: Option<pushover::PushoverSettings>,
    pub ntfy: Option<ntfy::NtfySettings>,
}

impl ChannelsConfig {
    /// The longest a configured provider may take to answer one send: the
    /// HTTP channels' request timeout, or the SMTP conversation's.
    pub fn longest_timeout(&self) -> std::time::Duration {
        let smtp = self
            .email
            .as_ref()
            .map(|e| email::conversation_timeout(e.timeout_secs));
        smtp.into_iter()
            .fold(http::REQUEST_TIMEOUT, std::cmp::Ord::max)
    }

    /// The hosts the configured channels send to, with the setting naming
    /// each: what `rouse check` asks domain watchers to cover. Only hosts:
    /// webhook URLs carry secrets in their paths.
    pub fn endpoint_hosts(&self) -> Vec<(&'static str, String)> {
        let host = |url: &str| {
            reqwest::Url::parse(url)
                .ok()
                .and_then(|u| u.host_str().map(str::to_owned))
        };
        let mut out = Vec::new();
        let mut add = |setting: &'static str, url: Option<&str>| {
            if let Some(h) = url.and_then(host) {
                out.push((setting, h));
            }
        };
        if let Some(t) = &self.twilio {
            add(
                "channels.twilio.base_url",
                Some(t.base_url.as_deref().unwrap_or("https://api.twilio.com")),
            );
        }
        if let Some(w) = &self.webhook {
            add("channels.webhook.url", Some(w.url.expose()));
        }
        if let Some(s) = &self.slack {
            add(
                "channels.slack.webhook_url",
                s.webhook_url.as_ref().map(Secret::expose),
            );
            if s.bot_token.is_some() {
                add(
                    "channels.slack.api_url",
                    Some(s.api_url.as_deref().unwrap_or(slack::DEFAULT_API_URL)),
                );
            }
        }
        if let Some(t) = &self.teams {
            add("channels.teams.webhook_url", Some(t.webhook_url.expose()));
        }
        if let Some(d) = &self.discord {
            add("channels.discord.webhook_url", Some(d.webhook_url.expose()));
        }
        if let Some(m) = &self.mattermost {
            add(
                "channels.mattermost.webhook_url",
                Some(m.webhook_url.expose()),
            );
        }
        if let Some(m) = &self.matrix {
            add("channels.matrix.homeserver_url", Some(&m.homeserver_url));
        }
        if let Some(e) = &self.email {
            out.push(("channels.email.host", e.host.clone()));
        }
        out
    }
}

/// `channels.twilio`: SMS and voice through Twilio's REST API.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TwilioSettings {
    /// `AC…`.
    pub account_sid: String,
    /// Prefer `ROUSE_TWILIO_AUTH_TOKEN` over writing it here.
    #[serde(default, deserialize_with = "secret_serde::optional")]
    pub auth_token: Option<Secret>,
    /// E.164 sender number (or `MG…` messaging service, SMS only).
    pub from: String,
    /// Only changed for tests or a proxy.
    #[serde(default)]
    pub base_url: Option<String>,
}

/// `channels.webhook`: the alert as signed JSON to any URL.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    #[serde(deserialize_with = "secret_serde::required")]
    pub url: Secret,
    /// HMAC key for `X-Rouse-Signature`; prefer `ROUSE_WEBHOOK_SECRET`.
    #[serde(default, deserialize_with = "secret_serde::optional")]
    pub secret: Option<Secret>,
}

/// A channel block that cannot work as written.
#[derive(Debug, thiserror::Error)]
#[error("channels.{channel}: {reason}")]
pub struct ConfigError {
    pub channel: &'static str,
    pub reason: String,
}

impl ConfigError {
    pub(crate) fn new(channel: &'static str, reason: impl Into<String>) -> Self {
        Self {
            channel,
            reason: reason.into(),
        }
    }
}

/// Serde helpers for [`Secret`] fields: `Secret` itself is not `Deserialize`
/// in the main crate, and these keep the value out of error messages.
pub mod secret_serde {
    use super::*;

    pub fn required<'de, D: Deserializer<'de>>(d: D) -> Result<Secret, D::Error> {
        String::deserialize(d).map(Secret::new)
    }

    pub fn optional<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Secret>, D::Error> {
        Ok(Option::<String>::deserialize(d)?.map(Secret::new))
    }
}

/// Largest response body read from a provider: answers are a few hundred
/// bytes; a proxy's HTML error page is cut rather than buffered whole.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// What a provider answered, read in full (bounded).
pub(crate) struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

/// Sends a request and reads the answer; transport failures become outcomes.
///
/// A body that cannot be read after a success status is `Unknown`: the
/// provider accepted the request but we cannot tell what it said about it.
pub(crate) async fn execute(request: reqwest::RequestBuilder) -> Result<Reply, Outcome> {
    // Without the URL: for some providers it holds a credential (a webhook
    // URL, Pushover's token in a receipt poll), and the reason is logged.
    let mut response = request
        .send()
        .await
        .map_err(|e| classify_error(&e.without_url()))?;
    let status = response.status();
    let headers = response.headers().clone();
    let mut bytes = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = MAX_RESPONSE_BYTES.saturating_sub(bytes.len());
                bytes.extend_from_slice(&chunk[..chunk.len().min(room)]);
                if bytes.len() >= MAX_RESPONSE_BYTES {
                    break;
                }
            }
            Ok(None) => break,
            Err(err) if status.is_success() => {
                return Err(Outcome::Unknown {
                    reason: format!(
                        "HTTP {status} but the body could not be read: {}",
                        crate::channel::http::error_chain(&err)
                    ),
                })
            }
            // A failure status says enough on its own.
            Err(_) => break,
        }
    }
    Ok(Reply {
        status,
        headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    })
}

/// Where a chat message goes: a `Room` recipient names its room; a person is
/// reached in the configured room (and named in the text), falling back to the
/// person's own chat address when no room is configured.
pub(crate) fn chat_target<'a>(recipient: &'a Recipient, configured: Option<&'a str>) -> &'a str {
    match recipient {
        Recipient::Room { address } if !address.trim().is_empty() => address,
        _ => configured
            .filter(|c| !c.trim().is_empty())
            .unwrap_or_else(|| recipient.address()),
    }
}

/// Seconds (possibly fractional) from outside data to a bounded duration.
pub(crate) fn bounded_secs(secs: f64) -> Option<Duration> {
    const MAX: Duration = Duration::from_secs(15 * 60);
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(MAX.as_secs_f64())))
}

/// A webhook URL is a credential: validated once so a malformed one fails at
/// start-up, and never echoed back in the error.
pub(crate) fn check_url(channel: &'static str, field: &str, url: &str) -> Result<(), ConfigError> {
    match reqwest::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "https" | "http") && u.host().is_some() => Ok(()),
        _ => Err(ConfigError::new(
            channel,
            format!("{field} must be an http(s) URL"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rooms_win_over_the_configured_channel_for_room_recipients() {
        let room = Recipient::Room {
            address: "#ops".into(),
        };
        let person = Recipient::Person {
            id: "alice".into(),
            name: "Alice".into(),
            address: "U1".into(),
        };
        assert_eq!(chat_target(&room, Some("#default")), "#ops");
        assert_eq!(chat_target(&person, Some("#default")), "#default");
        assert_eq!(chat_target(&person, None), "U1");
    }

    #[test]
    fn secrets_deserialize_without_leaking() {
        #[derive(Deserialize, Debug)]
        struct C {
            #[serde(deserialize_with = "secret_serde::required")]
            url: Secret,
        }
        let c: C = serde_json::from_str(r#"{"url":"https://hooks.example/T/B/X"}"#)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.url.expose(), "https://hooks.example/T/B/X");
        assert!(!format!("{c:?}").contains("hooks"));
    }

    #[test]
    fn absurd_retry_hints_are_bounded() {
        assert_eq!(bounded_secs(1.5), Some(Duration::from_millis(1500)));
        assert_eq!(bounded_secs(-1.0), None);
        assert_eq!(bounded_secs(f64::NAN), None);
        assert_eq!(bounded_secs(1e12), Some(Duration::from_secs(900)));
    }
}
