//! The records an alert leaves behind: its current state and its timeline.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::event::{Link, Severity};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertStatus {
    Triggered,
    Acknowledged,
    Resolved,
}

impl AlertStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertStatus::Triggered => "triggered",
            AlertStatus::Acknowledged => "acknowledged",
            AlertStatus::Resolved => "resolved",
        }
    }

    pub fn is_open(self) -> bool {
        self != AlertStatus::Resolved
    }
}

impl FromStr for AlertStatus {
    type Err = UnknownValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "triggered" => Ok(AlertStatus::Triggered),
            "acknowledged" => Ok(AlertStatus::Acknowledged),
            "resolved" => Ok(AlertStatus::Resolved),
            other => Err(UnknownValue(other.to_owned())),
        }
    }
}

pub use crate::oncall::Urgency;

impl FromStr for Urgency {
    type Err = UnknownValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Urgency::parse(s).ok_or_else(|| UnknownValue(s.to_owned()))
    }
}

/// A stored enum column held a value this build does not know (a newer writer?).
#[derive(Debug, Clone, thiserror::Error)]
#[error("unknown value {0:?}")]
pub struct UnknownValue(pub String);

/// An alert as stored: one per (service, dedup key) while open.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alert {
    pub id: i64,
    pub service_id: String,
    pub dedup_key: String,
    pub status: AlertStatus,
    pub summary: String,
    pub severity: Severity,
    pub source: String,
    pub urgency: Urgency,
    pub policy_id: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub details: serde_json::Value,
    pub links: Vec<Link>,
    /// How many events were folded into this alert (1 + duplicates).
    pub event_count: i64,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub acknowledged_by: Option<String>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub resolved_by: Option<String>,
}

/// What happened to an alert; stored as its snake_case name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimelineKind {
    Received,
    Deduplicated,
    Acknowledged,
    Resolved,
    /// A new distinct alert arrived while the service was over its storm threshold.
    StormFolded,
    /// An escalation step notified someone.
    StepFired,
    /// A step, target or channel was skipped (nobody on call, no contact, quiet hours).
    StepSkipped,
    /// One notification's outcome (delivered, retry, failed, unknown).
    Notified,
    /// The policy has nothing more to do.
    EscalationEnded,
    /// A person's reachability changed (an SMS STOP or START from their phone).
    Contact,
    /// Someone asked for the next step now instead of waiting out its delay.
    Escalated,
}

impl TimelineKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TimelineKind::Received => "received",
            TimelineKind::Deduplicated => "deduplicated",
            TimelineKind::Acknowledged => "acknowledged",
            TimelineKind::Resolved => "resolved",
            TimelineKind::StormFolded => "storm_folded",
            TimelineKind::StepFired => "step_fired",
            TimelineKind::StepSkipped => "step_skipped",
            TimelineKind::Notified => "notified",
            TimelineKind::EscalationEnded => "escalation_ended",
            TimelineKind::Contact => "contact",
            TimelineKind::Escalated => "escalated",
        }
    }
}

impl FromStr for TimelineKind {
    type Err = UnknownValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [
            TimelineKind::Received,
            TimelineKind::Deduplicated,
            TimelineKind::Acknowledged,
            TimelineKind::Resolved,
            TimelineKind::StormFolded,
            TimelineKind::StepFired,
            TimelineKind::StepSkipped,
            TimelineKind::Notified,
            TimelineKind::EscalationEnded,
            TimelineKind::Contact,
            TimelineKind::Escalated,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
        .ok_or_else(|| UnknownValue(s.to_owned()))
    }
}

impl fmt::Display for TimelineKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TimelineEntry {
    pub id: i64,
    pub alert_id: i64,
    pub at: DateTime<Utc>,
    pub kind: TimelineKind,
    /// Who or what caused it: an intake (`alertmanager`), a person id, `rouse`.
    pub actor: String,
    pub message: String,
    pub data: Option<serde_json::Value>,
}
