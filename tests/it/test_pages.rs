//! Test pages end to end on both stores: the admin API sends alice a marked
//! test page by SMS and by voice through the fake Twilio, each acknowledged
//! its own way (an SMS reply, a key press); the results are stored per
//! method, and `rouse check` with the database warns, at alice's place in
//! the rotation files, about the method not yet proven.

use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use rouse::channel::{ChannelsConfig, TwilioSettings};
use rouse::clock::ManualClock;
use rouse::config::Secret;
use rouse::escalation::test_page::PROOF_MAX_AGE;
use serde_json::{json, Value};

use crate::both_backends;
use crate::fake_twilio::{CallScript, FakeTwilio};
use crate::support::{eventually, TestApp, TestDb, ADMIN_TOKEN};

const SID: &str = "AC00000000000000000000000000000017";
const TOKEN: &str = "test-page-auth-token";
const TWILIO_NUMBER: &str = "+15005550006";
const ALICE: &str = "+4915100000001";

const CATALOG: &str = r##"
people:
  - { id: alice, name: Alice, timezone: Europe/Berlin, contact: { sms: "+4915100000001", voice: "+4915100000001" } }
  - { id: carol, name: Carol, timezone: Europe/Berlin, contact: { email: carol@example.com } }
rotations:
  - { id: solo, timezone: Europe/Berlin, participants: [alice], shift: 1w, handoff: "09:00", start: 2026-11-02 }
policies:
  - id: p
    steps:
      - { targets: [{ rotation: solo }], channels: [sms] }
services:
  - id: payments
    policy: p
    integrations: [{ name: am, key: test-page-key-0123456789 }]
"##;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 3, 3, 0, 0).unwrap()
}

async fn send(app: &TestApp, person: &str, body: Value, token: &str) -> (u16, Value) {
    let response = app
        .http
        .post(app.url(&format!("/v1/people/{person}/test-page")))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn timeline_has(app: &TestApp, id: i64, needle: &str) -> bool {
    let (_, shown) = app.admin_get(&format!("/v1/alerts/{id}")).await;
    shown["timeline"].as_array().is_some_and(|t| {
        t.iter()
            .any(|e| e["message"].as_str().unwrap_or("").contains(needle))
    })
}

fn check_output(app: &TestApp, results: &[rouse::escalation::test_page::TestPageResult]) -> String {
    let mut out = Vec::new();
    let ok = rouse::commands::check::check_with(
        app.rotations.path(),
        t0(),
        &|_| None,
        &rouse::config::Config::default(),
        None,
        Some(results),
        &mut out,
    )
    .unwrap();
    assert!(ok);
    String::from_utf8(out).unwrap()
}

async fn each_method_is_acknowledged_its_own_way_and_check_warns_about_the_rest(db: &TestDb) {
    let twilio = FakeTwilio::start(SID, TOKEN).await;
    twilio.script_call(
        ALICE,
        CallScript::Human {
            press: Some("1".to_owned()),
        },
    );
    let clock = ManualClock::new(t0());
    let base = twilio.base_url();
    let app = TestApp::spawn_with_clock(db, CATALOG, Arc::new(clock.clone()), move |c| {
        c.signing_key = Secret::new("test-page-signing-key-0123456789abcdef");
        c.channels = Arc::new(ChannelsConfig {
            twilio: Some(TwilioSettings {
                account_sid: SID.to_owned(),
                auth_token: Some(Secret::new(TOKEN)),
                from: TWILIO_NUMBER.to_owned(),
                base_url: Some(base),
            }),
            ..Default::default()
        });
    })
    .await;
    let store = db.open().await;

    // Refusals first: nothing is sent for them.
    assert_eq!(
        send(&app, "alice", json!({}), "wrong-token-0123456789")
            .await
            .0,
        401
    );
    assert_eq!(send(&app, "nobody", json!({}), ADMIN_TOKEN).await.0, 404);
    let (status, body) = send(&app, "alice", json!({"via": "pigeon"}), ADMIN_TOKEN).await;
    assert_eq!((status, body["status"].as_str()), (400, Some("error")));
    let (status, body) = send(&app, "alice", json!({"via": "push"}), ADMIN_TOKEN).await;
    assert_eq!(status, 400);
    assert_eq!(body["message"], "alice has no push contact");
    assert_eq!(send(&app, "carol", json!({}), ADMIN_TOKEN).await.0, 400);

    // Before any test page, check warns about both of alice's methods.
    let out = check_output(&app, &[]);
    let at_alice = format!(
        "{}:3:11: person `alice`",
        app.rotations.path().join("oncall.yaml").display()
    );
    assert!(out.contains(&format!("warning: {at_alice} is on call in the next 14 days without an acknowledged sms test page")), "{out}");
    assert!(out.contains("without an acknowledged voice test page in the last 90 days; run `rouse test-page alice --via voice`"), "{out}");
    assert!(!out.contains("carol"), "carol is not on call: {out}");

    let (status, body) = send(&app, "alice", json!({"via": "all"}), ADMIN_TOKEN).await;
    assert_eq!(status, 202, "{body}");
    let pages = body["pages"].as_array().unwrap().clone();
    let alert_of = |method: &str| {
        pages
            .iter()
            .find(|p| p["method"] == method)
            .and_then(|p| p["alert_id"].as_i64())
            .unwrap()
    };
    let (sms_alert, voice_alert) = (alert_of("sms"), alert_of("voice"));
    assert_ne!(sms_alert, voice_alert, "one alert per method");

    // The SMS: clearly a test, with its own reply code.
    eventually("the test text", || async { !twilio.messages().is_empty() }).await;
    let text = twilio.messages().remove(0);
    assert_eq!(text.to, ALICE);
    assert!(
        text.body.contains("TEST PAGE for Alice by sms"),
        "{}",
        text.body
    );
    eventually("the text is recorded", || async {
        timeline_has(&app, sms_alert, &format!("({})", text.sid)).await
    })
    .await;
    let code = text
        .body
        .split("Reply ")
        .nth(1)
        .and_then(|r| r.split(" to ack").next())
        .unwrap_or_else(|| panic!("no reply code in {:?}", text.body))
        .to_owned();
    twilio
        .inbound_sms(&app.url("/twilio/sms"), ALICE, TWILIO_NUMBER, &code)
        .await;
    eventually("the SMS test page is acknowledged", || async {
        timeline_has(&app, sms_alert, "acknowledged via sms").await
    })
    .await;

    // Only voice is left unproven.
    let results = store.test_pages(None, t0() - PROOF_MAX_AGE).await.unwrap();
    let out = check_output(&app, &results);
    assert!(!out.contains("sms test page"), "{out}");
    assert!(out.contains("voice test page"), "{out}");

    // The call: answered, 1 pressed.
    eventually("the test call", || async { !twilio.calls().is_empty() }).await;
    let call = twilio.calls().remove(0);
    assert_eq!(call.to, ALICE);
    eventually("the call is recorded", || async {
        timeline_has(&app, voice_alert, &format!("({})", call.sid)).await
    })
    .await;
    twilio.run_call(&call.sid).await;
    eventually("the voice test page is acknowledged", || async {
        timeline_has(&app, voice_alert, "acknowledged via voice").await
    })
    .await;

    let (status, shown) = app.admin_get("/v1/people/alice/test-pages").await;
    assert_eq!(status, 200, "{shown}");
    assert_eq!(shown["proven"], json!(["sms", "voice"]));
    let rows = shown["test_pages"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|r| r["acknowledged_by"] == "alice"));
    let results = store.test_pages(None, t0() - PROOF_MAX_AGE).await.unwrap();
    let out = check_output(&app, &results);
    assert!(!out.contains("test page"), "{out}");
    store.close().await;
    app.stop().await;
}
both_backends!(each_method_is_acknowledged_its_own_way_and_check_warns_about_the_rest);

