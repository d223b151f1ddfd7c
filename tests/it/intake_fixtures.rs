//! Every captured or documented fixture parses to exactly the expected events.
//!
//! tests/fixtures/alertmanager/ holds real requests captured from
//! Alertmanager 0.25 (webhook v4 and its PagerDuty v2 receiver) and
//! Prometheus 2.42. tests/fixtures/grafana/ is hand-written:
//! `webhook-v1-firing.json` is the example payload from Grafana's "Configure
//! the webhook notifier for Alerting" documentation (v11 docs, the `values`
//! variant); `-resolved` and `-mixed` follow the same documented shape with
//! the fields that documentation lists (`imageURL`, `valueString`, a
//! per-alert resolved status inside a firing group).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use rouse::alert::{Action, Event, IntakeKind, Link, Severity};
use rouse::intake::{alertmanager, grafana, pagerduty, IntakeError};
use serde_json::json;

fn fixture(path: &str) -> Vec<u8> {
    let full = format!("{}/tests/fixtures/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&full).unwrap_or_else(|e| panic!("reading {full}: {e}"))
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn ts(s: &str) -> Option<DateTime<Utc>> {
    Some(
        DateTime::parse_from_rfc3339(s)
            .expect("test timestamp")
            .with_timezone(&Utc),
    )
}

fn keys(events: &[Event]) -> Vec<&str> {
    events
        .iter()
        .map(|e| e.dedup_key.as_deref().unwrap_or("<none>"))
        .collect()
}

#[test]
fn alertmanager_firing() {
    let events = alertmanager::parse(&fixture("alertmanager/webhook-v4-firing.json"))
        .expect("fixture parses");
    assert_eq!(
        events,
        vec![Event {
            kind: IntakeKind::Alertmanager,
            action: Action::Trigger,
            dedup_key: Some("c7a8a6b81a378d8d".into()),
            summary: "Sample alert for the webhook v4 fixture".into(),
            severity: Severity::Warning,
            source: "host-1:9100".into(),
            labels: labels(&[
                ("alertname", "AnchorSampleWebhook"),
                ("instance", "host-1:9100"),
                ("job", "node"),
                ("severity", "warning"),
            ]),
            details: json!({
                "annotations": {
                    "description": "Disk almost full on host-1",
                    "summary": "Sample alert for the webhook v4 fixture"
                },
                "externalURL": "http://127.0.0.1:19093",
                "generatorURL": "http://127.0.0.1:9090/graph?g0.expr=up",
                "groupKey": "{}/{}:{alertname=\"AnchorSampleWebhook\"}",
                "groupLabels": {"alertname": "AnchorSampleWebhook"},
                "groupStatus": "firing",
                "receiver": "webhook",
                "startsAt": "2026-11-26T09:36:45Z",
                "status": "firing"
            }),
            links: vec![
                Link::new("http://127.0.0.1:9090/graph?g0.expr=up", "Source"),
                Link::new("http://127.0.0.1:19093/#/alerts", "Alertmanager"),
            ],
            occurred_at: ts("2026-11-26T09:36:45Z"),
        }]
    );
}

#[test]
fn alertmanager_grouped_is_one_event_per_alert() {
    let events = alertmanager::parse(&fixture("alertmanager/webhook-v4-firing-grouped.json"))
        .expect("fixture parses");
    assert_eq!(
        keys(&events),
        ["522516c2a6189abb", "9eb7340bbcdc42de", "c52edc3a7809a8a5"]
    );
    for (i, e) in events.iter().enumerate() {
        let n = i + 1;
        assert_eq!(e.action, Action::Trigger);
        assert_eq!(e.severity, Severity::Warning);
        assert_eq!(e.summary, format!("Grouped sample alert {n}"));
        assert_eq!(e.source, format!("host-{n}:9100"));
        assert_eq!(
            e.labels,
            labels(&[
                ("alertname", "AnchorSampleGroup"),
                ("instance", &format!("host-{n}:9100")),
                ("job", "node"),
                ("severity", "warning"),
            ])
        );
        assert_eq!(e.details.get("truncatedAlerts"), None);
    }
}

#[test]
fn alertmanager_truncated_group_is_flagged_on_every_event() {
    let events = alertmanager::parse(&fixture("alertmanager/webhook-v4-firing-truncated.json"))
        .expect("fixture parses");
    assert_eq!(
        keys(&events),
        [
            "09c4731f475df7ca",
            "7dde049e8220ccaf",
            "0f9a8945389c00b4",
            "6dfc942df418d5b2",
            "4f7acdff2c3d7c51",
            "e2e7d4e76dd4493c",
            "00caa4eeaaa2814b",
            "1601b38d24b21376",
            "ca7efcedf228b3f5",
            "eaf6c6ce5ebc2d60",
        ]
    );
    let summaries: Vec<&str> = events.iter().map(|e| e.summary.as_str()).collect();
    assert_eq!(summaries[0], "Truncated sample alert 10");
    assert_eq!(summaries[3], "Truncated sample alert 1");
    for e in &events {
        assert_eq!(e.details.get("truncatedAlerts"), Some(&json!(2)));
        assert_eq!(e.details.get("receiver"), Some(&json!("bench-webhook")));
        assert_eq!(e.labels.get("bench").map(String::as_str), Some("1"));
        assert_eq!(e.action, Action::Trigger);
        assert_eq!(e.severity, Severity::Warning);
    }
}

#[test]
fn alertmanager_resolved() {
    let events = alertmanager::parse(&fixture("alertmanager/webhook-v4-resolved.json"))
        .expect("fixture parses");
    assert_eq!(events.len(), 1);
    let e = &events[0];
    assert_eq!(e.action, Action::Resolve);
    assert_eq!(e.dedup_key.as_deref(), Some("220256d39ff441e4"));
    assert_eq!(e.summary, "Sample alert for the PagerDuty v2 fixture");
    assert_eq!(e.severity, Severity::Critical);
    assert_eq!(e.source, "host-2:9100");
    assert_eq!(
        e.labels,
        labels(&[
            ("alertname", "AnchorSamplePage"),
            ("instance", "host-2:9100"),
            ("job", "node"),
            ("pagerduty", "true"),
            ("severity", "critical"),
        ])
    );
    assert_eq!(
        e.details.get("endsAt"),
        Some(&json!("2026-11-26T09:36:52Z"))
    );
    assert_eq!(e.occurred_at, ts("2026-11-26T09:36:45Z"));
}

#[test]
fn prometheus_alert_lists_are_not_alertmanager_webhooks() {
    for name in [
        "prometheus-2.42-to-am-api-v2-alerts.json",
        "input-posted-firing.json",
        "input-posted-resolved.json",
    ] {
        match alertmanager::parse(&fixture(&format!("alertmanager/{name}"))) {
            Err(IntakeError::Invalid(reasons)) => {
                assert_eq!(reasons.len(), 1, "{name}");
                assert!(reasons[0].contains("Prometheus' alert list"), "{name}");
            }
            other => panic!("{name}: expected Invalid, got {other:?}"),
        }
    }
}

#[test]
fn pagerduty_trigger_from_alertmanager() {
    let (routing_key, e) = pagerduty::parse(&fixture("alertmanager/pagerduty-v2-trigger.json"))
        .expect("fixture parses");
    assert_eq!(routing_key, "0123456789abcdef0123456789abcdef");
    assert_eq!(e.kind, IntakeKind::PagerDuty);
    assert_eq!(e.action, Action::Trigger);
    assert_eq!(
        e.dedup_key.as_deref(),
        Some("1d7b6ffc475daf6730ceb17759ee96f279af45691d1e4bec14f3a381ba321146")
    );
    assert_eq!(
        e.summary,
        "[FIRING:1] AnchorSamplePage (host-2:9100 node true critical)"
    );
    assert_eq!(e.severity, Severity::Critical);
    assert_eq!(e.source, "Alertmanager");
    assert!(e.labels.is_empty());
    assert_eq!(e.occurred_at, None);
    assert_eq!(
        e.links,
        vec![Link::new(
            "http://127.0.0.1:19093/#/alerts?receiver=pagerduty",
            "Alertmanager"
        )]
    );
    assert_eq!(e.details.get("client"), Some(&json!("Alertmanager")));
    assert_eq!(
        e.details.pointer("/custom_details/num_firing"),
        Some(&json!("1"))
    );
}

#[test]
fn pagerduty_resolve_from_alertmanager() {
    // Alertmanager sends a full payload even on resolve; it must parse.
    let (routing_key, e) = pagerduty::parse(&fixture("alertmanager/pagerduty-v2-resolve.json"))
        .expect("fixture parses");
    assert_eq!(routing_key, "0123456789abcdef0123456789abcdef");
    assert_eq!(e.action, Action::Resolve);
    assert_eq!(
        e.dedup_key.as_deref(),
        Some("1d7b6ffc475daf6730ceb17759ee96f279af45691d1e4bec14f3a381ba321146")
    );
    assert_eq!(
        e.summary,
        "[RESOLVED] AnchorSamplePage (host-2:9100 node true critical)"
    );
    assert_eq!(e.severity, Severity::Critical);
    assert_eq!(
        e.details.pointer("/custom_details/num_resolved"),
        Some(&json!("1"))
    );
}

#[test]
fn grafana_documented_example() {
    let events =
        grafana::parse(&fixture("grafana/webhook-v1-firing.json")).expect("fixture parses");
    assert_eq!(keys(&events), ["c6eadffa33fcdf37", "bc97ff14869b13e3"]);
    let e = &events[0];
    assert_eq!(e.kind, IntakeKind::Grafana);
    assert_eq!(e.action, Action::Trigger);
    assert_eq!(e.summary, "This alert was triggered for zone us-1");
    // No severity label: documented default.
    assert_eq!(e.severity, Severity::Warning);
    assert_eq!(e.source, "");
    assert_eq!(
        e.labels,
        labels(&[
            ("alertname", "High memory usage"),
            ("team", "blue"),
            ("zone", "us-1")
        ])
    );
    assert_eq!(e.occurred_at, ts("2021-10-12T07:51:03.157076Z"));
    assert_eq!(
        e.links,
        vec![
            Link::new("https://play.grafana.org/alerting/1afz29v7z/edit", "Alert rule"),
            Link::new(
                "https://play.grafana.org/alerting/silence/new?alertmanager=grafana&matchers=alertname%3DT2%2Cteam%3Dblue%2Czone%3Dus-1",
                "Silence"
            ),
        ]
    );
    assert_eq!(
        e.details.pointer("/values/B"),
        Some(&json!(44.23943737541908))
    );
    assert_eq!(e.details.get("state"), Some(&json!("alerting")));
    assert_eq!(e.details.get("orgId"), Some(&json!(1)));
    assert_eq!(e.details.get("dashboardURL"), None);
    assert_eq!(events[1].summary, "This alert was triggered for zone eu-1");
}

#[test]
fn grafana_mixed_group_uses_each_alerts_status() {
    let events = grafana::parse(&fixture("grafana/webhook-v1-mixed.json")).expect("fixture parses");
    assert_eq!(keys(&events), ["8d2f1b7c0a9e4f63", "41c0e5d9b2a87f10"]);

    let firing = &events[0];
    assert_eq!(firing.action, Action::Trigger);
    assert_eq!(firing.severity, Severity::Critical, "severity=page");
    assert_eq!(firing.summary, "Disk on db-1 is 97% full");
    assert_eq!(firing.source, "db-1:9100");
    let texts: Vec<&str> = firing
        .links
        .iter()
        .map(|l| l.text.as_deref().unwrap_or(""))
        .collect();
    assert_eq!(
        texts,
        ["Alert rule", "Dashboard", "Panel", "Silence", "Image"]
    );
    assert_eq!(firing.details.pointer("/values/A"), Some(&json!(97.2)));

    let resolved = &events[1];
    assert_eq!(resolved.action, Action::Resolve);
    assert_eq!(resolved.summary, "DiskFull (db-2:9100)");
    assert_eq!(resolved.details.get("values"), None);
    assert_eq!(
        resolved.details.get("endsAt"),
        Some(&json!("2026-11-26T09:45:00Z"))
    );
}

#[test]
fn grafana_resolved() {
    let events =
        grafana::parse(&fixture("grafana/webhook-v1-resolved.json")).expect("fixture parses");
    assert_eq!(keys(&events), ["c6eadffa33fcdf37"]);
    assert_eq!(events[0].action, Action::Resolve);
    assert_eq!(events[0].details.get("state"), Some(&json!("ok")));
}
