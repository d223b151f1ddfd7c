//! Opsgenie's Alert API (`POST /v2/alerts`, `…/{identifier}/close`,
//! `…/acknowledge`), so every Alertmanager and Grafana `opsgenie_configs`
//! receiver can move to Rouse by changing only its API URL. Opsgenie stops
//! being sold and reaches end of support on 2027-04-05.
//!
//! Create: `message` (required), `alias` (the dedup key; Opsgenie defaults it
//! to the message), `description`, `tags`, `details` (a string map: the
//! alert's labels, as Alertmanager fills it with the group's common labels),
//! `entity`, `source`, `priority` P1–P5. `responders`, `visibleTo`,
//! `actions` and `note` have no meaning in Rouse (its own policies decide who
//! is paged); they are accepted and noted in the alert's details.
//!
//! Limits are Opsgenie's, and like Opsgenie Rouse truncates instead of
//! rejecting: message 130 characters, alias 512, description 15,000,
//! entity 512, source 100, at most 20 tags of 50 characters. An alias longer
//! than Rouse's own key limit is replaced by a digest of it, so two long
//! aliases never collide by truncation.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{json, Value};

use super::{from_json_object, non_blank, IntakeError};
use crate::alert::event::FieldNames;
use crate::alert::{Action, Event, IntakeKind, Severity, MAX_DEDUP_KEY_CHARS};

pub const MAX_MESSAGE: usize = 130;
pub const MAX_ALIAS: usize = 512;
pub const MAX_DESCRIPTION: usize = 15_000;
pub const MAX_ENTITY: usize = 512;
pub const MAX_SOURCE: usize = 100;
pub const MAX_TAGS: usize = 20;
pub const MAX_TAG: usize = 50;
/// Details beyond this many keys are dropped (Opsgenie caps the whole map
/// at 8,000 characters; a count keeps the rule simple to state).
pub const MAX_DETAILS: usize = 100;

#[derive(Deserialize)]
struct Create {
    message: Option<String>,
    alias: Option<String>,
    description: Option<String>,
    tags: Option<Vec<String>>,
    details: Option<BTreeMap<String, Value>>,
    entity: Option<String>,
    source: Option<String>,
    priority: Option<String>,
    responders: Option<Value>,
    #[serde(rename = "visibleTo")]
    visible_to: Option<Value>,
    actions: Option<Value>,
    note: Option<String>,
    user: Option<String>,
}

/// The body of close and acknowledge requests; every field is optional.
#[derive(Debug, Default, Deserialize)]
pub struct ActionBody {
    pub user: Option<String>,
    pub source: Option<String>,
    pub note: Option<String>,
}

/// How `{identifier}` in a close/acknowledge URL is to be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Identifier {
    /// The alias given at creation: Rouse's dedup key.
    Alias,
    /// Opsgenie's own id; in Rouse, the alert's numeric id (`tiny` too).
    Id,
}

impl Identifier {
    /// Opsgenie's `identifierType` query parameter (default `id`).
    pub fn parse(s: Option<&str>) -> Result<Identifier, IntakeError> {
        match s.unwrap_or("id") {
            "alias" => Ok(Identifier::Alias),
            "id" | "tiny" => Ok(Identifier::Id),
            other => Err(IntakeError::Invalid(vec![format!(
                "identifierType should be one of id, alias or tiny, not {other:?}"
            )])),
        }
    }
}

/// P1 pages like critical, P3 (Opsgenie's default) is a warning, P4 and P5
/// are informational.
pub fn severity(priority: Option<&str>) -> Result<Severity, IntakeError> {
    match priority.map(str::trim).filter(|p| !p.is_empty()) {
        None => Ok(Severity::Warning),
        Some(p) => match p.to_ascii_uppercase().as_str() {
            "P1" => Ok(Severity::Critical),
            "P2" => Ok(Severity::Error),
            "P3" => Ok(Severity::Warning),
            "P4" | "P5" => Ok(Severity::Info),
            _ => Err(IntakeError::Invalid(vec![format!(
                "Priority should be one of these: 'P1', 'P2', 'P3', 'P4', 'P5' (got {p:?})"
            )])),
        },
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        s.chars().take(max).collect()
    }
}

