//! Intake through real HTTP, on both stores, with payloads captured from a real
//! Alertmanager (its webhook and its PagerDuty receiver).

use serde_json::{json, Value};

use crate::both_backends;
use crate::support::{eventually, fixture, TestApp, TestDb, ADMIN_TOKEN, PAYMENTS_KEY, SEARCH_KEY};

fn trigger(key: Option<&str>, summary: &str) -> String {
    let mut body = json!({"action": "trigger", "summary": summary, "severity": "critical",
                          "source": "db-1", "labels": {"team": "payments"}});
    if let Some(key) = key {
        body["dedup_key"] = json!(key);
    }
    body.to_string()
}

fn action(action: &str, key: &str) -> String {
    json!({"action": action, "dedup_key": key}).to_string()
}

const AUTH: (&str, &str) = ("x-rouse-key", PAYMENTS_KEY);

async fn native_lifecycle(db: &TestDb) {
    let app = TestApp::spawn(db, |_| {}).await;
    let (status, body) = app
        .post(
            "/v1/events",
            &[AUTH],
            trigger(Some("disk-db-1"), "disk full"),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["status"], "success");
    assert_eq!(body["dedup_key"], "disk-db-1");
    assert_eq!(body["outcome"], "opened");
    let id = body["alert_id"].as_i64().unwrap();

    let bearer = format!("Bearer {PAYMENTS_KEY}");
    let (status, body) = app
        .post(
            "/v1/events",
            &[("authorization", &bearer)],
            trigger(Some("disk-db-1"), "disk still full"),
        )
        .await;
    assert_eq!(
        (status, body["outcome"].as_str()),
        (202, Some("deduplicated"))
    );
    assert_eq!(body["alert_id"].as_i64(), Some(id));

    let (_, body) = app
        .post("/v1/events", &[AUTH], action("acknowledge", "disk-db-1"))
        .await;
    assert_eq!(body["outcome"], "acknowledged", "{body}");
    let (_, body) = app
        .post("/v1/events", &[AUTH], action("resolve", "disk-db-1"))
        .await;
    assert_eq!(body["outcome"], "resolved");
    let (_, body) = app
        .post("/v1/events", &[AUTH], action("resolve", "disk-db-1"))
        .await;
    assert_eq!(body["outcome"], "no_open_alert");

    // After resolve the same key opens a new alert.
    let (_, body) = app
        .post("/v1/events", &[AUTH], trigger(Some("disk-db-1"), "again"))
        .await;
    assert_eq!(body["outcome"], "opened");
    assert_ne!(body["alert_id"].as_i64(), Some(id));

    // Without a key, every trigger is a new alert with a generated key.
    let (_, a) = app
        .post("/v1/events", &[AUTH], trigger(None, "no key"))
        .await;
    let (_, b) = app
        .post("/v1/events", &[AUTH], trigger(None, "no key"))
        .await;
    assert_eq!(
        (a["outcome"].as_str(), b["outcome"].as_str()),
        (Some("opened"), Some("opened"))
    );
    assert_ne!(a["dedup_key"], b["dedup_key"]);
    assert!(a["dedup_key"].as_str().unwrap().starts_with("rouse-"));

    let (status, shown) = app.admin_get(&format!("/v1/alerts/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(shown["alert"]["status"], "resolved");
    assert_eq!(shown["alert"]["event_count"], 2);
    assert_eq!(shown["alert"]["summary"], "disk still full");
    // The engine's own entries (step_fired, notified) interleave; check the intake's.
    let kinds: Vec<&str> = shown["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .filter(|k| ["received", "deduplicated", "acknowledged", "resolved"].contains(k))
        .collect();
    assert_eq!(
        kinds,
        ["received", "deduplicated", "acknowledged", "resolved"]
    );
    assert_eq!(shown["timeline"][0]["actor"], "native:prometheus");
    app.stop().await;
}
both_backends!(native_lifecycle);

async fn alertmanager_webhook(db: &TestDb) {
    let app = TestApp::spawn(db, |_| {}).await;
    let path = format!("/integrations/alertmanager/{PAYMENTS_KEY}");
    let grouped = fixture("alertmanager/webhook-v4-firing-grouped.json");
    let (status, body) = app.post(&path, &[], grouped.clone()).await;
    assert_eq!(status, 202, "{body}");
    let events = body["events"].as_array().unwrap();
    let keys: Vec<&str> = events
        .iter()
        .map(|e| e["dedup_key"].as_str().unwrap())
        .collect();
    assert_eq!(
        keys,
        ["522516c2a6189abb", "9eb7340bbcdc42de", "c52edc3a7809a8a5"]
    );
    assert!(events.iter().all(|e| e["outcome"] == "opened"));

    // Alertmanager re-sends the firing group every repeat_interval: only refreshes.
    let (_, body) = app.post(&path, &[], grouped).await;
    assert!(body["events"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["outcome"] == "deduplicated"));

    // A new alert joining the group is its own alert, never hidden by the group.
    let mut joined: Value =
        serde_json::from_slice(&fixture("alertmanager/webhook-v4-firing-grouped.json")).unwrap();
    let mut newcomer = joined["alerts"][0].clone();
    newcomer["fingerprint"] = json!("ffff000011112222");
    newcomer["labels"]["instance"] = json!("host-9:9100");
    joined["alerts"].as_array_mut().unwrap().push(newcomer);
    let (_, body) = app.post(&path, &[], joined.to_string()).await;
    let outcomes: Vec<&str> = body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(
        outcomes,
        ["deduplicated", "deduplicated", "deduplicated", "opened"]
    );

    // The captured resolve, after the same alert fired.
    let resolved: Value =
        serde_json::from_slice(&fixture("alertmanager/webhook-v4-resolved.json")).unwrap();
    let mut firing = resolved.clone();
    firing["status"] = json!("firing");
    firing["alerts"][0]["status"] = json!("firing");
    let (_, body) = app.post(&path, &[], firing.to_string()).await;
    assert_eq!(body["events"][0]["outcome"], "opened");
    let (_, body) = app.post(&path, &[], resolved.to_string()).await;
    assert_eq!(body["events"][0]["outcome"], "resolved");
    assert_eq!(body["events"][0]["dedup_key"], "220256d39ff441e4");

    let alerts = app.alerts().await;
    assert_eq!(alerts.len(), 5);
    let am = alerts
        .iter()
        .find(|a| a["dedup_key"] == "522516c2a6189abb")
        .unwrap();
    assert_eq!(am["service_id"], "payments");
    assert_eq!(am["event_count"], 2 + 1);
    app.stop().await;
}
both_backends!(alertmanager_webhook);

async fn pagerduty_receiver(db: &TestDb) {
    let app = TestApp::spawn(db, |_| {}).await;
    let with_key = |name: &str| {
        let mut v: Value = serde_json::from_slice(&fixture(name)).unwrap();
        v["routing_key"] = json!(PAYMENTS_KEY);
        v.to_string()
    };
    let (status, body) = app
        .post(
            "/v2/enqueue",
            &[],
            with_key("alertmanager/pagerduty-v2-trigger.json"),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(
        body,
        json!({"status": "success", "message": "Event processed",
               "dedup_key": "1d7b6ffc475daf6730ceb17759ee96f279af45691d1e4bec14f3a381ba321146"})
    );
    let (status, _) = app
        .post(
            "/v2/enqueue",
            &[],
            with_key("alertmanager/pagerduty-v2-resolve.json"),
        )
        .await;
    assert_eq!(status, 202);
    let alerts = app.alerts().await;
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0]["status"], "resolved");
    assert_eq!(alerts[0]["severity"], "critical");

    let (status, body) = app
        .post(
            "/v2/enqueue",
            &[],
            json!({"routing_key": PAYMENTS_KEY, "event_action": "trigger", "payload": {}})
                .to_string(),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["status"], "invalid event");
    assert_eq!(body["message"], "Event object is invalid");
    let errors = body["errors"].as_array().unwrap();
    assert!(
        errors
            .iter()
            .any(|e| e.as_str().unwrap().contains("payload.summary")),
        "{body}"
    );

    let (status, body) = app
        .post(
            "/v2/enqueue",
            &[],
            with_key("alertmanager/pagerduty-v2-trigger.json").replace(PAYMENTS_KEY, "nope"),
        )
        .await;
    assert_eq!(status, 404);
    assert_eq!(body["errors"][0], "unknown integration key");
    app.stop().await;
}
both_backends!(pagerduty_receiver);

#[tokio::test]
async fn grafana_contact_point() {
    let db = TestDb::sqlite();
    let app = TestApp::spawn(&db, |_| {}).await;
    let path = format!("/integrations/grafana/{SEARCH_KEY}");
    let (status, body) = app
        .post(&path, &[], fixture("grafana/webhook-v1-firing.json"))
        .await;
    assert_eq!(status, 202, "{body}");
    let keys: Vec<&str> = body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["dedup_key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["c6eadffa33fcdf37", "bc97ff14869b13e3"]);
    let (status, _) = app
        .post(&path, &[], fixture("grafana/webhook-v1-resolved.json"))
        .await;
    assert_eq!(status, 202);
    let alerts = app.alerts().await;
    assert!(alerts.iter().all(|a| a["service_id"] == "search"));
    app.stop().await;
}

#[tokio::test]
async fn credentials_are_required_and_checked() {
    let db = TestDb::sqlite();
    let app = TestApp::spawn(&db, |_| {}).await;
    let (status, body) = app.post("/v1/events", &[], trigger(None, "x")).await;
    assert_eq!(status, 401);
    assert!(body["message"]
        .as_str()
        .unwrap()
        .contains("missing credentials"));
    let (status, body) = app
        .post(
            "/v1/events",
            &[("x-rouse-key", "wrong")],
            trigger(None, "x"),
        )
        .await;
    assert_eq!(status, 404);
    assert_eq!(body["message"], "unknown integration key");
    let (status, _) = app
        .post(
            "/integrations/alertmanager/wrong",
            &[],
            fixture("alertmanager/webhook-v4-firing.json"),
        )
        .await;
    assert_eq!(status, 404);
    assert!(app.alerts().await.is_empty());
    app.stop().await;
}

#[tokio::test]
async fn bad_input_gets_a_json_reason_and_stores_nothing() {
    let db = TestDb::sqlite();
    let app = TestApp::spawn(&db, |c| c.intake.max_body_bytes = 64 * 1024).await;
    let cases: Vec<(Vec<u8>, u16, &str)> = vec![
        (b"{not json".to_vec(), 400, "not valid JSON"),
        (
            b"{\"action\": \"trigger\", \"summary\": 5, \"severity\": \"critical\"}".to_vec(),
            400,
            "not valid JSON",
        ),
        (vec![0x7b, 0xff, 0xfe, 0x7d], 400, "UTF-8"),
        (b"{\"action\": \"trigger\"}".to_vec(), 400, "invalid event"),
        (
            b"{\"action\": \"explode\", \"summary\": \"x\", \"severity\": \"critical\"}".to_vec(),
            400,
            "",
        ),
        ("[".repeat(50_000).into_bytes(), 400, ""),
        (vec![b' '; 65 * 1024], 413, "65536 bytes"),
    ];
    for (body, expected, needle) in cases {
        let (status, answer) = app.post("/v1/events", &[AUTH], body).await;
        assert_eq!(status, expected, "{answer}");
        assert_eq!(answer["status"], "error");
        let message = answer["message"].as_str().unwrap();
        assert!(
            message.contains(needle),
            "{message:?} should mention {needle:?}"
        );
    }
    let (status, answer) = app
        .post(
            &format!("/integrations/alertmanager/{PAYMENTS_KEY}"),
            &[],
            json!({"version": "4", "alerts": [{"status": "firing"}]}).to_string(),
        )
        .await;
    assert_eq!(status, 400);
    assert!(
        answer["errors"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e.as_str().unwrap().contains("alerts[0].fingerprint")),
        "{answer}"
    );
    assert!(app.alerts().await.is_empty(), "nothing may be half-written");

    // An oversized summary is truncated with a marker, not rejected.
    let long = "x".repeat(5000);
    let (status, body) = app
        .post("/v1/events", &[AUTH], trigger(Some("long"), &long))
        .await;
    assert_eq!(status, 202);
    let (_, shown) = app
        .admin_get(&format!("/v1/alerts/{}", body["alert_id"]))
        .await;
    let summary = shown["alert"]["summary"].as_str().unwrap();
    assert_eq!(summary.chars().count(), 1024);
    assert!(summary.ends_with("…[truncated]"));

    let r = app.http.get(app.url("/v1/events")).send().await.unwrap();
    assert_eq!(r.status(), 405);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["status"], "error");
    app.stop().await;
}

#[tokio::test]
async fn a_noisy_integration_is_throttled_with_retry_after() {
    let db = TestDb::sqlite();
    let app = TestApp::spawn(&db, |c| {
        c.intake.rate_per_key = 1;
        c.intake.burst_per_key = 3;
    })
    .await;
    let started = std::time::Instant::now();
    let mut accepted = 0;
    let mut throttled = None;
    for i in 0..10 {
        let response = app
            .http
            .post(app.url("/v1/events"))
            .header("x-rouse-key", PAYMENTS_KEY)
            .body(trigger(Some(&format!("k{i}")), "x"))
            .send()
            .await
            .unwrap();
        match response.status().as_u16() {
            202 => accepted += 1,
            429 => {
                let retry_after = response.headers()["retry-after"]
                    .to_str()
                    .unwrap()
                    .to_owned();
                let body: Value = response.json().await.unwrap();
                throttled = Some((retry_after, body));
            }
            other => panic!("unexpected {other}"),
        }
    }
    let (retry_after, body) =
        throttled.expect("a burst of 10 at 1/s with burst 3 must be throttled");
    assert!(retry_after.parse::<u64>().unwrap() >= 1);
    assert!(body["message"].as_str().unwrap().contains("rate limit"));
    // The bound is the burst plus what the rate refilled while the loop ran.
    assert!(
        accepted <= 3 + started.elapsed().as_secs() + 1,
        "accepted {accepted}"
    );
    // Another integration is not affected.
    let (status, _) = app
        .post(
            "/v1/events",
            &[("x-rouse-key", SEARCH_KEY)],
            trigger(None, "x"),
        )
        .await;
    assert_eq!(status, 202);
    let metrics = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("rouse_intake_rejected_total{reason=\"rate_limited\"}"),
        "{metrics}"
    );
    app.stop().await;
}

async fn a_storm_is_folded_into_one_alert(db: &TestDb) {
    let app = TestApp::spawn(db, |c| c.intake.storm_threshold = 3).await;
    let mut outcomes = Vec::new();
    for i in 0..6 {
        let (_, body) = app
            .post("/v1/events", &[AUTH], trigger(Some(&format!("k{i}")), "x"))
            .await;
        outcomes.push(body["outcome"].as_str().unwrap().to_owned());
    }
    assert_eq!(
        outcomes,
        [
            "opened",
            "opened",
            "opened",
            "storm_folded",
            "storm_folded",
            "storm_folded"
        ]
    );
    let alerts = app.alerts().await;
    let storm = alerts
        .iter()
        .find(|a| a["dedup_key"] == "rouse:storm")
        .expect("storm alert");
    assert_eq!(storm["event_count"], 3);
    assert_eq!(alerts.len(), 4);
    app.stop().await;
}
both_backends!(a_storm_is_folded_into_one_alert);

async fn concurrent_events_are_all_committed(db: &TestDb) {
    let app = TestApp::spawn(db, |_| {}).await;
    let mut tasks = Vec::new();
    for i in 0..200 {
        let http = app.http.clone();
        let url = app.url("/v1/events");
        tasks.push(tokio::spawn(async move {
            // Half are duplicates of each other: 100 distinct keys.
            let key = format!("k{}", i % 100);
            http.post(url)
                .header("x-rouse-key", PAYMENTS_KEY)
                .body(trigger(Some(&key), "x"))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap(), 202);
    }
    let alerts = app.alerts().await;
    assert_eq!(alerts.len(), 100);
    let total: i64 = alerts
        .iter()
        .map(|a| a["event_count"].as_i64().unwrap())
        .sum();
    assert_eq!(total, 200);
    app.stop().await;
}
both_backends!(concurrent_events_are_all_committed);

#[tokio::test]
async fn heartbeats_are_recorded() {
    let db = TestDb::sqlite();
    let app = TestApp::spawn(&db, |_| {}).await;
    let path = format!("/v1/heartbeat/{PAYMENTS_KEY}?name=nightly-backup");
    let (status, body) = app.post(&path, &[], "").await;
    assert_eq!(status, 202, "{body}");
    let (_, body) = app.post(&path, &[], "").await;
    assert_eq!(body["ping_count"], 2);
    assert_eq!(body["name"], "nightly-backup");
    let (status, _) = app.post("/v1/heartbeat/wrong", &[], "").await;
    assert_eq!(status, 404);
    app.stop().await;
}

#[tokio::test]
async fn the_alert_api_needs_the_admin_token() {
    let db = TestDb::sqlite();
    let app = TestApp::spawn(&db, |_| {}).await;
    let (_, body) = app
        .post("/v1/events", &[AUTH], trigger(Some("a"), "x"))
        .await;
    let id = body["alert_id"].as_i64().unwrap();
    let r = app.http.get(app.url("/v1/alerts")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = app
        .http
        .get(app.url("/v1/alerts"))
        .bearer_auth("wrong-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let ack = |path: String| {
        app.http
            .post(app.url(&path))
            .bearer_auth(ADMIN_TOKEN)
            .json(&json!({"by": "alice"}))
            .send()
    };
    let r = ack(format!("/v1/alerts/{id}/acknowledge")).await.unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["outcome"], "acknowledged");
    assert_eq!(body["alert"]["acknowledged_by"], "alice");
    let r = ack(format!("/v1/alerts/{id}/resolve")).await.unwrap();
    assert_eq!(r.status(), 200);
    let r = ack(format!("/v1/alerts/{id}/resolve")).await.unwrap();
    assert_eq!(r.status(), 409);
    let r = ack("/v1/alerts/999999/resolve".to_owned()).await.unwrap();
    assert_eq!(r.status(), 404);
    let (status, body) = app.admin_get("/v1/alerts?status=open").await;
    assert_eq!(status, 200);
    assert!(body["alerts"].as_array().unwrap().is_empty());
    let (status, body) = app.admin_get("/v1/alerts?status=sleeping").await;
    assert_eq!(status, 400, "{body}");
    app.stop().await;
}

#[tokio::test]
async fn a_bad_edit_is_rejected_and_the_last_good_configuration_keeps_working() {
    let db = TestDb::sqlite();
    let app = TestApp::spawn(&db, |_| {}).await;
    let file = app.rotations.path().join("oncall.yaml");
    let good = std::fs::read_to_string(&file).unwrap();
    std::fs::write(
        &file,
        good.replace(
            "timezone: Europe/Berlin\n    participants",
            "timezone: Europe/Berlinn\n    participants",
        ),
    )
    .unwrap();
    eventually("the bad edit shows on /readyz", || async {
        let body: Value = app
            .http
            .get(app.url("/readyz"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        body["configuration"]["rejected"].is_object()
    })
    .await;
    let response = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(
        response.status(),
        200,
        "the last good configuration still serves"
    );
    let body: Value = response.json().await.unwrap();
    let problems = body["configuration"]["rejected"]["problems"]
        .as_array()
        .unwrap();
    let first = problems[0].as_str().unwrap();
    assert!(first.contains("oncall.yaml:"), "{first}");
    assert!(first.contains("Europe/Berlinn"), "{first}");
    let (status, _) = app
        .post("/v1/events", &[AUTH], trigger(None, "still routed"))
        .await;
    assert_eq!(status, 202);

    // A valid edit is applied: a new key starts working.
    std::fs::write(
        &file,
        good.replace(PAYMENTS_KEY, "rotated-payments-key-0123456789"),
    )
    .unwrap();
    eventually("the fixed edit is applied", || async {
        let (status, _) = app
            .post(
                "/v1/events",
                &[("x-rouse-key", "rotated-payments-key-0123456789")],
                trigger(None, "x"),
            )
            .await;
        status == 202
    })
    .await;
    let (status, _) = app
        .post("/v1/events", &[AUTH], trigger(None, "old key"))
        .await;
    assert_eq!(status, 404);
    let body: Value = app
        .http
        .get(app.url("/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(body["configuration"]["rejected"].is_null(), "{body}");
    app.stop().await;
}

/// The README's promise for a fresh install: with no provider configured, an
/// alert's first step is paged through the console sink at once.
#[tokio::test]
async fn an_alert_is_paged_through_the_console_when_nothing_is_configured() {
    let db = TestDb::sqlite();
    let app = TestApp::spawn(&db, |_| {}).await;
    let (_, body) = app
        .post("/v1/events", &[AUTH], trigger(Some("console"), "paged"))
        .await;
    let id = body["alert_id"].as_i64().unwrap();
    eventually("the first step is delivered", || async {
        let (_, shown) = app.admin_get(&format!("/v1/alerts/{id}")).await;
        shown["timeline"].as_array().unwrap().iter().any(|e| {
            e["kind"] == "notified" && e["message"].as_str().unwrap_or("").contains("console-sms")
        })
    })
    .await;
    app.stop().await;
}

/// A duplicate trigger that carries no details, links, labels or source
/// keeps the alert's: a runbook link from the first event must not vanish
/// because a later sender left it out. A non-empty value still replaces.
async fn a_duplicate_without_details_keeps_the_alerts(db: &TestDb) {
    let app = TestApp::spawn(db, |_| {}).await;
    let first = json!({"action": "trigger", "dedup_key": "keep-1", "summary": "disk full",
        "severity": "critical", "source": "db-1", "labels": {"team": "payments"},
        "details": {"runbook": "https://wiki/disk"},
        "links": [{"href": "https://wiki/disk", "text": "runbook"}]});
    let (status, body) = app.post("/v1/events", &[AUTH], first.to_string()).await;
    assert_eq!(status, 202, "{body}");
    let id = body["alert_id"].as_i64().unwrap();
    let bare = json!({"action": "trigger", "dedup_key": "keep-1", "summary": "disk still full",
        "severity": "critical"});
    let (status, body) = app.post("/v1/events", &[AUTH], bare.to_string()).await;
    assert_eq!(
        (status, body["outcome"].as_str()),
        (202, Some("deduplicated")),
        "{body}"
    );
    let (_, shown) = app.admin_get(&format!("/v1/alerts/{id}")).await;
    let alert = &shown["alert"];
    assert_eq!(alert["summary"], "disk still full", "{alert}");
    assert_eq!(alert["links"][0]["href"], "https://wiki/disk", "{alert}");
    assert_eq!(alert["details"]["runbook"], "https://wiki/disk", "{alert}");
    assert_eq!(alert["labels"]["team"], "payments", "{alert}");
    assert_eq!(alert["source"], "db-1", "{alert}");

    let newer = json!({"action": "trigger", "dedup_key": "keep-1", "summary": "disk full again",
        "severity": "critical", "links": [{"href": "https://grafana/d/disk"}],
        "details": {"free": "0%"}});
    let (status, _) = app.post("/v1/events", &[AUTH], newer.to_string()).await;
    assert_eq!(status, 202);
    let (_, shown) = app.admin_get(&format!("/v1/alerts/{id}")).await;
    let alert = &shown["alert"];
    assert_eq!(
        alert["links"][0]["href"], "https://grafana/d/disk",
        "{alert}"
    );
    assert_eq!(alert["details"], json!({"free": "0%"}), "{alert}");
    app.stop().await;
}
both_backends!(a_duplicate_without_details_keeps_the_alerts);
