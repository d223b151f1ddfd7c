//! The whole loop through the server's Twilio webhooks: Rouse calls through
//! the fake Twilio, the fake fetches the call's TwiML from Rouse and presses a
//! key, exactly as Twilio would, with signed requests.

use std::sync::Arc;

use rouse::channel::TwilioSettings;
use rouse::config::Secret;
use serde_json::{json, Value};

use crate::fake_twilio::{twilio_signature, CallScript, FakeTwilio, MessageScript};
use crate::support::{eventually, TestApp, TestDb, ADMIN_TOKEN};

const SID: &str = "AC00000000000000000000000000000002";
const TOKEN: &str = "route-test-auth-token";
const ALICE: &str = "+4915100000001";
const KEY: &str = "twilio-routes-key-0123456789";

/// Both people on call around the clock in turn; voice at once, SMS after.
/// Without breakthrough calls (on the system clock they would come a minute
/// later; `breakthrough.rs` runs them on a virtual clock), so an unanswered
/// call moves the escalation on at once.
const CATALOG: &str = r#"
people:
  - { id: alice, name: Alice, timezone: Europe/Berlin, contact: { sms: "+4915100000001", voice: "+4915100000001" } }
rotations:
  - { id: solo, timezone: Europe/Berlin, participants: [alice], shift: 1w, handoff: "09:00", start: 2025-01-06 }
schedules:
  - { id: primary, timezone: Europe/Berlin, layers: [{ rotation: solo }] }
policies:
  - id: call-first
    breakthrough: false
    steps:
      - { delay: 0m, targets: [{ schedule: primary }], channels: [voice] }
      - { delay: 1h, targets: [{ schedule: primary }], channels: [sms] }
services:
  - id: payments
    policy: call-first
    integrations: [{ name: am, key: twilio-routes-key-0123456789 }]
"#;

