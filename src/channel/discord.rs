//! Discord: an "execute webhook" call with one embed coloured by severity.
//!
//! `?wait=true` makes Discord answer 200 with the created message (its `id`
//! becomes the provider id) instead of an empty 204. A rate limit is a 429
//! whose JSON body carries `retry_after` in seconds (fractional) next to the
//! `Retry-After` header; the larger wins. `allowed_mentions` is empty so an
//! alert summary containing `@everyone` cannot ping a whole server.

use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::channel::http::{classify_status, retry_after};
use crate::channel::{Channel, ChannelKind, Notification, Outcome};
use crate::config::Secret;

use super::render::{self, truncate};
use super::{bounded_secs, check_url, execute, secret_serde, ConfigError};

/// `channels.discord`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscordConfig {
    /// `https://discord.com/api/webhooks/<id>/<token>`.
    #[serde(deserialize_with = "secret_serde::required")]
    pub webhook_url: Secret,
    /// Overrides the webhook's display name.
    #[serde(default)]
    pub username: Option<String>,
}

pub struct Discord {
    url: reqwest::Url,
    username: Option<String>,
    http: reqwest::Client,
}

impl Discord {
    pub fn new(config: &DiscordConfig, http: reqwest::Client) -> Result<Self, ConfigError> {
        check_url("discord", "webhook_url", config.webhook_url.expose())?;
        let mut url = reqwest::Url::parse(config.webhook_url.expose())
            .map_err(|_| ConfigError::new("discord", "webhook_url must be an http(s) URL"))?;
        // Keep any query the user gave (thread_id=…), replace a `wait` of theirs.
        let kept: Vec<(String, String)> = url
            .query_pairs()
            .filter(|(k, _)| k != "wait")
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        url.query_pairs_mut()
            .clear()
            .extend_pairs(kept)
            .append_pair("wait", "true");
        Ok(Self {
            url,
            username: config.username.clone(),
            http,
        })
    }
}

/// The execute-webhook body (Discord limits: title 256, description 4096,
/// field name 256 / value 1024, content 2000).
pub fn payload(n: &Notification, username: Option<&str>) -> Value {
    let mut fields = vec![
        json!({"name": "Severity", "value": render::severity_label(n.severity), "inline": true}),
        json!({"name": "Service", "value": truncate(&n.service_id, 1024), "inline": true}),
        json!({"name": "Status", "value": truncate(&render::status_line(n), 1024), "inline": false}),
    ];
    let links = render::links(n);
    if !links.is_empty() {
        let text = links
            .iter()
            .map(|(text, href)| format!("[{}]({href})", text.replace(['[', ']'], "")))
            .collect::<Vec<_>>()
            .join("\n");
        fields.push(json!({"name": "Links", "value": truncate(&text, 1024), "inline": false}));
    }
    let mut description = render::one_line(&n.summary);
    if let Some(url) = render::ack_url(n) {
        description.push_str(&format!("\n\n**[Acknowledge]({url})**"));
    }
    let mut embed = json!({
        "title": truncate(&format!("{} {}", render::emoji(n), render::headline(n)), 256),
        "description": truncate(&description, 4096),
        "color": render::color(n),
        "fields": fields,
        "timestamp": n.created_at.to_rfc3339(),
    });
    if let Some(url) = render::ack_url(n) {
        embed["url"] = json!(url);
    }
    let mut body = json!({
        "content": truncate(&render::status_line(n), 2000),
        "embeds": [embed],
        "allowed_mentions": {"parse": []},
    });
    if let Some(name) = username {
        body["username"] = json!(truncate(name, 80));
    }
    body
}

#[derive(Deserialize)]
struct Created {
    id: String,
}

#[derive(Deserialize)]
struct RateLimited {
    retry_after: f64,
}

fn classify(reply: &super::Reply) -> Outcome {
    if reply.status.is_success() {
        // 200 with the message (wait=true); 204 if a proxy dropped the query.
        let provider_id = serde_json::from_str::<Created>(&reply.body)
            .ok()
            .map(|c| c.id);
        return Outcome::Delivered { provider_id };
    }
    let outcome = classify_status(reply.status, &reply.headers, &reply.body, None);
    if reply.status == reqwest::StatusCode::TOO_MANY_REQUESTS {
        let from_body = serde_json::from_str::<RateLimited>(&reply.body)
            .ok()
            .and_then(|r| bounded_secs(r.retry_after));
        let after = [from_body, retry_after(&reply.headers)]
            .into_iter()
            .flatten()
            .max()
            .or(Some(Duration::from_secs(1)));
        if let Outcome::Retry { reason, .. } = outcome {
            return Outcome::Retry { after, reason };
        }
    }
    outcome
}

#[async_trait]
impl Channel for Discord {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Chat
    }

    fn name(&self) -> &str {
        "discord"
    }

    async fn send(&self, n: &Notification) -> Outcome {
        let body = payload(n, self.username.as_deref());
        match execute(self.http.post(self.url.clone()).json(&body)).await {
            Ok(reply) => classify(&reply),
            Err(outcome) => outcome,
        }
    }

    /// A new embed in the acknowledged/resolved colour: the original stays as
    /// the record of the page, the newest message tells the state.
    async fn follow_up(&self, n: &Notification, _previous_provider_id: Option<&str>) -> Outcome {
        self.send(n).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_is_added_and_other_query_kept() {
        let c = DiscordConfig {
            webhook_url: Secret::new(
                "https://discord.example/api/webhooks/1/abc?thread_id=9&wait=false",
            ),
            username: None,
        };
        let d = Discord::new(&c, reqwest::Client::new()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(d.url.query(), Some("thread_id=9&wait=true"));
    }
}