/// The dedup key for an alias: itself when it fits Rouse's key limit, else
/// a digest, so distinct long aliases stay distinct.
pub fn dedup_key(alias: &str) -> String {
    let alias = truncate(alias, MAX_ALIAS);
    if alias.chars().count() <= MAX_DEDUP_KEY_CHARS {
        return alias;
    }
    use sha2::Digest;
    let digest = sha2::Sha256::digest(alias.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("opsgenie-alias-sha256:{hex}")
}

/// A create request as an event.
pub fn parse_create(body: &[u8]) -> Result<Event, IntakeError> {
    let c: Create = from_json_object(body, "the request body must be a JSON object")?;
    let Some(message) = non_blank(c.message.as_deref()) else {
        return Err(IntakeError::Invalid(vec![
            "Message can not be empty.".to_owned()
        ]));
    };
    let message = truncate(message.trim(), MAX_MESSAGE);
    let severity = severity(c.priority.as_deref())?;
    // Opsgenie dedups on the message when no alias is given.
    let alias = non_blank(c.alias.as_deref()).unwrap_or(&message).to_owned();
    let mut labels = BTreeMap::new();
    let mut extra = serde_json::Map::new();
    for (k, v) in c.details.unwrap_or_default().into_iter().take(MAX_DETAILS) {
        let value = match v {
            Value::String(s) => s,
            other => other.to_string(),
        };
        labels.insert(truncate(&k, 128), truncate(&value, 1024));
    }
    if let Some(entity) = non_blank(c.entity.as_deref()) {
        labels.insert("entity".to_owned(), truncate(entity, MAX_ENTITY));
    }
    let tags: Vec<String> = c
        .tags
        .unwrap_or_default()
        .iter()
        .filter_map(|t| non_blank(Some(t.as_str())))
        .take(MAX_TAGS)
        .map(|t| truncate(t.trim(), MAX_TAG))
        .collect();
    if let Some(d) = non_blank(c.description.as_deref()) {
        extra.insert("description".into(), json!(truncate(d, MAX_DESCRIPTION)));
    }
    if !tags.is_empty() {
        extra.insert("tags".into(), json!(tags));
    }
    if let Some(p) = &c.priority {
        extra.insert("priority".into(), json!(p));
    }
    if let Some(n) = non_blank(c.note.as_deref()) {
        extra.insert("note".into(), json!(truncate(n, 25_000)));
    }
    if let Some(u) = non_blank(c.user.as_deref()) {
        extra.insert("user".into(), json!(truncate(u, 100)));
    }
    let ignored: Vec<&str> = [
        ("responders", c.responders.is_some()),
        ("visibleTo", c.visible_to.is_some()),
        ("actions", c.actions.is_some()),
    ]
    .into_iter()
    .filter_map(|(name, set)| set.then_some(name))
    .collect();
    if !ignored.is_empty() {
        extra.insert(
            "ignored".into(),
            json!(format!(
                "{} ignored: Rouse's escalation policy for the service decides who is paged",
                ignored.join(", ")
            )),
        );
    }
    let event = Event {
        kind: IntakeKind::Opsgenie,
        action: Action::Trigger,
        dedup_key: Some(dedup_key(&alias)),
        summary: message,
        severity,
        source: non_blank(c.source.as_deref())
            .map_or_else(|| "opsgenie".to_owned(), |s| truncate(s, MAX_SOURCE)),
        labels,
        details: Value::Object(extra),
        links: Vec::new(),
        occurred_at: None,
    };
    // Truncation above keeps every field inside Rouse's limits; checking
    // anyway keeps this format under the same rule as the others.
    let errors = event.limit_errors(FieldNames {
        labels: "details",
        links: "links",
        source: "source",
        details: "description, tags and note",
    });
    if !errors.is_empty() {
        return Err(IntakeError::Invalid(errors));
    }
    Ok(event)
}

/// A close or acknowledge body (an empty body is allowed, as Opsgenie does).
pub fn parse_action(body: &[u8]) -> Result<ActionBody, IntakeError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(ActionBody::default());
    }
    from_json_object(body, "the request body must be a JSON object")
}

