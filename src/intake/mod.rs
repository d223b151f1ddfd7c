//! Intake adapters: pure functions from a webhook body's bytes to validated
//! [`Event`](crate::alert::Event)s. No I/O and no HTTP types, so the server
//! decides status codes and the adapters stay trivially fuzzable.
//!
//! Every adapter runs the same pipeline: reject invalid UTF-8, deserialize
//! into typed wire structs (type errors become [`IntakeError::Json`] with
//! serde_json's line/column), then validate and collect *all* field errors
//! into one [`IntakeError::Invalid`] so a sender can fix everything at once.

pub mod alertmanager;
pub mod grafana;
pub mod native;
pub mod opsgenie;
pub mod pagerduty;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;

use crate::alert::{json_depth, MAX_DEDUP_KEY_CHARS, MAX_DETAILS_DEPTH};

#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    #[error("body is not valid UTF-8")]
    InvalidUtf8,
    #[error("body is not valid JSON: {0}")]
    Json(String),
    #[error("invalid event: {}", .0.join("; "))]
    Invalid(Vec<String>),
}

/// Deserializes a body whose top level must be a JSON object.
///
/// UTF-8 is checked first so the sender gets a precise reason instead of a
/// JSON syntax error somewhere in the middle of a string; serde_json's
/// Display already carries "at line L column C".
///
/// serde's derived structs also accept a JSON array (fields by position),
/// which would let `["trigger", …]` through by accident; non-objects are
/// therefore syntax-checked (so malformed JSON still reports line/column)
/// and then rejected with `not_object` as the reason.
pub(crate) fn from_json_object<T: DeserializeOwned>(
    body: &[u8],
    not_object: &str,
) -> Result<T, IntakeError> {
    let text = std::str::from_utf8(body).map_err(|_| IntakeError::InvalidUtf8)?;
    if !text.trim_start().starts_with('{') {
        serde_json::from_str::<serde::de::IgnoredAny>(text)
            .map_err(|e| IntakeError::Json(e.to_string()))?;
        return Err(IntakeError::Invalid(vec![not_object.to_owned()]));
    }
    serde_json::from_str(text).map_err(|e| IntakeError::Json(e.to_string()))
}

/// `None` for absent, empty or whitespace-only strings: senders such as
/// Alertmanager emit `""` for "not set".
pub(crate) fn non_blank(s: Option<&str>) -> Option<&str> {
    s.filter(|v| !v.trim().is_empty())
}

/// RFC 3339, plus the `+0000` offset form used in PagerDuty's own examples
/// (`2015-07-17T08:42:58.315+0000`).
pub(crate) fn parse_timestamp(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .or_else(|_| DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z"))
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

pub(crate) fn dedup_key_too_long(key: &str) -> bool {
    key.chars().count() > MAX_DEDUP_KEY_CHARS
}

pub(crate) fn details_too_deep(details: &serde_json::Value) -> bool {
    json_depth(details) > MAX_DETAILS_DEPTH
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        assert!(parse_timestamp("2026-11-26T09:36:45Z").is_some());
        assert!(parse_timestamp("2021-10-12T09:51:03.157076+02:00").is_some());
        assert!(parse_timestamp("2015-07-17T08:42:58.315+0000").is_some());
        assert!(parse_timestamp("0001-01-01T00:00:00Z").is_some());
        assert!(parse_timestamp("yesterday").is_none());
        assert!(parse_timestamp("2026-11-26").is_none());
    }
}