async fn app_with_twilio(db: &TestDb, fake: &FakeTwilio) -> TestApp {
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

async fn open_alert(app: &TestApp, key: &str) -> i64 {
    let (status, body) = app
        .post(
            "/v1/events",
            &[("x-rouse-key", KEY)],
            json!({"action": "trigger", "dedup_key": key, "summary": "db-1 <down> & out",
                   "severity": "critical"})
            .to_string(),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    body["alert_id"].as_i64().unwrap()
}

async fn alert(app: &TestApp, id: i64) -> Value {
    app.admin_get(&format!("/v1/alerts/{id}")).await.1
}

#[tokio::test]
async fn pressing_1_on_the_call_acknowledges() {
    let db = TestDb::sqlite();
    let fake = FakeTwilio::start(SID, TOKEN).await;
    fake.script_call(
        ALICE,
        CallScript::Human {
            press: Some("1".to_owned()),
        },
    );
    let app = app_with_twilio(&db, &fake).await;
    let id = open_alert(&app, "press-1").await;
    eventually("Rouse places the call", || async {
        !fake.calls().is_empty()
    })
    .await;
    let call = fake.calls().remove(0);
    assert_eq!(call.to, ALICE);
    assert!(
        call.url
            .starts_with(&format!("{}/twilio/voice/{id}?n=", app.base)),
        "{}",
        call.url
    );
    let exchanges = fake.run_call(&call.sid).await;
    let twiml = exchanges
        .iter()
        .find(|e| e.kind == crate::fake_twilio::CallbackKind::TwimlFetch)
        .expect("the TwiML was fetched");
    assert_eq!(twiml.response_status, Some(200));
    assert!(
        twiml.response_body.contains("<Gather"),
        "{}",
        twiml.response_body
    );
    assert!(
        twiml.response_body.contains("&lt;down&gt; &amp; out"),
        "escaped: {}",
        twiml.response_body
    );
    let shown = alert(&app, id).await;
    assert_eq!(shown["alert"]["status"], "acknowledged", "{shown}");
    assert_eq!(shown["alert"]["acknowledged_by"], "alice");
    app.stop().await;
}

#[tokio::test]
async fn voicemail_or_no_answer_moves_on_to_the_next_step_at_once() {
    let db = TestDb::sqlite();
    let fake = FakeTwilio::start(SID, TOKEN).await;
    fake.script_call(ALICE, CallScript::Machine);
    let app = app_with_twilio(&db, &fake).await;
    let id = open_alert(&app, "voicemail").await;
    eventually("Rouse places the call", || async {
        !fake.calls().is_empty()
    })
    .await;
    let call = fake.calls().remove(0);
    fake.run_call(&call.sid).await;
    // The SMS step is an hour later; voicemail pulls it forward.
    eventually("the SMS step fires without waiting its hour", || async {
        !fake.messages().is_empty()
    })
    .await;
    let shown = alert(&app, id).await;
    assert_eq!(shown["alert"]["status"], "triggered");
    let timeline = shown["timeline"].as_array().unwrap();
    assert!(
        timeline
            .iter()
            .any(|e| e["message"].as_str().unwrap_or("").contains("voicemail")),
        "{shown}"
    );
    app.stop().await;
}

#[tokio::test]
async fn an_undelivered_sms_falls_through() {
    let db = TestDb::sqlite();
    let fake = FakeTwilio::start(SID, TOKEN).await;
    fake.script_call(ALICE, CallScript::NoAnswer);
    fake.script_message(ALICE, MessageScript::Undelivered { error_code: 30003 });
    let app = app_with_twilio(&db, &fake).await;
    let id = open_alert(&app, "undelivered").await;
    eventually("the call", || async { !fake.calls().is_empty() }).await;
    let call = fake.calls().remove(0);
    fake.run_call(&call.sid).await;
    eventually("the SMS", || async { !fake.messages().is_empty() }).await;
    let sms = fake.messages().remove(0);
    fake.run_message(&sms.sid).await;
    eventually("the undelivered SMS is in the timeline", || async {
        let shown = alert(&app, id).await;
        shown["timeline"].as_array().unwrap().iter().any(|e| {
            e["message"]
                .as_str()
                .unwrap_or("")
                .contains("undelivered (error 30003)")
        })
    })
    .await;
    app.stop().await;
}

#[tokio::test]
async fn an_sms_reply_acknowledges_only_alerts_paged_to_that_number() {
    let db = TestDb::sqlite();
    let fake = FakeTwilio::start(SID, TOKEN).await;
    fake.script_call(ALICE, CallScript::NoAnswer);
    let app = app_with_twilio(&db, &fake).await;
    let id = open_alert(&app, "reply").await;
    eventually("the call", || async { !fake.calls().is_empty() }).await;
    let url = format!("{}/twilio/sms", app.base);
    // Each text is its own message with its own MessageSid (a repeated
    // MessageSid is a re-sent webhook, answered as the first time).
    let sent = std::sync::atomic::AtomicU32::new(0);
    let send = |from: &str, body: &str| {
        let n = sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let params = vec![
            ("From".to_owned(), from.to_owned()),
            ("To".to_owned(), "+15005550006".to_owned()),
            ("Body".to_owned(), body.to_owned()),
            ("MessageSid".to_owned(), format!("SM{n:032}")),
        ];
        let signature = twilio_signature(TOKEN, &url, &params);
        app.http
            .post(&url)
            .header("X-Twilio-Signature", signature)
            .form(&params)
            .send()
    };
    // A stranger's number changes nothing and gets no answer.
    let r = send("+19999999999", "a").await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(!r.text().await.unwrap().contains("<Message>"));
    assert_eq!(alert(&app, id).await["alert"]["status"], "triggered");
    // A code this number was never given matches nothing.
    let r = send(ALICE, "9a").await.unwrap();
    assert!(r.text().await.unwrap().contains("No open alert 9"));
    assert_eq!(alert(&app, id).await["alert"]["status"], "triggered");
    let r = send(ALICE, "A").await.unwrap();
    assert!(r.text().await.unwrap().contains("acknowledged"));
    let shown = alert(&app, id).await;
    assert_eq!(shown["alert"]["status"], "acknowledged");
    assert_eq!(shown["alert"]["acknowledged_by"], "alice");
    app.stop().await;
}

#[tokio::test]
async fn unsigned_or_forged_twilio_requests_are_refused() {
    let db = TestDb::sqlite();
    let fake = FakeTwilio::start(SID, TOKEN).await;
    let app = app_with_twilio(&db, &fake).await;
    let id = open_alert(&app, "forged").await;
    let url = format!("{}/twilio/sms", app.base);
    let params = vec![
        ("From".to_owned(), ALICE.to_owned()),
        ("Body".to_owned(), format!("ACK {id}")),
    ];
    let r = app.http.post(&url).form(&params).send().await.unwrap();
    assert_eq!(r.status(), 403);
    let forged = twilio_signature("not-the-token", &url, &params);
    let r = app
        .http
        .post(&url)
        .header("X-Twilio-Signature", forged)
        .form(&params)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // A TwiML URL with a token for another alert is refused even when signed.
    let voice = format!("{}/twilio/voice/{}?n=1.00", app.base, id);
    let sig = twilio_signature(TOKEN, &voice, &[]);
    let r = app
        .http
        .post(&voice)
        .header("X-Twilio-Signature", sig)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = app
        .http
        .get(app.url(&format!("/v1/alerts/{id}")))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["alert"]["status"], "triggered");
    app.stop().await;
}
