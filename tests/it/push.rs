//! Push pages end to end through the real server on a virtual clock, on both
//! stores: an alert opens → an emergency Pushover page (or an ntfy message
//! with buttons) goes to the fake provider → the provider's callback, a
//! receipt poll or the button acknowledges the alert → the timeline says who
//! and how, and the emergency page's repeats are cancelled. Then the
//! forgeries, which change nothing, and a provider that refuses, which falls
//! through to the next step as SMS does.

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use rouse::channel::ntfy::NtfySettings;
use rouse::channel::pushover::PushoverSettings;
use rouse::channel::ChannelsConfig;
use rouse::clock::ManualClock;
use rouse::config::Secret;
use serde_json::{json, Value};

use crate::both_backends;
use crate::fake_push::{FakeNtfy, FakePushover, PushoverMessage};
use crate::support::{eventually, TestApp, TestDb};

const APP_TOKEN: &str = "azGDORePK8gMaC0QOYAMyEEuzJnyUi";
const ALICE_KEY: &str = "uQiRzpo4DXghDmr9QzzfQu27cmVRsG";
const NTFY_TOKEN: &str = "tk_push_test_token";
const KEY: &str = "push-test-key-0123456789";

/// Alice is on call and has Pushover; ten minutes on, bob is paged on ntfy.
const CATALOG: &str = r##"
people:
  - { id: alice, name: Alice, timezone: Europe/Berlin, contact: { pushover: uQiRzpo4DXghDmr9QzzfQu27cmVRsG } }
  - { id: bob, name: Bob, timezone: Europe/Berlin, contact: { ntfy: bob-pager } }
rotations:
  - { id: solo, timezone: Europe/Berlin, participants: [alice], shift: 1w, handoff: "09:00", start: 2026-11-02 }
schedules:
  - { id: primary, timezone: Europe/Berlin, layers: [{ rotation: solo }] }
policies:
  - id: wake-up
    steps:
      - { delay: 0m, targets: [{ schedule: primary }], channels: [push] }
      - { delay: 10m, targets: [{ person: bob }], channels: [push] }
services:
  - id: payments
    policy: wake-up
    integrations: [{ name: am, key: push-test-key-0123456789 }]
"##;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 3, 3, 0, 0).unwrap()
}

struct Rig {
    app: TestApp,
    clock: ManualClock,
    pushover: FakePushover,
    ntfy: FakeNtfy,
}

impl Rig {
    async fn start(db: &TestDb) -> Rig {
        let pushover = FakePushover::start(APP_TOKEN).await;
        let ntfy = FakeNtfy::start().await;
        let clock = ManualClock::new(t0());
        let (pushover_base, ntfy_base) = (pushover.base_url(), ntfy.base_url());
        let app = TestApp::spawn_with_clock(db, CATALOG, Arc::new(clock.clone()), move |c| {
            c.signing_key = Secret::new("push-signing-key-0123456789abcdef0123");
            c.channels = Arc::new(ChannelsConfig {
                pushover: Some(PushoverSettings {
                    token: Some(Secret::new(APP_TOKEN)),
                    base_url: Some(pushover_base),
                    retry: 60,
                    expire: 3600,
                    sound: None,
                    poll_every: 10,
                }),
                ntfy: Some(NtfySettings {
                    base_url: Some(ntfy_base),
                    token: Some(Secret::new(NTFY_TOKEN)),
                }),
                ..Default::default()
            });
        })
        .await;
        Rig {
            app,
            clock,
            pushover,
            ntfy,
        }
    }

    async fn trigger(&self, key: &str) -> i64 {
        let (status, body) = self
            .app
            .post(
                "/v1/events",
                &[("x-rouse-key", KEY)],
                json!({"action": "trigger", "dedup_key": key, "summary": format!("{key} is down"),
                       "severity": "critical"})
                .to_string(),
            )
            .await;
        assert_eq!(status, 202, "{body}");
        body["alert_id"].as_i64().unwrap()
    }

    async fn alert(&self, id: i64) -> Value {
        self.app.admin_get(&format!("/v1/alerts/{id}")).await.1
    }

    /// Alice's page, once Rouse has recorded its receipt (Pushover's
    /// callbacks come after its answer to the send).
    async fn emergency_page(&self, id: i64) -> PushoverMessage {
        eventually("alice's Pushover page", || async {
            !self.pushover.messages().is_empty()
        })
        .await;
        let page = self.pushover.messages().remove(0);
        if let Some(receipt) = &page.receipt {
            let recorded = format!("pushover to Alice: delivered ({receipt})");
            eventually("the receipt is recorded", || async {
                let shown = self.alert(id).await;
                shown["timeline"]
                    .as_array()
                    .is_some_and(|t| t.iter().any(|e| e["message"] == recorded.as_str()))
            })
            .await;
        }
        page
    }

