//! Every way to acknowledge, end to end through the real server on a virtual
//! clock, on both stores: alert in → page out through the fake Twilio and the
//! Slack capture server → a signed reply, key press, link or button press in →
//! the escalation stops (no further calls however far the clock moves) → the
//! timeline says who acknowledged and how. Then the forgeries, which change
//! nothing.

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use rouse::channel::slack::SlackConfig;
use rouse::channel::{ChannelsConfig, TwilioSettings};
use rouse::clock::ManualClock;
use rouse::config::Secret;
use serde_json::{json, Value};

use crate::both_backends;
use crate::fake_twilio::{CallScript, CallbackKind, FakeTwilio};
use crate::peers::{self, Canned, Capture};
use crate::support::{eventually, TestApp, TestDb};

const SID: &str = "AC00000000000000000000000000000007";
const TOKEN: &str = "ack-paths-auth-token";
const TWILIO_NUMBER: &str = "+15005550006";
const ALICE: &str = "+4915100000001";
const ALICE_SLACK: &str = "U01ALICE";
const SIGNING_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
const KEY: &str = "ack-paths-key-0123456789";

/// Alice is on call; the room hears at once, alice gets a text at once,
/// calls from five minutes on, repeated every five minutes until someone acks.
const CATALOG: &str = r##"
people:
  - { id: alice, name: Alice, timezone: Europe/Berlin, contact: { sms: "+4915100000001", voice: "+4915100000001", slack: U01ALICE } }
  - { id: bob, name: Bob, timezone: Europe/Berlin, contact: { sms: "+4915100000002", slack: U01BOB } }
rotations:
  - { id: solo, timezone: Europe/Berlin, participants: [alice], shift: 1w, handoff: "09:00", start: 2026-11-02 }
schedules:
  - { id: primary, timezone: Europe/Berlin, layers: [{ rotation: solo }] }
policies:
  - id: wake-up
    voice_repeat_every: 5m
    steps:
      - { delay: 0m, targets: [{ chat: "C0OPS" }, { schedule: primary }], channels: [chat, sms] }
      - { delay: 5m, targets: [{ schedule: primary }], channels: [voice] }
services:
  - id: payments
    policy: wake-up
    integrations: [{ name: am, key: ack-paths-key-0123456789 }]
"##;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 3, 3, 0, 0).unwrap()
}

struct Rig {
    app: TestApp,
    clock: ManualClock,
    twilio: FakeTwilio,
    slack: Capture,
}

