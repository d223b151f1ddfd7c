//! Rouse's own event format, accepted on `POST /v1/events`.
//!
//! ```json
//! {"action": "trigger", "dedup_key": "db-1/disk", "summary": "Disk full",
//!  "severity": "critical", "source": "db-1", "labels": {"team": "storage"},
//!  "details": {"free_bytes": 0}, "links": [{"href": "https://…", "text": "Runbook"}],
//!  "timestamp": "2026-11-26T09:36:45Z"}
//! ```
//!
//! Strict on purpose, since we own the format: unknown fields are rejected
//! (so `sumary` is an error rather than a silently summary-less page), and
//! severity must be one of the four exact lowercase names.
//!
//! * `trigger` requires `summary` and `severity`; without `dedup_key` every
//!   trigger opens a new alert.
//! * `acknowledge` / `resolve` require `dedup_key`; other fields are optional
//!   and default to `""` / `info`.
//! * `labels` values must be strings; `details` must be an object.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Map, Value};

use super::{
    dedup_key_too_long, details_too_deep, from_json_object, non_blank, parse_timestamp, IntakeError,
};
use crate::alert::{
    truncate_summary, Action, Event, FieldNames, IntakeKind, Link, Severity, MAX_DEDUP_KEY_CHARS,
    MAX_DETAILS_DEPTH,
};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NativeEvent {
    action: Option<String>,
    dedup_key: Option<String>,
    summary: Option<String>,
    severity: Option<String>,
    source: Option<String>,
    labels: Option<BTreeMap<String, String>>,
    details: Option<Map<String, Value>>,
    links: Option<Vec<NativeLink>>,
    timestamp: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NativeLink {
    href: Option<String>,
    text: Option<String>,
}

/// Parses and validates one native event.
pub fn parse(body: &[u8]) -> Result<Event, IntakeError> {
    let wire: NativeEvent = from_json_object(body, "body must be a JSON object")?;
    let mut errors = Vec::new();

    let action = match non_blank(wire.action.as_deref()) {
        None => {
            errors.push("action is required".to_owned());
            None
        }
        Some(a) => {
            let parsed = Action::from_wire(a);
            if parsed.is_none() {
                errors.push("action must be one of trigger, acknowledge, resolve".to_owned());
            }
            parsed
        }
    };
    let is_trigger = action == Some(Action::Trigger);

    let dedup_key = non_blank(wire.dedup_key.as_deref());
    if dedup_key.is_some_and(dedup_key_too_long) {
        errors.push(format!(
            "dedup_key is longer than {MAX_DEDUP_KEY_CHARS} characters"
        ));
    }
    if let (Some(a @ (Action::Acknowledge | Action::Resolve)), None) = (action, dedup_key) {
        errors.push(format!("dedup_key is required for {a}"));
    }

    let summary = non_blank(wire.summary.as_deref());
    if is_trigger && summary.is_none() {
        errors.push("summary is required for trigger".to_owned());
    }

    let severity = match wire.severity.as_deref() {
        None => {
            if is_trigger {
                errors.push("severity is required for trigger".to_owned());
            }
            None
        }
        Some(s) => {
            let parsed = Severity::from_wire(s);
            if parsed.is_none() {
                errors.push("severity must be one of critical, error, warning, info".to_owned());
            }
            parsed
        }
    };

    let occurred_at = match non_blank(wire.timestamp.as_deref()) {
        None => None,
        Some(t) => {
            let parsed = parse_timestamp(t);
            if parsed.is_none() {
                errors.push("timestamp is not a valid RFC 3339 date-time".to_owned());
            }
            parsed
        }
    };

    let mut links = Vec::new();
    for (i, link) in wire.links.unwrap_or_default().into_iter().enumerate() {
        match non_blank(link.href.as_deref()) {
            Some(href) => links.push(Link {
                href: href.to_owned(),
                text: link.text,
            }),
            None => errors.push(format!("links[{i}].href is required")),
        }
    }

    let details = Value::Object(wire.details.unwrap_or_default());
    if details_too_deep(&details) {
        errors.push(format!(
            "details is nested deeper than {MAX_DETAILS_DEPTH} levels"
        ));
    }

    let Some(action) = action else {
        return Err(IntakeError::Invalid(errors));
    };
    let event = Event {
        kind: IntakeKind::Native,
        action,
        dedup_key: dedup_key.map(str::to_owned),
        summary: summary.map(truncate_summary).unwrap_or_default(),
        severity: severity.unwrap_or(Severity::Info),
        source: wire.source.unwrap_or_default(),
        labels: wire.labels.unwrap_or_default(),
        details,
        links,
        occurred_at,
    };
    errors.extend(event.limit_errors(FieldNames {
        labels: "labels",
        links: "links",
        source: "source",
        details: "details",
    }));
    if !errors.is_empty() {
        return Err(IntakeError::Invalid(errors));
    }
    Ok(event)
}
