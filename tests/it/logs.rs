//! What `rouse serve` writes to its log, read as a collector would (JSON
//! lines on stderr): no credential from a URL ever, and every line about an
//! alert names the alert and its service.

use crate::metrics::Served;
use crate::support::{TestDb, PAYMENTS_KEY};

fn json_lines(lines: &[String]) -> Vec<serde_json::Value> {
    lines
        .iter()
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON log line ({e}): {l}"))
        })
        .collect()
}

/// Request logs (tower-http's, at debug) name the route template, never
/// the path or query that carry an integration key, a Pushover callback
/// secret or a signed token.
#[tokio::test]
async fn request_logs_name_the_route_not_the_secret_in_the_url() {
    let db = TestDb::sqlite();
    let rotations = crate::support::test_rotations();
    let served = Served::start(
        db.url(),
        rotations.path(),
        &[("ROUSE_LOG_FORMAT", "json"), ("RUST_LOG", "debug")],
    )
    .await;
    let secret = "pushover-callback-secret-4242";
    let token = "signed-token-abcdef-9999";
    let posts = [
        format!("/integrations/alertmanager/{PAYMENTS_KEY}"),
        format!("/v1/heartbeat/{PAYMENTS_KEY}"),
        format!("/pushover/callback/1/{secret}"),
        format!("/ntfy/ack/1?t={token}"),
        format!("/ack/1?t={token}"),
        format!("/twilio/voice/1?n={token}"),
    ];
    for path in &posts {
        let r = served
            .http
            .post(served.url(path))
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .unwrap();
        assert!(
            r.status().is_client_error() || r.status().is_success(),
            "{path}: {}",
            r.status()
        );
    }
    let lines = served.stop();
    let all = lines.join("\n");
    for leaked in [PAYMENTS_KEY, secret, token] {
        assert!(!all.contains(leaked), "{leaked} reached the log:\n{all}");
    }
    // The request spans are there, with the template instead.
    for route in [
        "/integrations/alertmanager/{key}",
        "/pushover/callback/{notification}/{secret}",
        "/ack/{alert}",
    ] {
        assert!(
            all.contains(&format!("\"route\":\"{route}\"")),
            "no request span for {route}:\n{all}"
        );
    }
    json_lines(&lines);
}

/// The names a line uses for what it is about: its own fields and those of
/// the spans it was written in.
fn names(line: &serde_json::Value) -> Vec<(String, serde_json::Value)> {
    let mut out = Vec::new();
    let mut add = |obj: &serde_json::Value| {
        if let Some(map) = obj.as_object() {
            out.extend(map.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
    };
    add(&line["fields"]);
    add(&line["span"]);
    for span in line["spans"].as_array().into_iter().flatten() {
        add(span);
    }
    out
}

/// Opens an alert, lets its first step page (console channel) and
/// acknowledges it: every line about the alert carries `alert_id` and
/// `service` — the intake's, the engine's and the channel's alike.
async fn every_alert_line_names_the_alert_and_its_service(db: &TestDb) {
    let rotations = crate::support::test_rotations();
    let served = Served::start(
        db.url(),
        rotations.path(),
        &[("ROUSE_LOG_FORMAT", "json"), ("RUST_LOG", "info")],
    )
    .await;
    let opened = served.trigger("disk-full").await;
    let id = opened["alert_id"].as_i64().expect("alert id");
    let lines = served.lines.clone();
    crate::support::eventually("the first step pages", || {
        let lines = lines.clone();
        async move {
            lines
                .lock()
                .unwrap()
                .iter()
                .any(|l| l.contains("rouse::page"))
        }
    })
    .await;
    let lines = json_lines(&served.stop());

    let about_alerts: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|line| {
            line["target"] == "rouse::page"
                || names(line)
                    .iter()
                    .any(|(k, _)| k == "alert" || k == "alert_id")
                || line["fields"]["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("alert"))
        })
        .collect();
    for line in &about_alerts {
        let names = names(line);
        let alert_id = names.iter().find(|(k, _)| k == "alert_id").map(|(_, v)| v);
        let service = names.iter().find(|(k, _)| k == "service").map(|(_, v)| v);
        assert!(
            alert_id.is_some_and(|v| v.as_i64() == Some(id) || v.as_str() == Some(&id.to_string())),
            "no alert_id {id}: {line}"
        );
        assert_eq!(
            service.and_then(|v| v.as_str()),
            Some("payments"),
            "no service: {line}"
        );
    }
    // The three moments are all there: opened, the step, the page.
    for needle in ["alert opened", "escalation step fired", "PAGE #"] {
        assert!(
            about_alerts.iter().any(|l| l["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.contains(needle))),
            "no {needle:?} line among {about_alerts:#?}"
        );
    }
}

crate::both_backends!(every_alert_line_names_the_alert_and_its_service);
