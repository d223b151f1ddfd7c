//! Microsoft Teams: an Adaptive Card (1.4) posted to a Teams workflow
//! ("When a Teams webhook request is received") or incoming-webhook URL.
//!
//! Teams accepts with 200 or 202, and throttles with 429 — but the connector
//! front end also answers HTTP 200 whose text body reads "Webhook message
//! delivery failed with error: Microsoft Teams endpoint returned HTTP error
//! 429 …" (it wraps the real status so first-party connectors are not
//! disabled). That body is parsed: a 200 is not a delivery until it is checked.
//! Teams returns no message id, so follow-ups are new cards.

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::channel::http::{classify_status, retry_after};
use crate::channel::{Channel, ChannelKind, Notification, Outcome};
use crate::config::Secret;

use super::render::{self, truncate};
use super::{check_url, execute, secret_serde, ConfigError};

/// `channels.teams`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeamsConfig {
    /// The workflow's HTTP POST URL (it embeds a signature: a credential).
    #[serde(deserialize_with = "secret_serde::required")]
    pub webhook_url: Secret,
}

pub struct Teams {
    url: Secret,
    http: reqwest::Client,
}

impl Teams {
    pub fn new(config: &TeamsConfig, http: reqwest::Client) -> Result<Self, ConfigError> {
        check_url("teams", "webhook_url", config.webhook_url.expose())?;
        Ok(Self {
            url: config.webhook_url.clone(),
            http,
        })
    }
}

/// Adaptive Card `color` names for a TextBlock (the card has no free RGB).
fn card_color(n: &Notification) -> &'static str {
    use crate::alert::{AlertStatus, Severity};
    match (n.status, n.severity) {
        (AlertStatus::Resolved, _) => "good",
        (AlertStatus::Acknowledged, _) => "accent",
        (_, Severity::Critical | Severity::Error) => "attention",
        (_, Severity::Warning) => "warning",
        (_, Severity::Info) => "default",
    }
}

/// The message envelope a Teams workflow expects, with one Adaptive Card.
pub fn payload(n: &Notification) -> Value {
    let mut facts = vec![
        json!({"title": "Severity", "value": render::severity_label(n.severity)}),
        json!({"title": "Service", "value": truncate(&n.service_id, 500)}),
        json!({"title": "Status", "value": truncate(&render::status_line(n), 500)}),
    ];
    if n.status == crate::alert::AlertStatus::Triggered && !n.paged.is_empty() {
        facts.push(json!({"title": "Paging", "value": truncate(&n.paged.join(", "), 500)}));
    }
    let mut actions = Vec::new();
    if let Some(url) = render::ack_url(n) {
        actions.push(json!({"type": "Action.OpenUrl", "title": "Acknowledge", "url": url, "style": "positive"}));
    }
    for (text, href) in render::links(n).into_iter().take(5) {
        actions.push(json!({"type": "Action.OpenUrl", "title": truncate(&text, 100), "url": href}));
    }
    let card = json!({
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "msteams": {"width": "Full"},
        "body": [
            {
                "type": "TextBlock",
                "text": truncate(&format!("{} {}", render::emoji(n), render::headline(n)), 500),
                "weight": "Bolder",
                "size": "Medium",
                "color": card_color(n),
                "wrap": true,
            },
            {
                "type": "TextBlock",
                "text": truncate(&render::one_line(&n.summary), 2000),
                "wrap": true,
            },
            {"type": "FactSet", "facts": facts},
        ],
        "actions": actions,
    });
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": card,
        }],
    })
}

/// The status Teams reports inside a 200 body, if it reports a failure.
fn wrapped_status(body: &str) -> Option<Option<u16>> {
    if !body.contains("delivery failed") && !body.contains("returned HTTP error") {
        return None;
    }
    let code = body.split("HTTP error ").nth(1).and_then(|rest| {
        rest.chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse()
            .ok()
    });
    Some(code)
}

fn classify(reply: &super::Reply) -> Outcome {
    if !reply.status.is_success() {
        return classify_status(reply.status, &reply.headers, &reply.body, None);
    }
    let Some(code) = wrapped_status(&reply.body) else {
        return Outcome::Delivered { provider_id: None };
    };
    let reason = format!("teams: {}", truncate(reply.body.trim(), 200));
    match code {
        // The wrapped 429 carries no Retry-After; Microsoft's guidance is to
        // back off for seconds, which the engine's default retry delay does.
        Some(429) => Outcome::Retry {
            after: retry_after(&reply.headers),
            reason,
        },
        Some(code) if code >= 500 => Outcome::Retry {
            after: None,
            reason,
        },
        _ => Outcome::Failed { reason },
    }
}

#[async_trait]
impl Channel for Teams {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Chat
    }

    fn name(&self) -> &str {
        "teams"
    }

    async fn send(&self, n: &Notification) -> Outcome {
        match execute(self.http.post(self.url.expose()).json(&payload(n))).await {
            Ok(reply) => classify(&reply),
            Err(outcome) => outcome,
        }
    }

    /// Teams workflows return no message id to edit: a new card in the
    /// acknowledged/resolved colour says what changed.
    async fn follow_up(&self, n: &Notification, _previous_provider_id: Option<&str>) -> Outcome {
        self.send(n).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttling_inside_a_200_is_found() {
        let body = "Webhook message delivery failed with error: Microsoft Teams endpoint returned HTTP error 429 with ContextId tcid=0..";
        assert_eq!(wrapped_status(body), Some(Some(429)));
        assert_eq!(wrapped_status("1"), None);
        assert_eq!(wrapped_status(""), None);
    }
}
