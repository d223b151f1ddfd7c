//! PagerDuty Events API v2 (`POST /v2/enqueue`), so anything that can page
//! PagerDuty (Alertmanager's `pagerduty_configs`, Grafana, SDKs) can page
//! Rouse by changing only the URL.
//!
//! Wire format: `routing_key`, `event_action`, `dedup_key`, `payload`
//! {`summary`, `source`, `severity`, `timestamp`, `component`, `group`,
//! `class`, `custom_details`}, and top-level `links`, `images`, `client`,
//! `client_url`. Unknown fields are ignored, as PagerDuty does, because
//! third-party senders add their own.
//!
//! Mapping: `component`/`group`/`class` become labels; `custom_details`,
//! `client`, `client_url` and `images` are kept under the same names in
//! `details`; `client_url` also becomes a link titled by `client`.
//! For acknowledge/resolve the payload is optional and only informational
//! (PagerDuty ignores it), so its severity/timestamp are not validated.
//!
//! Error reasons follow PagerDuty's style: `'payload.summary' is missing or blank`.

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
struct PdEvent {
    routing_key: Option<String>,
    event_action: Option<String>,
    dedup_key: Option<String>,
    payload: Option<PdPayload>,
    links: Option<Vec<PdLink>>,
    images: Option<Vec<PdImage>>,
    client: Option<String>,
    client_url: Option<String>,
}

#[derive(Deserialize)]
struct PdPayload {
    summary: Option<String>,
    source: Option<String>,
    severity: Option<String>,
    timestamp: Option<String>,
    component: Option<String>,
    group: Option<String>,
    class: Option<String>,
    custom_details: Option<Value>,
}

#[derive(Deserialize)]
struct PdLink {
    href: Option<String>,
    text: Option<String>,
}

#[derive(Deserialize)]
struct PdImage {
    src: Option<String>,
    href: Option<String>,
    alt: Option<String>,
}

fn missing(field: &str) -> String {
    format!("'{field}' is missing or blank")
}

