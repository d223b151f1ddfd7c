//! Escalation policies: who gets notified, through which channels, and when.

use chrono::TimeDelta;
use serde::Serialize;
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EscalationPolicy {
    pub id: String,
    pub name: Option<String>,
    pub steps: Vec<Step>,
    pub repeat: Repeat,
    /// How often voice calls are repeated while nobody acknowledges; None = call once.
    pub voice_repeat_every: Option<TimeDelta>,
    /// After a call that rang out, was busy or reached voicemail, call the
    /// same number again this much later (`None`: `breakthrough: false`).
    pub breakthrough_after: Option<TimeDelta>,
}

/// Default of a policy's `breakthrough_after`.
pub const DEFAULT_BREAKTHROUGH_AFTER: TimeDelta = TimeDelta::seconds(60);
/// iOS lets a second call from the same number within three minutes ring
/// through Do Not Disturb ("Repeated Calls"); the call itself rings for up to
/// half a minute, so the gap stays under 170 s.
pub const MAX_BREAKTHROUGH_AFTER: TimeDelta = TimeDelta::seconds(170);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// Wait after the previous step (after the alert for the first step).
    pub delay: TimeDelta,
    pub targets: Vec<Target>,
    /// The channels every target is notified on; for a `personal` step, what
    /// people without notification rules get (its `fallback`).
    pub channels: Vec<Channel>,
    /// `channels: [personal]`: each person is notified by their own rules
    /// ([`crate::oncall::Person::notify`]), people without rules on `channels`.
    pub personal: bool,
}

/// The `channels` a `personal` step falls back to when it names none.
pub const DEFAULT_FALLBACK: [Channel; 2] = [Channel::Sms, Channel::Voice];

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    Schedule(String),
    Rotation(String),
    Person(String),
    /// A chat channel such as `#ops`; only the `chat` channel reaches it.
    Chat(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Chat,
    Sms,
    Voice,
    Email,
    /// A push notification app (Pushover, ntfy) that can ring through Do Not
    /// Disturb; which one depends on the person's contacts.
    Push,
}

impl Channel {
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim() {
            "chat" => Some(Channel::Chat),
            "sms" => Some(Channel::Sms),
            "voice" => Some(Channel::Voice),
            "email" => Some(Channel::Email),
            "push" => Some(Channel::Push),
            _ => None,
        }
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Channel::Chat => "chat",
            Channel::Sms => "sms",
            Channel::Voice => "voice",
            Channel::Email => "email",
            Channel::Push => "push",
        })
    }
}

/// How often the whole list of steps is run again after the last step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repeat {
    /// Extra passes after the first one; `Times(0)` runs the steps once.
    Times(u32),
    UntilAck,
}
