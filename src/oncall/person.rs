//! People who can be paged: identity, home zone, contact methods and personal limits.

use super::policy::Channel;
use super::time::LocalTime;
use chrono::{DateTime, TimeDelta, Timelike, Utc};
use chrono_tz::Tz;

#[derive(Debug, Clone, PartialEq)]
pub struct Person {
    pub id: String,
    pub name: String,
    /// Home zone, used to show the person's local time and to apply quiet hours.
    pub zone: Tz,
    pub contact: Contact,
    pub quiet_hours: Option<QuietHours>,
    pub max_calls_per_hour: Option<u32>,
    /// Personal notification rules, in order: what a `personal` step does
    /// for this person. Empty: the step's fallback channels.
    pub notify: Vec<NotifyRule>,
}

/// `{after: 1m, via: voice}`: notify by `via` this long after the step fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotifyRule {
    pub after: TimeDelta,
    pub via: Channel,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Contact {
    pub sms: Option<String>,
    pub voice: Option<String>,
    pub email: Option<String>,
    pub slack: Option<String>,
    pub matrix: Option<String>,
    /// A Pushover user (or group) key.
    pub pushover: Option<String>,
    /// An ntfy topic: a bare topic on the configured server, or the topic's
    /// full URL (`https://ntfy.example/alice-pager`) on the person's own.
    pub ntfy: Option<String>,
}

impl Contact {
    /// Whether `channel` can reach this contact at all.
    pub fn reaches(&self, channel: Channel) -> bool {
        match channel {
            Channel::Sms => self.sms.is_some(),
            Channel::Voice => self.voice.is_some(),
            Channel::Email => self.email.is_some(),
            Channel::Chat => self.slack.is_some() || self.matrix.is_some(),
            Channel::Push => self.pushover.is_some() || self.ntfy.is_some(),
        }
    }
}

/// A local time range in which low-urgency alerts must not wake the person. `to <= from`
/// means the range runs past midnight (`22:00`–`07:00`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuietHours {
    pub from: LocalTime,
    pub to: LocalTime,
}

impl QuietHours {
    pub fn contains(&self, local: LocalTime) -> bool {
        if self.from < self.to {
            self.from <= local && local < self.to
        } else {
            local >= self.from || local < self.to
        }
    }
}

impl Person {
    /// Whether `t` falls in the person's quiet hours (in their home zone).
    pub fn in_quiet_hours(&self, t: DateTime<Utc>) -> bool {
        let local = t.with_timezone(&self.zone);
        let hm = u16::try_from(local.hour())
            .ok()
            .zip(u16::try_from(local.minute()).ok());
        match (
            self.quiet_hours,
            hm.and_then(|(h, m)| LocalTime::from_hm(h, m)),
        ) {
            (Some(q), Some(now)) => q.contains(now),
            _ => false,
        }
    }
}