/// The event a close/acknowledge by alias becomes.
pub fn action_event(alias: &str, action: Action, body: &ActionBody) -> Event {
    let mut details = serde_json::Map::new();
    for (k, v) in [("user", &body.user), ("note", &body.note)] {
        if let Some(v) = non_blank(v.as_deref()) {
            details.insert(k.into(), json!(truncate(v, 1000)));
        }
    }
    Event {
        kind: IntakeKind::Opsgenie,
        action,
        dedup_key: Some(dedup_key(alias)),
        summary: String::new(),
        severity: Severity::Info,
        source: non_blank(body.source.as_deref())
            .map_or_else(|| "opsgenie".to_owned(), |s| truncate(s, MAX_SOURCE)),
        labels: BTreeMap::new(),
        details: Value::Object(details),
        links: Vec::new(),
        occurred_at: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_create_maps_every_field() {
        let body = br#"{"message":"[FIRING:1] DiskFull db-1","alias":"abc123","description":"Disk 98%",
            "details":{"alertname":"DiskFull","instance":"db-1"},"tags":["db","prod"],"entity":"db-1",
            "source":"alertmanager","priority":"P1","responders":[{"name":"ops","type":"team"}]}"#;
        let e = parse_create(body).unwrap();
        assert_eq!(e.summary, "[FIRING:1] DiskFull db-1");
        assert_eq!(e.dedup_key.as_deref(), Some("abc123"));
        assert_eq!(e.severity, Severity::Critical);
        assert_eq!(e.labels["alertname"], "DiskFull");
        assert_eq!(e.labels["entity"], "db-1");
        assert_eq!(e.source, "alertmanager");
        assert_eq!(e.details["description"], "Disk 98%");
        assert_eq!(e.details["tags"], json!(["db", "prod"]));
        assert!(e.details["ignored"]
            .as_str()
            .unwrap()
            .starts_with("responders ignored"));
    }

    #[test]
    fn limits_truncate_like_opsgenie() {
        let long = "x".repeat(200);
        let body =
            json!({"message": long, "tags": vec!["t"; 30], "description": "d".repeat(20_000)});
        let e = parse_create(body.to_string().as_bytes()).unwrap();
        assert_eq!(e.summary.chars().count(), MAX_MESSAGE);
        assert_eq!(e.details["tags"].as_array().unwrap().len(), MAX_TAGS);
        assert_eq!(
            e.details["description"].as_str().unwrap().chars().count(),
            MAX_DESCRIPTION
        );
        // No alias: the (truncated) message is the key, as in Opsgenie.
        assert_eq!(e.dedup_key.as_deref(), Some("x".repeat(130).as_str()));
    }

    #[test]
    fn long_aliases_become_distinct_digests() {
        let a = dedup_key(&"a".repeat(400));
        let b = dedup_key(&format!("{}b", "a".repeat(399)));
        assert_ne!(a, b);
        assert!(a.chars().count() <= MAX_DEDUP_KEY_CHARS);
        assert_eq!(dedup_key("short"), "short");
    }

    #[test]
    fn priorities() {
        assert_eq!(severity(None).unwrap(), Severity::Warning);
        assert_eq!(severity(Some("p2")).unwrap(), Severity::Error);
        assert_eq!(severity(Some("P5")).unwrap(), Severity::Info);
        assert!(severity(Some("P9")).is_err());
    }

    #[test]
    fn a_message_is_required() {
        assert!(matches!(
            parse_create(br#"{"alias":"a"}"#),
            Err(IntakeError::Invalid(e)) if e[0] == "Message can not be empty."
        ));
        assert!(parse_create(b"[]").is_err());
    }

    #[test]
    fn identifier_types() {
        assert_eq!(Identifier::parse(None).unwrap(), Identifier::Id);
        assert_eq!(Identifier::parse(Some("alias")).unwrap(), Identifier::Alias);
        assert_eq!(Identifier::parse(Some("tiny")).unwrap(), Identifier::Id);
        assert!(Identifier::parse(Some("name")).is_err());
    }
}
