//! Mattermost: an incoming webhook with Slack-style `attachments` (colour
//! bar, title, fields). Mattermost answers `200 ok` as plain text and returns
//! no post id, so follow-ups are new posts.

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::channel::http::classify_status;
use crate::channel::{Channel, ChannelKind, Notification, Outcome};
use crate::config::Secret;

use super::render::{self, truncate};
use super::{chat_target, check_url, execute, secret_serde, ConfigError};

/// `channels.mattermost`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MattermostConfig {
    /// `https://mattermost.example.com/hooks/<key>`.
    #[serde(deserialize_with = "secret_serde::required")]
    pub webhook_url: Secret,
    /// Channel name overriding the webhook's default (needs the webhook to
    /// allow it); a room recipient's address takes precedence.
    #[serde(default)]
    pub channel: Option<String>,
    #[serde(default)]
    pub username: Option<String>,
}

pub struct Mattermost {
    url: Secret,
    channel: Option<String>,
    username: Option<String>,
    http: reqwest::Client,
}

impl Mattermost {
    pub fn new(config: &MattermostConfig, http: reqwest::Client) -> Result<Self, ConfigError> {
        check_url("mattermost", "webhook_url", config.webhook_url.expose())?;
        Ok(Self {
            url: config.webhook_url.clone(),
            channel: config.channel.clone(),
            username: config.username.clone(),
            http,
        })
    }
}

/// Mattermost renders Markdown in `text` and field values; these characters
/// from an alert would otherwise restyle or linkify it.
fn escape_md(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(
            c,
            '\\' | '*' | '_' | '`' | '[' | ']' | '~' | '#' | '|' | '>'
        ) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The webhook body: `text` for notifications, one attachment for the card.
pub fn payload(n: &Notification, channel: Option<&str>, username: Option<&str>) -> Value {
    let mut fields = vec![
        json!({"short": true, "title": "Severity", "value": render::severity_label(n.severity)}),
        json!({"short": true, "title": "Service", "value": escape_md(&n.service_id)}),
        json!({"short": false, "title": "Status", "value": escape_md(&render::status_line(n))}),
    ];
    let links = render::links(n);
    if !links.is_empty() {
        let text = links
            .iter()
            .map(|(text, href)| format!("[{}]({href})", escape_md(text)))
            .collect::<Vec<_>>()
            .join(" · ");
        fields.push(json!({"short": false, "title": "Links", "value": text}));
    }
    let mut attachment = json!({
        "fallback": render::one_line(&format!("{} — {}", render::headline(n), render::status_line(n))),
        "color": render::hex_color(render::color(n)),
        "title": truncate(&format!("{} {}", render::emoji(n), render::headline(n)), 500),
        "text": escape_md(&render::one_line(&n.summary)),
        "fields": fields,
    });
    if let Some(url) = render::ack_url(n) {
        attachment["title_link"] = json!(url);
        attachment["text"] = json!(format!(
            "{}\n\n**[Acknowledge]({url})**",
            escape_md(&render::one_line(&n.summary))
        ));
    }
    let mut body = json!({
        "text": escape_md(&format!("{} {}", render::emoji(n), render::status_line(n))),
        "attachments": [attachment],
    });
    if let Some(c) = channel.filter(|c| !c.trim().is_empty()) {
        body["channel"] = json!(c);
    }
    if let Some(u) = username {
        body["username"] = json!(u);
    }
    body
}

#[async_trait]
impl Channel for Mattermost {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Chat
    }

    fn name(&self) -> &str {
        "mattermost"
    }

    async fn send(&self, n: &Notification) -> Outcome {
        // Only a room recipient or the configured channel names a channel; a
        // person's handle is not a channel name, so it is left to the webhook.
        let channel = match &n.recipient {
            crate::channel::Recipient::Room { .. } => {
                Some(chat_target(&n.recipient, self.channel.as_deref()))
            }
            _ => self.channel.as_deref(),
        };
        let body = payload(n, channel, self.username.as_deref());
        match execute(self.http.post(self.url.expose()).json(&body)).await {
            Ok(reply) => classify_status(reply.status, &reply.headers, &reply.body, None),
            Err(outcome) => outcome,
        }
    }

    /// Incoming webhooks return no post id: a new post says what changed.
    async fn follow_up(&self, n: &Notification, _previous_provider_id: Option<&str>) -> Outcome {
        self.send(n).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_is_escaped() {
        assert_eq!(escape_md("a*b_[c]"), "a\\*b\\_\\[c\\]");
    }
}