    async fn post_form(&self, url: &str, body: String) -> (u16, Value) {
        let response = self
            .app
            .http
            .post(url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }
}

fn acks(shown: &Value) -> Vec<(String, String)> {
    shown["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "acknowledged")
        .map(|e| {
            (
                e["actor"].as_str().unwrap_or("").to_owned(),
                e["message"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

async fn pushover_callback_acknowledges_and_cancels_the_receipt(db: &TestDb) {
    let rig = Rig::start(db).await;
    let id = rig.trigger("db-down").await;
    let page = rig.emergency_page(id).await;
    assert_eq!(page.get("token"), Some(APP_TOKEN));
    assert_eq!(page.get("user"), Some(ALICE_KEY));
    assert_eq!(page.get("priority"), Some("2"));
    assert_eq!(page.get("retry"), Some("60"));
    assert_eq!(page.get("expire"), Some("3600"));
    assert!(page.get("message").unwrap().contains("db-down is down"));
    let receipt = page.receipt.clone().expect("a receipt at priority 2");
    let callback = page.get("callback").expect("a callback URL").to_owned();
    assert!(
        callback.starts_with(&rig.app.url("/pushover/callback/")),
        "{callback}"
    );

    // Forgeries: a wrong secret, another receipt, another page's id.
    let wrong_secret = format!("{}x", &callback[..callback.len() - 1]);
    let (status, body) = rig
        .pushover
        .call_back(&wrong_secret, &receipt, ALICE_KEY)
        .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["status"], "error");
    let (status, _) = rig
        .pushover
        .call_back(&callback, "r00000000000000000000000000099", ALICE_KEY)
        .await;
    assert_eq!(status, 403);
    let (prefix, rest) = callback.rsplit_once("/callback/").unwrap();
    let (_, secret) = rest.split_once('/').unwrap();
    let other_page = format!("{prefix}/callback/999999/{secret}");
    let (status, _) = rig
        .pushover
        .call_back(&other_page, &receipt, ALICE_KEY)
        .await;
    assert_eq!(status, 403);
    let (status, _) = rig
        .post_form(
            &rig.app.url("/pushover/callback/notanumber/x"),
            String::new(),
        )
        .await;
    assert_eq!(status, 400);
    let shown = rig.alert(id).await;
    assert_eq!(
        shown["alert"]["status"], "triggered",
        "forgeries change nothing"
    );
    assert!(rig.pushover.cancels().is_empty());

    let (status, body) = rig.pushover.call_back(&callback, &receipt, ALICE_KEY).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("acknowledged"))
    );
    let shown = rig.alert(id).await;
    assert_eq!(shown["alert"]["status"], "acknowledged");
    assert_eq!(shown["alert"]["acknowledged_by"], "alice");
    assert_eq!(
        acks(&shown),
        [("alice".to_owned(), "acknowledged via pushover".to_owned())]
    );
    eventually("the emergency page's repeats are cancelled", || async {
        rig.pushover.cancels().contains(&receipt)
    })
    .await;

    // Pushover may call again: a repeat changes nothing.
    let (status, body) = rig.pushover.call_back(&callback, &receipt, ALICE_KEY).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("already_recorded"))
    );
    assert_eq!(acks(&rig.alert(id).await).len(), 1);
    rig.app.stop().await;
}
both_backends!(pushover_callback_acknowledges_and_cancels_the_receipt);

async fn without_a_callback_the_receipt_poll_finds_the_acknowledgement(db: &TestDb) {
    let rig = Rig::start(db).await;
    let id = rig.trigger("db-down").await;
    let page = rig.emergency_page(id).await;
    let receipt = page.receipt.clone().unwrap();
    eventually("the receipt is polled", || async {
        !rig.pushover.polls().is_empty()
    })
    .await;
    rig.pushover.acknowledge(&receipt, ALICE_KEY);
    // The next poll is due 10 s later on the virtual clock.
    rig.clock.advance(TimeDelta::seconds(10));
    eventually("the poll acknowledges the alert", || async {
        rig.alert(id).await["alert"]["status"] == "acknowledged"
    })
    .await;
    let shown = rig.alert(id).await;
    assert_eq!(shown["alert"]["acknowledged_by"], "alice");
    assert_eq!(
        acks(&shown),
        [("alice".to_owned(), "acknowledged via pushover".to_owned())]
    );
    assert!(rig.pushover.polls().iter().all(|r| *r == receipt));
    eventually("the receipt is cancelled", || async {
        rig.pushover.cancels().contains(&receipt)
    })
    .await;
    rig.app.stop().await;
}
both_backends!(without_a_callback_the_receipt_poll_finds_the_acknowledgement);

async fn ntfy_acknowledge_button_acknowledges_and_a_tampered_token_gets_403(db: &TestDb) {
    let rig = Rig::start(db).await;
    let id = rig.trigger("db-down").await;
    rig.emergency_page(id).await;
    // Nobody acknowledges alice's page: ten minutes on, bob gets ntfy.
    rig.clock.advance(TimeDelta::minutes(10));
    eventually("bob's ntfy message", || async {
        !rig.ntfy.messages().is_empty()
    })
    .await;
    let message = rig.ntfy.messages().remove(0);
    assert_eq!(message.path, "/");
    assert_eq!(
        message.authorization.as_deref(),
        Some(format!("Bearer {NTFY_TOKEN}").as_str())
    );
    let body = &message.json;
    assert_eq!(body["topic"], "bob-pager");
    assert_eq!(body["priority"], 5);
    assert!(body["message"]
        .as_str()
        .unwrap()
        .contains("db-down is down"));
    let actions = body["actions"].as_array().unwrap();
    let http = actions.iter().find(|a| a["action"] == "http").unwrap();
    assert_eq!(http["method"], "POST");
    let ack = http["url"].as_str().unwrap().to_owned();
    assert!(
        ack.starts_with(&rig.app.url(&format!("/ntfy/ack/{id}?t="))),
        "{ack}"
    );
    let view = actions.iter().find(|a| a["action"] == "view").unwrap();
    assert!(view["url"]
        .as_str()
        .unwrap()
        .starts_with(&rig.app.url(&format!("/ack/{id}?t="))));

    // GET never acts; a tampered or misused token is refused.
    let get = rig.app.http.get(&ack).send().await.unwrap();
    assert_eq!(get.status().as_u16(), 405);
    let tampered = format!(
        "{}{}",
        &ack[..ack.len() - 1],
        if ack.ends_with('A') { 'B' } else { 'A' }
    );
    let (status, answer) = rig.post_form(&tampered, String::new()).await;
    assert_eq!(status, 403, "{answer}");
    assert_eq!(answer["status"], "error");
    let view_token = view["url"].as_str().unwrap().split("?t=").nth(1).unwrap();
    let (status, _) = rig
        .post_form(
            &rig.app.url(&format!("/ntfy/ack/{id}?t={view_token}")),
            String::new(),
        )
        .await;
    assert_eq!(status, 403, "an ack link is not a push button");
    let other_alert = ack.replace(
        &format!("/ntfy/ack/{id}?"),
        &format!("/ntfy/ack/{}?", id + 1),
    );
    let (status, _) = rig.post_form(&other_alert, String::new()).await;
    assert_eq!(status, 403);
    assert_eq!(rig.alert(id).await["alert"]["status"], "triggered");

    let (status, answer) = rig.post_form(&ack, String::new()).await;
    assert_eq!(
        (status, answer["status"].as_str()),
        (200, Some("acknowledged"))
    );
    let shown = rig.alert(id).await;
    assert_eq!(shown["alert"]["acknowledged_by"], "bob");
    assert_eq!(
        acks(&shown),
        [("bob".to_owned(), "acknowledged via ntfy".to_owned())]
    );
    rig.app.stop().await;
}
both_backends!(ntfy_acknowledge_button_acknowledges_and_a_tampered_token_gets_403);

async fn a_refusing_push_provider_falls_through_to_the_next_step(db: &TestDb) {
    let rig = Rig::start(db).await;
    rig.pushover.fail_with(400);
    let id = rig.trigger("db-down").await;
    // The clock stays at t0: bob's step (due at +10m) fires at once.
    eventually("bob is paged without waiting out the delay", || async {
        !rig.ntfy.messages().is_empty()
    })
    .await;
    assert!(rig.pushover.messages().is_empty());
    let shown = rig.alert(id).await;
    let notes: Vec<&str> = shown["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["message"].as_str())
        .collect();
    assert!(
        notes.iter().any(
            |m| m.starts_with("pushover to Alice: failed after attempt 1")
                && m.contains("escalating to the next step now")
        ),
        "{notes:#?}"
    );
    assert!(
        !notes
            .iter()
            .any(|m| m.contains(APP_TOKEN) || m.contains(ALICE_KEY)),
        "{notes:#?}"
    );
    rig.app.stop().await;
}
both_backends!(a_refusing_push_provider_falls_through_to_the_next_step);

/// The fake answers like Pushover: emergency priority without `retry` and
/// `expire` is a 400 with `errors`, so a Rouse that forgot them would fail.
#[tokio::test]
async fn the_fake_refuses_an_emergency_page_without_retry_and_expire() {
    let fake = FakePushover::start(APP_TOKEN).await;
    let form = [
        ("token", APP_TOKEN),
        ("user", ALICE_KEY),
        ("message", "disk full"),
        ("priority", "2"),
    ];
    let response = reqwest::Client::new()
        .post(format!("{}/1/messages.json", fake.base_url()))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], 0);
    assert!(
        body["errors"][0].as_str().unwrap().contains("retry"),
        "{body}"
    );
    assert!(fake.messages().is_empty());
}