impl Rig {
    async fn start(db: &TestDb) -> Rig {
        let twilio = FakeTwilio::start(SID, TOKEN).await;
        twilio.script_call(ALICE, CallScript::NoAnswer);
        let slack = Capture::start(vec![Canned::json(
            200,
            json!({"ok": true, "channel": "C0OPS", "ts": "1764000000.000100"}),
        )])
        .await;
        let clock = ManualClock::new(t0());
        let (twilio_base, slack_api) = (twilio.base_url(), slack.url("/api"));
        let app = TestApp::spawn_with_clock(db, CATALOG, Arc::new(clock.clone()), move |c| {
            c.signing_key = Secret::new("ack-paths-signing-key-0123456789abcdef");
            c.channels = Arc::new(ChannelsConfig {
                twilio: Some(TwilioSettings {
                    account_sid: SID.to_owned(),
                    auth_token: Some(Secret::new(TOKEN)),
                    from: TWILIO_NUMBER.to_owned(),
                    base_url: Some(twilio_base),
                }),
                slack: Some(SlackConfig {
                    webhook_url: None,
                    bot_token: Some(Secret::new("xoxb-ack-paths")),
                    channel: None,
                    api_url: Some(slack_api),
                    signing_secret: Some(Secret::new(SIGNING_SECRET)),
                }),
                ..Default::default()
            });
        })
        .await;
        Rig {
            app,
            clock,
            twilio,
            slack,
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

    /// The text alice got for alert `id`.
    async fn text_for(&self, id: i64) -> String {
        let tag = format!("#{id} ");
        eventually("alice gets the text", || async {
            self.twilio.messages().iter().any(|m| m.body.contains(&tag))
        })
        .await;
        let found = self
            .twilio
            .messages()
            .into_iter()
            .find(|m| m.body.contains(&tag));
        found.map(|m| m.body).unwrap_or_default()
    }

    fn calls_for(&self, id: i64) -> usize {
        let path = format!("/twilio/voice/{id}?");
        self.twilio
            .calls()
            .iter()
            .filter(|c| c.url.contains(&path))
            .count()
    }

    /// Moves the virtual clock an hour on (twelve call repeats' worth) and
    /// proves the engine has caught up with it: a fresh alert's first text
    /// goes out only after every earlier due step was handled.
    async fn hour_passes(&self, sentinel: &str) {
        self.clock.advance(TimeDelta::hours(1));
        let id = self.trigger(sentinel).await;
        self.text_for(id).await;
        // Its call is due five minutes later; move on so the engine works
        // through everything that is due, then wait for that call.
        self.clock.advance(TimeDelta::minutes(6));
        eventually("the sentinel's call", || async { self.calls_for(id) > 0 }).await;
    }

    /// The slack message's buttons for alert `id`, pressed by `user`.
    fn press_body(&self, user: &str, action: &str, id: i64) -> String {
        let payload = json!({
            "type": "block_actions",
            "user": {"id": user, "username": user.to_lowercase(), "team_id": "T0TEAM"},
            "api_app_id": "A0ROUSE",
            "container": {"type": "message", "message_ts": "1764000000.000100", "channel_id": "C0OPS"},
            "channel": {"id": "C0OPS", "name": "ops"},
            "response_url": self.slack.url("/actions/T0TEAM/1/xyz"),
            "actions": [{"action_id": action, "block_id": "rouse", "type": "button",
                         "value": id.to_string(), "action_ts": "1764000001.000200"}],
        });
        format!(
            "payload={}",
            rouse::channel::twilio::percent_encode(&payload.to_string())
        )
    }

    async fn post_slack(&self, body: &str, timestamp: i64, signature: &str) -> u16 {
        self.app
            .http
            .post(self.app.url("/slack/interactions"))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("x-slack-request-timestamp", timestamp.to_string())
            .header("x-slack-signature", signature)
            .body(body.to_owned())
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    async fn stop(self) {
        self.app.stop().await;
    }
}

fn acked_by(shown: &Value, who: &str, via: &str) -> bool {
    shown["alert"]["status"] == "acknowledged"
        && shown["alert"]["acknowledged_by"] == who
        && shown["timeline"].as_array().unwrap().iter().any(|e| {
            e["kind"] == "acknowledged"
                && e["actor"] == who
                && e["message"]
                    .as_str()
                    .unwrap_or("")
                    .contains(&format!("via {via}"))
        })
}

async fn sms_reply_acknowledges(db: &TestDb) {
    let rig = Rig::start(db).await;
    let id = rig.trigger("sms-path").await;
    let text = rig.text_for(id).await;
    assert!(
        text.contains("Reply 1a to ack, 1r to resolve, 1e to escalate."),
        "{text}"
    );
    let inbound = format!("{}/twilio/sms", rig.app.base);
    let answer = rig
        .twilio
        .inbound_sms(&inbound, ALICE, TWILIO_NUMBER, " \"1A\" ")
        .await;
    assert_eq!(answer.response_status, Some(200));
    assert!(
        answer
            .response_body
            .contains(&format!("#{id} acknowledged")),
        "{}",
        answer.response_body
    );
    assert!(acked_by(&rig.alert(id).await, "alice", "sms"));
    rig.hour_passes("sms-sentinel").await;
    assert_eq!(rig.calls_for(id), 0, "no call after the SMS ack");
    // The room's message was edited to say who acknowledged.
    eventually("the Slack page is updated", || async {
        rig.slack.requests().iter().any(|r| {
            r.path.ends_with("/chat.update")
                && r.json().to_string().contains("ACKNOWLEDGED by alice")
        })
    })
    .await;
    // Alice acknowledged herself: she is not texted about it.
    let texts: Vec<String> = rig
        .twilio
        .messages()
        .into_iter()
        .map(|m| m.body)
        .filter(|b| b.contains(&format!("#{id} ")))
        .collect();
    assert_eq!(texts.len(), 1, "{texts:?}");
    rig.stop().await;
}
both_backends!(sms_reply_acknowledges);

async fn voice_keypress_acknowledges(db: &TestDb) {
    let rig = Rig::start(db).await;
    let id = rig.trigger("voice-path").await;
    rig.text_for(id).await;
    rig.twilio.script_call(
        ALICE,
        CallScript::Human {
            press: Some("1".to_owned()),
        },
    );
    rig.clock.advance(TimeDelta::minutes(5));
    eventually("the call", || async { rig.calls_for(id) == 1 }).await;
    let call = rig
        .twilio
        .calls()
        .into_iter()
        .find(|c| c.url.contains(&format!("/voice/{id}?")))
        .unwrap();
    let exchange = rig.twilio.run_call(&call.sid).await;
    let gather = exchange
        .iter()
        .find(|e| e.kind == CallbackKind::Gather)
        .expect("a key was pressed");
    assert!(
        gather.response_body.contains("Acknowledged"),
        "{}",
        gather.response_body
    );
    assert!(acked_by(&rig.alert(id).await, "alice", "voice"));
    rig.twilio.script_call(ALICE, CallScript::NoAnswer);
    rig.hour_passes("voice-sentinel").await;
    assert_eq!(rig.calls_for(id), 1, "no call after the keypress");
    rig.stop().await;
}
both_backends!(voice_keypress_acknowledges);

async fn signed_link_acknowledges_on_post_only(db: &TestDb) {
    let rig = Rig::start(db).await;
    let id = rig.trigger("link-path").await;
    let text = rig.text_for(id).await;
    let link = text
        .split_whitespace()
        .find(|w| w.starts_with(&format!("{}/ack/{id}?t=alice.a", rig.app.base)))
        .unwrap_or_else(|| panic!("no ack link for alice in {text:?}"))
        .to_owned();
    // A link previewer fetching it changes nothing.
    let page = rig.app.http.get(&link).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(
        page.headers()["cache-control"],
        "no-store",
        "the token must not be cached"
    );
    let html = page.text().await.unwrap();
    assert!(
        html.contains(">Acknowledge</button>") && html.contains(">Resolve</button>"),
        "{html}"
    );
    assert_eq!(rig.alert(id).await["alert"]["status"], "triggered");

    let done = rig.app.http.post(&link).send().await.unwrap();
    assert_eq!(done.status(), 200);
    assert!(done.text().await.unwrap().contains("<h1>Acknowledged</h1>"));
    assert!(acked_by(&rig.alert(id).await, "alice", "link"));
    // Pressing again is harmless and says so.
    let again = rig.app.http.post(&link).send().await.unwrap();
    assert!(again.text().await.unwrap().contains("Already acknowledged"));

    rig.hour_passes("link-sentinel").await;
    assert_eq!(rig.calls_for(id), 0, "no call after the link ack");
    rig.stop().await;
}
both_backends!(signed_link_acknowledges_on_post_only);

async fn slack_button_acknowledges(db: &TestDb) {
    let rig = Rig::start(db).await;
    let id = rig.trigger("slack-path").await;
    eventually("the Slack page with buttons", || async {
        rig.slack.requests().iter().any(|r| {
            r.path.ends_with("/chat.postMessage") && r.json().to_string().contains("rouse_ack")
        })
    })
    .await;
    let body = rig.press_body(ALICE_SLACK, "rouse_ack", id);
    let ts = t0().timestamp();
    // Signed by Slack's own SDK, so the check is against Slack's algorithm.
    let Some(signature) =
        peers::slack_sdk_signature("slack_button_acknowledges", SIGNING_SECRET, ts, &body)
    else {
        rig.stop().await;
        return;
    };
    assert_eq!(rig.post_slack(&body, ts, &signature).await, 200);
    assert!(acked_by(&rig.alert(id).await, "alice", "slack"));
    eventually("the Slack page says who acknowledged", || async {
        rig.slack.requests().iter().any(|r| {
            r.path.ends_with("/chat.update")
                && r.json().to_string().contains("ACKNOWLEDGED by alice")
        })
    })
    .await;
    rig.hour_passes("slack-sentinel").await;
    assert_eq!(rig.calls_for(id), 0, "no call after the button");
    rig.stop().await;
}
both_backends!(slack_button_acknowledges);

/// Nothing here may change the alert: a forged Twilio signature, a replayed
/// Slack request, a Slack user outside the configuration, a token for another
/// alert, an expired token, a voice token used as a link, a stranger's phone,
/// and GET on a valid link.
async fn forgeries_change_nothing(db: &TestDb) {
    let rig = Rig::start(db).await;
    let id = rig.trigger("forged").await;
    // One at a time: two alerts paged together would share one bundled text.
    let text = rig.text_for(id).await;
    let other = rig.trigger("other").await;
    rig.text_for(other).await;
    let link = text
        .split_whitespace()
        .find(|w| w.contains(&format!("/ack/{id}?t=")))
        .unwrap()
        .to_owned();
    let inbound = format!("{}/twilio/sms", rig.app.base);

    // Twilio: signed with the wrong auth token.
    let params = vec![
        ("From".to_owned(), ALICE.to_owned()),
        ("Body".to_owned(), "1a".to_owned()),
    ];
    let forged = crate::fake_twilio::twilio_signature("not-the-token", &inbound, &params);
    let r = rig
        .app
        .http
        .post(&inbound)
        .header("X-Twilio-Signature", forged)
        .form(&params)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // Twilio: correctly signed, from a number that belongs to nobody.
    let stranger = rig
        .twilio
        .inbound_sms(&inbound, "+19995550123", TWILIO_NUMBER, "1a")
        .await;
    assert_eq!(stranger.response_status, Some(200));
    assert!(
        !stranger.response_body.contains("<Message>"),
        "{}",
        stranger.response_body
    );
    // Twilio: bob's number was never paged for this alert.
    let bob = rig
        .twilio
        .inbound_sms(&inbound, "+4915100000002", TWILIO_NUMBER, "ack all")
        .await;
    assert!(
        bob.response_body.contains("Nothing to acknowledge"),
        "{}",
        bob.response_body
    );

    // Slack: a valid signature, replayed six minutes later.
    let body = rig.press_body(ALICE_SLACK, "rouse_ack", id);
    let secret = Secret::new(SIGNING_SECRET);
    let stale = (t0() - TimeDelta::minutes(6)).timestamp();
    let signature = rouse::ack::slack::sign(&secret, stale, body.as_bytes());
    assert_eq!(rig.post_slack(&body, stale, &signature).await, 401);
    // Slack: right timestamp, wrong secret.
    let now = t0().timestamp();
    let wrong = rouse::ack::slack::sign(&Secret::new("not-the-secret"), now, body.as_bytes());
    assert_eq!(rig.post_slack(&body, now, &wrong).await, 401);
    // Slack: a genuine press by someone not in the configuration.
    let outsider = rig.press_body("U0STRANGER", "rouse_ack", id);
    let signature = rouse::ack::slack::sign(&secret, now, outsider.as_bytes());
    assert_eq!(rig.post_slack(&outsider, now, &signature).await, 200);
    eventually("the outsider is told why", || async {
        rig.slack
            .requests()
            .iter()
            .any(|r| r.path.starts_with("/actions/") && r.json()["response_type"] == "ephemeral")
    })
    .await;

    // Links: GET never acts; another alert's id; a voice token; tampering.
    assert_eq!(rig.app.http.get(&link).send().await.unwrap().status(), 200);
    let moved = link.replace(&format!("/ack/{id}?"), &format!("/ack/{other}?"));
    assert_eq!(
        rig.app.http.post(&moved).send().await.unwrap().status(),
        403
    );
    let signer =
        rouse::ack::token::Signer::new(Secret::new("ack-paths-signing-key-0123456789abcdef"));
    let voice = signer.sign(
        rouse::ack::token::Purpose::Voice,
        id,
        "alice",
        t0() + TimeDelta::hours(1),
    );
    let r = rig
        .app
        .http
        .post(rig.app.url(&format!("/ack/{id}?t={voice}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let tampered = link.replacen("alice.a", "bob.a", 1);
    assert_eq!(
        rig.app.http.post(&tampered).send().await.unwrap().status(),
        403
    );
    // Expired: a day and an hour later.
    rig.clock.advance(TimeDelta::hours(25));
    let r = rig.app.http.post(&link).send().await.unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("expired"));

    for alert in [id, other] {
        let shown = rig.alert(alert).await;
        assert_eq!(shown["alert"]["status"], "triggered", "{shown}");
        assert!(
            !shown["timeline"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["kind"] == "acknowledged"),
            "{shown}"
        );
    }
    rig.stop().await;
}
both_backends!(forgeries_change_nothing);

/// STOP turns texts off for that number (the page falls through to the call
/// at once, and the timeline says why); START turns them back on. Help
/// replies are rate-limited, and `ack all` acknowledges every open alert.
async fn stop_start_help_and_ack_all(db: &TestDb) {
    let rig = Rig::start(db).await;
    let first = rig.trigger("first").await;
    rig.text_for(first).await;
    let inbound = format!("{}/twilio/sms", rig.app.base);
    let stop = rig
        .twilio
        .inbound_sms(&inbound, ALICE, TWILIO_NUMBER, "STOP")
        .await;
    assert!(
        !stop.response_body.contains("<Message>"),
        "Twilio answers STOP itself"
    );
    eventually("the opt-out is in the timeline", || async {
        rig.alert(first).await["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| {
                e["kind"] == "contact"
                    && e["message"].as_str().unwrap_or("").contains("replied STOP")
            })
    })
    .await;

    // A new alert: no text to alice; the call comes at once instead of at +5m.
    let second = rig.trigger("second").await;
    eventually("the call replaces the text", || async {
        rig.calls_for(second) == 1
    })
    .await;
    assert!(!rig
        .twilio
        .messages()
        .iter()
        .any(|m| m.body.contains(&format!("#{second} "))));
    let shown = rig.alert(second).await;
    assert!(
        shown["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["message"].as_str().unwrap_or("").contains("replied STOP")),
        "{shown}"
    );

    let start = rig
        .twilio
        .inbound_sms(&inbound, ALICE, TWILIO_NUMBER, "start")
        .await;
    assert!(
        start.response_body.contains("on again"),
        "{}",
        start.response_body
    );
    let third = rig.trigger("third").await;
    let text = rig.text_for(third).await;
    // Code 1 is still `first`'s (open); `second` was never texted.
    assert!(text.contains("Reply 2a to ack"), "{text}");

    let help = rig
        .twilio
        .inbound_sms(&inbound, ALICE, TWILIO_NUMBER, "what?")
        .await;
    assert!(
        help.response_body.contains("reply 4a to ack"),
        "{}",
        help.response_body
    );
    let again = rig
        .twilio
        .inbound_sms(&inbound, ALICE, TWILIO_NUMBER, "hello?")
        .await;
    assert!(
        !again.response_body.contains("<Message>"),
        "help is rate-limited"
    );

    let all = rig
        .twilio
        .inbound_sms(&inbound, ALICE, TWILIO_NUMBER, "Ack All")
        .await;
    assert!(
        all.response_body.contains("Acknowledged 3"),
        "{}",
        all.response_body
    );
    for id in [first, second, third] {
        assert!(acked_by(&rig.alert(id).await, "alice", "sms"), "#{id}");
    }
    rig.stop().await;
}
both_backends!(stop_start_help_and_ack_all);

/// The control for the tests above: with nobody acknowledging, the same hour
/// brings the calls, repeated. (Proves `hour_passes` can see a missed stop.)
async fn without_an_ack_the_calls_keep_coming(db: &TestDb) {
    let rig = Rig::start(db).await;
    let id = rig.trigger("nobody-acks").await;
    rig.text_for(id).await;
    rig.hour_passes("control-sentinel").await;
    assert!(rig.calls_for(id) >= 1, "calls: {}", rig.calls_for(id));
    assert_eq!(rig.alert(id).await["alert"]["status"], "triggered");
    rig.stop().await;
}
both_backends!(without_an_ack_the_calls_keep_coming);

/// Whoever else was texted hears that someone acknowledged — but a storm of
/// acknowledgements does not become a storm of texts.
async fn status_texts_tell_the_others_and_are_limited(db: &TestDb) {
    let rig = Rig::start(db).await;
    let mut ids = Vec::new();
    for n in 0..5 {
        let id = rig.trigger(&format!("storm-{n}")).await;
        rig.text_for(id).await;
        ids.push(id);
    }
    for id in &ids {
        let r = rig
            .app
            .http
            .post(rig.app.url(&format!("/v1/alerts/{id}/acknowledge")))
            .bearer_auth(crate::support::ADMIN_TOKEN)
            .json(&json!({"by": "bob"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let status_texts = || {
        rig.twilio
            .messages()
            .into_iter()
            .filter(|m| m.body.contains("ACKNOWLEDGED by bob"))
            .count()
    };
    eventually("every status text is sent or held back", || async {
        let mut held = 0;
        for id in &ids {
            let shown = rig.alert(*id).await;
            held += shown["timeline"].as_array().unwrap().iter().any(|e| {
                e["message"]
                    .as_str()
                    .unwrap_or("")
                    .contains("status text not sent")
            }) as usize;
        }
        held + status_texts() == ids.len()
    })
    .await;
    assert_eq!(status_texts(), 3, "{:#?}", rig.twilio.messages());
    rig.stop().await;
}
both_backends!(status_texts_tell_the_others_and_are_limited);

/// Slack re-sends an interaction it got no answer to in time: the same press
/// (same user, same `action_ts`) acts once and is answered the same way.
async fn a_resent_slack_press_acts_once(db: &TestDb) {
    let rig = Rig::start(db).await;
    let id = rig.trigger("slack-resent").await;
    let body = rig.press_body(ALICE_SLACK, "rouse_ack", id);
    let now = t0().timestamp();
    let signature = rouse::ack::slack::sign(&Secret::new(SIGNING_SECRET), now, body.as_bytes());
    assert_eq!(rig.post_slack(&body, now, &signature).await, 200);
    assert_eq!(rig.post_slack(&body, now, &signature).await, 200);
    let shown = rig.alert(id).await;
    assert!(acked_by(&shown, "alice", "slack"), "{shown}");
    let acks = shown["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "acknowledged")
        .count();
    assert_eq!(acks, 1, "the re-sent press acted again: {shown}");
    // A first press tells nobody "already acknowledged"; a second acting
    // press would have.
    let told = rig
        .slack
        .requests()
        .iter()
        .filter(|r| r.path.starts_with("/actions/"))
        .count();
    assert_eq!(told, 0);
    rig.stop().await;
}
both_backends!(a_resent_slack_press_acts_once);
