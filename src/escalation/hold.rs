//! When nobody may be paged for an alert: a maintenance window of its
//! service or a silence matching it. Pure; the engine and `rouse simulate`
//! both ask here, so they hold the same pages for the same time. The
//! hourly caps on pages to one number live here for the same reason.

use chrono::{DateTime, Utc};

use crate::alert::silence::{Silence, SilenceSet, Subject};
use crate::catalog::Catalog;
use crate::channel::{ChannelKind, Recipient};

/// Why nobody may be paged right now.
pub enum Hold<'a> {
    Maintenance(&'a str),
    Silence(&'a Silence),
}

impl Hold<'_> {
    /// The metric label: `maintenance` or `silence`.
    pub fn by(&self) -> &'static str {
        match self {
            Hold::Maintenance(_) => "maintenance",
            Hold::Silence(_) => "silence",
        }
    }

    /// For the timeline: `in maintenance: db upgrade`, `silenced by #12: …`.
    pub fn describe(&self) -> String {
        match self {
            Hold::Maintenance(reason) => format!("in maintenance: {reason}"),
            Hold::Silence(s) => s.describe(),
        }
    }
}

/// The hold in force at `t` for `subject`, with when it ends (the later of
/// a window and a silence, when both apply).
pub fn hold_at<'a>(
    catalog: &'a Catalog,
    silences: &'a SilenceSet,
    subject: &Subject<'_>,
    t: DateTime<Utc>,
) -> Option<(DateTime<Utc>, Hold<'a>)> {
    let window = catalog
        .maintenance_at(subject.service, t)
        .map(|(end, reason)| (end, Hold::Maintenance(reason)));
    let silence = silences
        .matching(subject, t)
        .map(|s| (s.ends_at, Hold::Silence(s)));
    match (window, silence) {
        (Some(w), Some(s)) => Some(if s.0 > w.0 { s } else { w }),
        (w, s) => w.or(s),
    }
}

/// An hourly limit on pages to one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cap {
    pub per_hour: u32,
    /// The channels the limit counts.
    pub channels: &'static [ChannelKind],
    pub what: &'static str,
}

/// The hourly caps on a page by `channel` to `recipient`: SMS and calls per
/// number (carriers block numbers that call too often; `u32::MAX` is none),
/// and for calls the person's own `max_calls_per_hour`.
pub fn caps(
    channel: ChannelKind,
    recipient: &Recipient,
    per_number: u32,
    catalog: Option<&Catalog>,
) -> Vec<Cap> {
    if !matches!(channel, ChannelKind::Sms | ChannelKind::Voice) {
        return Vec::new();
    }
    let mut caps = Vec::new();
    if per_number < u32::MAX {
        caps.push(Cap {
            per_hour: per_number,
            channels: &[ChannelKind::Sms, ChannelKind::Voice],
            what: "pages to this number",
        });
    }
    if let (ChannelKind::Voice, Recipient::Person { id, .. }) = (channel, recipient) {
        if let Some(per_hour) = catalog.and_then(|c| c.person(id)?.max_calls_per_hour) {
            caps.push(Cap {
                per_hour,
                channels: &[ChannelKind::Voice],
                what: "calls (their max_calls_per_hour)",
            });
        }
    }
    caps
}

/// When `cap` lets the next page out, given the pages it counts in the last
/// hour (oldest first); `None` if one may go now. Free again when the
/// oldest counted page leaves the hour.
pub fn cap_free_at(sent: &[DateTime<Utc>], cap: &Cap) -> Option<DateTime<Utc>> {
    let limit = cap.per_hour.max(1) as usize;
    let oldest_counted = sent.len().checked_sub(limit).and_then(|i| sent.get(i))?;
    Some(*oldest_counted + chrono::TimeDelta::hours(1))
}
