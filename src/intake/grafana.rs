//! Grafana Alerting webhook contact point, payload version "1"
//! (`POST /integrations/grafana/{key}`).
//!
//! Grafana's payload is Alertmanager's plus extras (`orgId`, `title`,
//! `state`, `message` per group; `silenceURL`, `dashboardURL`, `panelURL`,
//! `imageURL`, `values`, `valueString` per alert), so the mapping is the
//! shared one in [`super::alertmanager`]: one event per alert keyed by
//! `fingerprint`, same severity rules (missing/unknown → warning). The
//! extras go into `details`, and the URLs also become links.

use serde::Deserialize;
use serde_json::{Map, Value};

use super::alertmanager::{map_group, AlertExtras, Flavor, WireAlert, WireGroup};
use super::{from_json_object, non_blank, IntakeError};
use crate::alert::{Event, IntakeKind, Link};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GrafanaGroup {
    #[serde(flatten)]
    group: WireGroup<GrafanaAlert>,
    org_id: Option<i64>,
    title: Option<String>,
    state: Option<String>,
    message: Option<String>,
}

#[derive(Deserialize)]
struct GrafanaAlert {
    #[serde(flatten)]
    alert: WireAlert,
    #[serde(rename = "silenceURL")]
    silence_url: Option<String>,
    #[serde(rename = "dashboardURL")]
    dashboard_url: Option<String>,
    #[serde(rename = "panelURL")]
    panel_url: Option<String>,
    #[serde(rename = "imageURL")]
    image_url: Option<String>,
    values: Option<Value>,
    #[serde(rename = "valueString")]
    value_string: Option<String>,
}

fn extras(a: &GrafanaAlert) -> (&WireAlert, AlertExtras) {
    let mut extras = AlertExtras::default();
    for (key, text, url) in [
        ("dashboardURL", "Dashboard", &a.dashboard_url),
        ("panelURL", "Panel", &a.panel_url),
        ("silenceURL", "Silence", &a.silence_url),
        ("imageURL", "Image", &a.image_url),
    ] {
        if let Some(u) = non_blank(url.as_deref()) {
            extras.details.insert(key.to_owned(), Value::from(u));
            extras.links.push(Link::new(u, text));
        }
    }
    if let Some(v) = a.values.as_ref().filter(|v| !v.is_null()) {
        extras.details.insert("values".to_owned(), v.clone());
    }
    if let Some(v) = non_blank(a.value_string.as_deref()) {
        extras
            .details
            .insert("valueString".to_owned(), Value::from(v));
    }
    (&a.alert, extras)
}

/// Parses a Grafana webhook (version "1") into one event per alert.
pub fn parse(body: &[u8]) -> Result<Vec<Event>, IntakeError> {
    let wire: GrafanaGroup =
        from_json_object(body, "body must be a Grafana webhook object (version 1)")?;
    let mut group_details = Map::new();
    if let Some(id) = wire.org_id {
        group_details.insert("orgId".to_owned(), Value::from(id));
    }
    for (key, value) in [
        ("title", &wire.title),
        ("state", &wire.state),
        ("message", &wire.message),
    ] {
        if let Some(v) = non_blank(value.as_deref()) {
            group_details.insert(key.to_owned(), Value::from(v));
        }
    }
    let flavor = Flavor {
        kind: IntakeKind::Grafana,
        expected_version: "1",
        product: "Grafana",
        generator_text: "Alert rule",
        group_details,
        group_links: Vec::new(),
    };
    map_group(&wire.group, flavor, extras)
}
