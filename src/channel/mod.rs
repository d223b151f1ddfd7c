//! Outbound notifications: one [`Channel`] trait, one [`Outcome`] enum.
//!
//! A channel never panics and never returns a raw transport error: every
//! failure, from a 500 to a TLS certificate for the wrong host, becomes an
//! outcome the escalation engine can act on (retry later, fall through to
//! the next channel, or record that the result is unknown).

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::alert::{AlertStatus, Link, Severity, Urgency};

pub mod console;
pub mod http;
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
}

impl ChannelKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelKind::Console => "console",
            ChannelKind::Chat => "chat",
            ChannelKind::Sms => "sms",
            ChannelKind::Voice => "voice",
            ChannelKind::Email => "email",
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
