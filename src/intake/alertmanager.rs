//! Prometheus Alertmanager webhook, version 4
//! (`POST /integrations/alertmanager/{key}`), plus the per-alert mapping
//! that the Grafana adapter reuses (Grafana's payload is Alertmanager's with
//! extra fields).
//!
//! Each alert in a notification group becomes its own event keyed by its
//! `fingerprint`, never by the group key: a new alert joining an existing
//! group must page on its own, and a resolved alert must not resolve its
//! still-firing siblings. The action follows each alert's `status`, not the
//! group's (a group is "firing" while any member still fires).
//!
//! Severity comes from the `severity` label via the lenient
//! [`Severity`] `FromStr` (so `page` → critical); a missing or unrecognised
//! value maps to **warning** — the raw label stays in `labels`, so routing
//! rules can still match it.
//!
//! Unknown fields are ignored: Alertmanager adds fields over time.

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

/// Severity used when the `severity` label is missing or not recognised.
pub const DEFAULT_SEVERITY: Severity = Severity::Warning;

/// Group-level fields shared by Alertmanager (v4) and Grafana (v1).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WireGroup<A> {
    pub(crate) version: Option<String>,
    pub(crate) group_key: Option<String>,
    pub(crate) truncated_alerts: Option<u64>,
    pub(crate) status: Option<String>,
    pub(crate) receiver: Option<String>,
    pub(crate) group_labels: Option<BTreeMap<String, String>>,
    #[serde(rename = "externalURL")]
    pub(crate) external_url: Option<String>,
    pub(crate) alerts: Option<Vec<A>>,
}

/// Per-alert fields shared by Alertmanager and Grafana.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WireAlert {
    pub(crate) status: Option<String>,
    pub(crate) labels: Option<BTreeMap<String, String>>,
    pub(crate) annotations: Option<BTreeMap<String, String>>,
    pub(crate) starts_at: Option<String>,
    pub(crate) ends_at: Option<String>,
    #[serde(rename = "generatorURL")]
    pub(crate) generator_url: Option<String>,
    pub(crate) fingerprint: Option<String>,
}

/// What differs between the two senders, for [`map_group`].
pub(crate) struct Flavor<'a> {
    pub(crate) kind: IntakeKind,
    pub(crate) expected_version: &'a str,
    /// Product name, used in the fallback summary.
    pub(crate) product: &'a str,
    /// Text for the generatorURL link.
    pub(crate) generator_text: &'a str,
    /// Group-level extras merged into every event's details.
    pub(crate) group_details: Map<String, Value>,
    /// Group-level links appended to every event's links.
    pub(crate) group_links: Vec<Link>,
}

/// Per-alert extras (Grafana's dashboard/panel/silence URLs, values, …).
#[derive(Default)]
pub(crate) struct AlertExtras {
    pub(crate) details: Map<String, Value>,
    pub(crate) links: Vec<Link>,
}

/// Validates a whole group and maps each alert; collects every error across
/// all alerts, with `alerts[i].field` paths, before failing.
pub(crate) fn map_group<A>(
    group: &WireGroup<A>,
    flavor: Flavor<'_>,
    split: impl Fn(&A) -> (&WireAlert, AlertExtras),
) -> Result<Vec<Event>, IntakeError> {
    let mut errors = Vec::new();
    let expected = flavor.expected_version;
    match non_blank(group.version.as_deref()) {
        None => errors.push(format!("version is required (expected \"{expected}\")")),
        Some(v) if v != expected => errors.push(format!("version must be \"{expected}\"")),
        Some(_) => {}
    }
    let alerts = match group.alerts.as_deref() {
        None => {
            errors.push("alerts is required".to_owned());
            &[]
        }
        Some([]) => {
            errors.push("alerts must not be empty".to_owned());
            &[]
        }
        Some(alerts) => alerts,
    };

    let mut shared = flavor.group_details.clone();
    let mut put = |key: &str, value: Option<&str>| {
        if let Some(v) = non_blank(value) {
            shared.insert(key.to_owned(), Value::from(v));
        }
    };
    put("receiver", group.receiver.as_deref());
    put("groupKey", group.group_key.as_deref());
    put("groupStatus", group.status.as_deref());
    put("externalURL", group.external_url.as_deref());
    if let Some(gl) = group.group_labels.as_ref().filter(|gl| !gl.is_empty()) {
        shared.insert(
            "groupLabels".to_owned(),
            Value::Object(
                gl.iter()
                    .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
                    .collect(),
            ),
        );
    }
    // Only when non-zero, so the UI can warn that the sender dropped alerts.
    if let Some(n) = group.truncated_alerts.filter(|n| *n > 0) {
        shared.insert("truncatedAlerts".to_owned(), Value::from(n));
    }

    let mut events = Vec::with_capacity(alerts.len());
    for (i, item) in alerts.iter().enumerate() {
        let (alert, extras) = split(item);
        if let Some(event) = map_alert(i, alert, extras, &flavor, &shared, &mut errors) {
            events.push(event);
        }
    }

    if errors.is_empty() {
        Ok(events)
    } else {
        Err(IntakeError::Invalid(errors))
    }
}