/// Parses one Events API v2 event; returns the `routing_key` (a Rouse
/// integration key, any non-blank string) alongside the event so the server
/// can route it.
pub fn parse(body: &[u8]) -> Result<(String, Event), IntakeError> {
    let wire: PdEvent = from_json_object(body, "'event' must be a JSON object")?;
    let mut errors = Vec::new();

    let routing_key = non_blank(wire.routing_key.as_deref());
    if routing_key.is_none() {
        errors.push(missing("routing_key"));
    }

    let action = match non_blank(wire.event_action.as_deref()) {
        None => {
            errors.push(missing("event_action"));
            None
        }
        Some(a) => {
            let parsed = Action::from_wire(a);
            if parsed.is_none() {
                errors.push(
                    "'event_action' is invalid (must be one of: trigger, acknowledge, resolve)"
                        .to_owned(),
                );
            }
            parsed
        }
    };
    let is_trigger = action == Some(Action::Trigger);

    // PagerDuty treats a blank dedup_key on trigger as absent and generates one.
    let dedup_key = non_blank(wire.dedup_key.as_deref());
    if dedup_key.is_some_and(dedup_key_too_long) {
        errors.push(format!(
            "'dedup_key' is too long (maximum is {MAX_DEDUP_KEY_CHARS} characters)"
        ));
    }
    if matches!(action, Some(Action::Acknowledge | Action::Resolve)) && dedup_key.is_none() {
        errors.push(missing("dedup_key"));
    }

    let payload = wire.payload.as_ref();
    if is_trigger && payload.is_none() {
        errors.push("'payload' is missing".to_owned());
    }

    let summary = payload.and_then(|p| non_blank(p.summary.as_deref()));
    let source = payload.and_then(|p| non_blank(p.source.as_deref()));
    let raw_severity = payload.and_then(|p| non_blank(p.severity.as_deref()));
    let severity = raw_severity.and_then(Severity::from_wire);
    let raw_timestamp = payload.and_then(|p| non_blank(p.timestamp.as_deref()));
    let occurred_at = raw_timestamp.and_then(parse_timestamp);
    if is_trigger && payload.is_some() {
        if summary.is_none() {
            errors.push(missing("payload.summary"));
        }
        if source.is_none() {
            errors.push(missing("payload.source"));
        }
        match raw_severity {
            None => errors.push(missing("payload.severity")),
            Some(_) if severity.is_none() => errors.push(
                "'payload.severity' is invalid (must be one of: critical, error, warning, info)"
                    .to_owned(),
            ),
            Some(_) => {}
        }
        if raw_timestamp.is_some() && occurred_at.is_none() {
            errors.push("'payload.timestamp' is invalid (must be ISO 8601)".to_owned());
        }
    }

    let mut labels = BTreeMap::new();
    if let Some(p) = payload {
        for (name, value) in [
            ("component", &p.component),
            ("group", &p.group),
            ("class", &p.class),
        ] {
            if let Some(v) = non_blank(value.as_deref()) {
                labels.insert(name.to_owned(), v.to_owned());
            }
        }
    }

    let mut links = Vec::new();
    for (i, link) in wire.links.iter().flatten().enumerate() {
        match non_blank(link.href.as_deref()) {
            Some(href) => links.push(Link {
                href: href.to_owned(),
                text: link.text.clone(),
            }),
            None => errors.push(missing(&format!("links[{i}].href"))),
        }
    }
    let client = non_blank(wire.client.as_deref());
    let client_url = non_blank(wire.client_url.as_deref());
    if let Some(url) = client_url {
        links.push(Link {
            href: url.to_owned(),
            text: Some(client.unwrap_or("Client").to_owned()),
        });
    }

    let mut details = Map::new();
    if let Some(cd) = payload.and_then(|p| p.custom_details.clone()) {
        details.insert("custom_details".to_owned(), cd);
    }
    if let Some(c) = client {
        details.insert("client".to_owned(), Value::from(c));
    }
    if let Some(u) = client_url {
        details.insert("client_url".to_owned(), Value::from(u));
    }
    let mut images = Vec::new();
    for (i, image) in wire.images.iter().flatten().enumerate() {
        let Some(src) = non_blank(image.src.as_deref()) else {
            errors.push(missing(&format!("images[{i}].src")));
            continue;
        };
        let mut obj = Map::new();
        obj.insert("src".to_owned(), Value::from(src));
        if let Some(h) = non_blank(image.href.as_deref()) {
            obj.insert("href".to_owned(), Value::from(h));
        }
        if let Some(a) = non_blank(image.alt.as_deref()) {
            obj.insert("alt".to_owned(), Value::from(a));
        }
        images.push(Value::Object(obj));
    }
    if !images.is_empty() {
        details.insert("images".to_owned(), Value::Array(images));
    }
    let details = Value::Object(details);
    // Checked on the assembled details because that is what gets stored;
    // custom_details sits one level down in it.
    if details_too_deep(&details) {
        errors.push(format!(
            "'payload.custom_details' is nested too deeply (maximum depth is {})",
            MAX_DETAILS_DEPTH - 1
        ));
    }

    let (Some(routing_key), Some(action)) = (routing_key, action) else {
        return Err(IntakeError::Invalid(errors));
    };
    let event = Event {
        kind: IntakeKind::PagerDuty,
        action,
        dedup_key: dedup_key.map(str::to_owned),
        summary: summary.map(truncate_summary).unwrap_or_default(),
        severity: severity.unwrap_or(Severity::Info),
        source: source.unwrap_or_default().to_owned(),
        labels,
        details,
        links,
        occurred_at,
    };
    errors.extend(event.limit_errors(FieldNames {
        // component, group and class become labels of those names.
        labels: "payload",
        links: "'links'",
        source: "'payload.source'",
        details: "'payload.custom_details'",
    }));
    if !errors.is_empty() {
        return Err(IntakeError::Invalid(errors));
    }
    Ok((routing_key.to_owned(), event))
}