/// The two commands as an operator runs them, against a running server and
/// its database.
#[tokio::test]
async fn the_test_page_and_check_commands() {
    let db = TestDb::sqlite();
    let app = TestApp::spawn_with_catalog(&db, CATALOG, |_| {}).await;
    let command = |args: Vec<String>| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_rouse"));
        for (key, _) in std::env::vars() {
            if key.starts_with("ROUSE_") {
                cmd.env_remove(key);
            }
        }
        cmd.env("ROUSE_ADMIN_TOKEN", ADMIN_TOKEN).args(args);
        tokio::task::spawn_blocking(move || cmd.output().unwrap())
    };
    let sent = command(vec![
        "test-page".into(),
        "alice".into(),
        "--via".into(),
        "sms".into(),
        "--url".into(),
        app.base.clone(),
    ])
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&sent.stdout);
    assert!(
        sent.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&sent.stderr)
    );
    assert!(
        stdout.contains("test page by sms queued as alert #"),
        "{stdout}"
    );
    let refused = command(vec![
        "test-page".into(),
        "nobody".into(),
        "--url".into(),
        app.base.clone(),
    ])
    .await
    .unwrap();
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("no person `nobody`"));

    let checked = command(vec![
        "check".into(),
        app.rotations.path().display().to_string(),
        "--database-url".into(),
        db.url().to_owned(),
    ])
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&checked.stdout);
    assert!(checked.status.success(), "{stdout}");
    // Sent but not acknowledged proves nothing.
    assert!(
        stdout.contains(
            "person `alice` is on call in the next 14 days without an acknowledged sms test page"
        ),
        "{stdout}"
    );
    assert!(stdout.contains("ok: 2 people"), "{stdout}");
    app.stop().await;
}
