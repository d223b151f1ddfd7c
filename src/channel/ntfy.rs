//! ntfy: push notifications to a topic on ntfy.sh or a self-hosted server.
//!
//! Published as JSON to the server's root URL (so summaries in any language
//! need no header encoding). High-urgency pages go out at priority 5 ("max"),
//! which the Android app can let through Do Not Disturb, with two buttons: an
//! `http` action that POSTs a signed single-purpose token to Rouse and so
//! acknowledges without opening anything, and a `view` action that opens the
//! ack page. Low-urgency pages go out at the default priority.
//!
//! The access token is only sent to the configured server: a person's own
//! server (a topic URL in their contact) must not learn it.

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::alert::Urgency;
use crate::channel::http::classify_status;
use crate::channel::{Channel, ChannelKind, Notification, Outcome};
use crate::config::Secret;

use super::render::{self, truncate};
use super::{check_url, execute, secret_serde, ConfigError};

pub const DEFAULT_BASE_URL: &str = "https://ntfy.sh";

/// `channels.ntfy`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NtfySettings {
    /// The server bare topics live on (default https://ntfy.sh).
    #[serde(default)]
    pub base_url: Option<String>,
    /// An access token (`tk_…`) for that server; prefer `ROUSE_NTFY_TOKEN`.
    #[serde(default, deserialize_with = "secret_serde::optional")]
    pub token: Option<Secret>,
}

pub struct Ntfy {
    base_url: String,
    token: Option<Secret>,
    http: reqwest::Client,
}

impl Ntfy {
    pub fn new(settings: &NtfySettings, http: reqwest::Client) -> Result<Self, ConfigError> {
        let base = settings.base_url.as_deref().unwrap_or(DEFAULT_BASE_URL);
        check_url("ntfy", "base_url", base)?;
        Ok(Self {
            base_url: base.trim_end_matches('/').to_owned(),
            token: settings.token.clone(),
            http,
        })
    }
}

/// Where a contact's address points: (server, topic). A bare topic lives on
/// the configured server; `https://host/topic` on its own.
pub fn split_address<'a>(address: &'a str, base_url: &'a str) -> (&'a str, &'a str) {
    match address.rsplit_once('/') {
        Some((server, topic)) if address.contains("://") => (server, topic),
        _ => (base_url, address),
    }
}

/// The JSON message (ntfy limits: at most three actions).
pub fn payload(n: &Notification, topic: &str) -> Value {
    let mut message = render::one_line(&n.summary);
    if !n.paged.is_empty() {
        message.push_str(&format!(" ({})", render::status_line(n)));
    }
    let high = n.urgency == Urgency::High;
    let mut actions = Vec::new();
    if let Some(url) = &n.action_url {
        actions.push(json!({
            "action": "http", "label": "Acknowledge", "url": url.expose(),
            "method": "POST", "clear": true,
        }));
    }
    if let Some(url) = render::ack_url(n) {
        actions.push(json!({"action": "view", "label": "Open", "url": url}));
    }
    json!({
        "topic": topic,
        "title": truncate(&render::title(n), 250),
        "message": truncate(&message, 4096),
        "priority": if high { 5 } else { 3 },
        "tags": [if high { "rotating_light" } else { "warning" }],
        "actions": actions,
    })
}

#[derive(Deserialize)]
struct Published {
    #[serde(default)]
    id: Option<String>,
}

#[async_trait]
impl Channel for Ntfy {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Ntfy
    }

    fn name(&self) -> &str {
        "ntfy"
    }

    async fn send(&self, n: &Notification) -> Outcome {
        let (server, topic) = split_address(n.recipient.address(), &self.base_url);
        let mut request = self.http.post(server).json(&payload(n, topic));
        if let Some(token) = self.token.as_ref().filter(|_| server == self.base_url) {
            request = request.bearer_auth(token.expose());
        }
        let reply = match execute(request).await {
            Ok(reply) => reply,
            Err(outcome) => return outcome,
        };
        // An error body is ntfy's own JSON (`{"code":…,"error":"…"}`), never the token.
        let id = serde_json::from_str::<Published>(&reply.body)
            .ok()
            .and_then(|p| p.id);
        classify_status(reply.status, &reply.headers, &reply.body, id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::{AlertStatus, Severity};
    use crate::channel::Recipient;
    use chrono::Utc;

    #[test]
    fn bare_topics_use_the_configured_server_and_urls_their_own() {
        assert_eq!(
            split_address("alice-pager", "https://ntfy.sh"),
            ("https://ntfy.sh", "alice-pager")
        );
        assert_eq!(
            split_address("https://ntfy.example/alice", "https://ntfy.sh"),
            ("https://ntfy.example", "alice")
        );
    }

    #[test]
    fn a_high_urgency_page_is_priority_5_with_both_buttons() {
        let n = Notification {
            idempotency_key: "k".into(),
            alert_id: 42,
            service_id: "payments".into(),
            summary: "disk full".into(),
            severity: Severity::Critical,
            urgency: Urgency::High,
            status: AlertStatus::Triggered,
            links: vec![],
            ack_url: Some("https://rouse.example/ack/42?t=a".into()),
            reply_code: None,
            action_url: Some(Secret::new("https://rouse.example/ntfy/ack/42?t=p")),
            paged: vec![],
            recipient: Recipient::Person {
                id: "alice".into(),
                name: "Alice".into(),
                address: "alice-pager".into(),
            },
            attempt: 1,
            created_at: Utc::now(),
        };
        let p = payload(&n, "alice-pager");
        assert_eq!(p["priority"], 5);
        assert_eq!(p["topic"], "alice-pager");
        assert_eq!(p["actions"][0]["action"], "http");
        assert_eq!(p["actions"][0]["method"], "POST");
        assert_eq!(
            p["actions"][0]["url"],
            "https://rouse.example/ntfy/ack/42?t=p"
        );
        assert_eq!(p["actions"][1]["action"], "view");
        let low = Notification {
            urgency: Urgency::Low,
            ..n
        };
        assert_eq!(payload(&low, "t")["priority"], 3);
    }
}