fn map_alert(
    i: usize,
    alert: &WireAlert,
    extras: AlertExtras,
    flavor: &Flavor<'_>,
    shared: &Map<String, Value>,
    errors: &mut Vec<String>,
) -> Option<Event> {
    let errors_before = errors.len();

    let action = match non_blank(alert.status.as_deref()) {
        None => {
            errors.push(format!("alerts[{i}].status is required"));
            None
        }
        Some("firing") => Some(Action::Trigger),
        Some("resolved") => Some(Action::Resolve),
        Some(_) => {
            errors.push(format!(
                "alerts[{i}].status must be \"firing\" or \"resolved\""
            ));
            None
        }
    };

    let fingerprint = non_blank(alert.fingerprint.as_deref());
    match fingerprint {
        None => errors.push(format!("alerts[{i}].fingerprint is required")),
        Some(f) if dedup_key_too_long(f) => errors.push(format!(
            "alerts[{i}].fingerprint is longer than {MAX_DEDUP_KEY_CHARS} characters"
        )),
        Some(_) => {}
    }

    let starts_at = non_blank(alert.starts_at.as_deref());
    let occurred_at = starts_at.and_then(parse_timestamp);
    if starts_at.is_some() && occurred_at.is_none() {
        errors.push(format!(
            "alerts[{i}].startsAt is not a valid RFC 3339 timestamp"
        ));
    }

    let empty = BTreeMap::new();
    let labels = alert.labels.as_ref().unwrap_or(&empty);
    let annotations = alert.annotations.as_ref().unwrap_or(&empty);
    let label = |k: &str| non_blank(labels.get(k).map(String::as_str));
    let annotation = |k: &str| non_blank(annotations.get(k).map(String::as_str));

    let summary = match (
        annotation("summary").or_else(|| annotation("description")),
        label("alertname"),
        label("instance"),
    ) {
        (Some(text), _, _) => text.to_owned(),
        (None, Some(name), Some(instance)) => format!("{name} ({instance})"),
        (None, Some(name), None) => name.to_owned(),
        (None, None, _) => format!("{} alert {}", flavor.product, fingerprint.unwrap_or("")),
    };
    let severity = label("severity")
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_SEVERITY);
    let source = label("instance").or_else(|| label("job")).unwrap_or("");

    let mut details = shared.clone();
    details.insert(
        "annotations".to_owned(),
        Value::Object(
            annotations
                .iter()
                .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
                .collect(),
        ),
    );
    if let Some(s) = alert.status.as_deref() {
        details.insert("status".to_owned(), Value::from(s));
    }
    if let Some(s) = starts_at {
        details.insert("startsAt".to_owned(), Value::from(s));
    }
    // "0001-01-01T00:00:00Z" is Go's zero time: "not ended yet".
    if let Some(e) = non_blank(alert.ends_at.as_deref()).filter(|e| !e.starts_with("0001-")) {
        details.insert("endsAt".to_owned(), Value::from(e));
    }
    let generator_url = non_blank(alert.generator_url.as_deref());
    if let Some(g) = generator_url {
        details.insert("generatorURL".to_owned(), Value::from(g));
    }
    details.extend(extras.details);
    let details = Value::Object(details);
    if details_too_deep(&details) {
        errors.push(format!(
            "alerts[{i}] details are nested deeper than {MAX_DETAILS_DEPTH} levels"
        ));
    }

    let mut links = Vec::new();
    if let Some(g) = generator_url {
        links.push(Link::new(g, flavor.generator_text));
    }
    links.extend(extras.links);
    links.extend(flavor.group_links.iter().cloned());

    let event = Event {
        kind: flavor.kind,
        action: action?,
        dedup_key: fingerprint.map(str::to_owned),
        summary: truncate_summary(&summary),
        severity,
        source: source.to_owned(),
        labels: labels.clone(),
        details,
        links,
        occurred_at,
    };
    let (labels, links, source, details) = (
        format!("alerts[{i}].labels"),
        format!("alerts[{i}] links"),
        format!("alerts[{i}] source (labels.instance or labels.job)"),
        format!("alerts[{i}] details (annotations and the alert's fields)"),
    );
    errors.extend(event.limit_errors(FieldNames {
        labels: &labels,
        links: &links,
        source: &source,
        details: &details,
    }));
    if errors.len() > errors_before {
        return None;
    }
    Some(event)
}

/// Parses an Alertmanager v4 webhook into one event per alert.
pub fn parse(body: &[u8]) -> Result<Vec<Event>, IntakeError> {
    let group: WireGroup<WireAlert> = from_json_object(
        body,
        "body must be an Alertmanager webhook object (version 4); a top-level array is \
         Prometheus' alert list, which must be sent to Alertmanager, not to Rouse",
    )?;
    let group_links = non_blank(group.external_url.as_deref())
        .map(|u| {
            Link::new(
                format!("{}/#/alerts", u.trim_end_matches('/')),
                "Alertmanager",
            )
        })
        .into_iter()
        .collect();
    let flavor = Flavor {
        kind: IntakeKind::Alertmanager,
        expected_version: "4",
        product: "Alertmanager",
        generator_text: "Source",
        group_details: Map::new(),
        group_links,
    };
    map_group(&group, flavor, |a| (a, AlertExtras::default()))
}
