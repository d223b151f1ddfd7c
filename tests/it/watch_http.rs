//! Watchers inside the whole server, on a virtual clock: Prometheus' always
//! firing Watchdog alert arrives through Alertmanager's webhook as a ping
//! (never an alert), its silence pages at exactly `interval + grace`, the
//! next one resolves it, and `/v1/watchers` and `/metrics` show the watcher.

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use rouse::clock::ManualClock;

use crate::both_backends;
use crate::support::{eventually, TestApp, TestDb, PAYMENTS_KEY, TEST_CATALOG};

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap()
}

const WATCHDOG: &str = r#"
watchers:
  - id: prometheus-watchdog
    kind: watchdog
    service: payments
    match: { alertname: Watchdog }
    interval: 5m
    grace: 5m
"#;

fn watchdog_webhook() -> String {
    serde_json::json!({
        "receiver": "rouse", "status": "firing", "version": "4",
        "groupKey": "{}:{alertname=\"Watchdog\"}", "truncatedAlerts": 0,
        "groupLabels": {"alertname": "Watchdog"},
        "commonLabels": {"alertname": "Watchdog", "severity": "none"},
        "commonAnnotations": {}, "externalURL": "http://127.0.0.1:9093",
        "alerts": [{
            "status": "firing",
            "labels": {"alertname": "Watchdog", "severity": "none"},
            "annotations": {"summary": "An alert that should always be firing"},
            "startsAt": "2026-03-02T08:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://127.0.0.1:9090/graph", "fingerprint": "e1f3d2c4b5a69788"
        }]
    })
    .to_string()
}

async fn watchdog(app: &TestApp) -> serde_json::Value {
    let (status, body) = app.admin_get("/v1/watchers").await;
    assert_eq!(status, 200, "{body}");
    body["watchers"]
        .as_array()
        .and_then(|w| w.iter().find(|w| w["id"] == "prometheus-watchdog").cloned())
        .expect("the watchdog is listed")
}

async fn a_silent_monitoring_stack_pages_and_its_watchdog_never_does(db: &TestDb) {
    let clock = ManualClock::new(t0());
    let catalog = format!("{TEST_CATALOG}\n{WATCHDOG}");
    let app = TestApp::spawn_with_clock(db, &catalog, Arc::new(clock.clone()), |_| {}).await;
    let path = format!("/integrations/alertmanager/{PAYMENTS_KEY}");

    let (status, body) = app.post(&path, &[], watchdog_webhook()).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["events"][0]["outcome"], "watchdog_ping", "{body}");
    assert!(
        app.alerts().await.is_empty(),
        "the Watchdog alert never pages"
    );

    // One second before the deadline the runner has looked and found it fine.
    let deadline = t0() + TimeDelta::minutes(10);
    clock.set(deadline - TimeDelta::seconds(1));
    eventually("the watchdog ran at 09:09:59", || async {
        watchdog(&app).await["last_run_at"] == "2026-03-02T09:09:59Z"
    })
    .await;
    assert!(app.alerts().await.is_empty());
    let seen = watchdog(&app).await;
    assert_eq!(seen["last_result"], "ok", "{seen}");

    clock.set(deadline);
    eventually("silence is paged", || async {
        !app.alerts().await.is_empty()
    })
    .await;
    let alerts = app.alerts().await;
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0]["dedup_key"], "watch:prometheus-watchdog:silent");
    assert_eq!(
        alerts[0]["created_at"], "2026-03-02T09:10:00Z",
        "at exactly interval + grace"
    );
    assert_eq!(alerts[0]["severity"], "critical");
    let shown = watchdog(&app).await;
    assert_eq!(shown["open_findings"][0]["code"], "silent", "{shown}");

    // Alertmanager is back: the next Watchdog resolves it.
    clock.set(deadline + TimeDelta::minutes(3));
    let (status, _) = app.post(&path, &[], watchdog_webhook()).await;
    assert_eq!(status, 202);
    clock.set(deadline + TimeDelta::minutes(3) + TimeDelta::seconds(30));
    eventually("the ping resolves it", || async {
        app.alerts().await[0]["status"] == "resolved"
    })
    .await;

    let metrics = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for name in [
        "rouse_watcher_last_success_timestamp_seconds{watcher=\"prometheus-watchdog\"}",
        "rouse_watcher_result{watcher=\"prometheus-watchdog\"}",
        "rouse_watcher_duration_seconds{watcher=\"prometheus-watchdog\"}",
    ] {
        assert!(metrics.contains(name), "/metrics lacks {name}");
    }
    app.stop().await;
}
both_backends!(a_silent_monitoring_stack_pages_and_its_watchdog_never_does);
