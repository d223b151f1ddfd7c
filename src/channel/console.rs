//! The console sink: pages written to the log. It is what a fresh install
//! uses when no provider is configured, so `rouse serve` shows its pages.

use async_trait::async_trait;

use super::{Channel, ChannelKind, Notification, Outcome};

#[derive(Debug, Clone)]
pub struct Console {
    /// The channel this sink stands in for (sms, voice, …), shown in each line.
    stands_in_for: ChannelKind,
    name: String,
}

impl Console {
    pub fn new(stands_in_for: ChannelKind) -> Self {
        Self {
            stands_in_for,
            name: format!("console-{}", stands_in_for.as_str()),
        }
    }
}

#[async_trait]
impl Channel for Console {
    fn kind(&self) -> ChannelKind {
        self.stands_in_for
    }

    fn name(&self) -> &str {
        &self.name
    }

    async fn send(&self, n: &Notification) -> Outcome {
        // A Pushover user key or an ntfy topic (which anyone may subscribe
        // to) is close to a credential: the log names the person instead.
        let to = match self.stands_in_for {
            ChannelKind::Pushover | ChannelKind::Ntfy => n.recipient.label(),
            _ => n.recipient.address(),
        };
        tracing::info!(
            target: "rouse::page",
            channel = self.stands_in_for.as_str(),
            to,
            alert_id = n.alert_id,
            service = %n.service_id,
            severity = n.severity.as_str(),
            status = n.status.as_str(),
            attempt = n.attempt,
            ack = n.ack_url.as_deref().unwrap_or("-"),
            "PAGE #{} {}",
            n.alert_id,
            n.summary
        );
        Outcome::Delivered { provider_id: None }
    }
}
