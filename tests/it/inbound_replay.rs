//! Provider webhooks are idempotent on the provider's message id: Twilio
//! re-sends a webhook it timed out on, and a replayed `a` must not
//! acknowledge a different alert each time.

use std::sync::Arc;

use rouse::channel::TwilioSettings;
use rouse::config::Secret;
use serde_json::json;

use crate::both_backends;
use crate::fake_twilio::{twilio_signature, CallScript, FakeTwilio};
use crate::support::{eventually, TestApp, TestDb};

const SID: &str = "AC00000000000000000000000000000016";
const TOKEN: &str = "replay-test-auth-token";
const ALICE: &str = "+4915100000001";
const KEY: &str = "replay-key-0123456789";

const CATALOG: &str = r#"
people:
  - { id: alice, name: Alice, timezone: Europe/Berlin, contact: { sms: "+4915100000001", voice: "+4915100000001" } }
rotations:
  - { id: solo, timezone: Europe/Berlin, participants: [alice], shift: 1w, handoff: "09:00", start: 2025-01-06 }
schedules:
  - { id: primary, timezone: Europe/Berlin, layers: [{ rotation: solo }] }
policies:
  - id: call-first
    steps:
      - { delay: 0m, targets: [{ schedule: primary }], channels: [voice] }
      - { delay: 1h, targets: [{ schedule: primary }], channels: [sms] }
services:
  - id: payments
    policy: call-first
    integrations: [{ name: am, key: replay-key-0123456789 }]
"#;

async fn app(db: &TestDb, fake: &FakeTwilio) -> TestApp {
    let base = fake.base_url();
    TestApp::spawn_with_catalog(db, CATALOG, move |c| {
        c.channels = Arc::new(rouse::channel::ChannelsConfig {
            twilio: Some(TwilioSettings {
                account_sid: SID.to_owned(),
                auth_token: Some(Secret::new(TOKEN)),
                from: "+15005550006".to_owned(),
                base_url: Some(base),
            }),
            ..Default::default()
        });
    })
    .await
}

async fn sms(app: &TestApp, message_sid: &str, body: &str) -> (u16, String) {
    let url = format!("{}/twilio/sms", app.base);
    let params = vec![
        ("From".to_owned(), ALICE.to_owned()),
        ("To".to_owned(), "+15005550006".to_owned()),
        ("Body".to_owned(), body.to_owned()),
        ("MessageSid".to_owned(), message_sid.to_owned()),
    ];
    let signature = twilio_signature(TOKEN, &url, &params);
    let response = app
        .http
        .post(&url)
        .header("X-Twilio-Signature", signature)
        .form(&params)
        .send()
        .await
        .expect("request");
    let status = response.status().as_u16();
    (status, response.text().await.expect("body"))
}

async fn acknowledged(app: &TestApp) -> usize {
    app.alerts()
        .await
        .iter()
        .filter(|a| a["status"] == "acknowledged")
        .count()
}

async fn a_replayed_sms_acts_once(db: &TestDb) {
    let fake = FakeTwilio::start(SID, TOKEN).await;
    fake.script_call(ALICE, CallScript::NoAnswer);
    let app = app(db, &fake).await;
    for key in ["replay-1", "replay-2", "replay-3", "replay-4"] {
        let (status, body) = app
            .post(
                "/v1/events",
                &[("x-rouse-key", KEY)],
                json!({"action": "trigger", "dedup_key": key, "summary": key, "severity": "critical"})
                    .to_string(),
            )
            .await;
        assert_eq!(status, 202, "{body}");
    }
    eventually("all four alerts are called", || async {
        fake.calls().len() >= 4
    })
    .await;

    let first = sms(&app, "SM00000000000000000000000000000001", "a").await;
    assert_eq!(first.0, 200);
    assert!(first.1.contains("acknowledged"), "{}", first.1);
    for _ in 0..2 {
        let again = sms(&app, "SM00000000000000000000000000000001", "a").await;
        assert_eq!(again, first, "a replay answers exactly as the first time");
    }
    assert_eq!(acknowledged(&app).await, 1, "the replays changed nothing");

    // Two identical requests at the same moment: one acts, both answer alike.
    let sid = "SM00000000000000000000000000000002";
    let (a, b) = tokio::join!(sms(&app, sid, "a"), sms(&app, sid, "a"));
    assert_eq!(a, b);
    assert_eq!(acknowledged(&app).await, 2, "exactly one of the two acted");

    // A new message (a new MessageSid) is a new reply and acts.
    let next = sms(&app, "SM00000000000000000000000000000003", "a").await;
    assert!(next.1.contains("acknowledged"), "{}", next.1);
    assert_eq!(acknowledged(&app).await, 3);
    app.stop().await;
}
both_backends!(a_replayed_sms_acts_once);
