//! The ack page in a real browser: Debian's headless Chromium, driven by
//! playwright-core, opens the SMS Rouse sent (shown as a page on a phone-sized
//! screen), follows its link, presses Acknowledge and reads the confirmation.
//! Screenshots are kept under `target/screenshots/`.

use std::path::PathBuf;
use std::sync::Arc;

use rouse::channel::{ChannelsConfig, TwilioSettings};
use rouse::config::Secret;
use serde_json::json;

use crate::fake_twilio::FakeTwilio;
use crate::peers::{chromium, run_browser};
use crate::support::{eventually, TestApp, TestDb, PAYMENTS_KEY};

const SID: &str = "AC00000000000000000000000000000008";
const TOKEN: &str = "browser-auth-token";

#[tokio::test]
async fn ack_page_in_headless_chromium() {
    let Some(chromium) = chromium("ack_page_in_headless_chromium") else {
        return;
    };
    let db = TestDb::sqlite();
    let fake = FakeTwilio::start(SID, TOKEN).await;
    let base = fake.base_url();
    let app = TestApp::spawn(&db, move |c| {
        c.channels = Arc::new(ChannelsConfig {
            twilio: Some(TwilioSettings {
                account_sid: SID.to_owned(),
                auth_token: Some(Secret::new(TOKEN)),
                from: "+15005550006".to_owned(),
                base_url: Some(base),
            }),
            ..Default::default()
        });
    })
    .await;
    let (_, body) = app
        .post(
            "/v1/events",
            &[("x-rouse-key", PAYMENTS_KEY)],
            json!({"action": "trigger", "summary": "checkout latency above 2s", "severity": "critical"})
                .to_string(),
        )
        .await;
    let id = body["alert_id"].as_i64().unwrap();
    eventually("the SMS page", || async { !fake.messages().is_empty() }).await;
    let message = fake.messages().remove(0);
    // Whoever the weekly test rotation has on call this week was paged.
    let paged = match message.to.as_str() {
        "+4915100000001" => "alice",
        "+12125550002" => "bob",
        other => panic!("paged an unknown number {other}"),
    };
    let sms = message.body;
    let link = sms
        .split_whitespace()
        .find(|w| w.contains(&format!("/ack/{id}?t=")))
        .unwrap_or_else(|| panic!("no link in {sms:?}"))
        .to_owned();

    // The text as a phone would show it, with its link clickable.
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("sms.html");
    let escaped = sms.replace('&', "&amp;").replace('<', "&lt;");
    let shown = escaped.replace(
        &link.replace('&', "&amp;"),
        &format!(
            "<a id=\"ack-link\" href=\"{}\">{}</a>",
            link.replace('&', "&amp;"),
            link.replace('&', "&amp;")
        ),
    );
    std::fs::write(
        &page,
        format!("<!doctype html><meta charset=utf-8><title>Messages</title><p style=\"font:16px sans-serif;background:#e9e9eb;border-radius:1rem;padding:1rem\">{shown}</p>"),
    )
    .unwrap();

    let shots = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
    let result = run_browser(
        &chromium,
        "ack_page.js",
        vec![
            format!("file://{}", page.display()),
            shots.display().to_string(),
        ],
    )
    .await;
    assert_eq!(result["shown"], "Acknowledge this alert?", "{result}");
    let confirmed = result["confirmed"].as_str().unwrap();
    assert!(confirmed.contains("Escalation stopped"), "{confirmed}");
    assert!(
        confirmed.contains("checkout latency above 2s"),
        "{confirmed}"
    );
    for shot in result["screenshots"].as_array().unwrap() {
        let path = PathBuf::from(shot.as_str().unwrap());
        let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        assert!(bytes > 1000, "{} is missing or empty", path.display());
    }

    let (_, shown) = app.admin_get(&format!("/v1/alerts/{id}")).await;
    assert_eq!(shown["alert"]["status"], "acknowledged", "{shown}");
    assert_eq!(shown["alert"]["acknowledged_by"], paged);
    app.stop().await;
}
