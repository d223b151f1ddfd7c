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
